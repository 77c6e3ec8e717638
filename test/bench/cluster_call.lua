-- cluster_call: cluster.call(node, "@echo", "echo", i) from N coroutines of this service, each
-- waiting for its answer before the next call, for a duration.
-- Arguments: the server node's name, seconds per variant (default 2), then the numbers of
-- concurrent callers (default 1 16 256). Each variant runs seconds/4 unmeasured first (this also
-- connects), then `seconds` measured. Reports cluster_call_<N>: completed calls / elapsed time,
-- with the p50 and p99 of the per-call latency (skynet.hpc around cluster.call).
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local bench = require "bench"

-- scripts/bench runs this workload over authenticated links too, reported as cluster_auth_<N>
local prefix = skynet.getenv "bench_prefix" or "cluster_call"

local node = ...
local seconds = tonumber((select(2, ...))) or 2
local variants = { select(3, ...) }
if #variants == 0 then
	variants = { 1, 16, 256 }
end

local function echo(i)
	assert(cluster.call(node, "@echo", "echo", i) == i)
end

bench.main(function()
	for _, n in ipairs(variants) do
		n = tonumber(n)
		bench.loop(n, seconds / 4, echo)
		local calls, elapsed, lat = bench.loop(n, seconds, echo)
		bench.report(prefix .. "_" .. n, calls / elapsed, "calls/s", lat)
	end
end)
