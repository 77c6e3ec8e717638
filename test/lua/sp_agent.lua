-- t_sproto_gate's agent: speaks sproto with one client. Requests arrive from the gate as
-- PTYPE_CLIENT messages (session = fd); answers and pushes go out framed by netpack.pack.
local skynet = require "skynet"
local T = require "testlib"
local socket = require "skynet.socket"
local netpack = require "netpack"
local loader = require "sprotoloader"

local host, push
local fd, watchdog
local pos = { x = 0, y = 0 }
local REQUEST = {}

function REQUEST.login(args)
	return { id = fd, greeting = "hello " .. args.name }
end

function REQUEST.move(args)
	local steps = math.abs(args.to.x - pos.x) + math.abs(args.to.y - pos.y)
	pos = args.to
	return { at = pos, steps = steps }
end

function REQUEST.bye()
	skynet.send(watchdog, "lua", "close", fd)
end

local function send(packet)
	socket.write(fd, netpack.pack(packet))
end

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = function(msg, sz)
		return host:dispatch(msg, sz)
	end,
	dispatch = function(session, _, kind, name, args, response)
		skynet.ignoreret() -- the session is the fd: nothing to answer through skynet
		assert(session == fd and kind == "REQUEST")
		local result = REQUEST[name](args)
		if response then
			send(response(result))
		end
	end,
}

local CMD = {}

function CMD.start(gate, client, dog)
	fd, watchdog = client, dog
	host = loader.load(1):host "package"
	push = host:attach(loader.load(2))
	skynet.call(gate, "lua", "forward", fd)
	send(push("tick", { n = 1 }))
end

function CMD.stop()
	skynet.exit()
end

T.serve(CMD)
