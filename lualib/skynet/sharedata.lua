-- skynet.sharedata: read-only configuration tables shared by every service of the node and
-- updated live. A table is converted once into an immutable C tree (skynet.sharetree); each
-- service reads it through proxy tables, so N readers do not hold N copies. A reader sees an
-- update on its next access; a sub-table whose key vanished raises on access, as in Skynet.
local core = require "skynet.sharetree"

local SPACE = "sharedata"
local sharedata = {}
local cache = setmetatable({}, { __mode = "v" }) -- name -> root proxy of this service

-- Skynet's accepted sources: a table, Lua code (a string) or "@file", or nil (an empty table).
-- Code runs with its own globals over _G; it returns the table or leaves it in its globals.
local function evaluate(name, v, ...)
	local kind = type(v)
	if kind == "table" then
		return v
	elseif kind == "nil" then
		return {}
	elseif kind ~= "string" then
		error("Unknown data type " .. kind, 3)
	end
	local env = setmetatable({}, { __index = _G })
	local f, err
	if v:sub(1, 1) == "@" then
		f, err = loadfile(v:sub(2), "bt", env)
	else
		f, err = load(v, "=" .. name, "bt", env)
	end
	if not f then
		error(err, 3)
	end
	local ret = f(...)
	setmetatable(env, nil)
	if type(ret) == "table" then
		return ret
	end
	return env
end

function sharedata.new(name, v, ...)
	if not core.publish(SPACE, name, evaluate(name, v, ...), "new") then
		error(string.format("sharedata %s exists", name), 2)
	end
end

function sharedata.update(name, v, ...)
	core.publish(SPACE, name, evaluate(name, v, ...), "replace")
end

function sharedata.delete(name)
	if not core.delete(SPACE, name) then
		error(string.format("sharedata %s not found", name), 2)
	end
	cache[name] = nil
end

function sharedata.query(name)
	local obj = cache[name]
	if obj and core.alive(obj) then
		return obj
	end
	obj = core.query(SPACE, name, true)
	if obj == nil then
		error(string.format("sharedata %s not found", name), 2)
	end
	cache[name] = obj
	return obj
end

-- Move every table this service queried to its newest version now, and collect the old ones.
function sharedata.flush()
	for _, obj in pairs(cache) do
		core.alive(obj)
	end
	collectgarbage()
end

-- A plain Lua copy of the table (or of the value at the path of keys under it).
function sharedata.deepcopy(name, ...)
	if not core.exists(SPACE, name) then
		error(string.format("sharedata %s not found", name), 2)
	end
	return core.copy(SPACE, name, ...)
end

return sharedata
