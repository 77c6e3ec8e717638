-- service/gate: framing with the 2-byte big-endian prefix, forwarding to an agent or to the
-- watchdog, open/close notifications and maxclient.
local skynet = require "skynet"
local socket = require "skynet.socket"
local T = require "testlib"

local events = {} -- what the current gate told us, the watchdog
local current_gate -- events from other (older) gates are ignored

local function frame(s)
	return string.char(math.floor(#s / 256), #s % 256) .. s
end

local function wait_event(kind, fd)
	local found
	T.wait_until(function()
		for _, e in ipairs(events) do
			if e[1] == kind and (fd == nil or e[2] == fd) then
				found = e
				return true
			end
		end
	end, 5, kind .. " event")
	return found
end

local function open_gate(maxclient)
	local gate = skynet.newservice("gate")
	events = {}
	current_gate = gate
	local address, port = skynet.call(gate, "lua", "open",
		{ address = "127.0.0.1", port = 0, maxclient = maxclient })
	T.eq(address, "127.0.0.1", "open answers address and port, as Skynet's gate")
	T.ok(port > 0, "the real port for port 0")
	return gate, port
end

T.case("frames_split_across_reads_and_packed_in_one_read", function()
	events = {}
	local gate, port = open_gate()
	local c = assert(socket.open("127.0.0.1", port))
	socket.nodelay(c)
	local open = wait_event("open")
	local fd = open[2]
	skynet.call(gate, "lua", "accept", fd)
	-- one frame delivered in three pieces with pauses between them
	local f = frame("split frame")
	socket.write(c, f:sub(1, 1))
	skynet.sleep(2)
	socket.write(c, f:sub(2, 5))
	skynet.sleep(2)
	socket.write(c, f:sub(6))
	-- three frames in one write, including an empty one and a 1000-byte one
	socket.write(c, frame("one") .. frame("") .. frame(string.rep("z", 1000)))
	T.wait_until(function()
		local n = 0
		for _, e in ipairs(events) do
			if e[1] == "data" then
				n = n + 1
			end
		end
		return n == 4
	end, 5, "four data frames")
	local data = {}
	for _, e in ipairs(events) do
		if e[1] == "data" then
			data[#data + 1] = e[3]
		end
	end
	T.same(data, { "split frame", "one", "", string.rep("z", 1000) })
	socket.close(c)
	wait_event("close", fd)
	skynet.kill(gate)
end)

T.case("forward_sends_frames_to_an_agent_as_client_messages", function()
	events = {}
	local gate, port = open_gate()
	local agent = skynet.newservice("gate_agent")
	local c = assert(socket.open("127.0.0.1", port))
	local fd = wait_event("open")[2]
	socket.write(c, frame("early")) -- sent before forwarding: buffered, not lost
	skynet.sleep(1)
	skynet.call(gate, "lua", "forward", fd, 0, agent)
	socket.write(c, frame("a") .. frame("b"))
	T.wait_until(function()
		return #skynet.call(agent, "lua") == 3
	end, 5)
	local frames = skynet.call(agent, "lua")
	T.eq(frames[1].frame, "early")
	T.eq(frames[3].frame, "b")
	T.eq(frames[1].fd, fd, "session field carries the fd")
	socket.close(c)
	skynet.kill(agent)
	skynet.kill(gate)
end)

T.case("maxclient_closes_excess_connections", function()
	events = {}
	local gate, port = open_gate(2)
	local a = assert(socket.open("127.0.0.1", port))
	local b = assert(socket.open("127.0.0.1", port))
	T.wait_until(function()
		return #events == 2
	end, 5)
	local c = assert(socket.open("127.0.0.1", port))
	T.eq(socket.read(c), false, "the third connection is closed by the gate")
	T.eq(#events, 2, "no open event for it")
	T.eq(skynet.call(gate, "lua", "info").clients, 2)
	local function read_log()
		return io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	end
	T.ok(read_log():find("gate: maxclient 2 reached", 1, true), "logged")
	for _ = 1, 10 do -- a burst of refusals is logged as a count, not a line each
		local x = assert(socket.open("127.0.0.1", port))
		T.eq(socket.read(x), false)
		socket.close(x)
	end
	T.wait_until(function()
		return read_log():find("more connection(s) in 1 s", 1, true)
	end, 5, "the summary line")
	local _, lines = read_log():gsub("gate: maxclient 2 reached", "")
	T.ok(lines < 11, "fewer lines than refused connections: " .. lines)
	socket.close(a)
	socket.close(b)
	socket.close(c)
	skynet.kill(gate)
end)

T.case("kick_closes_a_connection", function()
	events = {}
	local gate, port = open_gate()
	local c = assert(socket.open("127.0.0.1", port))
	local fd = wait_event("open")[2]
	skynet.call(gate, "lua", "kick", fd)
	T.eq(socket.read(c), false)
	socket.close(c)
	skynet.kill(gate)
end)

skynet.start(function()
	skynet.dispatch("lua", function(_, source, kind, sub, ...)
		assert(kind == "socket")
		if source == current_gate then
			events[#events + 1] = { sub, ... }
		end
	end)
	T.run()
end)
