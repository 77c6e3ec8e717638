-- clustersender: the calling side of the cluster protocol towards one remote node. Owns one
-- connection (a socketchannel in session mode, connected lazily by the first request and again
-- after a drop) and the node's session counter. `req` packs a request (split when large), sends
-- the trace tag first when the caller is traced, and answers with the raw reply payload; `push`
-- sends one-way. Failures answer the caller with "cluster NODE ADDR: reason".
-- skyjet additions, all invisible to a stock Skynet peer unless configured for it:
--   deadlines ([cluster] call_timeout, per-call timeout), connect_timeout;
--   heartbeat: an idle link is probed with a name query any Skynet node answers; no answer within
--   heartbeat_timeout declares the node down (pending calls fail, the link is dropped);
--   authentication ([cluster] secret_file): an HMAC-SHA256 challenge-response with fresh nonces
--   from both sides on every connect, skipped for nodes named in plain_peers;
--   node events (up/down) to clusterd for cluster.watch, and statistics for status/metrics.
-- The fast path (skynet.cluster.link): once the link is up (connected, authenticated, the node
-- answered, nothing outstanding), callers write single requests themselves and the reactor
-- answers their single-part replies; this service owns the session counter (in the link) and
-- finishes what the link hands it: large and error replies, deadlines, and failing every call
-- waiting on the link when the connection goes.
local skynet = require "skynet"
local socket = require "skynet.socket"
local socketchannel = require "skynet.socketchannel"
local cluster = require "skynet.cluster.core"
local auth = require "skynet.cluster.auth"
local settings = require "skynet.cluster.settings"
local wire = require "skynet.cluster.wire"
local linklib = require "skynet.cluster.link"

local node, hostname, initial = ...
local address = initial ~= "false" and initial or false
local myname = skynet.getenv "nodename" or "?"

local call_timeout = settings.call_timeout
local connect_timeout = settings.connect_timeout
local heartbeat = settings.heartbeat
local heartbeat_timeout = settings.heartbeat_timeout

local channel
local link -- the session counter and the fast path's calls (skynet.cluster.link)
local state = "unknown" -- "up" | "down" | "unknown"
local last_recv = skynet.now()
local last_error
local clusterd
local secret -- the shared secret when links to this node authenticate (from clusterd)

-- latency buckets (µs) for status/metrics
local BUCKETS = { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000 }
local stats = {
	requests = 0,
	pushes = 0,
	bytes_out = 0,
	bytes_in = 0,
	failures = 0,
	errors = {}, -- kind -> count
}

local CMD = {}
local failure_mt = {}

local function target_name(addr)
	if type(addr) == "number" then
		return string.format(":%08x", addr)
	end
	return tostring(addr)
end


local function set_state(new, detail)
	if new ~= state then
		local old = state
		state = new
		if new == "down" or old == "up" or new == "up" then
			skynet.error(string.format("cluster node %s (%s) is %s%s", node, tostring(address), new,
				detail and (": " .. detail) or ""))
		end
		skynet.send(clusterd, "lua", "nodeevent", node, new, detail)
	end
end

local finish_fast -- below

local function read_frame(sock)
	local len = socket.header(sock:read(2))
	local body = sock:read(len)
	last_recv = skynet.now()
	stats.bytes_in = stats.bytes_in + len + 2
	local s, ok, data, padding = cluster.unpackresponse(body)
	if s == nil then
		error(string.format("malformed response from node %s (%d bytes)", node, len))
	end
	if state ~= "up" then
		set_state("up") -- the node answered (a frozen node still completes TCP connects)
	end
	return s, ok, data, padding
end

-- frames of calls a caller wrote itself are finished here; the rest go to the channel
local function read_response(sock)
	while true do
		local s, ok, data, padding = read_frame(sock)
		if not finish_fast(s, ok, data, padding) then
			return s, ok, data, padding
		end
	end
end

-- A name query carrying an auth payload; the reply is the raw payload (ok) or raises its text.
local function query(ch, ...)
	local s = link:session()
	local req = cluster.packrequest(0, s, skynet.packstring(...))
	return ch:request(req, s, nil, heartbeat_timeout)
end

