-- skyjet: skyjet's own extensions to Skynet's API (not in Skynet), so services reach them here
-- rather than through skynet.core, whose other functions belong to skynet.lua. A table of
-- references to the C functions: only the services that require it pay for it.
local core = require "skynet.core"

return {
	-- internal(): mark this service node-internal: never callable from other nodes, and the
	-- debug console refuses to stop it. isinternal(handle) says whether a service is marked.
	internal = core.internal,
	isinternal = core.isinternal,
	-- hold(1) / hold(-1): keep the node from finishing its stop while in-flight work drains.
	hold = core.hold,
	-- checkpayload(msg, sz): true, or false and why a message from the network is malformed.
	checkpayload = core.checkpayload,
	-- stats(): the runtime's counters (messages, services, memory, timers...) as a table.
	stats = core.stats,
	-- serviceinfo(handle): a table about one service, or nil when it is gone; list(): live handles;
	-- count(): how many services live.
	serviceinfo = core.serviceinfo,
	list = core.list,
	count = core.count,
	-- loglevel([level]): the node's log level, set when a level is given.
	loglevel = core.loglevel,
	-- signal(handle, n): deliver a signal to a service; false when it is gone.
	signal = core.signal,
	-- startup(ok, err): bootstrap's verdict to main (the start service started or failed).
	startup = core.startup,
	-- reloaded(): clusterd's word that a SIGHUP reload is done (applied or refused): READY=1.
	reloaded = core.reloaded,
}
