-- demo_greeter: answers greetings from any node; "stop" ends its node.
local skynet = require "skynet"
require "skynet.manager"

local count = 0
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, who)
		if cmd == "stop" then
			skynet.error("demo2: asked to stop")
			skynet.retpack "bye"
			skynet.timeout(10, skynet.abort) -- let the answer leave first
			return
		end
		count = count + 1
		skynet.retpack(string.format("hello %s, from node %s (greeting #%d)", who,
			skynet.getenv "nodename", count))
	end)
end)
