-- skynet.cluster.assembly: the multi-part requests of one inbound link while their parts arrive
-- (used by clusteragent), within the caps: max_assemblies at once, max_assembly_bytes held by
-- the link, max_assembly_total held by the whole node (an atomic in cluster.core, shared by every
-- agent) and assembly_timeout of age, counted from the header. A part without its header, or
-- bytes over a budget, mean a broken or hostile peer: the caller closes the link.
local skynet = require "skynet"
local cluster = require "skynet.cluster.core"
local settings = require "skynet.cluster.settings"

local assembly = {}
assembly.__index = assembly

function assembly.new()
	return setmetatable({ pending = {}, count = 0, held = 0 }, assembly)
end

function assembly:drop(session)
	local req = self.pending[session]
	if req then
		self.pending[session] = nil
		self.count = self.count - 1
		self.held = self.held - req.received
		cluster.assembly_release(req.received)
	end
end

-- Everything goes (the link closed).
function assembly:clear()
	for session in pairs(self.pending) do
		self:drop(session)
	end
end

-- A header announcing `size` bytes. Returns true, or nil and the reason the request is refused.
function assembly:begin(session, addr, is_push, size, tag)
	self:drop(session)
	if self.count >= settings.max_assemblies then
		return nil, string.format("cap max_assemblies (%d) reached; request %d refused",
			settings.max_assemblies, session)
	end
	self.pending[session] = { addr = addr, is_push = is_push, size = size, received = 0, tag = tag,
		parts = { size = size }, started = skynet.now() }
	self.count = self.count + 1
	return true
end

local function keep(self, req, msg, sz)
	if self.held + sz > settings.max_assembly_bytes then
		return string.format("cap max_assembly_bytes (%d) reached: unfinished multi-part requests "
			.. "hold %d bytes", settings.max_assembly_bytes, self.held)
	end
	local ok, total = cluster.assembly_reserve(sz)
	if not ok then
		return string.format("cap max_assembly_total (%d) reached: the node holds %d bytes of "
			.. "unfinished multi-part requests", settings.max_assembly_total, total)
	end
	self.held = self.held + sz
	req.received = req.received + sz
	cluster.append(req.parts, msg, sz)
end

-- One part (msg is taken). Returns one of
--   "more"                              kept; more parts follow
--   "done", req, payload, psz           the request is whole (req: addr, is_push, tag)
--   "refuse", logtext                   this request fails ("Invalid large req"); the link stays
--   "close", logtext, reason            close the link
function assembly:part(session, msg, sz, more)
	local req = self.pending[session]
	if not req then -- a Skynet node never sends one
		skynet.trash(msg, sz)
		return "close", string.format("part of request %d without its header", session),
			"protocol error: part without header"
	end
	if req.received + sz > req.size then
		skynet.trash(msg, sz)
		self:drop(session)
		return "refuse", string.format("large request %d exceeds its declared %d bytes; dropped",
			session, req.size)
	end
	local over = keep(self, req, msg, sz)
	if over then
		skynet.trash(msg, sz)
		return "close", over, over:match "^cap %S+"
	end
	if more then
		return "more"
	end
	self:drop(session)
	local payload, psz = cluster.concat(req.parts)
	if not payload then
		return "refuse", string.format("large request %d: %s", session, tostring(psz))
	end
	return "done", req, payload, psz
end

-- The assemblies older than assembly_timeout, dropped: { session = req, ... }.
function assembly:expire()
	local now, old = skynet.now(), {}
	for session, req in pairs(self.pending) do
		if (now - req.started) * 10 > settings.assembly_timeout then
			self:drop(session)
			old[session] = req
		end
	end
	return old
end

return assembly
