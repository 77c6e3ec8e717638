-- cluster_proxy: as cluster_call, but through a proxy: p = cluster.proxy(node, "@echo"), then
-- skynet.call(p, "lua", "echo", i) from N coroutines in a loop (the proxy service forwards each
-- call to the node's clustersender).
-- Arguments: the server node's name, seconds (default 2), callers (default 16). Warm-up of
-- seconds/4 first. Reports cluster_proxy_<N>: completed calls / elapsed, with p50 and p99.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local bench = require "bench"

local node, seconds, callers = ...
seconds, callers = tonumber(seconds) or 2, tonumber(callers) or 16

bench.main(function()
	local proxy = cluster.proxy(node, "@echo")
	local function echo(i)
		assert(skynet.call(proxy, "lua", "echo", i) == i)
	end
	bench.loop(callers, seconds / 4, echo)
	local calls, elapsed, lat = bench.loop(callers, seconds, echo)
	bench.report("cluster_proxy_" .. callers, calls / elapsed, "calls/s", lat)
end)
