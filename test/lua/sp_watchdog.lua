-- t_sproto_gate's watchdog: owns a gate (service/gate or sp_gate), starts an agent per
-- connection and stops it when the client leaves.
local skynet = require "skynet"

local gate_name = ...
local gate
local agents = {} -- fd -> agent
local CMD, SOCKET = {}, {}

local function drop(fd)
	local a = agents[fd]
	agents[fd] = nil
	if a then
		skynet.call(gate, "lua", "kick", fd)
		skynet.send(a, "lua", "stop")
	end
end

function SOCKET.open(fd)
	local a = skynet.newservice("sp_agent")
	agents[fd] = a
	skynet.call(a, "lua", "start", gate, fd, skynet.self())
end

SOCKET.close = drop
SOCKET.error = drop

function SOCKET.data() end

function SOCKET.warning() end

function CMD.start(conf)
	local _, port = skynet.call(gate, "lua", "open", conf) -- address, port
	return port
end

CMD.close = drop

function CMD.agents()
	local n = 0
	for _ in pairs(agents) do
		n = n + 1
	end
	return n
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, sub, ...)
		if cmd == "socket" then
			SOCKET[sub](...)
		else
			skynet.retpack(CMD[cmd](sub, ...))
		end
	end)
	gate = skynet.newservice(gate_name)
end)
