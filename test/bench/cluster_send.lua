-- cluster_send: one-way cluster.send(node, "@echo", "push", i) messages per second.
-- Arguments: the server node's name, the number of messages (default 200000). After the last
-- send one cluster.call "count" (it travels behind them on the same connection) confirms that
-- every message arrived. Timed: first send .. the count's answer. A warm-up of count/10
-- messages (which also connects) runs first.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local bench = require "bench"

local node, count = ...
count = tonumber(count) or 200000

local function run(n)
	local before = cluster.call(node, "@echo", "count")
	local t0 = skynet.hpc()
	for i = 1, n do
		cluster.send(node, "@echo", "push", i)
	end
	local got = cluster.call(node, "@echo", "count") - before
	local elapsed = (skynet.hpc() - t0) / 1e9
	assert(got == n, string.format("cluster_send: %d messages sent, %d arrived", n, got))
	return elapsed
end

bench.main(function()
	run(math.ceil(count / 10))
	bench.report("cluster_send", count / run(count), "msgs/s")
end)
