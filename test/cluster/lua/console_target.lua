-- console_target: a service for the debug console tests (test_console.py): answers "echo" with
-- its arguments, reports what skynet.info_func gives, and parks one coroutine for task/killtask.
local skynet = require "skynet"

skynet.info_func(function(what)
	return { service = "console_target", asked = what }
end)

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "echo" then
			skynet.retpack(...)
		else
			error("console_target: unknown command " .. tostring(cmd))
		end
	end)
	skynet.fork(function()
		skynet.sleep(360000) -- parked: killtask's victim
		skynet.error("console_target: the parked coroutine woke up")
	end)
end)
