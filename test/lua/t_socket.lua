-- skynet.socket over the reactor: echo, many connections, bulk transfer, close/error reports,
-- flow-control warnings.
local skynet = require "skynet"
local socket = require "skynet.socket"
local T = require "testlib"

local bit = require "bit"

local function checksum(s, h)
	h = h or 0
	for i = 1, #s, 4096 do
		local chunk = s:sub(i, i + 4095)
		for j = 1, #chunk do
			h = bit.bxor(bit.rol(h, 5), chunk:byte(j))
		end
	end
	return h
end

T.case("echo_between_two_services", function()
	local server = skynet.newservice("echo_server")
	local port = skynet.call(server, "lua", "port")
	local id = assert(socket.open("127.0.0.1", port))
	for i = 1, 100 do
		local msg = "message " .. i .. "\n"
		T.ok(socket.write(id, msg))
		T.eq(socket.readline(id), "message " .. i)
	end
	socket.write(id, { "a", "b", "c\n" })
	T.eq(socket.readline(id), "abc")
	socket.write(id, "x\r\ny")
	T.eq(socket.readline(id, "\r\n"), "x")
	T.eq(socket.read(id, 1), "y")
	socket.close(id)
	T.eq(socket.invalid(id), true)
	skynet.kill(server)
end)

T.case("open_accepts_host_port_string_and_rejects_bad_addresses", function()
	local server = skynet.newservice("echo_server")
	local port = skynet.call(server, "lua", "port")
	local id = assert(socket.open("127.0.0.1:" .. port))
	socket.close(id)
	id = assert(socket.open("localhost", port))
	socket.close(id)
	T.raises(socket.open, "Invalid address", "127.0.0.1")
	T.raises(socket.open, "Invalid port", "127.0.0.1", 0)
	skynet.kill(server)
end)

T.case("connect_to_closed_port_reports_refused", function()
	local l, _, port = socket.listen("127.0.0.1", 0)
	socket.close(l) -- nothing listens there now
	skynet.sleep(1)
	local id, err = socket.open("127.0.0.1", port)
	T.eq(id, nil)
	T.eq(err, "Connection refused")
end)

T.case("listen_on_busy_port_raises", function()
	local l, _, port = socket.listen("127.0.0.1", 0)
	T.raises(socket.listen, "Listen error", "127.0.0.1", port)
	socket.close(l)
end)

T.case("thousand_concurrent_connections_echo", function()
	local server = skynet.newservice("echo_server")
	local port = skynet.call(server, "lua", "port")
	local n, ok = 1000, 0
	local ids = {}
	for i = 1, n do
		ids[i] = assert(socket.open("127.0.0.1", port))
	end
	local done = 0
	for i = 1, n do
		skynet.fork(function()
			local msg = "conn " .. i .. "\n"
			socket.write(ids[i], msg)
			if socket.readline(ids[i]) == "conn " .. i then
				ok = ok + 1
			end
			done = done + 1
		end)
	end
	T.wait_until(function()
		return done == n
	end, 60, "all echoes")
	T.eq(ok, n)
	T.eq(skynet.call(server, "lua", "stats").accepted, n)
	for i = 1, n do
		socket.close(ids[i])
	end
	T.wait_until(function()
		return skynet.call(server, "lua", "stats").closed == n
	end, 20, "server sees every close")
	skynet.kill(server)
end, 120)

T.case("sixty_four_mib_write_arrives_intact", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	local received
	socket.start(lid, function(id)
		skynet.fork(function()
			socket.start(id)
			local h, total = 0, 0
			while total < 64 * 1024 * 1024 do
				local part = socket.read(id, 1024 * 1024)
				if not part then
					break
				end
				total = total + #part
				h = checksum(part, h)
			end
			received = { total = total, sum = h }
			socket.close(id)
		end)
	end)
	local block = {}
	for i = 1, 4096 do
		block[i] = string.char(i % 251, (i * 7) % 256, (i * 13) % 256, 65 + i % 26)
	end
	block = table.concat(block) -- 16 KiB
	local mib = block:rep(64)
	local id = assert(socket.open("127.0.0.1", port))
	local sent_sum = 0
	for i = 1, 64 do
		local chunk = mib:sub(1, -1 - i) .. string.char(i):rep(i) -- vary each MiB slightly
		sent_sum = checksum(chunk, sent_sum)
		T.ok(socket.write(id, chunk))
	end
	T.wait_until(function()
		return received
	end, 60, "the receiver")
	T.eq(received.total, 64 * 1024 * 1024)
	T.eq(received.sum, sent_sum, "checksum")
	socket.close(id)
	socket.close(lid)
end, 120)

