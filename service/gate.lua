-- gate: a TCP front door. Listens, accepts, splits each connection's bytes into frames with a
-- 2-byte big-endian length prefix, and forwards every frame either to the agent a connection was
-- handed to (`forward`: PTYPE_CLIENT, session = fd) or to the watchdog (`accept`: lua "socket",
-- "data", fd, frame). Tells the watchdog about opens, closes, errors and send-queue warnings.
-- Connections beyond `maxclient` are closed at once and logged.
--   watchdog -> gate (lua): open(conf) -> address, port (as Skynet's gate; port 0 = ephemeral,
--                           the real port is answered), close(), forward(fd[, client, agent]),
--                           accept(fd), kick(fd), handoff(fd), release(fd), info()
--   gate -> watchdog (lua send): "socket", "open"|"close"|"error"|"warning"|"data", fd, ...
local skynet = require "skynet"
local driver = require "skynet.socketdriver"

local watchdog
local listen_id
local maxclient = 1024
local nodelay = false
local client_count = 0
local connections = {} -- fd -> { fd, address, buffer, agent, client, reading }
local handed_off = {} -- fd -> true: owned by another service, still counted
local CMD = {}

local EV = driver.event -- from reactor.h
local DATA, OPEN, CLOSE, ACCEPT, ERROR, WARNING = EV.DATA, EV.OPEN, EV.CLOSE, EV.ACCEPT, EV.ERROR, EV.WARNING

local function notify(...)
	if watchdog then
		skynet.send(watchdog, "lua", "socket", ...)
	end
end

local function drop(fd)
	local c = connections[fd]
	if c then
		connections[fd] = nil
		c.buffer:clear()
		if not c.eof then
			client_count = client_count - 1
		end
	end
end

local function deliver_frames(c)
	local buffer = c.buffer
	while true do
		local frame = buffer:popframe()
		if not frame then
			return
		end
		if c.agent then
			skynet.redirect(c.agent, c.client, "client", c.fd, frame)
		else
			notify("data", c.fd, frame)
		end
		if connections[c.fd] ~= c then -- kicked while delivering
			return
		end
	end
end

local event = {}

event[DATA] = function(fd, _, data, size)
	local c = connections[fd]
	if not c then
		skynet.trash(data, size)
		return
	end
	c.buffer:push(data, size)
	deliver_frames(c)
end

-- Refusals are logged without flooding: the first at once, the rest as one count a second later.
local refused, refusing = 0, false
local function refuse(fd, address)
	driver.close(fd)
	if refusing then
		refused = refused + 1
		return
	end
	refusing = true
	skynet.log("warn", string.format("gate: maxclient %d reached, closing connection %d from %s",
		maxclient, fd, address))
	skynet.timeout(100, function()
		refusing = false
		if refused > 0 then
			skynet.log("warn", string.format("gate: maxclient %d reached, closed %d more connection(s) in 1 s",
				maxclient, refused))
			refused = 0
		end
	end)
end

event[ACCEPT] = function(_, fd, address)
	if client_count >= maxclient then
		return refuse(fd, address)
	end
	if nodelay then
		driver.nodelay(fd)
	end
	client_count = client_count + 1
	connections[fd] = { fd = fd, address = address, buffer = driver.buffer() }
	notify("open", fd, address)
end

-- half = 1: the client sent EOF. As Skynet's gate, the connection stops counting and the watchdog
-- hears "close", but the socket stays writable (replies still go out) until `kick` closes it.
event[CLOSE] = function(fd, half)
	if fd == listen_id then
		listen_id = nil
		return
	end
	local c = connections[fd]
	if not c then
		return
	end
	if half == 1 then
		if not c.eof then
			c.eof = true
			client_count = client_count - 1
			notify("close", fd)
		end
	else
		local was_open = not c.eof
		drop(fd)
		if was_open then
			notify("close", fd)
		end
	end
end

event[ERROR] = function(fd, _, text)
	if fd == listen_id then
		skynet.log("error", "gate: listener error: " .. tostring(text))
		listen_id = nil
		return
	end
	if connections[fd] then
		drop(fd)
		notify("error", fd, text)
	end
end

event[WARNING] = function(fd, kbytes)
	if connections[fd] then
		notify("warning", fd, kbytes)
	end
end

event[OPEN] = function() end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = driver.unpack,
	dispatch = function(_, _, t, id, ud, data, size)
		local f = event[t]
		if f then
			f(id, ud, data, size)
		end
	end,
}

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
}

local function start_reading(c)
	if not c.reading then
		c.reading = true
		driver.start(c.fd)
	end
end

function CMD.open(source, conf)
	assert(not listen_id, "gate is already listening")
	watchdog = conf.watchdog or source
	maxclient = conf.maxclient or 1024
	nodelay = conf.nodelay
	local address = conf.address or "0.0.0.0"
	local id, port = driver.listen(address, assert(conf.port, "gate open: no port"), conf.backlog)
	if not id then
		error(string.format("gate: listen on %s:%s failed: %s", address, conf.port, port))
	end
	listen_id = id
	driver.start(id)
	skynet.error(string.format("gate: listen on %s:%d (maxclient %d)", address, port, maxclient))
	return address, port
end

function CMD.close()
	if listen_id then
		driver.close(listen_id)
		listen_id = nil
	end
end

-- Send fd's frames to `agent` as PTYPE_CLIENT messages from `client` (default: the agent).
function CMD.forward(source, fd, client, agent)
	local c = assert(connections[fd], "gate forward: unknown fd")
	c.agent = agent or source
	c.client = client or 0
	start_reading(c)
	deliver_frames(c)
end

-- Send fd's frames to the watchdog as "socket", "data" notifications.
function CMD.accept(_, fd)
	local c = assert(connections[fd], "gate accept: unknown fd")
	c.agent = nil
	start_reading(c)
	deliver_frames(c)
end

-- Give the socket to another service, which starts it itself (clusteragent does). The
-- connection still counts against maxclient until that service sends `release`.
function CMD.handoff(_, fd)
	local c = assert(connections[fd], "gate handoff: unknown fd")
	connections[fd] = nil
	handed_off[fd] = not c.eof or nil -- a half-closed one no longer counts
end

function CMD.release(_, fd)
	if handed_off[fd] then
		handed_off[fd] = nil
		client_count = client_count - 1
	end
end

function CMD.kick(_, fd)
	if connections[fd] then
		drop(fd)
		driver.close(fd)
	end
end

function CMD.info()
	return { clients = client_count, maxclient = maxclient, listening = listen_id ~= nil }
end

skynet.start(function()
	require("skyjet").internal()
	skynet.dispatch("lua", function(_, source, cmd, ...)
		local f = assert(CMD[cmd], "gate: unknown command")
		skynet.retpack(f(source, ...))
	end)
end)
