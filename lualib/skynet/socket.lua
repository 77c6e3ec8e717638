-- skynet.socket: coroutine-blocking sockets over the reactor (skynet.socketdriver). A service
-- owns the ids it opened, accepted or started ("its pool"); the reactor reports events as
-- PTYPE_SOCKET messages, which this module turns into wake-ups of the one coroutine reading each
-- socket. Reads on a closed socket return false plus whatever was still buffered.
local skynet = require "skynet"
local driver = require "skynet.socketdriver"

local assert, type, tonumber, tostring = assert, type, tonumber, tostring
local coroutine_running = coroutine.running

local socket = {}
local pool = {} -- id -> state
local BUFFER_PAUSE = 4 * 1024 * 1024 -- pause reading when this much sits unread and nobody reads

local EV = driver.event -- from reactor.h
local DATA, OPEN, CLOSE, ACCEPT, ERROR, UDP, WARNING = EV.DATA, EV.OPEN, EV.CLOSE, EV.ACCEPT, EV.ERROR,
	EV.UDP, EV.WARNING

local function new_state(id, accept)
	local s = {
		id = id,
		buffer = driver.buffer(),
		connected = false,
		connecting = false,
		accept = accept,
		co = false, -- the coroutine waiting on this socket
		need = false, -- what it waits for: a byte count, a separator, true (any data), "close"
	}
	pool[id] = s
	return s
end

local function wakeup(s)
	local co = s.co
	if co then
		s.co = false
		skynet.wakeup(co)
	end
end

local function suspend(s, need)
	assert(not s.co)
	local co = coroutine_running()
	s.co = co
	s.need = need
	skynet.wait(co)
	s.need = false
	if s.closing then
		skynet.wakeup(s.closing)
	end
end

local function resume_reading(s)
	if s.paused then
		s.paused = false
		skynet.error(string.format("Resume socket (%d)", s.id))
		driver.start(s.id)
	end
end

local handler = {}

handler[DATA] = function(id, size, data)
	local s = pool[id]
	if not s then
		skynet.error("socket: drop package from " .. id)
		skynet.trash(data, size)
		return
	end
	local sz = s.buffer:push(data, size)
	local need = s.need
	if s.co then
		if type(need) ~= "number" or sz >= need then
			wakeup(s)
		end
		return
	end
	if s.limit and sz > s.limit then
		skynet.error(string.format("socket buffer overflow: fd=%d size=%d", id, sz))
		s.buffer:clear()
		driver.shutdown(id)
		return
	end
	if sz > BUFFER_PAUSE and not s.paused then
		s.paused = true
		skynet.error(string.format("Pause socket (%d) size : %d", id, sz))
		driver.pause(id)
	end
end

handler[OPEN] = function(id, _, text)
	local s = pool[id]
	if not s or s.connected then
		return
	end
	s.connected = true
	s.connecting = false
	s.address = text
	wakeup(s)
end

-- half = 1: the peer sent EOF. Reads end, but the id stays open for writing until close (the
-- reactor flushes what was written, then releases it). Otherwise the reactor released the id.
handler[CLOSE] = function(id, half)
	local s = pool[id]
	if not s then
		return -- closed or handed over already (the new owner hears the EOF when it starts it)
	end
	s.connected = false
	s.connecting = false
	if half == 1 then
		s.halfclosed = true
	else
		s.gone = true
	end
	wakeup(s)
	if s.on_close then
		s.on_close(id)
	end
end

handler[ACCEPT] = function(id, newid, text)
	local s = pool[id]
	if not s or not s.accept then
		driver.close(newid)
		return
	end
	s.accept(newid, text)
end

handler[ERROR] = function(id, _, text)
	local s = pool[id]
	if not s then
		skynet.error(string.format("socket: error on unknown %d %s", id, tostring(text)))
		return
	end
	if not s.connecting then
		skynet.error(string.format("socket: error on %d %s", id, tostring(text)))
	end
	s.err = text
	s.connected = false
	s.connecting = false
	s.gone = true
	wakeup(s)
	if s.on_close then
		s.on_close(id)
	end
end

