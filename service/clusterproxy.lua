-- clusterproxy: a local stand-in for a service on another node. Lua (and snax) calls to it
-- become cluster requests and sends become cluster pushes, through the node's clustersender;
-- the payload is forwarded untouched (forward_type keeps it unfreed until the sender packs it).
local skynet = require "skynet"
require "skynet.manager"

local node, address = ...
address = tonumber(address) or address

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function(...)
		return ...
	end,
}

local forward_map = {
	[skynet.PTYPE_SNAX] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_RESPONSE] = skynet.PTYPE_RESPONSE,
}

skynet.forward_type(forward_map, function()
	require("skyjet").internal() -- never callable from other nodes
	local clusterd = skynet.uniqueservice "clusterd"
	local sender = skynet.call(clusterd, "lua", "sender", node)
	skynet.dispatch("system", function(session, _, msg, sz)
		if session == 0 then
			skynet.send(sender, "lua", "push", address, msg, sz)
		else
			skynet.ret(skynet.rawcall(sender, "lua", skynet.pack("req", address, msg, sz)))
		end
	end)
end)
