-- local_call: skynet.call round trips per second between services of one node.
-- Arguments: seconds per variant (default 2), then variants "PAIRSxCOROUTINES" (default
-- 1x1 1x64 2x1 4x16). A pair is a bench_caller and a bench_echo; every coroutine of the caller
-- calls "echo" with one integer and waits for the answer, in a loop. All pairs of a variant run
-- at once; each variant runs seconds/4 unmeasured first (warm-up), then `seconds` measured.
-- Reports local_call_<variant>: completed calls of all pairs / the longest pair's elapsed time.
local skynet = require "skynet"
local bench = require "bench"

local seconds = tonumber((...)) or 2
local variants = { select(2, ...) }
if #variants == 0 then
	variants = { "1x1", "1x64", "2x1", "4x16" }
end

local function run(list, coroutines, secs)
	local calls, elapsed, lat = 0, 0, {}
	bench.parallel(#list, function(i)
		local c, e, l = skynet.call(list[i].caller, "lua", "run", list[i].echo, coroutines, secs)
		calls, elapsed = calls + c, math.max(elapsed, e)
		for _, v in ipairs(l) do
			lat[#lat + 1] = v
		end
	end)
	table.sort(lat)
	return calls, elapsed, lat
end

bench.main(function()
	for _, variant in ipairs(variants) do
		local npairs, coroutines = variant:match "^(%d+)x(%d+)$"
		npairs, coroutines = assert(tonumber(npairs), "bad variant " .. variant), tonumber(coroutines)
		local list = {}
		for i = 1, npairs do
			list[i] = { caller = skynet.newservice "bench_caller", echo = skynet.newservice "bench_echo" }
		end
		run(list, coroutines, seconds / 4)
		local calls, elapsed, lat = run(list, coroutines, seconds)
		bench.report("local_call_" .. variant, calls / elapsed, "calls/s", lat)
		for _, p in ipairs(list) do
			skynet.kill(p.caller)
			skynet.kill(p.echo)
		end
	end
end)
