-- skynet.datacenter: a node-wide tree of values held by the datacenterd service.
-- get(k1, k2, ...) reads a value (nil if the path is missing), set(k1, ..., value) writes one
-- (creating the branches on the way) and wait(k1, ...) returns it, waiting until it is set.
local skynet = require "skynet"

local datacenter = {}
local server

local function call(...)
	server = server or skynet.uniqueservice "datacenterd"
	return skynet.call(server, "lua", ...)
end

function datacenter.get(...)
	return call("QUERY", ...)
end

function datacenter.set(...)
	return call("UPDATE", ...)
end

function datacenter.wait(...)
	return call("WAIT", ...)
end

return datacenter
