-- skynet.cluster.wire: the facts of the cluster protocol that the Lua side needs, in one place.
-- Packet layouts live in C (cluster.core); socket event numbers come from the reactor through
-- socketdriver; the authentication messages live with the handshake (skynet.cluster.auth).
local skynet = require "skynet"
local driver = require "skynet.socketdriver"

local wire = {
	-- a name query any Skynet node answers ("name not found"): the heartbeat probe
	HEARTBEAT_NAME = "__skyjet_heartbeat",
	-- node up/down events from clusterd to cluster.watch services: protocol id and name
	PTYPE_CLUSTER_EVENT = 19,
	CLUSTER_EVENT = "cluster_event",
	-- frames on the wire: a 2-byte big-endian length, then the body
	FRAME_PREFIX = 2,
	-- socket event types of socketdriver.unpack (reactor.h)
	event = driver.event,
}

-- Route this service's socket events to fn(type, id, ud, data, size) (socketdriver.unpack).
function wire.on_socket(fn)
	skynet.register_protocol {
		name = "socket",
		id = skynet.PTYPE_SOCKET,
		unpack = driver.unpack,
		dispatch = function(_, _, ...)
			fn(...)
		end,
	}
end

return wire
