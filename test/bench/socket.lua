-- socket: skynet.socket between two services of one node, over loopback TCP (the reactor on both
-- ends), to set against the raw C reference (loopback_*) of the same run.
-- Arguments: seconds per variant (default 2).
-- socket_echo_1: 1-byte ping-pong round trips/s over one connection (write 1 byte, read it back),
--   with p50/p99; socket_echo_64: the same over 64 connections at once, total round trips/s;
-- socket_bulk: one connection writing 64 KiB strings for `seconds`, never more than 16 MiB ahead
--   of what the server has counted (since 2026-12-06; before, the writer could queue until the
--   socket_output_limit closed the link, and the sums were slower); MB/s = bytes the server
--   counted / time from the first write until the server has counted them all (MB = 10^6 B).
local skynet = require "skynet"
local socket = require "skynet.socket"
local bench = require "bench"

local seconds = tonumber((...)) or 2

local function connect(port, mode)
	local id = assert(socket.open("127.0.0.1", port))
	socket.nodelay(id)
	socket.write(id, mode)
	return id
end

bench.main(function()
	local server = skynet.newservice "bench_sockecho"
	local port = skynet.call(server, "lua", "port")
	for _, n in ipairs { 1, 64 } do
		local ids = {}
		for i = 1, n do
			ids[i] = connect(port, "e")
		end
		local function ping(i)
			socket.write(ids[i], "x")
			assert(socket.read(ids[i], 1) == "x")
		end
		bench.loop(n, seconds / 4, ping)
		local rts, elapsed, lat = bench.loop(n, seconds, ping)
		bench.report("socket_echo_" .. n, rts / elapsed, "rt/s", n == 1 and lat or nil)
		for i = 1, n do
			socket.close(ids[i])
		end
	end
	local id = connect(port, "s")
	local chunk = string.rep("b", 64 * 1024)
	local sent = 0
	local t0 = skynet.hpc()
	local deadline = t0 + seconds * 1e9
	repeat
		socket.write(id, chunk)
		sent = sent + #chunk
		if sent % (4 * 1024 * 1024) == 0 then
			-- stay at most 16 MiB ahead of the reader: a writer that outruns it is closed at
			-- socket_output_limit (256 MiB), which a slow machine reached within 2 s
			while sent - skynet.call(server, "lua", "sunk") > 16 * 1024 * 1024 do
				skynet.yield()
			end
		end
	until skynet.hpc() >= deadline
	while skynet.call(server, "lua", "sunk") < sent do
		skynet.yield()
	end
	local elapsed = (skynet.hpc() - t0) / 1e9
	socket.close(id)
	bench.report("socket_bulk", sent / 1e6 / elapsed, "MB/s")
end)
