-- bench_idle: the service the spawn workload creates. It does nothing until called with
-- "exit", which it answers and then exits.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		assert(cmd == "exit")
		skynet.retpack(true)
		skynet.exit()
	end)
end)
