-- UDP in skynet.socket: udp/udp_connect/sendto/udp_address on IPv4, udp_listen/udp_dial on IPv6,
-- datagram boundaries, close, and clear errors for bad input.
local skynet = require "skynet"
local socket = require "skynet.socket"
local T = require "testlib"

-- A port that is very likely free for UDP too: the kernel's pick for a TCP listener.
local function free_port(host)
	local lid, _, port = socket.listen(host, 0)
	socket.close(lid)
	return port
end

local function collect(list)
	return function(data, from)
		list[#list + 1] = { data = data, from = from }
	end
end

T.case("ipv4_server_answers_a_connected_client", function()
	local port = free_port("127.0.0.1")
	local server
	server = socket.udp(function(data, from)
		T.ok(socket.sendto(server, from, "OK " .. data))
	end, "127.0.0.1", port)
	local got = {}
	local c = socket.udp(collect(got))
	socket.udp_connect(c, "127.0.0.1", port)
	for i = 1, 20 do
		T.ok(socket.write(c, "hello " .. i))
	end
	T.wait_until(function()
		return #got == 20
	end, 5, "20 answers")
	table.sort(got, function(a, b)
		return tonumber(a.data:match "%d+") < tonumber(b.data:match "%d+")
	end)
	for i = 1, 20 do
		T.eq(got[i].data, "OK hello " .. i)
		local ip, p = socket.udp_address(got[i].from)
		T.eq(ip, "127.0.0.1")
		T.eq(p, port)
	end
	socket.close(c)
	socket.close(server)
end)

T.case("ipv6_listen_and_dial", function()
	local port = free_port("::1")
	local seen = {}
	local server
	server = socket.udp_listen("::1", port, function(data, from)
		seen[#seen + 1] = from
		socket.sendto(server, from, "OK " .. data)
	end)
	local got = {}
	local c = socket.udp_dial("::1", port, collect(got))
	T.ok(socket.write(c, "ping"))
	T.wait_until(function()
		return #got == 1
	end, 5, "the answer")
	T.eq(got[1].data, "OK ping")
	T.same({ socket.udp_address(got[1].from) }, { "::1", port })
	local ip, client_port = socket.udp_address(seen[1])
	T.eq(ip, "::1")
	T.ok(client_port > 0 and client_port ~= port, "the client's own port")
	socket.close(c)
	socket.close(server)
end)

T.case("datagrams_arrive_whole_and_in_order_of_boundaries", function()
	local port = free_port("127.0.0.1")
	local got = {}
	local server = socket.udp(collect(got), "127.0.0.1", port)
	local c = socket.udp_dial("127.0.0.1", port)
	local sizes = { 1, 1000, 60000, 0, 8192 }
	for _, n in ipairs(sizes) do
		socket.write(c, { string.rep("x", n), "" }) -- a table is one datagram too
	end
	T.wait_until(function()
		return #got >= 4
	end, 5, "the datagrams")
	skynet.sleep(10)
	local lens = {}
	for _, g in ipairs(got) do
		lens[#lens + 1] = #g.data
	end
	T.same(lens, { 1, 1000, 60000, 8192 }, "an empty write sends nothing; the others whole")
	socket.close(c)
	socket.close(server)
end)

T.case("bad_input_is_a_clear_error", function()
	local port = free_port("127.0.0.1")
	local a = socket.udp(function() end, "127.0.0.1", port)
	T.raises(socket.udp, "udp init failed", function() end, "127.0.0.1", port) -- busy
	T.raises(socket.udp_address, "Invalid udp address", "bogus")
	T.raises(socket.udp_dial, "udp dial failed", "no.such.host.invalid", 9)
	T.raises(socket.udp_connect, "udp connect failed", a, "127.0.0.1", 70000)
	T.eq(socket.sendto(a, "bogus", "x"), false)
	socket.close(a)
	T.eq(socket.invalid(a), true)
	T.wait_until(function() -- the close is asynchronous: a write right after it may be queued
		return socket.sendto(a, "\4\0\9\127\0\0\1", "x") == false
	end, 5, "sendto on a closed socket fails")
end)

skynet.start(function()
	T.run()
end)
