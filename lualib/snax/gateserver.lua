-- snax.gateserver: Skynet's gate skeleton over `netpack`. A gate service calls
-- gateserver.start(handler) and gets the watchdog-facing commands `open(conf)` and `close()`;
-- the handler supplies connect(fd, addr) and message(fd, msg, sz) (msg: a malloc'd frame the
-- handler owns), and optionally open(source, conf), disconnect(fd), error(fd, msg),
-- warning(fd, kbytes), command(cmd, source, ...) and embed (skip skynet.start).
-- Frames are 2-byte big-endian length + body, cut by netpack.filter from the socket messages.
local skynet = require "skynet"
local netpack = require "skynet.netpack"
local driver = require "skynet.socketdriver"

local gateserver = {}

local listen_id -- the listening socket
local queue -- netpack's queue of frames (a userdata)
local maxclient
local nodelay
local clients = 0
local connection = {} -- fd -> true (open), false (closed, not yet forgotten)

function gateserver.openclient(fd)
	if connection[fd] then
		driver.start(fd)
	end
end

function gateserver.closeclient(fd)
	if connection[fd] ~= nil then
		if connection[fd] then
			clients = clients - 1
		end
		connection[fd] = nil
		driver.close(fd)
	end
end

function gateserver.start(handler)
	assert(handler.message, "gateserver: handler.message missing")
	assert(handler.connect, "gateserver: handler.connect missing")
	local CMD = {}

	function CMD.open(source, conf)
		assert(not listen_id, "gateserver: already listening")
		local address = conf.address or "0.0.0.0"
		maxclient = conf.maxclient or 1024
		nodelay = conf.nodelay
		local id, port = driver.listen(address, assert(conf.port, "gateserver: no port"), conf.backlog)
		if not id then
			error(string.format("gateserver: listen on %s:%s failed: %s", address, conf.port, port))
		end
		skynet.error(string.format("Listen on %s:%d", address, port))
		listen_id = id
		conf.address, conf.port = address, port
		driver.start(id)
		if handler.open then
			return handler.open(source, conf)
		end
	end

	function CMD.close()
		assert(listen_id, "gateserver: not listening")
		driver.close(listen_id)
		listen_id = nil
	end

	local function dispatch_msg(fd, msg, sz)
		if connection[fd] then
			handler.message(fd, msg, sz)
		else
			skynet.error(string.format("Drop message from fd (%d) : %s", fd, netpack.tostring(msg, sz)))
		end
	end

	local MSG = { data = dispatch_msg }

	-- Several frames arrived at once: drain the queue, in a fresh coroutine should a handler block.
	function MSG.more()
		local fd, msg, sz = netpack.pop(queue)
		if fd then
			skynet.fork(MSG.more)
			dispatch_msg(fd, msg, sz)
			for nfd, nmsg, nsz in netpack.pop, queue do
				dispatch_msg(nfd, nmsg, nsz)
			end
		end
	end

	function MSG.open(fd, addr)
		if clients >= maxclient then
			driver.close(fd)
			return
		end
		clients = clients + 1
		if nodelay then
			driver.nodelay(fd)
		end
		connection[fd] = true
		handler.connect(fd, addr)
	end

	-- A connection ends (closed or failed): it stops counting, then the handler hears of it.
	local function gone(event, fd, ...)
		if fd == listen_id then
			if event == "error" then
				skynet.error("gateserver accept error:", ...)
			else
				listen_id = nil
			end
			return
		end
		if connection[fd] then
			clients = clients - 1
			connection[fd] = false -- known but closed: its late frames are dropped
		end
		local f = handler[event]
		if f then
			f(fd, ...)
		end
	end

	MSG.close = function(fd)
		gone("disconnect", fd)
	end
	MSG.error = function(fd, why)
		gone("error", fd, why)
	end
	MSG.warning = function(fd, kbytes)
		local f = handler.warning
		return f and f(fd, kbytes)
	end

	skynet.register_protocol {
		name = "socket",
		id = skynet.PTYPE_SOCKET,
		unpack = function(msg, sz)
			return netpack.filter(queue, msg, sz)
		end,
		dispatch = function(_, _, q, kind, ...)
			queue = q
			if kind then
				MSG[kind](...)
			end
		end,
	}

	local function init()
		skynet.dispatch("lua", function(_, source, cmd, ...)
			local f = CMD[cmd]
			if f then
				skynet.ret(skynet.pack(f(source, ...)))
			else
				skynet.ret(skynet.pack(handler.command(cmd, source, ...)))
			end
		end)
	end

	if handler.embed then
		init()
	else
		skynet.start(init)
	end
end

return gateserver
