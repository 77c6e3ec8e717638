-- spawn: service creation and exit, and the memory an idle service holds.
-- Arguments: seconds per rate variant (default 2), idle services for the RSS measure (default
-- 10000), then the numbers of concurrent spawners (default 1 16).
-- rss_per_service (run first, on a fresh node): 100 services are spawned and exited (warm-up),
--   the node waits 1.5 s so that freed memory is trimmed, reads VmRSS, starts `n` bench_idle
--   services (16 at a time) and reads VmRSS again: (after - before) / n KiB. They then exit.
-- spawn_<N>: N coroutines each loop { skynet.newservice "bench_idle" (returns once its start
--   function ran); call it "exit" (it answers, then calls skynet.exit) } for `seconds` after a
--   warm-up of seconds/4. Value: completed spawn+exit cycles / elapsed.
local skynet = require "skynet"
local bench = require "bench"

local seconds, nidle = ...
seconds, nidle = tonumber(seconds) or 2, tonumber(nidle) or 10000
local variants = { select(3, ...) }
if #variants == 0 then
	variants = { 1, 16 }
end

local function cycle()
	skynet.call(skynet.newservice "bench_idle", "lua", "exit")
end

local function rss_per_service()
	for _ = 1, 100 do
		cycle()
	end
	skynet.sleep(150)
	local before = bench.rss_kib()
	local idle = {}
	bench.parallel(16, function(w)
		for i = w, nidle, 16 do
			idle[i] = skynet.newservice "bench_idle"
		end
	end)
	local after = bench.rss_kib()
	bench.report("rss_per_service", (after - before) / nidle, "KiB/service")
	bench.parallel(16, function(w)
		for i = w, nidle, 16 do
			skynet.call(idle[i], "lua", "exit")
		end
	end)
end

bench.main(function()
	rss_per_service()
	for _, n in ipairs(variants) do
		n = tonumber(n)
		bench.loop(n, seconds / 4, cycle)
		local spawns, elapsed = bench.loop(n, seconds, cycle)
		bench.report("spawn_" .. n, spawns / elapsed, "services/s")
	end
end)
