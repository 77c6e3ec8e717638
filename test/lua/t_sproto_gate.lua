-- The examples/main.lua stack of Skynet, our own version: sprotoloader slots, a watchdog, a
-- gate (service/gate and a gate on snax.gateserver + netpack), an agent per client speaking
-- sproto RPC, and a real TCP client: requests, a server push, pipelined and split packets, bye.
local skynet = require "skynet"
local socket = require "skynet.socket"
local sproto = require "sproto"
local loader = require "sprotoloader"
local netpack = require "netpack"
local proto = require "sp_proto"
local T = require "testlib"

loader.save(proto.c2s, 1)
loader.save(proto.s2c, 2)

local function frame(s)
	return string.pack(">s2", s)
end

-- A client: the mirror of the agent's host (it answers c2s, pushes s2c).
local function client(port)
	local fd = assert(socket.open("127.0.0.1", port))
	local host = sproto.new(proto.s2c):host "package"
	local request = host:attach(sproto.new(proto.c2s))
	local c = { fd = fd }
	function c.send(name, args, session)
		socket.write(fd, frame(request(name, args, session)))
	end
	function c.request(name, args, session)
		return request(name, args, session)
	end
	function c.recv()
		local h = socket.read(fd, 2)
		if not h then
			return nil
		end
		return host:dispatch(socket.read(fd, h:byte(1) * 256 + h:byte(2)))
	end
	return c
end

local function play(gate_name)
	local watchdog = skynet.newservice("sp_watchdog", gate_name)
	local port = skynet.call(watchdog, "lua", "start", { address = "127.0.0.1", port = 0, nodelay = true })
	T.ok(type(port) == "number" and port > 0, "gate port")
	local c = client(port)
	-- the agent pushes a tick when it starts: a request without session
	local kind, name, args, response = c.recv()
	T.eq(kind, "REQUEST")
	T.eq(name, "tick")
	T.same(args, { n = 1 })
	T.eq(response, nil)
	c.send("login", { name = "ann" }, 1)
	local k, session, result = c.recv()
	T.eq(k, "RESPONSE")
	T.eq(session, 1)
	T.eq(result.greeting, "hello ann")
	-- three requests in one write, then one split over three writes
	socket.write(c.fd, frame(c.request("move", { to = { x = 3, y = 4 } }, 2))
		.. frame(c.request("move", { to = { x = 0, y = 0 } }, 3))
		.. frame(c.request("move", { to = { x = -1, y = 0 } }, 4)))
	local steps = {}
	for _ = 1, 3 do
		local _, s, r = c.recv()
		steps[s] = r.steps
	end
	T.same(steps, { [2] = 7, [3] = 7, [4] = 1 })
	local split = frame(c.request("move", { to = { x = 100000, y = -70000 } }, 5))
	socket.write(c.fd, split:sub(1, 1))
	skynet.sleep(1)
	socket.write(c.fd, split:sub(2, 6))
	skynet.sleep(1)
	socket.write(c.fd, split:sub(7))
	local _, s5, r5 = c.recv()
	T.eq(s5, 5)
	T.same(r5, { at = { x = 100000, y = -70000 }, steps = 170001 })
	T.eq(skynet.call(watchdog, "lua", "agents"), 1)
	-- bye: the watchdog closes the connection and stops the agent
	c.send("bye")
	T.eq(c.recv(), nil, "connection closed by the server")
	T.wait_until(function()
		return skynet.call(watchdog, "lua", "agents") == 0
	end, 5, "agent gone")
	socket.close(c.fd)
	skynet.kill(watchdog)
end

T.case("examples_stack_over_service_gate", function()
	play("gate")
end)

T.case("examples_stack_over_gateserver_and_netpack", function()
	play("sp_gate")
end)

T.case("netpack_pack_and_tostring", function()
	local msg, sz = netpack.pack("hello")
	T.eq(sz, 7)
	T.eq(netpack.tostring(msg, sz), "\0\5hello")
	local ud, n = netpack.pack(string.rep("x", 65535))
	T.eq(n, 65537)
	skynet.trash(ud, n)
	T.raises(netpack.pack, "Invalid size (too long) of data : 65536", string.rep("x", 65536))
	T.eq(netpack.tostring(nil, 0), "")
	T.raises(netpack.filter, "not a socket message", nil, nil, 0)
end)

skynet.start(T.run)
