-- service_cell: the body of a skynet.service service. Started by service_provider, which sends
-- "init" with the main function's bytecode and arguments; the function runs here as a service's
-- main chunk would (it may call skynet.start, or just set dispatchers).
local skynet = require "skynet"

local name = ...

local function init(code, ...)
	local main = assert(loadstring(code, "=" .. tostring(name)))
	local start_func
	local start = skynet.start
	skynet.start = function(f) -- the cell has started already: run f as the start function
		start_func = f
	end
	skynet.dispatch("lua", function()
		error("service " .. tostring(name) .. " has no lua dispatch")
	end)
	local ok, err = xpcall(main, debug.traceback, ...)
	skynet.start = start
	if not ok then
		error(err, 0)
	end
	if start_func then
		start_func()
	end
	skynet.ret()
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd ~= "init" then
			error("service_cell: unknown command " .. tostring(cmd))
		end
		init(...)
	end)
end)
