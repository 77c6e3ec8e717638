-- bench: the helpers shared by the benchmark workloads in test/bench/ (a library module, found
-- through [lua] lib_path). A workload is a start service: bench.main runs its body, and every
-- result is one log line "BENCH name=<name> value=<number> unit=<unit> [p50_us=.. p90_us p99_us p999_us]";
-- then the node stops (skynet.abort). A body that raises logs "BENCH FAILED <error>" instead.
local skynet = require "skynet"

local hpc = skynet.hpc
local bench = {}

-- Runs f(i) for i = 1..n, each in its own coroutine, all at once; returns when all are done.
-- The first error raised by any of them is raised again here.
function bench.parallel(n, f)
	local me, left, failure = coroutine.running(), n, nil
	for i = 1, n do
		skynet.fork(function()
			local ok, err = pcall(f, i)
			if not ok and not failure then
				failure = err
			end
			left = left - 1
			if left == 0 then
				skynet.wakeup(me)
			end
		end)
	end
	if n > 0 then
		skynet.wait(me)
	end
	if failure then
		error(failure, 0)
	end
end

-- n coroutines each run f(i) in a loop, at least once, until `seconds` have passed since the
-- start; each call of f is timed with skynet.hpc. Returns the number of calls completed, the
-- elapsed seconds (start .. the last coroutine's last call returned) and the sorted latencies
-- in nanoseconds.
function bench.loop(n, seconds, f)
	local lat, count = {}, 0
	local t0 = hpc()
	local deadline = t0 + seconds * 1e9
	bench.parallel(n, function(i)
		local t2
		repeat
			local t1 = hpc()
			f(i)
			t2 = hpc()
			count = count + 1
			lat[count] = t2 - t1
		until t2 >= deadline
	end)
	local elapsed = (hpc() - t0) / 1e9
	table.sort(lat)
	return count, elapsed, lat
end

-- Nearest-rank percentile (q in 0..1) of a sorted array.
function bench.percentile(sorted, q)
	return sorted[math.min(#sorted, math.max(1, math.ceil(q * #sorted)))]
end

-- Logs one result line; with sorted latencies (ns) it adds their p50, p90, p99 and p99.9
-- (p999_us) in microseconds.
function bench.report(name, value, unit, lat)
	local extra = ""
	if lat and #lat > 0 then
		local function us(q) return bench.percentile(lat, q) / 1e3 end
		extra = string.format(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f",
			us(0.50), us(0.90), us(0.99), us(0.999))
	end
	skynet.error(string.format("BENCH name=%s value=%.1f unit=%s%s", name, value, unit, extra))
end

-- The node's resident set size in KiB (VmRSS of /proc/self/status).
function bench.rss_kib()
	local f = assert(io.open("/proc/self/status"))
	local text = f:read "*a"
	f:close()
	return tonumber(text:match "VmRSS:%s*(%d+)")
end

-- The workload's start function: runs body(), then stops the node whatever happened.
function bench.main(body)
	skynet.start(function()
		local ok, err = xpcall(body, debug.traceback)
		if not ok then
			skynet.error("BENCH FAILED " .. tostring(err))
		end
		skynet.abort()
	end)
end

return bench
