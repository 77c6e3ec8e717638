-- http.internal: the HTTP/1.x message reader and writer that httpd, httpc and websocket share.
-- Everything goes through the caller's `read(n)` (n = nil: whatever has arrived) and `write(s)`
-- functions (http.sockethelper makes them), so it runs in the calling coroutine and keeps no
-- state. One reader validates while it parses, against the limits below: a message that breaks
-- a rule or a limit is refused with a reason, it is never half-accepted.
local tonumber, tostring, type, pairs, ipairs = tonumber, tostring, type, pairs, ipairs
local concat = table.concat
local format = string.format

local M = {}

M.HEADER_LIMIT = 8192 -- bytes of start line + header lines (Skynet's limit)
M.HEADER_COUNT = 100 -- header lines
local CHUNK_LINE_LIMIT = 128 -- a chunk-size line with its extensions

local TOKEN = "^[%w!#$%%&'*+%-%.%^_`|~]+$"
local CTL = "[%z\1-\8\10-\31\127]" -- control characters a field value may not hold (HTAB may)

M.TOKEN = TOKEN

-- Read up to the blank line that ends a header block. `pre` holds bytes read already. Fills
-- `lines` with the block's lines (no CRLF) and returns the bytes after the block, or nil and
-- "too large" / "too many lines". An empty block (data starting with CRLF) gives no lines.
function M.recvheader(read, lines, pre)
	local buf = pre
	local from = 1
	local e
	while true do
		if #buf >= 2 and buf:sub(1, 2) == "\r\n" then
			return buf:sub(3)
		end
		e = buf:find("\r\n\r\n", from, true)
		if e or #buf > M.HEADER_LIMIT then
			break
		end
		from = #buf > 3 and #buf - 2 or 1
		buf = buf .. read()
	end
	if not e or e + 3 > M.HEADER_LIMIT then
		return nil, "too large"
	end
	local n = #lines
	for line in buf:sub(1, e + 1):gmatch "(.-)\r\n" do
		n = n + 1
		if n > M.HEADER_COUNT then
			return nil, "too many lines"
		end
		lines[n] = line
	end
	return buf:sub(e + 4)
end

local function add_field(header, name, value)
	local old = header[name]
	if old == nil then
		header[name] = value
	elseif type(old) == "table" then
		old[#old + 1] = value
	else
		header[name] = { old, value }
	end
end

-- Header lines lines[from..] into `header` (names lower-cased; a repeated name gives an array
-- of its values, as Skynet does). Returns header, or nil and the reason.
function M.parseheader(lines, from, header)
	local last
	for i = from, #lines do
		local line = lines[i]
		local c = line:byte(1)
		if c == 9 or c == 32 then -- obsolete line folding: continues the previous value
			if not last then
				return nil, "continuation line without a field"
			end
			local more = line:match "^[ \t]*(.-)[ \t]*$"
			if more:find(CTL) then
				return nil, "control character in a field value"
			end
			local v = header[last]
			if type(v) == "table" then
				v[#v] = v[#v] .. " " .. more
			else
				header[last] = v .. " " .. more
			end
		else
			local name, value = line:match "^([^:]*):[ \t]*(.-)[ \t]*$"
			if not name or not name:find(TOKEN) then
				return nil, format("bad header line %q", line:sub(1, 64))
			end
			if value:find(CTL) then
				return nil, "control character in a field value"
			end
			last = name:lower()
			add_field(header, last, value)
		end
	end
	return header
end

-- The single value of a field, or nil and a reason when it was repeated with different values.
local function single(header, name)
	local v = header[name]
	if type(v) == "table" then
		for i = 2, #v do
			if v[i] ~= v[1] then
				return nil, "conflicting " .. name
			end
		end
		return v[1]
	end
	return v
end

-- How the body is framed: "chunked", or a length (number), or false (no length given).
-- Returns nil, code, reason when the header is unusable (400 bad, 501 unknown coding).
function M.framing(header)
	local te, err = single(header, "transfer-encoding")
	if err then
		return nil, 400, err
	end
	if te then
		te = te:lower()
		if te == "chunked" then
			return "chunked"
		elseif te ~= "identity" then
			return nil, 501, "unsupported transfer-encoding " .. te
		end
	end
	local cl
	cl, err = single(header, "content-length")
	if err then
		return nil, 400, err
	end
	if cl then
		if not cl:find "^%d+$" or #cl > 15 then
			return nil, 400, "bad content-length"
		end
		return tonumber(cl)
	end
	return false
end

-- Exactly n bytes: the first from `pre`, the rest from read. Returns them and what is left.
local function take(read, pre, n)
	local have = #pre
	if have >= n then
		return pre:sub(1, n), pre:sub(n + 1)
	end
	return pre .. read(n - have), ""
end
M.take = take

local function chunk_size(read, buf)
	while true do
		local e = buf:find("\r\n", 1, true)
		if e then
			local hex, ext = buf:sub(1, e - 1):match "^(%x+)[ \t]*(.*)$"
			if not hex or #hex > 12 or (ext ~= "" and ext:byte(1) ~= 59) or ext:find(CTL) then
				return nil, "bad chunk size"
			end
			return tonumber(hex, 16), buf:sub(e + 2)
		end
		if #buf > CHUNK_LINE_LIMIT then
			return nil, "chunk size line too long"
		end
		buf = buf .. read()
	end
end

-- A chunked body; `pre` holds bytes read already. Trailer fields are added to `header`.
-- Returns body, header, rest; or nil and "too large" (over bodylimit) or another reason.
function M.recvchunkedbody(read, bodylimit, header, pre)
	local parts, total = {}, 0
	local buf = pre
	while true do
		local sz
		sz, buf = chunk_size(read, buf)
		if not sz then
			return nil, buf
		end
		if sz == 0 then
			break
		end
		total = total + sz
		if bodylimit and total > bodylimit then
			return nil, "too large"
		end
		local data
		data, buf = take(read, buf, sz + 2)
		if data:sub(-2) ~= "\r\n" then
			return nil, "chunk not followed by CRLF"
		end
		parts[#parts + 1] = data:sub(1, -3)
	end
	local lines = {}
	local rest, err = M.recvheader(read, lines, buf)
	if not rest then
		return nil, "trailer " .. err
	end
	local ok
	ok, err = M.parseheader(lines, 1, header)
	if not ok then
		return nil, err
	end
	return concat(parts), header, rest
end

local function field_line(out, k, v)
	v = tostring(v)
	if type(k) ~= "string" or not k:find(TOKEN) or v:find "[\r\n]" then
		error(format("bad header field %q", tostring(k)))
	end
	out[#out + 1] = format("%s: %s\r\n", k, v)
end

-- Append header lines to `out` (an array value gives one line per element); returns the text.
-- Raises on a name that is not a token or a value holding CR or LF (no header injection).
local function header_text(header, out)
	for k, v in pairs(header) do
		if type(v) == "table" then
			for _, one in ipairs(v) do
				field_line(out, k, one)
			end
		else
			field_line(out, k, v)
		end
	end
	return concat(out)
end
M.header_text = header_text

-- Send a request and read the response's status line and header (the body is left to
-- M.response). `recvheader` (optional) receives the response's fields. Returns code, the bytes
-- read past the header, and the header table. Raises on a malformed response.
function M.request(interface, method, host, url, recvheader, header, content)
	local out = { format("%s %s HTTP/1.1\r\n", method, url) }
	local has_host, chunked = false, false
	if header then
		for k, v in pairs(header) do
			local lk = type(k) == "string" and k:lower()
			if lk == "host" then
				has_host = true
			elseif lk == "transfer-encoding" and v == "chunked" then
				chunked = true
			end
		end
	end
	if not has_host then
		out[#out + 1] = format("host: %s\r\n", host)
	end
	local text = header_text(header or {}, out)
	if content and not chunked then
		text = text .. format("content-length: %d\r\n", #content)
	elseif not content and method ~= "GET" and method ~= "HEAD" then
		text = text .. "content-length: 0\r\n"
	end
	interface.write(text .. "\r\n")
	if content then
		interface.write(content)
	end
	local lines = {}
	local rest, err = M.recvheader(interface.read, lines, "")
	if not rest then
		error("response header " .. err)
	end
	local code = lines[1] and lines[1]:match "^HTTP/1%.%d (%d%d%d)"
	if not code then
		error(format("bad status line %q", (lines[1] or ""):sub(1, 64)))
	end
	local fields
	fields, err = M.parseheader(lines, 2, recvheader or {})
	if not fields then
		error("Invalid HTTP response header: " .. err)
	end
	return tonumber(code), rest, fields
end

-- The body of a response whose header M.request returned.
function M.response(interface, code, pre, header)
	local mode, _, err = M.framing(header)
	if mode == nil then
		error(err)
	end
	if mode == "chunked" then
		local body
		body, err = M.recvchunkedbody(interface.read, nil, header, pre)
		if not body then
			error("Invalid response body: " .. err)
		end
		return body
	elseif mode then
		return (take(interface.read, pre, mode))
	elseif code == 204 or code == 304 or code < 200 then
		return ""
	end
	return pre .. (interface.readall() or "")
end

---------------------------------------------------------------------------------------------------
-- A response body read piece by piece: stream() or stream:padding() returns the next piece,
-- nil at the end; stream:close() closes the connection. status, header and connected as Skynet.

local stream = {}
stream.__index = stream

function stream:close()
	local f = self._onclose
	if f then
		self._onclose = nil
		f(self)
	end
	self.connected = nil
end

local function finish(self)
	self._next = nil
	self:close()
end

function stream:padding()
	local f = self._next
	if not f then
		return nil, self
	end
	local ok, piece = pcall(f, self)
	if not ok then
		self.connected = false
		finish(self)
		return nil, self
	end
	return piece, self
end
stream.__call = stream.padding

local function next_length(self)
	local left = self._left
	local pre = self._pre
	if left == 0 then
		finish(self)
		return nil
	end
	if #pre == 0 then
		pre = self._interface.read()
	end
	local piece = pre:sub(1, left)
	self._pre = pre:sub(left + 1)
	self._left = left - #piece
	return piece
end

local function next_all(self)
	local pre = self._pre
	if #pre > 0 then
		self._pre = ""
		return pre
	end
	local data = self._interface.readall()
	finish(self)
	if data and #data > 0 then
		return data
	end
end

local function next_chunk(self)
	local read = self._interface.read
	local sz, buf = chunk_size(read, self._pre)
	if not sz then
		error(buf)
	end
	if sz == 0 then
		local lines = {}
		assert(M.recvheader(read, lines, buf), "bad trailer")
		assert(M.parseheader(lines, 1, self.header), "bad trailer")
		finish(self)
		return nil
	end
	local data
	data, self._pre = take(read, buf, sz + 2)
	assert(data:sub(-2) == "\r\n", "chunk not followed by CRLF")
	return data:sub(1, -3)
end

function M.response_stream(interface, code, pre, header)
	local mode, _, err = M.framing(header)
	if mode == nil then
		error(err)
	end
	local self = setmetatable({
		status = code,
		header = header,
		connected = true,
		_interface = interface,
		_pre = pre,
	}, stream)
	if mode == "chunked" then
		self._next = next_chunk
	elseif mode then
		self._left = mode
		self._next = next_length
	elseif code == 204 or code == 304 or code < 200 then
		self._next = nil
	else
		self._next = next_all
	end
	return self
end

return M
