-- clusteragent: the receiving side of one inbound cluster connection. Takes the socket over
-- from clusterd once its first frame has arrived, splits the byte stream into frames,
-- reassembles multi-part requests (skynet.cluster.assembly), resolves addresses under the
-- exposure policy (skynet.cluster.resolve), calls or sends to the local service and writes the
-- reply (split when large). Every request gets an answer: callee errors, unknown names and
-- undecodable payloads come back as error replies. Calls to a handle or a cached @name that
-- carry no trace tag are handed over to C (skynet.cluster.reply): the callee's answer is framed
-- and written by the thread that sends it, and this service does not wake for it; and while we
-- hold no earlier bytes, C sends plain calls to the @names we resolved from the reactor thread,
-- before they reach us (we tell it with caught_up).
-- Hardening (skyjet): malformed frames and parts without a header close the link; caps on
-- assemblies in progress, their age, the bytes they hold (per link and node-wide) and requests
-- in flight; an exposure policy (internal services are never callable); and,
-- with [cluster] secret_file, nothing is served before the peer has authenticated.
local skynet = require "skynet"
local driver = require "skynet.socketdriver"
local cluster = require "skynet.cluster.core"
local core = require "skynet.core" -- send: Skynet's raw send (a trace to the target)
local skyjet = require "skyjet"
local auth = require "skynet.cluster.auth"
local settings = require "skynet.cluster.settings"
local assembly = require "skynet.cluster.assembly"
local wire = require "skynet.cluster.wire"
local resolver = require "skynet.cluster.resolve"
local reply = require "skynet.cluster.reply"

local clusterd, fd, serial, peer = ...
clusterd, fd, serial = tonumber(clusterd), tonumber(fd), tonumber(serial)

local MAX_PENDING = settings.max_pending

local buffer = driver.buffer()
local large = assembly.new() -- multi-part requests in progress
local tracetag -- applies to the next request only
local names = resolver.new(clusterd) -- where requests may go (@name cache, exposure policy)
local closed = false
local inflight = 0 -- requests served in Lua (traced, named targets) and not answered yet
local replies -- the requests whose answers C writes (skynet.cluster.reply), once started
local received = 0 -- DATA events of our socket that reached us (C's filter counts them too)
local told = {} -- @name -> the handle C's filter was given for it
local draining = false -- the node is stopping: finish in-flight requests, then close
local peer_eof = false -- the peer sent EOF: finish in-flight requests, then close
local holding = false
local handshake -- the server half of authentication while the peer must still authenticate
local finish_drain, shutdown, process_frames, check_idle
local CMD = {}

local EV = wire.event
local DATA, OPEN, CLOSE, ERROR = EV.DATA, EV.OPEN, EV.CLOSE, EV.ERROR

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

-- The link goes: stop reading, free the slot in clusterd at once, exit. Normal ends (the peer
-- closed, the node stops) are logged at debug level; anything else at warn, with the peer.
function shutdown(reason, abnormal)
	if closed then
		return
	end
	closed = true
	if replies then
		replies:close() -- before the socket goes: no answer is written to it from now on
	end
	driver.close(fd) -- after the peer's EOF the socket is still ours to close
	skynet.send(clusterd, "lua", "closed", fd, serial)
	buffer:clear()
	large:clear()
	if holding then
		holding = false
		skyjet.hold(-1)
	end
	skynet.log(abnormal and "warn" or "debug", string.format("cluster agent %s: connection closed (%s)",
		peer, reason))
	skynet.exit()
end

local function close_link(reason, abnormal)
	shutdown(reason, abnormal)
end

-- The node is stopping and nothing is in flight any more: close the link so the peer knows.
function finish_drain()
	close_link("node stopping")
end

local function answer_query(session, msg, sz)
	local ok, name = pcall(skynet.unpack, msg, sz)
	skynet.trash(msg, sz)
	if not ok or type(name) ~= "string" then
		reply_error(session, "Invalid name query") -- Skynet stays silent; we answer
		return
	end
	local h = names:query(name)
	if h then
		write(cluster.packresponse(session, true, skynet.packstring(h)))
	else
		reply_error(session, "name not found")
	end
end

-- Requests in flight: answers owed by local services.
local function pending()
	return inflight + (replies and replies:count() or 0)
end

-- Wait for the service's answer in this coroutine, then write it (traced requests, named
-- targets under expose = all).
local function call_and_answer(target, session, msg, sz, tag)
	local ok, rmsg, rsz
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

-- Hand an untraced call to a handle over to C. True when done (sent, or answered with an
-- error); false when the Lua path must serve it.
local function call_in_c(target, session, msg, sz)
	local sent = replies:call(target, msg, sz, session)
	if sent == nil then -- no such service: msg is gone; the Lua path's error text
		local _, err = pcall(skynet.rawcall, target, "lua")
		reply_error(session, tostring(err))
	end
	return sent ~= false
end

