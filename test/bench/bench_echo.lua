-- bench_echo: the callee of the call and send workloads. "echo" answers its arguments back,
-- "push" (sent, never called) counts one message, "count" answers the pushes counted so far.
local skynet = require "skynet"

local pushes = 0
local CMD = {}

function CMD.echo(...)
	skynet.retpack(...)
end

function CMD.push()
	pushes = pushes + 1
end

function CMD.count()
	skynet.retpack(pushes)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		CMD[cmd](...)
	end)
end)
