-- svc_forward: uses skynet.forward_type to receive "lua" requests as a raw "system"
-- protocol and answers them by hand (as clusterproxy does).
local skynet = require "skynet"
require "skynet.manager"

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function(msg, sz)
		return msg, sz
	end,
	dispatch = function(_, _, msg, sz)
		local cmd = skynet.unpack(msg, sz)
		skynet.trash(msg, sz)
		skynet.retpack("forwarded:" .. cmd)
	end,
}

skynet.forward_type({ [skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM }, function() end)