-- A datagram: the socket's callback gets (payload, from) in this message's coroutine.
handler[UDP] = function(id, size, data, from)
	local s = pool[id]
	if not s or not s.callback then
		skynet.error("socket: drop udp package from " .. id)
		skynet.trash(data, size)
		return
	end
	local str = skynet.tostring(data, size)
	skynet.trash(data, size)
	s.callback(str, from)
end

handler[WARNING] = function(id, kbytes)
	local s = pool[id]
	if s and s.on_warning then
		s.on_warning(id, kbytes)
	elseif kbytes > 0 then
		skynet.error(string.format("WARNING: %d K bytes need to send out (fd = %d)", kbytes, id))
	end
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = driver.unpack,
	dispatch = function(_, _, t, id, ud, data, size)
		local f = handler[t]
		if f then
			if t == DATA then
				f(id, size, data)
			elseif t == UDP then
				f(id, ud, data, size) -- size, data, from
			else
				f(id, ud, data)
			end
		end
	end,
}

-- "host:port", "[::1]:port" or (host, port)
local function split_address(addr, port)
	if port == nil then
		local host, p = addr:match "^%[(.-)%]:(%d+)$"
		if not host then
			host, p = addr:match "^([^:]*):(%d+)$"
		end
		if not host then
			error("Invalid address " .. addr .. ".", 3)
		end
		return host, tonumber(p)
	end
	return addr, tonumber(port)
end

-- open(host, port [, timeout_ms]) / open("host:port"): the timeout is a skyjet extension; when
-- it passes first the connect is abandoned and open returns nil, "connect timeout ...".
function socket.open(addr, port, timeout)
	local host
	host, port = split_address(addr, port)
	if not port or port == 0 then
		error("Invalid port", 2)
	end
	local id, err = driver.connect(host, port)
	if not id then
		return nil, err
	end
	local s = new_state(id)
	s.connecting = true
	if timeout and timeout > 0 then
		skynet.timeout(math.ceil(timeout / 10), function()
			if pool[id] == s and s.connecting then
				s.connecting = false
				s.err = string.format("connect timeout after %d ms", timeout)
				driver.shutdown(id)
				wakeup(s)
			end
		end)
	end
	suspend(s, "open")
	if s.connected then
		return id
	end
	pool[id] = nil
	return nil, s.err or "connect failed"
end
socket.connect = socket.open

function socket.listen(host, port, backlog)
	host, port = split_address(host, port)
	local id, bound = driver.listen(host, port, backlog)
	if not id then
		error("Listen error: " .. tostring(bound), 2)
	end
	new_state(id).listening = true -- in the pool, so close works before start
	return id, host, bound
end

-- start(listen_id, accept_cb) starts accepting; start(id) starts reading (an accepted id or one
-- handed over by abandon). Returns the id, or nil and a reason if it closed first.
function socket.start(id, accept)
	local s = pool[id]
	if s and s.listening then
		s.accept = accept
	else
		s = new_state(id, accept)
	end
	driver.start(id)
	suspend(s, "open")
	if s.connected then
		return id
	end
	pool[id] = nil
	return nil, s.err or "closed"
end

function socket.read(id, n)
	local s = assert(pool[id])
	local buffer = s.buffer
	if n == nil then
		while true do
			if buffer:size() > 0 then
				resume_reading(s)
				return buffer:readall()
			end
			if not s.connected then
				return false, ""
			end
			resume_reading(s)
			suspend(s, true)
		end
	end
	while true do
		local r = buffer:pop(n)
		if r then
			return r
		end
		if not s.connected then
			return false, buffer:readall()
		end
		resume_reading(s)
		suspend(s, n)
	end
end

function socket.readline(id, sep)
	sep = sep or "\n"
	local s = assert(pool[id])
	while true do
		local r = s.buffer:readline(sep)
		if r then
			return r
		end
		if not s.connected then
			return false, s.buffer:readall()
		end
		resume_reading(s)
		suspend(s, sep)
	end
end