local function on_connect(ch)
	if secret then
		local ok, err = pcall(auth.client, secret, myname, function(...)
			return query(ch, ...)
		end)
		if not ok then
			last_error = "authentication failed: " .. tostring(err)
			skynet.error(string.format("cluster node %s (%s): %s", node, tostring(address), last_error))
			error(last_error, 0)
		end
	end
	last_recv = skynet.now()
end

local link_down -- below

local function new_channel()
	local host, port = address:match "^(.+):(%d+)$"
	channel = socketchannel.channel {
		host = host,
		port = tonumber(port),
		response = read_response,
		nodelay = true,
		connect_timeout = connect_timeout > 0 and connect_timeout or nil,
		auth = on_connect,
		on_close = function(err)
			link_down(err)
		end,
	}
end

-- "path/file.lua:12: text" -> "text": positions inside our own libraries say nothing to a caller
local function strip_position(text)
	text = tostring(text)
	local stripped
	repeat
		stripped = text
		text = text:gsub("^[^\n:]+%.lua:%d+: ", "", 1)
	until text == stripped
	return text
end

-- The error text naming node, address and reason, counted in the statistics (no traceback in
-- the log: a failed remote call is an expected event, logged at debug level).
local function failure(addr, kind, reason)
	reason = strip_position(reason)
	stats.failures = stats.failures + 1
	stats.errors[kind] = (stats.errors[kind] or 0) + 1
	last_error = reason
	local text = string.format("cluster %s %s: %s", node, target_name(addr), reason)
	skynet.log("debug", text)
	return text
end

-- Answer the current request with that error.
local function fail(addr, kind, reason)
	error(setmetatable({ text = failure(addr, kind, reason) }, failure_mt))
end

-- the kind of an error reply from the node
local function remote_kind(text)
	return tostring(text):find("authentication", 1, true) and "auth" or "remote"
end

-- parts of a large reply: { total, chunk1, chunk2, ... } -> data, or nil and the reason
local function join_parts(parts)
	local total = parts[1]
	local data = table.concat(parts, "", 2)
	if #data ~= total then
		return nil, string.format("large reply of %d bytes announced %s", #data, tostring(total))
	end
	return data
end

-- The fast path's calls this service finishes: e = { session, caller, csession, addr, timeout,
-- t0 } from the link. The answer goes to the caller as if this service had answered its call.
local fast_parts = {} -- session -> parts of a large reply so far
local fast_expired = {} -- session -> true: the call timed out; its late frames are dropped

local function fast_fail(e, kind, reason)
	fast_parts[e.session] = nil
	skynet.redirect(e.caller, skynet.self(), "error", e.csession, failure(e.addr, kind, reason))
end

local function fast_answer(e, ok, data)
	if not ok then
		return fast_fail(e, remote_kind(data), data)
	end
	if type(data) == "table" then
		local joined, why = join_parts(data)
		if not joined then
			return fast_fail(e, "protocol", why)
		end
		data = joined
	end
	link:latency((skynet.hpc() - e.t0) / 1000)
	skynet.redirect(e.caller, skynet.self(), "response", e.csession, data)
end