-- The checked target of a request, or nil when it was refused (answered unless a push).
local function target_of(addr, session, msg, sz, is_push)
	local ok, why = skyjet.checkpayload(msg, sz)
	if not ok then
		skynet.trash(msg, sz)
		warn("undecodable payload for %s: %s", tostring(addr), why)
		if not is_push then
			reply_error(session, "invalid payload: " .. why)
		end
		return nil
	end
	local target, err = names:resolve(addr)
	if not target then
		skynet.trash(msg, sz)
		if is_push then
			warn("push to %s dropped: %s", tostring(addr), err)
		else
			reply_error(session, err)
		end
	elseif not is_push and told[addr] ~= target and type(target) == "number" and type(addr) == "string"
		and addr:byte(1) == 64 then
		-- a call to an @name: C may serve the next calls to it itself
		told[addr] = target
		replies:name(addr, target)
	end
	return target
end

local function dispatch(addr, session, msg, sz, is_push, tag)
	if addr == 0 then
		return answer_query(session, msg, sz)
	end
	local target = target_of(addr, session, msg, sz, is_push)
	if not target then
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
	if tag or type(target) ~= "number" or not call_in_c(target, session, msg, sz) then
		call_and_answer(target, session, msg, sz, tag)
	end
end

-- A request is in flight from the moment it is taken off the wire until it is answered: the
-- max_pending cap counts it, and a stopping node (drain) waits for it.
local function serve_request(addr, session, msg, sz, tag)
	dispatch(addr, session, msg, sz, false, tag)
	inflight = inflight - 1
	check_idle()
end

-- Once the peer has sent EOF or the node stops, the link closes when nothing is in flight any
-- more; while C still owes answers, replies:watch() wakes us (reply.PTYPE) when they are out.
function check_idle()
	if closed or not (peer_eof or draining) or inflight > 0 then
		return
	end
	if replies and replies:watch() > 0 then
		return
	end
	if peer_eof then
		close_link("peer closed")
	else
		finish_drain()
	end
end

