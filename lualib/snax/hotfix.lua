-- snax.hotfix: replaces methods of a running snax service with those of a patch source. A
-- local the patch declares without a value (`local i`) is joined to the running code's local
-- of the same name, so the patch shares the service's state; `hotfix(...)` in the patch runs
-- once after the swap and its results are returned. Returns pcall-style (ok, results | error).
local interface = require "snax.interface"

-- name -> { f, index, id } for every upvalue reachable from the service's methods (through
-- functions of the service file only: those share its environment `env`)
local function collect(f, env, seen, locals)
	if seen[f] then
		return
	end
	seen[f] = true
	local i = 1
	while true do
		local name, value = debug.getupvalue(f, i)
		if name == nil then
			return
		end
		local id = debug.upvalueid(f, i)
		local known = locals[name]
		if known and known.id ~= id then
			error(string.format("ambiguity local value %s", name))
		elseif not known then
			locals[name] = { f = f, index = i, id = id }
			if type(value) == "function" and getfenv(value) == env then
				collect(value, env, seen, locals)
			end
		end
		i = i + 1
	end
end

local function join(f, locals, seen)
	if seen[f] then
		return
	end
	seen[f] = true
	local i = 1
	while true do
		local name, value = debug.getupvalue(f, i)
		if name == nil then
			return
		elseif value == nil then
			local old = locals[name]
			if old then
				debug.upvaluejoin(f, i, old.f, old.index)
			end
		elseif type(value) == "function" then
			join(value, locals, seen)
		end
		i = i + 1
	end
end

local function find(methods, group, name)
	for _, m in ipairs(methods) do
		if m[2] == group and m[3] == name then
			return m
		end
	end
end

local function inject(methods, env, source, ...)
	local patch = interface("patch", env, function()
		return loadstring(source, "=patch")
	end)
	local locals, seen = {}, {}
	for _, m in ipairs(methods) do
		if m[4] then
			collect(m[4], env, seen, locals)
		end
	end
	local joined = {}
	for _, p in ipairs(patch) do
		local f = p[4]
		if f then
			local m = find(methods, p[2], p[3])
			if not m then
				error(string.format("Patch mismatch %s.%s", p[2], p[3]))
			end
			join(f, locals, joined)
			m[4] = f
		end
	end
	local hotfix = find(patch, "system", "hotfix")[4]
	if hotfix then
		return hotfix(...)
	end
end

return function(methods, env, source, ...)
	return pcall(inject, methods, env, source, ...)
end
