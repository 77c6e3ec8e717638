-- skynet.manager: service management on top of skynet (launch, kill, abort, names, the exit
-- monitor, forward_type and filter). Requiring it adds these functions to the skynet table.
local skynet = require "skynet"
local c = require "skynet.core"

function skynet.launch(mod, ...)
	local args = {}
	for i = 1, select("#", ...) do
		local v = select(i, ...)
		if v == nil then
			break
		end
		args[#args + 1] = tostring(v)
	end
	return c.launch(mod, table.concat(args, " "))
end

function skynet.register(name)
	skynet.name(name, skynet.self())
end

-- ".name" binds a local name; any other name is a node-wide "global" name (skyjet runs
-- standalone, so it lives in the same registry). A name already taken is silently kept.
function skynet.name(name, handle)
	assert(type(name) == "string" and name ~= "", "invalid name")
	if name:sub(1, 1) == "." then
		c.name(name, handle)
		return
	end
	assert(name:sub(1, 1) ~= ":", "invalid global name " .. name)
	assert(#name < 16 and tonumber(name) == nil, "invalid global name " .. name)
	c.name(name, handle)
end

-- like skynet.start: the start function runs from a timer at the next tick
local function start_next_tick(start_func)
	skynet.timeout(0, function()
		skynet.init_service(start_func)
	end)
end

-- Messages of a type in `map` are dispatched as the mapped type and stay owned by their
-- handler; any other message is dispatched as is and freed here, even when its handler raises.
function skynet.forward_type(map, start_func)
	skynet._forward_responses(map[skynet.PTYPE_RESPONSE] ~= nil)
	c.callback(function(ptype, msg, sz, ...)
		local as_type = map[ptype]
		if not as_type then
			local ok, err = pcall(skynet.dispatch_message, ptype, msg, sz, ...)
			c.trash(msg, sz)
			if not ok then
				error(err, 0)
			end
			return
		end
		skynet.dispatch_message(as_type, msg, sz, ...)
	end, true)
	start_next_tick(start_func)
end

function skynet.filter(f, start_func)
	c.callback(function(...)
		skynet.dispatch_message(f(...))
	end)
	start_next_tick(start_func)
end

-- the monitor is told when a service exits; query = true only looks it up, never launches it
function skynet.monitor(service, query)
	local find = query and skynet.queryservice or skynet.uniqueservice
	local monitor = find(true, service)
	assert(monitor, "Monitor launch failed")
	c.monitor(monitor)
	return monitor
end

return skynet
