-- A gate on snax.gateserver (Skynet's skeleton, over netpack) for t_sproto_gate: tells the
-- watchdog about connections and hands each client's frames to its agent.
local skynet = require "skynet"
local gateserver = require "snax.gateserver"
local netpack = require "skynet.netpack"

local watchdog
local forward = {} -- fd -> agent
local handler = {}

skynet.register_protocol { name = "client", id = skynet.PTYPE_CLIENT }

function handler.open(source, conf)
	watchdog = conf.watchdog or source
	return conf.address, conf.port
end

function handler.connect(fd, addr)
	skynet.send(watchdog, "lua", "socket", "open", fd, addr)
end

function handler.message(fd, msg, sz)
	local agent = forward[fd]
	if agent then
		skynet.redirect(agent, 0, "client", fd, msg, sz)
	else
		skynet.send(watchdog, "lua", "socket", "data", fd, netpack.tostring(msg, sz))
	end
end

function handler.disconnect(fd)
	forward[fd] = nil
	skynet.send(watchdog, "lua", "socket", "close", fd)
end

function handler.error(fd, msg)
	forward[fd] = nil
	skynet.send(watchdog, "lua", "socket", "error", fd, msg)
end

local CMD = {}

function CMD.forward(source, fd)
	forward[fd] = source
	gateserver.openclient(fd)
end

function CMD.kick(_, fd)
	forward[fd] = nil
	gateserver.closeclient(fd)
end

function handler.command(cmd, source, ...)
	return CMD[cmd](source, ...)
end

gateserver.start(handler)
