-- svc_slow_start: takes a while to start, and counts how many instances ever started.
local skynet = require "skynet"
skynet.start(function()
	skynet.sleep(20)
	local n = tonumber(skynet.getenv("slow_start_count") or "0")
	-- env keys can be set once: record each instance under its own key
	skynet.setenv("slow_start_" .. skynet.self(), "1")
	skynet.dispatch("lua", function()
		skynet.retpack(skynet.self(), n)
	end)
end)
