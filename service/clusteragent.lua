-- clusteragent: the receiving side of one inbound cluster connection. Takes the socket over
-- from the gate, splits the byte stream into frames, reassembles multi-part requests, resolves
-- "@name" through clusterd (cached; concurrent look-ups of one name share one query), calls or
-- sends to the local service and writes the reply (split when large). Every request gets an
-- answer: callee errors, unknown names and undecodable payloads come back as error replies.
-- Malformed frames are logged with the peer's address and dropped; the connection stays up.
local skynet = require "skynet"
local driver = require "skynet.socketdriver"
local cluster = require "skynet.cluster.core"
local core = require "skynet.core"

local clusterd, gate, fd, peer = ...
clusterd, gate, fd = tonumber(clusterd), tonumber(gate), tonumber(fd)

local MAX_ASSEMBLIES = tonumber(skynet.getenv "cluster.max_assemblies") or 64

local buffer = driver.buffer()
local large = {} -- session -> { addr, is_push, size, received, tag, parts }
local nlarge = 0
local tracetag -- applies to the next request only
local name_cache = {} -- "@name" -> handle
local name_waiting = {} -- "@name" -> coroutines waiting for a query in flight
local closed = false
local inflight = 0 -- requests handed to local services and not answered yet
local draining = false -- the node is stopping: finish in-flight requests, then close
local holding = false
local finish_drain
local CMD = {}

local DATA, CLOSE, ERROR = 1, 3, 5

local function log(fmt, ...)
	skynet.error(string.format("cluster agent %s: " .. fmt, peer, ...))
end

local function write(frame)
	if closed then
		return
	end
	if type(frame) == "table" then
		for _, f in ipairs(frame) do
			driver.lsend(fd, f)
		end
	else
		driver.send(fd, frame)
	end
end

local function reply_error(session, text)
	write(cluster.packresponse(session, false, text))
end

local shutdown

-- The node is stopping and nothing is in flight any more: close the link so the peer knows.
function finish_drain()
	if holding then
		holding = false
		core.hold(-1)
	end
	if not closed then
		driver.close(fd)
		shutdown("node stopping")
	end
end

local function query_name(name)
	local ok, handle = pcall(skynet.call, clusterd, "lua", "queryname", name)
	return ok and handle or nil
end

