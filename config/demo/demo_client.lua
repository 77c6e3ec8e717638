-- demo_client: writes then reads back keys in a store, from 4 coroutines at once.
local skynet = require "skynet"
local id = ...

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, store, n)
		assert(cmd == "run")
		local t0, ok, left = skynet.hpc(), 0, 4
		for w = 1, 4 do
			skynet.fork(function()
				for i = w, n, 4 do
					local key = id .. ":" .. i
					skynet.call(store, "lua", "put", key, i * i)
					if skynet.call(store, "lua", "get", key) == i * i then
						ok = ok + 1
					end
				end
				left = left - 1
			end)
		end
		while left > 0 do
			skynet.sleep(1)
		end
		skynet.retpack(string.format("%d/%d round trips verified in %.2f ms", ok, n,
			(skynet.hpc() - t0) / 1e6))
	end)
end)
