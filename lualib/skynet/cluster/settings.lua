-- skynet.cluster.settings: the [cluster] settings of this node, read once per service from the
-- environment that daemon/config.c publishes. Defaults, ranges and size parsing live only there
-- (sizes arrive as byte counts); this module only turns the text into numbers and sets.
local skynet = require "skynet"

local function text(key)
	return skynet.getenv("cluster." .. key)
end

local function number(key)
	return tonumber(text(key))
end

local plain_peers = {} -- node name -> true
for name in (text "plain_peers" or ""):gmatch "[^,%s]+" do
	plain_peers[name] = true
end

return {
	file = text "file", -- the node table (clustername.lua), or nil
	secret_file = text "secret_file",
	plain_peers = plain_peers,
	expose = text "expose",
	max_message = number "max_message",
	max_assemblies = number "max_assemblies",
	max_assembly_bytes = number "max_assembly_bytes",
	max_assembly_total = number "max_assembly_total",
	assembly_timeout = number "assembly_timeout", -- ms
	max_pending = number "max_pending",
	maxclient = number "maxclient",
	first_frame_timeout = number "first_frame_timeout", -- ms
	call_timeout = number "call_timeout", -- ms, 0 = none
	connect_timeout = number "connect_timeout", -- ms, 0 = the kernel's
	heartbeat = number "heartbeat", -- ms, 0 = off
	heartbeat_timeout = number "heartbeat_timeout", -- ms
}