local function resolve(addr)
	if type(addr) == "number" then
		return addr
	end
	local first = addr:sub(1, 1)
	if first == "." or first == ":" then
		return addr
	elseif first ~= "@" then
		return nil, "Invalid name " .. addr .. " (skyjet has no global names)"
	end
	local h = name_cache[addr]
	if h then
		return h
	end
	local w = name_waiting[addr]
	if w then
		local co = coroutine.running()
		w[#w + 1] = co
		skynet.wait(co)
		h = name_cache[addr]
	else
		w = {}
		name_waiting[addr] = w
		h = query_name(addr:sub(2))
		name_waiting[addr] = nil
		name_cache[addr] = h
		for _, co in ipairs(w) do
			skynet.wakeup(co)
		end
	end
	if h then
		return h
	end
	return nil, "Invalid name"
end

local function answer_query(session, msg, sz)
	local ok, name = pcall(skynet.unpack, msg, sz)
	skynet.trash(msg, sz)
	if not ok or type(name) ~= "string" then
		reply_error(session, "Invalid name query") -- Skynet stays silent; we answer
		return
	end
	local h = query_name(name)
	if h then
		write(cluster.packresponse(session, true, skynet.packstring(h)))
	else
		reply_error(session, "name not found")
	end
end

local function dispatch(addr, session, msg, sz, is_push, tag)
	if addr == 0 then
		return answer_query(session, msg, sz)
	end
	local ok, why = core.checkpayload(msg, sz)
	if not ok then
		skynet.trash(msg, sz)
		log("undecodable payload for %s: %s", tostring(addr), why)
		if not is_push then
			reply_error(session, "invalid payload: " .. why)
		end
		return
	end
	local target, err = resolve(addr)
	if not target then
		skynet.trash(msg, sz)
		if is_push then
			log("push to %s dropped: %s", tostring(addr), err)
		else
			reply_error(session, err)
		end
		return
	end
	if is_push then
		if tag then
			core.send(target, skynet.PTYPE_TRACE, 0, tag)
		end
		if not skynet.rawsend(target, "lua", msg, sz) then
			log("push to %s dropped: no such service", tostring(addr))
		end
		return
	end
	local rmsg, rsz
	inflight = inflight + 1
	if tag then
		ok, rmsg, rsz = pcall(skynet.tracecall, tag, target, "lua", msg, sz)
	else
		ok, rmsg, rsz = pcall(skynet.rawcall, target, "lua", msg, sz)
	end
	if ok then
		write(cluster.packresponse(session, true, skynet.tostring(rmsg, rsz) or ""))
	else
		reply_error(session, tostring(rmsg))
	end
	inflight = inflight - 1
	if draining and inflight == 0 then
		finish_drain()
	end
end

local function drop_assembly(session)
	if large[session] then
		large[session] = nil
		nlarge = nlarge - 1
	end
end

local function on_part(session, msg, sz, more)
	local req = large[session]
	if not req then
		if not more then
			skynet.trash(msg, sz)
			reply_error(session, "Invalid large req")
			return
		end
		-- a part without its header: keep it so the last part can be answered with an error
		req = { noheader = true, parts = {}, received = 0 }
		large[session] = req
		nlarge = nlarge + 1
	end
	req.received = req.received + sz
	if req.size and req.received > req.size then
		skynet.trash(msg, sz)
		drop_assembly(session)
		log("large request %d exceeds its declared %d bytes; dropped", session, req.size)
		reply_error(session, "Invalid large req")
		return
	end
	cluster.append(req.parts, msg, sz)
	if more then
		return
	end
	drop_assembly(session)
	if req.noheader then
		reply_error(session, "Invalid large req")
		return
	end
	local payload, psz = cluster.concat(req.parts)
	if not payload then
		log("large request %d: %s", session, tostring(psz))
		reply_error(session, "Invalid large req")
		return
	end
	skynet.fork(dispatch, req.addr, session, payload, psz, req.is_push, req.tag)
end

local function on_frame(body)
	local ok, addr, session, msg, sz, padding, is_push = pcall(cluster.unpackrequest, body)
	if not ok then
		-- a Skynet node never sends these: the peer is broken or hostile, so drop the link
		log("invalid packet (%d bytes): %s; closing the connection", #body, tostring(addr))
		driver.close(fd)
		shutdown("invalid packet")
		return
	end
	if session == nil then -- trace tag
		tracetag = addr
		return
	end
	if addr == false then
		return on_part(session, msg, sz, padding)
	end
	if padding then -- large request header: sz is the declared total
		if large[session] then
			drop_assembly(session)
		end
		if nlarge >= MAX_ASSEMBLIES then
			log("cap max_assemblies (%d) reached; request %d refused", MAX_ASSEMBLIES, session)
			reply_error(session, "too many concurrent large requests")
			return
		end
		large[session] = {
			addr = addr,
			is_push = is_push,
			size = sz,
			received = 0,
			tag = tracetag,
			parts = { size = sz },
		}
		nlarge = nlarge + 1
		tracetag = nil
		return
	end
	local tag = tracetag
	tracetag = nil
	if draining then
		skynet.trash(msg, sz)
		if session ~= 0 then
			reply_error(session, "node is shutting down")
		end
		return
	end
	if session == 0 then
		dispatch(addr, 0, msg, sz, true, tag)
	else
		skynet.fork(dispatch, addr, session, msg, sz, false, tag)
	end
end

function shutdown(reason)
	if closed then
		return
	end
	closed = true
	buffer:clear()
	large = {}
	log("connection closed (%s)", reason)
	skynet.send(gate, "lua", "release", fd)
	skynet.call(clusterd, "lua", "agent_exit", skynet.self())
	skynet.exit()
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = driver.unpack,
	dispatch = function(_, _, t, id, ud, data, size)
		if id ~= fd then
			if t == DATA then
				skynet.trash(data, size)
			end
			return
		end
		if t == DATA then
			buffer:push(data, size)
			while not closed do
				local frame = buffer:popframe()
				if not frame then
					break
				end
				on_frame(frame)
			end
		elseif t == CLOSE then
			shutdown(data or "peer closed")
		elseif t == ERROR then
			shutdown(data or "error")
		end
	end,
}

function CMD.namechange()
	name_cache = {}
end

function CMD.drain()
	draining = true
	if inflight == 0 then
		finish_drain()
	elseif not holding then
		holding = true
		core.hold(1)
	end
end

function CMD.exit()
	if not closed then
		driver.close(fd)
		shutdown("closed by clusterd")
	end
end

skynet.start(function()
	require("skynet.core").internal() -- never callable from other nodes
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if f then
			f(...)
		else
			log("Invalid command %s", tostring(cmd))
		end
	end)
	skynet.call(gate, "lua", "handoff", fd)
	driver.start(fd)
end)
