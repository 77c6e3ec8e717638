-- clusteragent: the receiving side of one inbound cluster connection. Takes the socket over
-- from the gate, splits the byte stream into frames, reassembles multi-part requests, resolves
-- "@name" through clusterd (cached; concurrent look-ups of one name share one query), calls or
-- sends to the local service and writes the reply (split when large). Every request gets an
-- answer: callee errors, unknown names and undecodable payloads come back as error replies.
-- Hardening (skyjet): malformed frames close the link; caps on assemblies in progress, their
-- age and requests in flight; an exposure policy (internal services are never callable); and,
-- with [cluster] secret_file, nothing is served before the peer has authenticated.
local skynet = require "skynet"
local driver = require "skynet.socketdriver"
local cluster = require "skynet.cluster.core"
local core = require "skynet.core"
local crypto = require "skynet.crypto"

local clusterd, gate, fd, peer = ...
clusterd, gate, fd = tonumber(clusterd), tonumber(gate), tonumber(fd)

local function number_env(key, default)
	return tonumber(skynet.getenv(key)) or default
end
local MAX_ASSEMBLIES = number_env("cluster.max_assemblies", 64)
local ASSEMBLY_TIMEOUT = number_env("cluster.assembly_timeout", 30000)
local MAX_PENDING = number_env("cluster.max_pending", 10000)
local EXPOSE = skynet.getenv "cluster.expose" or "registered"
local AUTH1, AUTH2 = "__skyjet_auth1", "__skyjet_auth2"
local AUTH_DEADLINE = 10000 -- ms an unauthenticated link may stay open

local buffer = driver.buffer()
local large = {} -- session -> { addr, is_push, size, received, tag, parts, started }
local nlarge = 0
local tracetag -- applies to the next request only
local name_cache = {} -- "@name" -> handle
local name_waiting = {} -- "@name" -> coroutines waiting for a query in flight
local closed = false
local inflight = 0 -- requests handed to local services and not answered yet
local draining = false -- the node is stopping: finish in-flight requests, then close
local holding = false
local secret -- set when this link must authenticate first
local auth -- handshake state: { nonce_s, client } after AUTH1
local finish_drain, shutdown, process_frames
local CMD = {}

local DATA, CLOSE, ERROR = 1, 3, 5

local function log(fmt, ...)
	skynet.error(string.format("cluster agent %s: " .. fmt, peer, ...))
end

-- Problems the agent detects (a dropped push, a cap hit, a bad packet, a failed proof).
local function warn(fmt, ...)
	skynet.log("warn", string.format("cluster agent %s: " .. fmt, peer, ...))
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

-- The link goes: stop reading, tell the gate and clusterd, exit.
function shutdown(reason)
	if closed then
		return
	end
	closed = true
	buffer:clear()
	large = {}
	if holding then
		holding = false
		core.hold(-1)
	end
	log("connection closed (%s)", reason)
	skynet.send(gate, "lua", "release", fd)
	skynet.call(clusterd, "lua", "agent_exit", skynet.self())
	skynet.exit()
end

local function close_link(reason)
	if not closed then
		driver.close(fd)
		shutdown(reason)
	end
end

-- The node is stopping and nothing is in flight any more: close the link so the peer knows.
function finish_drain()
	close_link("node stopping")
end

local function query_name(name)
	local ok, handle = pcall(skynet.call, clusterd, "lua", "queryname", name)
	return ok and handle or nil
end

local function resolve_name(addr)
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

-- Where a request may go under the exposure policy: registered (default: @names, and handles
-- of services that are not node-internal), names (@names only) or all (Skynet: anything).
local function resolve(addr)
	if type(addr) == "string" and addr:sub(1, 1) == "@" then
		return resolve_name(addr)
	end
	local handle = addr
	if type(addr) == "string" then
		local first = addr:sub(1, 1)
		if first == "." then
			if EXPOSE ~= "all" then
				return nil, "not exposed: " .. addr .. " is a node-local name ([cluster] expose)"
			end
			return addr
		elseif first ~= ":" then
			return nil, "Invalid name " .. addr .. " (skyjet has no global names)"
		end
		handle = tonumber(addr:sub(2), 16)
		if not handle then
			return nil, "Invalid name " .. addr
		end
	end
	if EXPOSE == "all" then
		return handle
	end
	if EXPOSE == "names" then
		return nil, string.format("not exposed: %s (only @names with [cluster] expose = names)",
			tostring(addr))
	end
	if core.isinternal(handle) then
		return nil, string.format("not exposed: %s is node-internal", tostring(addr))
	end
	return handle
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
		warn("undecodable payload for %s: %s", tostring(addr), why)
		if not is_push then
			reply_error(session, "invalid payload: " .. why)
		end
		return
	end
	local target, err = resolve(addr)
	if not target then
		skynet.trash(msg, sz)
		if is_push then
			warn("push to %s dropped: %s", tostring(addr), err)
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
			warn("push to %s dropped: no such service", tostring(addr))
		end
		return
	end
	local rmsg, rsz
	if tag then
		ok, rmsg, rsz = pcall(skynet.tracecall, tag, target, "lua", msg, sz)
	else
		ok, rmsg, rsz = pcall(skynet.rawcall, target, "lua", msg, sz)
	end
	if ok then
		write(cluster.packresponse_borrowed(session, true, rmsg, rsz))
	else
		reply_error(session, tostring(rmsg))
	end
end

-- A request is in flight from the moment it is taken off the wire until it is answered: the
-- max_pending cap counts it, and a stopping node (drain) waits for it.
local function serve_request(addr, session, msg, sz, tag)
	dispatch(addr, session, msg, sz, false, tag)
	inflight = inflight - 1
	if draining and inflight == 0 then
		finish_drain()
	end
end

