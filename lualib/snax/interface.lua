-- snax.interface: loads a snax service file and lists its methods in definition order, the
-- order that gives every method its wire id: system methods first (init 1, exit 2, hotfix 3,
-- profile 4), then each accept.x / response.x as the file defines it. Both ends load the file
-- to agree on ids (clients with a do-nothing `require`). Returns the method list
-- { {id, group, name, f}... }, the search pattern that found the file and the file's global
-- environment (globals it sets stay there; the others are read from and written to G).
local skynet = require "skynet"

local SYSTEM = { "init", "exit", "hotfix", "profile" }
local system_id = {}
for i, name in ipairs(SYSTEM) do
	system_id[name] = i
end

local function registrar(methods, group)
	local seen = {}
	return setmetatable({}, {
		__newindex = function(_, name, f)
			if type(name) ~= "string" then
				error(group .. " method only support string", 2)
			elseif type(f) ~= "function" then
				error(string.format("%s.%s must be function", group, name), 2)
			elseif seen[name] then
				error(string.format("%s.%s duplicate definition", group, name), 2)
			end
			seen[name] = true
			methods[#methods + 1] = { #methods + 1, group, name, f }
		end,
	})
end

local function find(name, loader)
	local path = skynet.getenv "snax"
	if path == nil or path == "" then -- unset: snax services are found along service_path
		path = assert(skynet.getenv "luaservice", "please set snax in config file")
	end
	local errors = {}
	for pattern in string.gmatch(path, "[^;]+") do
		local main, err = loader((string.gsub(pattern, "?", name)))
		if main then
			return main, pattern
		end
		errors[#errors + 1] = err
	end
	error(table.concat(errors, "\n"), 0)
end

return function(name, G, loader)
	local methods = {}
	for i, sys in ipairs(SYSTEM) do
		methods[i] = { i, "system", sys }
	end
	local during = { accept = registrar(methods, "accept"), response = registrar(methods, "response") }
	local env = setmetatable({}, {
		__index = function(_, k)
			local v = during[k]
			if v == nil then
				v = G[k]
			end
			return v
		end,
		__newindex = function(t, k, v)
			local id = system_id[k]
			if not id then
				rawset(t, k, v)
			elseif type(v) ~= "function" then
				error(k .. " must be a function", 2)
			else
				methods[id][4] = v
			end
		end,
	})
	local main, pattern = find(name, loader or loadfile)
	setfenv(main, env)
	local ok, err = xpcall(main, debug.traceback)
	setmetatable(env, { __index = G, __newindex = G })
	if not ok then
		error(err, 0)
	end
	return methods, pattern, env
end