-- A frame the link handed over: true when it belonged to a fast-path call (finished or kept).
function finish_fast(s, ok, data, padding)
	local final = not (padding and ok)
	local e = link:claim(s, final)
	if not e then
		if fast_expired[s] then
			if final then
				fast_expired[s] = nil
			end
			return true
		end
		return false
	end
	local parts = fast_parts[s]
	if not final then
		if not parts then
			parts = {}
			fast_parts[s] = parts
		end
		parts[#parts + 1] = data
		return true
	end
	fast_parts[s] = nil
	if parts and ok then
		parts[#parts + 1] = data
		data = parts
	end
	fast_answer(e, ok, data)
	return true
end

-- The link goes up when the connection is authenticated, the node has answered and nothing is
-- outstanding or expected (so the filter starts at a frame boundary): callers may then write
-- themselves. link_where: the address it is up on, for failure texts.
local link_sock, link_where
local function try_link_up()
	local ch = channel
	local sock = ch and ch.__sock
	if sock and sock.fd ~= link_sock and state == "up" and not ch.__auth_co and not ch.__connecting
		and ch:pending() == 0 and next(ch.__expired) == nil and not socket.disconnected(sock.fd)
		and link:up(sock.fd) then
		link_sock, link_where = sock.fd, address
	end
end

-- The connection goes: every fast-path call still waiting fails as the channel's calls do.
function link_down(err)
	local where = link_where
	link_sock = nil
	for _, e in ipairs(link:down()) do
		if err then
			fast_fail(e, remote_kind(err), err)
		else
			fast_fail(e, "connection", "connection to " .. tostring(where) .. " lost or refused")
		end
	end
	fast_parts, fast_expired = {}, {}
end

-- Deadlines of fast-path calls: checked every tick while any is set (a caller that sets the
-- first one wakes this with "sweep").
local sweeping = false
local function sweep()
	while true do
		skynet.sleep(1)
		local expired, more = link:expired()
		for _, e in ipairs(expired) do
			fast_expired[e.session] = true
			fast_fail(e, "timeout", string.format("timeout after %d ms (%s)", e.timeout, tostring(link_where)))
		end
		if not more then
			sweeping = false
			return
		end
	end
end

local function send_trace()
	local tag = skynet.tracetag()
	if tag then
		if tag:sub(1, 1) ~= "(" then
			tag = string.format("(%s-%s-%d)%s", hostname, node, link:session(true) + 1, tag)
		end
		channel:request(cluster.packtrace(tag))
	end
end

-- req(addr, msg, sz [, timeout_ms]): the reply payload, or an error
function CMD.req(addr, msg, sz, timeout)
	if not address then
		skynet.trash(msg, sz)
		fail(addr, "down", "node is down")
	end
	timeout = timeout or call_timeout
	try_link_up()
	local s = link:session(not linklib.valid(addr, sz)) -- taken only by a request that packs
	local ok, request, _, padding = pcall(cluster.packrequest, addr, s, msg, sz)
	if not ok then
		fail(addr, "request", request)
	end
	stats.requests = stats.requests + 1
	stats.bytes_out = stats.bytes_out + #request
	if padding then
		for _, part in ipairs(padding) do
			stats.bytes_out = stats.bytes_out + #part
		end
	end
	local where = address
	local t0 = skynet.hpc()
	local result
	if skynet.tracetag() then
		pcall(send_trace)
	end
	ok, result = pcall(channel.request, channel, request, s, padding, timeout)
	if not ok then
		if result == socketchannel.timeout then
			fail(addr, "timeout", string.format("timeout after %d ms (%s)", timeout, where))
		elseif result == socketchannel.error then
			fail(addr, "connection", "connection to " .. where .. " lost or refused")
		end
		fail(addr, remote_kind(result), result)
	end
	link:latency((skynet.hpc() - t0) / 1000)
	if type(result) == "table" then
		local why
		result, why = join_parts(result)
		if not result then
			fail(addr, "protocol", why)
		end
	end
	skynet.ret(result)
end

function CMD.push(addr, msg, sz)
	if not address then
		skynet.trash(msg, sz)
		return
	end
	try_link_up()
	-- a single push carries session 0 and leaves the counter alone; a large one takes a session
	local large = linklib.valid(addr, sz) and sz >= linklib.CHUNK
	local ok, request, _, padding = pcall(cluster.packpush, addr, link:session(not large), msg, sz)
	if not ok then
		last_error = request
		skynet.log("warn", string.format("cluster.send to %s %s dropped: %s", node, target_name(addr), request))
		return
	end
	stats.pushes = stats.pushes + 1
	stats.bytes_out = stats.bytes_out + #request
	local sent, err = pcall(channel.request, channel, request, nil, padding)
	if not sent then
		last_error = tostring(err == socketchannel.error and "connection lost or refused" or err)
		stats.errors.push = (stats.errors.push or 0) + 1
		skynet.log("warn", string.format("cluster.send to %s %s dropped: %s", node, target_name(addr), last_error))
	end
end

function CMD.changenode(new_address)
	if new_address == address then
		return skynet.ret()
	end
	local old = channel
	address = new_address
	channel = nil
	if address then
		new_channel()
	end
	if old then
		old:close() -- requests pending on the old address fail now
	end
	if not address then
		set_state("down", "set to false")
	elseif state == "up" then
		set_state("unknown")
	end
	skynet.ret()
end

-- a caller set the first deadline of a fast-path call: start the sweeper
function CMD.sweep()
	if not sweeping then
		sweeping = true
		skynet.fork(sweep)
	end
end

-- A caller's barrier: answered once every message it sent here before has been written (or
-- dropped), so its next fast-path write cannot overtake them.
function CMD.barrier()
	if channel and address then
		pcall(channel.connect, channel, true) -- waits behind requests waiting for a connect
	end
	skynet.ret()
end

function CMD.status()
	local l = link:stats()
	skynet.retpack {
		address = address or "down",
		state = state,
		connected = channel and channel:connected() or false,
		pending = (channel and channel:pending() or 0) + l.pending,
		requests = stats.requests + l.requests,
		pushes = stats.pushes + l.pushes,
		fast_requests = l.requests, -- of those, written by their callers (the fast path)
		fast_pushes = l.pushes,
		bytes_out = stats.bytes_out + l.bytes_out,
		bytes_in = stats.bytes_in + l.bytes_in,
		failures = stats.failures,
		errors = stats.errors,
		latency = { count = l.latency.count, sum_us = l.latency.sum_us, buckets = l.latency.buckets,
			bounds = BUCKETS },
		rtt_us = l.rtt_us,
		last_error = last_error,
	}
end

function CMD.disconnect()
	if channel then
		channel:reset()
	end
	skynet.ret()
end

function CMD.connect()
	if not channel then
		error("node " .. node .. " is down", 0)
	end
	local ok = pcall(channel.connect, channel, true)
	skynet.retpack(ok)
end

-- The heartbeat: probe a link we have heard nothing on for `heartbeat` ms; no answer within
-- heartbeat_timeout declares the node down. Also notices links that dropped, counts replies the
-- link answered as traffic, and puts an idle link up.
-- A probe that times out while callers keep writing pushes of their own to the link (a node
-- busy with a stream we sent it answers late) is repeated, at most BUSY_PROBES times, before
-- the node is declared down.
local BUSY_PROBES = 3
local busy_probes = 0

local function probe(ch)
	local t0 = skynet.hpc()
	local pushes = link:stats().pushes
	local ok, err = pcall(query, ch, wire.HEARTBEAT_NAME)
	if ok or (err ~= socketchannel.timeout and err ~= socketchannel.error) then
		busy_probes = 0
		link:rtt((skynet.hpc() - t0) / 1000) -- any answer ("name not found") is life
	elseif ch == channel then
		if err == socketchannel.timeout and link:stats().pushes ~= pushes and busy_probes < BUSY_PROBES then
			busy_probes = busy_probes + 1
			return
		end
		busy_probes = 0
		local why = err == socketchannel.timeout
			and string.format("no answer to a heartbeat within %d ms", heartbeat_timeout)
			or "connection lost"
		last_error = why
		ch:reset() -- every call pending on the link fails now
		set_state("down", why)
	end
end

local function heartbeat_loop()
	local frames_in = 0
	while true do
		skynet.sleep(math.max(1, math.floor(heartbeat / 10)))
		local seen = link:stats().frames_in
		if seen ~= frames_in then
			frames_in = seen
			last_recv = skynet.now()
		end
		try_link_up()
		local ch = channel
		if ch then
			if not ch:connected() then
				if state == "up" then
					set_state("down", "connection lost")
				end
			elseif (skynet.now() - last_recv) * 10 >= heartbeat then
				probe(ch)
			end
		end
	end
end

skynet.start(function()
	require("skyjet").internal() -- never callable from other nodes
	clusterd = skynet.localname ".clusterd"
	secret = skynet.call(clusterd, "lua", "secret_for_node", node)
	link = linklib.new(node, BUCKETS)
	if address then
		new_channel()
	end
	if heartbeat > 0 then
		skynet.fork(heartbeat_loop)
	end
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("clustersender: unknown command " .. tostring(cmd), 0)
		end
		local ok, err = pcall(f, ...)
		if not ok then
			if getmetatable(err) ~= failure_mt then
				error(err, 0) -- a bug: let the runtime log it with its traceback
			end
			skynet.response()(false, err.text)
		end
	end)
end)
