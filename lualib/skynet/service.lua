-- skynet.service: a service whose code is a function of another file. service.new(name, f, ...)
-- starts it once per node (later calls get the same address) by shipping f's bytecode to a
-- fresh service_cell; f must not use upvalues (it runs in the cell's own Lua state). The
-- service_provider unique service keeps the name -> address table; this module caches it.
local skynet = require "skynet"

local M = {}
local known = {} -- name -> address

local function ask(...)
	M.provider = M.provider or skynet.uniqueservice "service_provider"
	return skynet.call(M.provider, "lua", ...)
end

local function bytecode(f)
	assert(type(f) == "function", "service.new: the main function expected")
	if debug.getinfo(f, "u").nups > 0 then
		error("service.new: the main function must not use upvalues (" ..
			tostring((debug.getupvalue(f, 1))) .. ")", 3)
	end
	return string.dump(f)
end

function M.new(name, mainfunc, ...)
	local addr, booting = ask("test", name)
	if addr == nil and booting then
		addr = ask("query", name)
	elseif addr == nil then
		addr = ask("launch", name, bytecode(mainfunc), ...)
	end
	known[name] = addr
	M.address = addr
	return addr
end

-- The address of service `name`, waiting until someone creates it.
function M.query(name)
	if known[name] == nil then
		known[name] = ask("query", name)
	end
	return known[name]
end

-- Stop service `name`: true if it was running.
function M.close(name)
	known[name] = nil
	local addr = ask("close", name)
	if not addr then
		return false
	end
	skynet.kill(addr)
	return true
end

return M
