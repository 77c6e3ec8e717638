-- cluster_large: a 1 MiB string echoed by cluster.call(node, "@echo", "echo", s), one call at
-- a time, for a duration.
-- Arguments: the server node's name, seconds (default 2), size in bytes (default 1048576).
-- Warm-up of seconds/4 first. Reports cluster_large: MB/s = calls * 2 * size / elapsed / 10^6
-- (the string's bytes counted once each way: request and reply payload, not framing), with the
-- p50 and p99 of the per-call latency.
local cluster = require "skynet.cluster"
local bench = require "bench"

local node, seconds, size = ...
seconds, size = tonumber(seconds) or 2, tonumber(size) or 1048576

bench.main(function()
	local payload = string.rep("x", size)
	local function echo()
		assert(#cluster.call(node, "@echo", "echo", payload) == size)
	end
	bench.loop(1, seconds / 4, echo)
	local calls, elapsed, lat = bench.loop(1, seconds, echo)
	bench.report("cluster_large", calls * 2 * size / elapsed / 1e6, "MB/s", lat)
end)