local function accept_request(addr, session, msg, sz, tag)
	if inflight >= MAX_PENDING then
		skynet.trash(msg, sz)
		warn("cap max_pending (%d) reached; request %d refused", MAX_PENDING, session)
		reply_error(session, "too many pending requests on this link (max_pending)")
		return
	end
	inflight = inflight + 1
	skynet.fork(serve_request, addr, session, msg, sz, tag)
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
		if nlarge >= MAX_ASSEMBLIES then
			skynet.trash(msg, sz)
			warn("cap max_assemblies (%d) reached; part of request %d dropped", MAX_ASSEMBLIES, session)
			return
		end
		-- a part without its header: keep it so the last part can be answered with an error
		req = { noheader = true, parts = {}, received = 0, started = skynet.now() }
		large[session] = req
		nlarge = nlarge + 1
	end
	req.received = req.received + sz
	if req.size and req.received > req.size then
		skynet.trash(msg, sz)
		drop_assembly(session)
		warn("large request %d exceeds its declared %d bytes; dropped", session, req.size)
		reply_error(session, "Invalid large req")
		return
	end
	cluster.append(req.parts, msg, sz)
	req.started = skynet.now() -- the age cap counts from the latest part
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
	if req.is_push then
		skynet.fork(dispatch, req.addr, 0, payload, psz, true, req.tag)
	else
		accept_request(req.addr, session, payload, psz, req.tag)
	end
end

-- Server side of the handshake (see clustersender): answer AUTH1 with our nonce and proof, accept
-- AUTH2 only with the right proof. Anything else first closes the link.
local function on_auth_frame(addr, session, msg, sz)
	local values = (addr == 0 and msg) and { pcall(skynet.unpack, msg, sz) } or { false }
	if msg then
		skynet.trash(msg, sz)
	end
	local ok, tag = values[1], values[2]
	if ok and tag == AUTH1 and not auth then
		local client, nonce_c = values[3], values[4]
		if type(client) == "string" and type(nonce_c) == "string" and #nonce_c == 32 then
			local nonce_s = crypto.randombytes(32)
			auth = { nonce_s = nonce_s, nonce_c = nonce_c, client = client }
			local proof = crypto.hmac_sha256(secret, "server|" .. nonce_c .. "|" .. nonce_s .. "|" .. client)
			write(cluster.packresponse(session, true, skynet.packstring(AUTH1, nonce_s, proof)))
			return
		end
	elseif ok and tag == AUTH2 and auth then
		local expect = crypto.hmac_sha256(secret,
			"client|" .. auth.nonce_s .. "|" .. auth.nonce_c .. "|" .. auth.client)
		if crypto.equal(tostring(values[3]), expect) then
			log("node %s authenticated", auth.client)
			secret = nil
			auth = nil
			write(cluster.packresponse(session, true, ""))
			return
		end
		warn("authentication failed (wrong proof from %q); closing", auth.client)
		close_link("authentication failed")
		return
	end
	log("request before authentication; closing")
	close_link("not authenticated")
end

local function on_frame(body)
	local ok, addr, session, msg, sz, padding, is_push = pcall(cluster.unpackrequest, body)
	if not ok then
		-- a Skynet node never sends these: the peer is broken or hostile, so drop the link
		warn("invalid packet (%d bytes): %s; closing the connection", #body, tostring(addr))
		close_link("invalid packet")
		return
	end
	if secret then
		if session == nil or addr == false or padding then
			if msg then
				skynet.trash(msg, sz)
			end
			log("request before authentication; closing")
			close_link("not authenticated")
			return
		end
		return on_auth_frame(addr, session, msg, sz)
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
			warn("cap max_assemblies (%d) reached; request %d refused", MAX_ASSEMBLIES, session)
			reply_error(session, "too many concurrent large requests (max_assemblies)")
			return
		end
		large[session] = {
			addr = addr,
			is_push = is_push,
			size = sz,
			received = 0,
			tag = tracetag,
			parts = { size = sz },
			started = skynet.now(),
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
		accept_request(addr, session, msg, sz, tag)
	end
end

-- One loop handles the frames, in order. A push whose @name is not cached yet suspends the loop
-- while clusterd answers; data arriving meanwhile waits in the buffer, so a later frame can
-- never overtake an earlier one (pushes keep their order).
local looping = false
function process_frames()
	if looping then
		return
	end
	looping = true
	while not closed do
		local frame = buffer:popframe()
		if not frame then
			break
		end
		on_frame(frame)
	end
	looping = false
end

-- Unfinished multi-part requests may not wait forever for their next part.
local function expire_assemblies()
	while not closed do
		skynet.sleep(100)
		local now = skynet.now()
		for session, req in pairs(large) do
			if (now - req.started) * 10 > ASSEMBLY_TIMEOUT then
				drop_assembly(session)
				warn("cap assembly_timeout (%d ms): large request %d dropped after %d of %s bytes",
					ASSEMBLY_TIMEOUT, session, req.received, tostring(req.size))
				if not req.is_push then
					reply_error(session, "large request timed out waiting for its parts (assembly_timeout)")
				end
			end
		end
	end
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
			process_frames()
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
	close_link("closed by clusterd")
end

skynet.start(function()
	core.internal() -- never callable from other nodes
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if f then
			f(...)
		else
			log("Invalid command %s", tostring(cmd))
		end
	end)
	secret = skynet.call(clusterd, "lua", "secret_for", peer)
	skynet.call(gate, "lua", "handoff", fd)
	driver.start(fd)
	skynet.fork(expire_assemblies)
	if secret then
		skynet.timeout(AUTH_DEADLINE / 10, function()
			if secret and not closed then
				log("no authentication within %d ms; closing", AUTH_DEADLINE)
				close_link("authentication timeout")
			end
		end)
	end
end)
