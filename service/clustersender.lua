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
local skynet = require "skynet"
local socket = require "skynet.socket"
local socketchannel = require "skynet.socketchannel"
local cluster = require "skynet.cluster.core"
local auth = require "skynet.cluster.auth"
local settings = require "skynet.cluster.settings"
local wire = require "skynet.cluster.wire"

local node, hostname, initial = ...
local address = initial ~= "false" and initial or false
local myname = skynet.getenv "nodename" or "?"

local call_timeout = settings.call_timeout
local connect_timeout = settings.connect_timeout
local heartbeat = settings.heartbeat
local heartbeat_timeout = settings.heartbeat_timeout

local channel
local session = 1
local state = "unknown" -- "up" | "down" | "unknown"
local last_recv = skynet.now()
local last_rtt_us
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
	latency = { count = 0, sum_us = 0, buckets = {} },
}
for i = 1, #BUCKETS + 1 do
	stats.latency.buckets[i] = 0
end

local CMD = {}
local failure_mt = {}

local function target_name(addr)
	if type(addr) == "number" then
		return string.format(":%08x", addr)
	end
	return tostring(addr)
end

local function next_session()
	local s = session
	session = s >= 0x7fffffff and 1 or s + 1
	return s
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

local function read_response(sock)
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

-- A name query carrying an auth payload; the reply is the raw payload (ok) or raises its text.
local function query(ch, ...)
	local s = next_session()
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

local function new_channel()
	local host, port = address:match "^(.+):(%d+)$"
	channel = socketchannel.channel {
		host = host,
		port = tonumber(port),
		response = read_response,
		nodelay = true,
		connect_timeout = connect_timeout > 0 and connect_timeout or nil,
		auth = on_connect,
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

-- Answer the current request with an error naming node, address and reason (no traceback in
-- the log: a failed remote call is an expected event, logged at debug level).
local function fail(addr, kind, reason)
	reason = strip_position(reason)
	stats.failures = stats.failures + 1
	stats.errors[kind] = (stats.errors[kind] or 0) + 1
	last_error = reason
	local text = string.format("cluster %s %s: %s", node, target_name(addr), reason)
	skynet.log("debug", text)
	error(setmetatable({ text = text }, failure_mt))
end

local function record_latency(us)
	local l = stats.latency
	l.count = l.count + 1
	l.sum_us = l.sum_us + us
	local i = 1
	while BUCKETS[i] and us > BUCKETS[i] do
		i = i + 1
	end
	l.buckets[i] = l.buckets[i] + 1
	last_rtt_us = us
end

-- parts of a large reply: { total, chunk1, chunk2, ... }
local function join_parts(addr, parts)
	local total = parts[1]
	local data = table.concat(parts, "", 2)
	if #data ~= total then
		fail(addr, "protocol", string.format("large reply of %d bytes announced %s", #data, tostring(total)))
	end
	return data
end

local function send_trace()
	local tag = skynet.tracetag()
	if tag then
		if tag:sub(1, 1) ~= "(" then
			tag = string.format("(%s-%s-%d)%s", hostname, node, session + 1, tag)
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
	local ok, request, new_session, padding = pcall(cluster.packrequest, addr, session, msg, sz)
	if not ok then
		fail(addr, "request", request)
	end
	local s = session
	session = new_session
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
		elseif tostring(result):find("authentication", 1, true) then
			fail(addr, "auth", result)
		end
		fail(addr, "remote", result)
	end
	record_latency((skynet.hpc() - t0) / 1000)
	if type(result) == "table" then
		result = join_parts(addr, result)
	end
	skynet.ret(result)
end

function CMD.push(addr, msg, sz)
	if not address then
		skynet.trash(msg, sz)
		return
	end
	local ok, request, new_session, padding = pcall(cluster.packpush, addr, session, msg, sz)
	if not ok then
		last_error = request
		skynet.log("warn", string.format("cluster.send to %s %s dropped: %s", node, target_name(addr), request))
		return
	end
	session = new_session
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

function CMD.status()
	skynet.retpack {
		address = address or "down",
		state = state,
		connected = channel and channel:connected() or false,
		pending = channel and channel:pending() or 0,
		requests = stats.requests,
		pushes = stats.pushes,
		bytes_out = stats.bytes_out,
		bytes_in = stats.bytes_in,
		failures = stats.failures,
		errors = stats.errors,
		latency = { count = stats.latency.count, sum_us = stats.latency.sum_us,
			buckets = stats.latency.buckets, bounds = BUCKETS },
		rtt_us = last_rtt_us,
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
-- heartbeat_timeout means the node is down. Also notices links that dropped.
local function heartbeat_loop()
	while true do
		skynet.sleep(math.max(1, math.floor(heartbeat / 10)))
		local ch = channel
		if ch then
			if not ch:connected() then
				if state == "up" then
					set_state("down", "connection lost")
				end
			elseif (skynet.now() - last_recv) * 10 >= heartbeat then
				local t0 = skynet.hpc()
				local ok, err = pcall(query, ch, wire.HEARTBEAT_NAME)
				if ok or (err ~= socketchannel.timeout and err ~= socketchannel.error) then
					last_rtt_us = (skynet.hpc() - t0) / 1000 -- any answer ("name not found") is life
				elseif ch == channel then
					local why = err == socketchannel.timeout
						and string.format("no answer to a heartbeat within %d ms", heartbeat_timeout)
						or "connection lost"
					last_error = why
					ch:reset() -- every call pending on the link fails now
					set_state("down", why)
				end
			end
		end
	end
end

skynet.start(function()
	require("skyjet").internal() -- never callable from other nodes
	clusterd = skynet.localname ".clusterd"
	secret = skynet.call(clusterd, "lua", "secret_for_node", node)
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