function socket.readall(id)
	local s = assert(pool[id])
	if not s.connected then
		local r = s.buffer:readall()
		return r ~= "" and r
	end
	while s.connected do
		resume_reading(s)
		suspend(s, "close")
	end
	return s.buffer:readall()
end

function socket.block(id)
	local s = pool[id]
	if not s or not s.connected then
		return false
	end
	if s.buffer:size() > 0 then
		return true
	end
	resume_reading(s)
	suspend(s, true)
	return s.connected or s.buffer:size() > 0
end

-- Ids outside the pool may be written too (an agent writing to a client socket its gate owns).
-- A half-closed id (the peer sent EOF) still takes writes, as in Skynet.
local function writable(s)
	return not s or s.connected or (s.halfclosed and not s.gone)
end

function socket.write(id, data, sz)
	if not writable(pool[id]) then
		return false
	end
	return driver.send(id, data, sz)
end

function socket.lwrite(id, data, sz)
	if not writable(pool[id]) then
		return false
	end
	return driver.lsend(id, data, sz)
end

function socket.close(id)
	local s = pool[id]
	if not s then
		return
	end
	if not s.gone then
		if s.connected or s.connecting or s.listening or s.halfclosed then
			driver.close(id) -- flushes pending output first
		else
			driver.shutdown(id)
		end
	end
	if s.co then
		-- a reader is blocked: it returns (false, rest) once the close event arrives
		s.closing = coroutine_running()
		skynet.wait(s.closing)
	end
	s.connected = false
	pool[id] = nil
end

function socket.shutdown(id)
	local s = pool[id]
	if s and not s.gone then
		driver.shutdown(id)
	end
end

function socket.close_fd(id)
	assert(pool[id] == nil, "Use socket.close instead")
	driver.close(id)
end

function socket.invalid(id)
	return pool[id] == nil
end

function socket.disconnected(id)
	local s = pool[id]
	if s then
		return not (s.connected or s.connecting)
	end
end

function socket.abandon(id)
	local s = pool[id]
	if s then
		pool[id] = nil
		wakeup(s)
	end
end

function socket.pause(id)
	local s = pool[id]
	if s and not s.paused then
		s.paused = true
		driver.pause(id)
	end
end

function socket.limit(id, limit)
	local s = assert(pool[id])
	s.limit = limit
end

-- skyjet: cap a listener's live connections; more are accepted and closed at once (and counted
-- in a once-a-second log line). 0 = no cap.
function socket.accept_limit(id, n)
	driver.accept_limit(id, n)
end

function socket.warning(id, callback)
	local s = assert(pool[id])
	s.on_warning = callback
end

function socket.onclose(id, callback)
	local s = assert(pool[id])
	s.on_close = callback
end

function socket.nodelay(id)
	driver.nodelay(id)
end

function socket.address(id)
	local s = pool[id]
	return s and s.address
end

socket.header = driver.header

---------------------------------------------------------------------------------------------------
-- UDP: an id in the pool whose datagrams go to callback(data, from). `from` is an opaque address
-- (socket.udp_address turns it into ip, port; socket.sendto sends to it).

local function udp_object(id, callback)
	assert(not pool[id], "socket is not closed")
	local s = new_state(id)
	s.connected = true
	s.udp = true
	s.callback = callback
	return id
end

-- udp(callback [, host, port]): bound to host:port when given, else an unbound IPv4 socket
function socket.udp(callback, host, port)
	return udp_object(driver.udp(host, port), callback)
end

-- udp_connect(id, host, port [, callback]): write(id, data) then goes to host:port
function socket.udp_connect(id, host, port, callback)
	local s = pool[id]
	if s then
		assert(s.udp, "not a udp socket")
		if callback then
			s.callback = callback
		end
	else
		udp_object(id, callback)
	end
	driver.udp_connect(id, host, port)
end

function socket.udp_listen(host, port, callback)
	return udp_object(driver.udp_listen(host, port), callback)
end

function socket.udp_dial(host, port, callback)
	return udp_object(driver.udp_dial(host, port), callback)
end

socket.sendto = driver.udp_send -- (id, from, data) -> boolean
socket.udp_address = driver.udp_address -- (from) -> ip, port

return socket