T.case("peer_close_is_reported_to_reader_with_buffered_rest", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	socket.start(lid, function(id)
		skynet.fork(function()
			socket.start(id)
			socket.write(id, "partial")
			socket.close(id)
		end)
	end)
	local id = assert(socket.open("127.0.0.1", port))
	local closed_cb = false
	socket.onclose(id, function()
		closed_cb = true
	end)
	local ok, rest = socket.read(id, 100)
	T.eq(ok, false)
	T.eq(rest, "partial")
	T.eq(closed_cb, true)
	T.eq(socket.disconnected(id), true)
	-- half-closed (the peer's EOF): still writable until we close, as in Skynet
	T.eq(socket.write(id, "late"), true)
	T.eq(socket.read(id), false)
	socket.close(id)
	T.raises(socket.read, "assertion failed", id)
	socket.close(lid)
end)

T.case("readall_waits_for_close", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	socket.start(lid, function(id)
		skynet.fork(function()
			socket.start(id)
			for i = 1, 3 do
				socket.write(id, "chunk" .. i)
				skynet.sleep(1)
			end
			socket.close(id)
		end)
	end)
	local id = assert(socket.open("127.0.0.1", port))
	T.eq(socket.readall(id), "chunk1chunk2chunk3")
	T.eq(socket.readall(id), false, "already closed and empty")
	socket.close(id)
	socket.close(lid)
end)

T.case("block_reports_data_then_close", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	socket.start(lid, function(id)
		skynet.fork(function()
			socket.start(id)
			skynet.sleep(2)
			socket.write(id, "x")
			skynet.sleep(2)
			socket.close(id)
		end)
	end)
	local id = assert(socket.open("127.0.0.1", port))
	T.eq(socket.block(id), true)
	T.eq(socket.read(id), "x")
	T.eq(socket.block(id), false)
	socket.close(id)
	socket.close(lid)
	T.eq(socket.block(12345), false)
end)

T.case("close_while_reading_returns_false_to_reader", function()
	local server = skynet.newservice("echo_server")
	local id = assert(socket.open("127.0.0.1", skynet.call(server, "lua", "port")))
	local got
	skynet.fork(function()
		got = table.pack(socket.read(id, 10))
	end)
	skynet.sleep(1)
	socket.close(id)
	T.wait_until(function()
		return got
	end, 5)
	T.eq(got[1], false)
	skynet.kill(server)
end)

T.case("high_water_warning_fires_and_clears", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	local server_id
	socket.start(lid, function(id)
		server_id = id -- accepted but not read for now
	end)
	local id = assert(socket.open("127.0.0.1", port))
	local warnings = {}
	socket.warning(id, function(_, kbytes)
		warnings[#warnings + 1] = kbytes
	end)
	local block = string.rep("w", 1024 * 1024)
	for _ = 1, 16 do
		socket.write(id, block)
	end
	T.wait_until(function()
		return #warnings > 0
	end, 10, "a warning")
	T.ok(warnings[1] >= 1024, "warning carries KiB pending: " .. warnings[1])
	-- now drain it on the server side
	T.wait_until(function()
		return server_id
	end, 5)
	skynet.fork(function()
		socket.start(server_id)
		local total = 0
		while total < 16 * 1024 * 1024 do
			local r = socket.read(server_id)
			if not r then
				break
			end
			total = total + #r
		end
		socket.close(server_id)
	end)
	T.wait_until(function()
		return warnings[#warnings] == 0
	end, 30, "the drained warning")
	socket.close(id)
	socket.close(lid)
end, 60)

T.case("limit_closes_a_flooding_socket", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	local closed = false
	socket.start(lid, function(id)
		socket.start(id)
		socket.limit(id, 64 * 1024)
		socket.onclose(id, function()
			closed = true
		end)
	end)
	local id = assert(socket.open("127.0.0.1", port))
	socket.write(id, string.rep("f", 1024 * 1024))
	T.wait_until(function()
		return closed
	end, 10, "the limit to close the socket")
	socket.close(id)
	socket.close(lid)
end)

T.case("abandon_hands_a_socket_to_another_service", function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	local accepted
	socket.start(lid, function(id)
		accepted = id
	end)
	local id = assert(socket.open("127.0.0.1", port))
	T.wait_until(function()
		return accepted
	end, 5)
	socket.abandon(accepted) -- not started here: hand it to an echo worker
	local worker = skynet.newservice("socket_adopter")
	skynet.call(worker, "lua", "adopt", accepted)
	socket.write(id, "adopted\n")
	T.eq(socket.readline(id), "adopted")
	socket.close(id)
	socket.close(lid)
	skynet.kill(worker)
end)

T.case("header_decodes_big_endian", function()
	T.eq(socket.header("\1\2"), 258)
	T.eq(socket.header("\0\0\1\0"), 256)
	T.raises(socket.header, "Invalid read", "12345")
end)

skynet.start(T.run)
