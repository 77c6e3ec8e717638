-- local_send: one-way skynet.send messages per second from this service to a bench_echo.
-- Argument: the number of messages (default 1000000). Each message is ("push", i); after the
-- last one a skynet.call "count" (queued behind them) confirms that every message arrived.
-- Timed: first send .. the count's answer. Sends never wait, so the receiver's queue holds
-- what it has not consumed yet. A warm-up of count/10 messages runs first.
local skynet = require "skynet"
local bench = require "bench"

local count = tonumber((...)) or 1000000

local function run(echo, n)
	local before = skynet.call(echo, "lua", "count")
	local t0 = skynet.hpc()
	for i = 1, n do
		skynet.send(echo, "lua", "push", i)
	end
	local got = skynet.call(echo, "lua", "count") - before
	local elapsed = (skynet.hpc() - t0) / 1e9
	assert(got == n, string.format("local_send: %d messages sent, %d arrived", n, got))
	return elapsed
end

bench.main(function()
	local echo = skynet.newservice "bench_echo"
	run(echo, math.ceil(count / 10))
	bench.report("local_send", count / run(echo, count), "msgs/s")
end)
