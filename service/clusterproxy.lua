-- clusterproxy: a local stand-in for a service on another node. Lua (and snax) calls to it
-- become cluster requests and sends become cluster pushes, through the node's clustersender;
-- the payload is forwarded untouched (forward_type keeps it unfreed until the sender packs it).
-- On the fast path (skynet.cluster.fastpath) the proxy writes a single request itself and the
-- reply goes from the reactor straight to the original caller; a push is written the same way.
local skynet = require "skynet"
require "skynet.manager"
local fastpath = require "skynet.cluster.fastpath"

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
	local order = fastpath.order()
	skynet.dispatch("system", function(session, source, msg, sz)
		local clear = fastpath.clear(order)
		if session == 0 then
			if clear and fastpath.push(sender, address, msg, sz) then
				return
			end
			fastpath.slow(order)
			fastpath.barrier(order, sender)
			skynet.send(sender, "lua", "push", address, msg, sz)
		elseif clear and not skynet.tracetag() and fastpath.write(session, sender, source, address, msg, sz) then
			skynet.ignoreret() -- the reply goes to the caller from the reactor (or the sender)
		else
			local seq = fastpath.slow(order)
			local ok, reply, rsz = pcall(skynet.rawcall, sender, "lua", skynet.pack("req", address, msg, sz))
			fastpath.passed(order, seq)
			if not ok then
				error(reply, 0)
			end
			skynet.ret(reply, rsz)
		end
	end)
end)
