-- skynet.cluster.wire: the facts of the cluster protocol that the Lua side needs, in one place.
-- Packet layouts live in C (cluster.core); socket event numbers come from the reactor through
-- socketdriver; the authentication messages live with the handshake (skynet.cluster.auth).
local driver = require "skynet.socketdriver"

return {
	-- a name query any Skynet node answers ("name not found"): the heartbeat probe
	HEARTBEAT_NAME = "__skyjet_heartbeat",
	-- node up/down events from clusterd to cluster.watch services
	PTYPE_CLUSTER_EVENT = 19,
	-- frames on the wire: a 2-byte big-endian length, then the body
	FRAME_PREFIX = 2,
	-- socket event types of socketdriver.unpack (reactor.h)
	event = driver.event,
}
