-- demo_main: the demo node's start service. Starts a key/value store and N clients that talk
-- to it concurrently, waits for them, prints what the store saw, calls a greeter on the second
-- demo node over the cluster (directly and through a proxy), then stops both nodes.
local skynet = require "skynet"
require "skynet.manager"
local cluster = require "skynet.cluster"

local nclients = tonumber(...) or 3

skynet.start(function()
	skynet.error(skynet.getenv "greeting", "- node", skynet.getenv "nodename")
	local store = skynet.uniqueservice "demo_store"
	local done = 0
	for i = 1, nclients do
		local client = skynet.newservice("demo_client", i)
		skynet.fork(function()
			local result = skynet.call(client, "lua", "run", store, 100)
			skynet.error(string.format("client %d finished: %s", i, result))
			done = done + 1
		end)
	end
	while done < nclients do
		skynet.sleep(1)
	end
	local stats = skynet.call(store, "lua", "stats")
	skynet.error(string.format("store: %d keys, %d puts, %d gets", stats.keys, stats.puts, stats.gets))
	local _, err = pcall(skynet.call, store, "lua", "get_strict", "no-such-key")
	skynet.error("a failing call raises in the caller: " .. tostring(err))
	-- the cluster part: scripts/demo starts node "demo2" next to us
	local ok2, greeting = pcall(cluster.call, "demo2", "@greeter", "greet", skynet.getenv "nodename")
	if ok2 then
		skynet.error("cluster call to demo2: " .. greeting)
		local proxy = cluster.proxy "demo2@greeter"
		skynet.error("through a proxy: " .. skynet.call(proxy, "lua", "greet", "a proxy"))
		skynet.error("demo2 says " .. cluster.call("demo2", "@greeter", "stop"))
	else
		skynet.error("node demo2 is not running (start it with ./skyjet config/node2.ini): " .. greeting)
	end
	skynet.error("demo done; stopping the node")
	skynet.abort()
end)
