-- clustersender: the calling side of the cluster protocol towards one remote node. Owns one
-- connection (a socketchannel in session mode, connected lazily by the first request and again
-- after a drop) and the node's session counter. `req` packs a request (split when large), sends
-- the trace tag first when the caller is traced, and answers with the raw reply payload; `push`
-- sends one-way. A drop fails every pending request at once; `changenode` moves the node to a new
-- address (pending requests fail, new ones go to the new address) or marks it down (false).
local skynet = require "skynet"
local socket = require "skynet.socket"
local socketchannel = require "skynet.socketchannel"
local cluster = require "skynet.cluster.core"

local node, hostname, initial = ...
local address = initial ~= "false" and initial or false
local channel
local session = 1
local stats = { requests = 0, pushes = 0, bytes_out = 0, bytes_in = 0, failures = 0 }
local last_error
local CMD = {}
local failure_mt = {}

local function target_name(addr)
	if type(addr) == "number" then
		return string.format(":%08x", addr)
	end
	return tostring(addr)
end

local function read_response(sock)
	local len = socket.header(sock:read(2))
	local body = sock:read(len)
	stats.bytes_in = stats.bytes_in + len + 2
	local s, ok, data, padding = cluster.unpackresponse(body)
	if s == nil then
		error(string.format("malformed response from node %s (%d bytes)", node, len))
	end
	return s, ok, data, padding
end

local function new_channel()
	local host, port = address:match "^(.+):(%d+)$"
	channel = socketchannel.channel {
		host = host,
		port = tonumber(port),
		response = read_response,
		nodelay = true,
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
local function fail(addr, reason)
	reason = strip_position(reason)
	stats.failures = stats.failures + 1
	last_error = reason
	local text = string.format("cluster %s %s: %s", node, target_name(addr), reason)
	skynet.log("debug", text)
	error(setmetatable({ text = text }, failure_mt))
end

-- parts of a large reply: { total, chunk1, chunk2, ... }
local function join_parts(addr, parts)
	local total = parts[1]
	local data = table.concat(parts, "", 2)
	if #data ~= total then
		fail(addr, string.format("large reply of %d bytes announced %s", #data, tostring(total)))
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

function CMD.req(addr, msg, sz)
	if not address then
		skynet.trash(msg, sz)
		fail(addr, "node is down")
	end
	local ok, request, new_session, padding = pcall(cluster.packrequest, addr, session, msg, sz)
	if not ok then
		fail(addr, request)
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
	local result
	local where = address
	ok, result = pcall(function()
		send_trace()
		return channel:request(request, s, padding)
	end)
	if not ok then
		if result == socketchannel.error then
			result = "connection to " .. where .. " lost or refused"
		end
		fail(addr, tostring(result))
	end
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
		skynet.error(string.format("cluster.send to %s %s dropped: %s", node, target_name(addr), request))
		return
	end
	session = new_session
	stats.pushes = stats.pushes + 1
	stats.bytes_out = stats.bytes_out + #request
	local sent, err = pcall(channel.request, channel, request, nil, padding)
	if not sent then
		last_error = tostring(err == socketchannel.error and "connection lost or refused" or err)
		skynet.error(string.format("cluster.send to %s %s dropped: %s", node, target_name(addr), last_error))
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
	skynet.ret()
end

function CMD.status()
	skynet.retpack {
		address = address or "down",
		connected = channel and channel:connected() or false,
		pending = channel and channel:pending() or 0,
		requests = stats.requests,
		pushes = stats.pushes,
		bytes_out = stats.bytes_out,
		bytes_in = stats.bytes_in,
		failures = stats.failures,
		last_error = last_error,
	}
end

function CMD.disconnect()
	if channel then
		channel:close()
		new_channel()
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

skynet.start(function()
	require("skynet.core").internal() -- never callable from other nodes
	if address then
		new_channel()
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
