-- bench_caller: the calling side of a local_call pair. "run" makes `coroutines` coroutines call
-- "echo" on `target` in a loop for `seconds` and answers calls, elapsed seconds and the sorted
-- latencies (ns), as bench.loop returns them.
local skynet = require "skynet"
local bench = require "bench"

local CMD = {}

function CMD.run(target, coroutines, seconds)
	skynet.retpack(bench.loop(coroutines, seconds, function(i)
		skynet.call(target, "lua", "echo", i)
	end))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		CMD[cmd](...)
	end)
end)
