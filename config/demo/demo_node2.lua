-- demo_node2: the second demo node's start service. Registers a greeter that remote nodes can
-- call as "@greeter", opens the cluster port, and stops the node when asked.
local skynet = require "skynet"
require "skynet.manager"
local cluster = require "skynet.cluster"

skynet.start(function()
	local greeter = skynet.newservice "demo_greeter"
	cluster.register("greeter", greeter)
	cluster.open "demo2"
	skynet.error("demo2 is serving @greeter")
end)