-- The peer shut its write side (or closed): nothing more comes in, but the requests in flight
-- are still answered (Skynet's half-close) before the link closes.
local function on_eof()
	peer_eof = true
	check_idle()
end

local function accept_request(addr, session, msg, sz, tag)
	if pending() >= MAX_PENDING then
		skynet.trash(msg, sz)
		warn("cap max_pending (%d) reached; request %d refused", MAX_PENDING, session)
		reply_error(session, "too many pending requests on this link (max_pending)")
		return
	end
	if not tag and names:ready(addr) then -- nothing to wait for: no coroutine
		local target = target_of(addr, session, msg, sz, false)
		if not target or (type(target) == "number" and call_in_c(target, session, msg, sz)) then
			return
		end
		inflight = inflight + 1
		skynet.fork(function()
			call_and_answer(target, session, msg, sz)
			inflight = inflight - 1
			check_idle()
		end)
		return
	end
	inflight = inflight + 1
	skynet.fork(serve_request, addr, session, msg, sz, tag)
end

local function on_part(session, msg, sz, more)
	local what, a, b, c = large:part(session, msg, sz, more)
	if what == "close" then
		warn("%s; closing the connection", a)
		close_link(b, true)
	elseif what == "refuse" then
		warn("%s", a)
		reply_error(session, "Invalid large req")
	elseif what == "done" then
		if a.is_push then
			skynet.fork(dispatch, a.addr, 0, b, c, true, a.tag)
		else
			accept_request(a.addr, session, b, c, a.tag)
		end
	end
end

-- With a secret, the first frames are the handshake (skynet.cluster.auth); anything else, or a
-- wrong proof, closes the link before a request is served.
local function on_auth_frame(addr, session, msg, sz)
	local values = (addr == 0 and msg) and { pcall(skynet.unpack, msg, sz) } or { false }
	if msg then
		skynet.trash(msg, sz)
	end
	local what, payload, client
	if values[1] then
		what, payload, client = handshake:answer(values[2], values[3], values[4])
	else
		what, payload = "fail", "request before authentication"
	end
	if what == "fail" then
		warn("%s; closing", payload)
		close_link(payload, true)
		return
	end
	write(cluster.packresponse(session, true, payload))
	if what == "done" then
		skynet.log("debug", string.format("cluster agent %s: node %s authenticated", peer, client))
		handshake = nil
	end
end

local function on_frame(body)
	local ok, addr, session, msg, sz, padding, is_push = pcall(cluster.unpackrequest, body)
	if not ok then
		-- a Skynet node never sends these: the peer is broken or hostile, so drop the link
		warn("invalid packet (%d bytes): %s; closing the connection", #body, tostring(addr))
		close_link("invalid packet", true)
		return
	end
	if handshake then
		if session == nil or addr == false or padding then
			if msg then
				skynet.trash(msg, sz)
			end
			log("request before authentication; closing")
			close_link("not authenticated", true)
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
		local tag = tracetag
		tracetag = nil
		local begun, why = large:begin(session, addr, is_push, sz, tag)
		if not begun then
			warn("%s", why)
			reply_error(session, "too many concurrent large requests (max_assemblies)")
		end
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
	-- every byte so far handled here, no trace tag waiting for its request: C's filter may serve
	-- what comes next
	if not closed and not handshake and not draining and not tracetag and buffer:size() == 0 then
		replies:caught_up(received, inflight)
	end
end

-- Unfinished multi-part requests may not wait forever for their parts.
local function expire_assemblies()
	while not closed do
		skynet.sleep(100)
		for session, req in pairs(large:expire()) do
			warn("cap assembly_timeout (%d ms): large request %d dropped after %d of %s bytes",
				settings.assembly_timeout, session, req.received, tostring(req.size))
			if not req.is_push then
				reply_error(session, "large request timed out waiting for its parts (assembly_timeout)")
			end
		end
	end
end

-- Taking the socket over from clusterd: driver.start makes us its owner and the reactor confirms
-- with OPEN, after everything it read for clusterd has reached clusterd; only then do we ask
-- clusterd for those bytes (takeover), so none is lost or reordered. Events that reach us before
-- that wait in `early`. (clusterd pauses a socket whose agent is slow to start; any such pause is
-- queued before clusterd answers takeover, so starting the socket again after it is enough.)
local opened, taken = false, false
local early = {} -- DATA events before takeover: { data, size }, ...
local early_close -- CLOSE/ERROR before takeover: { type, ud, text }

-- CLOSE (ud 1: the peer's EOF) or ERROR on our socket
local function on_gone(t, ud, data)
	if t == CLOSE and ud == 1 then
		on_eof()
	else
		shutdown(data or (t == CLOSE and "peer closed" or "error"))
	end
end

local function takeover()
	local data, paused = skynet.call(clusterd, "lua", "takeover", fd, serial, skynet.self())
	if not data then -- clusterd dropped the connection meanwhile
		closed = true
		for _, e in ipairs(early) do
			skynet.trash(e[1], e[2])
		end
		driver.close(fd)
		skynet.exit()
	end
	if paused then -- clusterd's pause may have reached the reactor after our start
		driver.start(fd)
	end
	buffer:push(data)
	for _, e in ipairs(early) do
		buffer:push(e[1], e[2])
	end
	early = nil
	taken = true
	process_frames()
	if early_close then
		on_gone(early_close[1], early_close[2], early_close[3])
	end
end

local function before_takeover(t, ud, data, size)
	if t == DATA then
		early[#early + 1] = { data, size }
	elseif t == OPEN then
		opened = true
		skynet.fork(takeover)
	elseif t ~= CLOSE and t ~= ERROR then
		return
	elseif not opened then -- the socket closed before it was ours: clusterd saw the close
		closed = true
		skynet.exit()
	else
		early_close = { t, ud, data }
	end
end

wire.on_socket(function(t, id, ud, data, size)
	if id ~= fd then
		if t == DATA then
			skynet.trash(data, size)
		end
		return
	end
	if not taken then
		if t == DATA then
			received = received + 1
		end
		return before_takeover(t, ud, data, size)
	end
	if t == DATA then
		received = received + 1
		buffer:push(data, size)
		process_frames()
	elseif t == CLOSE or t == ERROR then
		on_gone(t, ud, data)
	end
end)

function CMD.namechange()
	names:flush()
	told = {}
	if replies then
		replies:flush_names()
	end
end

function CMD.drain()
	draining = true
	if replies then
		replies:stop_filter()
	end
	if pending() > 0 and not holding then
		holding = true
		skyjet.hold(1)
	end
	check_idle()
end

-- reply.PTYPE: session 0 is C's wake-up (its requests in flight reached 0, see check_idle); a
-- call fails with the text it carries (the probe of failure_texts).
skynet.register_protocol {
	name = "cluster_reply",
	id = reply.PTYPE,
	unpack = skynet.tostring,
	dispatch = function(session, _, text)
		if session == 0 then
			check_idle()
		else
			skynet.response()(false, text)
		end
	end,
}

-- What a failed local call raises in this service, with and without the callee's reason
-- (skynet.lua's "<position>: call failed[: reason]"), learnt from two calls to ourselves that
-- fail: the error replies written from C carry exactly the texts the Lua path would.
local function failure_texts()
	local _, with = pcall(skynet.rawcall, skynet.self(), "cluster_reply", "?")
	local _, without = pcall(skynet.rawcall, skynet.self(), "cluster_reply", "")
	return with:sub(1, -2), without
end

function CMD.exit()
	close_link("closed by clusterd")
end

skynet.start(function()
	skyjet.internal() -- never callable from other nodes
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if f then
			f(...)
		else
			log("Invalid command %s", tostring(cmd))
		end
	end)
	replies = reply.new(fd, MAX_PENDING, failure_texts())
	local secret = skynet.call(clusterd, "lua", "secret_for", peer)
	if secret then
		handshake = auth.server(secret)
	end
	driver.start(fd)
	skynet.fork(expire_assemblies)
	if handshake then
		skynet.timeout(auth.DEADLINE / 10, function()
			if handshake and not closed then
				log("no authentication within %d ms; closing", auth.DEADLINE)
				close_link("authentication timeout", true)
			end
		end)
	end
end)
