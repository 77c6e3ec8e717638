-- gate_agent: receives a connection's frames from the gate as PTYPE_CLIENT messages and
-- records them; "frames" returns what arrived.
local skynet = require "skynet"

local frames = {}
skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = skynet.tostring,
	dispatch = function(fd, _, frame)
		skynet.ignoreret() -- the session field carries the fd
		frames[#frames + 1] = { fd = fd, frame = frame }
	end,
}

skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.retpack(frames)
	end)
end)
