-- http.httpc: Skynet's HTTP client (request, get, post, head, request_stream) over skynet.socket.
-- One connection per request, closed after it. `httpc.timeout` (centiseconds, nil = none) bounds
-- the connect and the whole exchange: when it passes the socket is shut and the call raises.
-- Host names are resolved by the reactor's asynchronous resolver, so httpc.dns is optional.
-- Runs in the calling coroutine; the only state is httpc.timeout. No TLS: https:// raises.
local skynet = require "skynet"
local socket = require "http.sockethelper"
local internal = require "http.internal"

local format, pcall, error, pairs, tostring = string.format, pcall, error, pairs, tostring

local httpc = {}

-- Kept for Skynet code that calls it: names resolve through the node's resolver either way.
function httpc.dns(server, port)
	httpc.dns_server = server and { server, port }
end

-- "host", "host:port", "1.2.3.4:80", "[::1]:8080", optionally with "http://" in front.
-- Returns address, port, and the Host header value.
local function split_host(target)
	local scheme, rest = target:match "^(%a[%w+.-]*)://(.*)$"
	if scheme then
		scheme = scheme:lower()
		if scheme ~= "http" then
			error(format("Invalid protocol: %s (skyjet's httpc speaks plain http)", scheme))
		end
		target = rest
	end
	local v6, p6 = target:match "^%[(.-)%]:?(%d*)$"
	if v6 then
		return v6, tonumber(p6) or 80, target
	end
	if select(2, target:gsub(":", "")) > 1 then
		error(format("Invalid host: bare IPv6 address '%s', use '[%s]' instead", target, target))
	end
	local name, port = target:match "^([^:/]+):?(%d*)$"
	if not name then
		error("Invalid host: " .. target)
	end
	return name, tonumber(port) or 80, target
end

local function connect(target, timeout)
	local address, port, hostheader = split_host(target)
	local ok, fd = pcall(socket.connect, address, port, timeout)
	if not ok then
		error(tostring(fd), 0) -- the text now: socket_error's detail is shared by every socket
	end
	local conn = {
		fd = fd,
		read = socket.readfunc(fd),
		write = socket.writefunc(fd),
		readall = function()
			return socket.readall(fd)
		end,
	}
	if timeout then
		skynet.timeout(timeout, function()
			if not conn.finished then
				conn.expired = true
				socket.shutdown(fd) -- wakes the reader; close still follows
			end
		end)
	end
	return conn, hostheader
end

local function finish(conn)
	conn.finished = true
	socket.close(conn.fd)
end

local function fail(conn, err)
	if conn.expired then
		error(format("http request timeout after %d cs (%s)", httpc.timeout or 0, tostring(err)), 0)
	end
	error(tostring(err), 0)
end

-- request(method, host, url [, recvheader [, header [, content]]]) -> status, body
function httpc.request(method, host, url, recvheader, header, content)
	local conn, hostheader = connect(host, httpc.timeout)
	local ok, code, rest, fields = pcall(internal.request, conn, method, hostheader, url, recvheader, header,
		content)
	local body
	if ok then
		ok, body = pcall(internal.response, conn, code, rest, fields)
	else
		body = code
	end
	finish(conn)
	if not ok then
		fail(conn, body)
	end
	return code, body
end

function httpc.head(host, url, recvheader, header, content)
	local conn, hostheader = connect(host, httpc.timeout)
	local ok, code = pcall(internal.request, conn, "HEAD", hostheader, url, recvheader, header, content)
	finish(conn)
	if not ok then
		fail(conn, code)
	end
	return code
end

-- request_stream(...) -> a stream: stream.status, stream.header; stream() returns body pieces,
-- nil at the end; stream:close() ends it early. The timeout covers the request and header only.
function httpc.request_stream(method, host, url, recvheader, header, content)
	local conn, hostheader = connect(host, httpc.timeout)
	local ok, code, rest, fields = pcall(internal.request, conn, method, hostheader, url, recvheader, header,
		content)
	conn.finished = true
	if not ok then
		socket.close(conn.fd)
		fail(conn, code)
	end
	local stream = internal.response_stream(conn, code, rest, fields)
	stream._onclose = function()
		socket.close(conn.fd)
	end
	return stream
end

function httpc.get(...)
	return httpc.request("GET", ...)
end

local function escape(s)
	return (tostring(s):gsub("[^%w_]", function(c)
		return format("%%%02X", c:byte())
	end))
end

-- post(host, url, form [, recvheader]): form is sent as application/x-www-form-urlencoded
function httpc.post(host, url, form, recvheader)
	local body = {}
	for k, v in pairs(form) do
		body[#body + 1] = escape(k) .. "=" .. escape(v)
	end
	return httpc.request("POST", host, url, recvheader,
		{ ["content-type"] = "application/x-www-form-urlencoded" }, table.concat(body, "&"))
end

return httpc
