-- skynet.cluster.resolve: where a request from another node may go, for one inbound link (used by
-- clusteragent). "@name" is looked up in clusterd's registry (cached per link; concurrent look-ups
-- of one name share one query; flush() on a registry change); every other address passes the
-- exposure policy ([cluster] expose):
--   services (default, Skynet's usage): @names, .names, bare NAMEs and handles of every service not
--     node-internal (launcher, clusterd, gates, agents, senders, console, metrics... mark
--     themselves with skyjet.internal());
--   registered: @names, and handles of non-internal services (those registered services hand out);
--   names: @names only;  all: anything, internal services included (Skynet's behaviour).
local skynet = require "skynet"
local core = require "skynet.core" -- query: the node's name registry (Skynet's C API)
local skyjet = require "skyjet"
local settings = require "skynet.cluster.settings"

local EXPOSE = settings.expose
local resolver = {}
resolver.__index = resolver

function resolver.new(clusterd)
	return setmetatable({ clusterd = clusterd, cache = {}, waiting = {} }, resolver)
end

-- A registered name's handle, or nil.
function resolver:query(name)
	local ok, handle = pcall(skynet.call, self.clusterd, "lua", "queryname", name)
	return ok and handle or nil
end

function resolver:flush()
	self.cache = {}
end

local function by_name(self, addr)
	local h = self.cache[addr]
	if h then
		return h
	end
	local w = self.waiting[addr]
	if w then
		local co = coroutine.running()
		w[#w + 1] = co
		skynet.wait(co)
		h = self.cache[addr]
	else
		w = {}
		self.waiting[addr] = w
		h = self:query(addr:sub(2))
		self.waiting[addr] = nil
		self.cache[addr] = h
		for _, co in ipairs(w) do
			skynet.wakeup(co)
		end
	end
	if h then
		return h
	end
	return nil, "Invalid name"
end

-- True when resolve(addr) answers at once (a handle, a local name, a cached @name): the agent
-- then needs no coroutine for the request. Address 0 is the name query, never ready.
function resolver:ready(addr)
	if type(addr) == "string" then
		return addr:byte(1) ~= 64 or self.cache[addr] ~= nil -- 64: "@"
	end
	return addr ~= 0
end

-- The target for addr (a handle, or a ".name" under expose = all), or nil and the error text.
function resolver:resolve(addr)
	if type(addr) == "string" and addr:sub(1, 1) == "@" then
		return by_name(self, addr)
	end
	local handle = addr
	if type(addr) == "string" then
		if addr:sub(1, 1) == ":" then
			handle = tonumber(addr:sub(2), 16)
			if not handle then
				return nil, "Invalid name " .. addr
			end
		else
			-- ".name", or a bare "NAME" (skynet.register "NAME": Skynet's global name, node-wide here)
			if EXPOSE == "all" then
				return addr
			elseif EXPOSE ~= "services" then
				return nil, string.format("not exposed: %s is a node-local name ([cluster] expose = %s)",
					addr, EXPOSE)
			end
			handle = core.query(addr)
			if not handle then
				return nil, "Invalid name " .. addr
			end
		end
	end
	if EXPOSE == "all" then
		return handle
	elseif EXPOSE == "names" then
		return nil, string.format("not exposed: %s (only @names with [cluster] expose = names)",
			tostring(addr))
	elseif skyjet.isinternal(handle) then
		return nil, string.format("not exposed: %s is node-internal", tostring(addr))
	end
	return handle
end

return resolver
