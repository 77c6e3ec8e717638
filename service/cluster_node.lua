-- cluster_node: the start service of a node that scripts/cluster started from a cluster file.
-- Arguments: the node's name, then optionally a start service and its arguments. It opens the
-- node's cluster port (cluster.open(name), the address the cluster file gives it), registers
-- itself as "@cluster_node" so others can check the node is up, then launches the optional
-- start service (a failure raises with its cause, so the node stops with exit status 1).
-- Commands (protocol lua):
-- ping([node]) answers this node's name, or with a node name asks that node's cluster_node and
-- answers what it said (a node-to-node call).
local skynet = require "skynet"
local cluster = require "skynet.cluster"

local name, start = ...
local start_args = { select(3, ...) }
local CMD = {}

function CMD.ping(node)
	if node then
		return cluster.call(node, "@cluster_node", "ping")
	end
	return name
end

skynet.start(function()
	name = name or skynet.getenv "name"
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("cluster_node: unknown command " .. tostring(cmd), 0)
		end
		skynet.retpack(f(...))
	end)
	cluster.register("cluster_node", skynet.self())
	cluster.open(name)
	if start then
		local _, cause = skynet.call(".launcher", "lua", "START", "snlua", start, unpack(start_args))
		if cause then
			error("cluster node " .. name .. ": start service " .. start .. " failed: " .. cause, 0)
		end
	end
	skynet.error("cluster node " .. name .. " is up")
end)
