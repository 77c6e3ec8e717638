-- http.websocket: RFC 6455 WebSocket over skynet.socket with Skynet's API: accept (server, driven
-- by a handler table: connect/handshake/message/ping/pong/close/error/warning), connect (client),
-- read/write/ping/close/addrinfo/is_close. State is this service's table of open websockets by
-- socket id; each is read by one coroutine. The frame reader validates as it reads: a frame that
-- breaks the protocol or a limit ends the connection with a close frame carrying the RFC code.
local skynet = require "skynet"
local socket = require "skynet.socket"
local crypt = require "skynet.crypt"
local bit = require "bit"
local internal = require "http.internal"
local httpd = require "http.httpd"
local sockethelper = require "http.sockethelper"

local band, char, format, concat = bit.band, string.char, string.format, table.concat
local floor, type, tostring, error, pcall = math.floor, type, tostring, error, pcall
local socket_error = sockethelper.socket_error

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" -- RFC 6455 section 1.3

local M = {}
M.MAX_FRAME_SIZE = 256 * 1024 -- bytes of one frame and of one reassembled message (Skynet's)

local OPNAME = { [0] = "continuation", [1] = "text", [2] = "binary", [8] = "close", [9] = "ping",
	[10] = "pong" }
local OPCODE = { text = 1, binary = 2, close = 8, ping = 9, pong = 10 }

local pool = {} -- socket id -> websocket object

-- A protocol violation: `code` is the close code the peer is sent (1002, 1007, 1009).
local violation_mt = { __tostring = function(v)
	return format("websocket protocol error %d: %s", v.code, v.reason)
end }
local function violation(code, reason)
	error(setmetatable({ code = code, reason = reason }, violation_mt), 0)
end
local function is_violation(e)
	return getmetatable(e) == violation_mt
end

local function new_ws(id, mode, handle)
	local ws = {
		id = id,
		mode = mode,
		handle = handle,
		read = sockethelper.readfunc(id),
		write = sockethelper.writefunc(id),
	}
	pool[id] = ws
	return ws
end

-- Forget the websocket and close its socket (flushing what was written).
local function finish(ws)
	if pool[ws.id] == ws then
		pool[ws.id] = nil
		socket.close(ws.id)
	end
end

local function be_bytes(n, count)
	local t = {}
	for i = count, 1, -1 do
		t[i] = n % 256
		n = floor(n / 256)
	end
	return char(unpack(t))
end

-- One frame in a single write, so frames from several coroutines never interleave. A client
-- masks every frame (RFC 6455 5.3); masking_key (a 32-bit number) picks the key.
local function send_frame(ws, op, data, masking_key)
	data = data or ""
	local n = #data
	local key
	if masking_key then
		key = be_bytes(masking_key, 4)
	elseif ws.mode == "client" then
		key = crypt.randomkey():sub(1, 4)
	end
	local maskbit = key and 0x80 or 0
	local len
	if n < 126 then
		len = char(maskbit + n)
	elseif n < 65536 then
		len = char(maskbit + 126) .. be_bytes(n, 2)
	else
		len = char(maskbit + 127) .. be_bytes(n, 8)
	end
	if key then
		ws.write(char(0x80 + OPCODE[op]) .. len .. key .. crypt.xor_str(data, key))
	else
		ws.write(char(0x80 + OPCODE[op]) .. len .. data)
	end
end

local function payload_length(ws, len)
	if len == 126 then
		local s = ws.read(2)
		return s:byte(1) * 256 + s:byte(2)
	elseif len == 127 then
		local s = ws.read(8)
		local b1, b2, b3, b4, b5, b6, b7, b8 = s:byte(1, 8)
		if b1 >= 128 then
			violation(1002, "64-bit length with the high bit set")
		end
		if b1 + b2 + b3 + b4 > 0 then
			violation(1009, "frame too large")
		end
		return ((b5 * 256 + b6) * 256 + b7) * 256 + b8
	end
	return len
end

-- Read one frame: fin, opcode name, payload (unmasked).
local function read_frame(ws)
	local b1, b2 = ws.read(2):byte(1, 2)
	local fin = b1 >= 128
	if band(b1, 0x70) ~= 0 then
		violation(1002, "reserved bits set")
	end
	local op = OPNAME[band(b1, 0x0f)]
	if not op then
		violation(1002, "unknown opcode " .. band(b1, 0x0f))
	end
	local masked = b2 >= 128
	local len = band(b2, 0x7f)
	if band(b1, 0x08) ~= 0 and (not fin or len > 125) then
		violation(1002, "fragmented or oversized control frame")
	end
	if masked ~= (ws.mode == "server") then
		violation(1002, masked and "masked frame from the server" or "unmasked frame from the client")
	end
	len = payload_length(ws, len)
	if len > M.MAX_FRAME_SIZE then
		violation(1009, "frame too large")
	end
	local key = masked and ws.read(4)
	local payload = len > 0 and ws.read(len) or ""
	if key and len > 0 then
		payload = crypt.xor_str(payload, key)
	end
	return fin, op, payload
end

local VALID_CLOSE = { [1000] = true, [1001] = true, [1002] = true, [1003] = true, [1007] = true,
	[1008] = true, [1009] = true, [1010] = true, [1011] = true, [1012] = true, [1013] = true,
	[1014] = true }

local function parse_close(payload)
	if #payload == 0 then
		return nil, ""
	elseif #payload == 1 then
		violation(1002, "close frame with a 1-byte payload")
	end
	local code = payload:byte(1) * 256 + payload:byte(2)
	if not VALID_CLOSE[code] and (code < 3000 or code > 4999) then
		violation(1002, "invalid close code " .. code)
	end
	local reason = payload:sub(3)
	if not utf8.len(reason) then
		violation(1007, "close reason is not UTF-8")
	end
	return code, reason
end

-- The next event: "message", data, "text"|"binary" / "ping", data / "pong", data /
-- "close", code, reason. Fragments are joined; control frames may come between them.
local function next_event(ws)
	while true do
		local fin, op, payload = read_frame(ws)
		if op == "close" then
			return "close", parse_close(payload)
		elseif op == "ping" or op == "pong" then
			return op, payload
		end
		local parts = ws.parts
		if op == "continuation" then
			if not parts then
				violation(1002, "continuation frame without a message")
			end
			parts[#parts + 1] = payload
			ws.size = ws.size + #payload
			if ws.size > M.MAX_FRAME_SIZE then
				violation(1009, "message too large")
			end
		elseif parts then
			violation(1002, "new message inside a fragmented one")
		elseif not fin then
			ws.parts, ws.size, ws.kind = { payload }, #payload, op
		else
			parts, ws.kind = { payload }, op
		end
		if fin then
			local kind, data = ws.kind, concat(parts or ws.parts)
			ws.parts, ws.size = nil, nil
			if kind == "text" and not utf8.len(data) then
				violation(1007, "text message is not UTF-8")
			end
			return "message", data, kind
		end
	end
end

local function close_payload(code, reason)
	if not code then
		return ""
	end
	return be_bytes(code, 2) .. (reason or ""):sub(1, 123)
end

-- A protocol violation: tell the peer why (best effort), then close.
local function refuse(ws, v)
	pcall(send_frame, ws, "close", close_payload(v.code, v.reason))
	finish(ws)
end

---------------------------------------------------------------------------------------------------
-- server

local function field(header, name)
	local v = header[name]
	if type(v) == "table" then
		return concat(v, ", ")
	end
	return v
end

-- Returns nil, header, url when the upgrade is accepted (101 sent); else code, reason.
local function read_handshake(ws)
	local lines = {}
	local rest, err = internal.recvheader(ws.read, lines, "")
	if not rest then
		return 413, "header " .. err
	end
	local method, url, major, minor = (lines[1] or ""):match "^(%S+) (%S+) HTTP/(%d)%.(%d)$"
	if not method then
		return 400, "bad request line"
	elseif method ~= "GET" then
		return 400, "need GET method"
	elseif major ~= "1" or minor == "0" then
		return 505
	end
	local header
	header, err = internal.parseheader(lines, 2, {})
	if not header then
		return 400, err
	end
	local upgrade, connection = field(header, "upgrade"), field(header, "connection")
	if not upgrade or upgrade:lower() ~= "websocket" then
		return 426, "Upgrade Required"
	elseif not header.host then
		return 400, "host Required"
	elseif not connection or not connection:lower():find("upgrade", 1, true) then
		return 400, "Connection must Upgrade"
	end
	local key = field(header, "sec-websocket-key")
	if not key or #crypt.base64decode(key) ~= 16 then
		return 400, "Sec-WebSocket-Key invalid"
	end
	if field(header, "sec-websocket-version") ~= "13" then
		return 400, "Sec-WebSocket-Version must 13"
	end
	local sub = ""
	local offered = field(header, "sec-websocket-protocol")
	if offered then -- Skynet's rule: the only subprotocol it speaks is "chat"
		if not (", " .. offered .. ","):find("[%s,]chat%s*,") then
			return 400, "Sec-WebSocket-Protocol need include chat"
		end
		sub = "Sec-WebSocket-Protocol: chat\r\n"
	end
	ws.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		.. "Sec-WebSocket-Accept: " .. crypt.base64encode(crypt.sha1(key .. GUID)) .. "\r\n" .. sub .. "\r\n")
	ws.read = sockethelper.readfunc(ws.id, rest) -- a client may send frames right behind its request
	return nil, header, url
end

local function try_handle(ws, name, ...)
	local f = ws.handle and ws.handle[name]
	if f then
		f(ws.id, ...)
	end
end

local function serve(ws)
	try_handle(ws, "connect")
	local code, header, url = read_handshake(ws)
	if code then
		httpd.write_response(ws.write, code, header)
		try_handle(ws, "close")
		return
	end
	try_handle(ws, "handshake", header, url)
	while pool[ws.id] == ws do
		local kind, a, b = next_event(ws)
		if kind == "message" then
			try_handle(ws, "message", a, b)
		elseif kind == "ping" then
			send_frame(ws, "pong", a)
			try_handle(ws, "ping", a)
		elseif kind == "pong" then
			try_handle(ws, "pong", a)
		else
			pcall(send_frame, ws, "close", close_payload(a))
			finish(ws)
			try_handle(ws, "close", a, b)
			return
		end
	end
	try_handle(ws, "close")
end

local function keep_error(e)
	if type(e) == "table" then
		return e
	end
	return debug.traceback(tostring(e), 2)
end

-- accept(id, handle [, protocol [, addr]]) serves one connection until it ends. Returns true,
-- or false and the reason when it ended on a protocol violation or an error in a handler.
function M.accept(id, handle, protocol, addr)
	protocol = protocol or "ws"
	if protocol ~= "ws" then
		return false, format("invalid websocket protocol: %s (skyjet has no TLS)", tostring(protocol))
	end
	socket.start(id)
	local ws = new_ws(id, "server", handle)
	ws.addr = addr
	if handle and handle.warning then
		socket.warning(id, function(_, kbytes)
			handle.warning(ws, kbytes)
		end)
	end
	local ok, err = xpcall(serve, keep_error, ws)
	local closed_by_us = pool[id] ~= ws
	if ok then
		finish(ws)
		return true
	elseif is_violation(err) then
		refuse(ws, err)
		try_handle(ws, "error", tostring(err))
		return false, tostring(err)
	end
	if err == socket_error then
		finish(ws)
		try_handle(ws, closed_by_us and "close" or "error")
		return true
	end
	if not closed_by_us then -- a handler failed: the peer hears 1011 (internal error)
		refuse(ws, { code = 1011, reason = "internal error" })
	end
	return false, tostring(err)
end

---------------------------------------------------------------------------------------------------
-- client

local function client_handshake(ws, host, uri, header)
	local key = crypt.base64encode(crypt.randomkey() .. crypt.randomkey())
	local request = { Upgrade = "websocket", Connection = "Upgrade", ["Sec-WebSocket-Version"] = "13",
		["Sec-WebSocket-Key"] = key }
	for k, v in pairs(header or {}) do
		request[k] = v
	end
	local recv = {}
	local code, rest = internal.request(ws, "GET", host, uri, recv, request)
	if code ~= 101 then
		error(format("websocket handshake error: code[%s]", code), 0)
	end
	if (field(recv, "upgrade") or ""):lower() ~= "websocket" then
		error("websocket handshake upgrade must websocket", 0)
	elseif not (field(recv, "connection") or ""):lower():find("upgrade", 1, true) then
		error("websocket handshake connection must upgrade", 0)
	elseif field(recv, "sec-websocket-accept") ~= crypt.base64encode(crypt.sha1(key .. GUID)) then
		error("websocket handshake invalid Sec-WebSocket-Accept", 0)
	end
	ws.read = sockethelper.readfunc(ws.id, rest)
end

-- connect("ws://host[:port]/path" [, header [, timeout]]) -> id. timeout (centiseconds) bounds
-- the connect and the handshake.
function M.connect(url, header, timeout)
	local scheme, host, uri = url:match "^(%a+)://([^/]+)(.*)$"
	if scheme ~= "ws" then
		error(format("invalid protocol: %s (skyjet's websocket speaks ws://)", tostring(scheme)))
	end
	local name, port = host:match "^%[(.-)%]:?(%d*)$"
	if not name then
		name, port = host:match "^([^:]+):?(%d*)$"
	end
	if not name then
		error("invalid websocket url " .. url)
	end
	local fd = sockethelper.connect(name, tonumber(port) or 80, timeout)
	local ws = new_ws(fd, "client")
	ws.addr = host
	local done = false
	if timeout then
		skynet.timeout(timeout, function()
			if not done then
				socket.shutdown(fd)
			end
		end)
	end
	local ok, err = pcall(client_handshake, ws, host, uri == "" and "/" or uri, header)
	done = true
	if not ok then
		finish(ws)
		error(err, 0)
	end
	return fd
end

local function get(id)
	local ws = pool[id]
	if not ws then
		error(format("websocket %s is not open", tostring(id)), 3)
	end
	return ws
end

-- read(id) -> message; or false, reason, code once the peer closed (or broke the protocol).
-- Pings are answered here. Raises socket_error when the connection drops without a close.
function M.read(id)
	local ws = get(id)
	while true do
		local ok, kind, a, b = pcall(next_event, ws)
		if not ok then
			if is_violation(kind) then
				refuse(ws, kind)
				return false, tostring(kind), kind.code
			end
			finish(ws)
			error(kind, 0)
		end
		if kind == "message" then
			return a
		elseif kind == "ping" then
			send_frame(ws, "pong", a)
		elseif kind == "close" then
			pcall(send_frame, ws, "close", close_payload(a))
			finish(ws)
			return false, b, a
		end
	end
end

function M.write(id, data, fmt, masking_key)
	fmt = fmt or "text"
	if fmt ~= "text" and fmt ~= "binary" then
		error("websocket write format must be text or binary, not " .. tostring(fmt), 2)
	end
	send_frame(get(id), fmt, data, masking_key)
end

function M.ping(id, data)
	send_frame(get(id), "ping", data)
end

function M.addrinfo(id)
	return get(id).addr
end

function M.is_close(id)
	return pool[id] == nil
end

-- close(id [, code [, reason]]): send a close frame and close the connection.
function M.close(id, code, reason)
	local ws = pool[id]
	if not ws then
		return
	end
	local ok, err = pcall(send_frame, ws, "close", close_payload(code, reason))
	finish(ws)
	if not ok then
		skynet.error("websocket close: " .. tostring(err))
	end
end

return M
