-- skynet.db.mysql: a non-blocking MySQL/MariaDB client (protocol 4.1: text queries, prepared
-- statements, several result sets) on skynet.socketchannel in order mode, so a query suspends
-- only its coroutine. Used by the service that requires it: each connect() owns one channel.
-- Query results and server errors come back as Skynet's tables ({badresult = true, errno, err,
-- sqlstate} for an error); a broken connection raises socketchannel's error. Integers beyond
-- 2^53 are LuaJIT int64_t/uint64_t cdata (the project's int64 policy) so no bit is lost.
local ffi = require "ffi"
local bit = require "bit"
local socket = require "skynet.socket"
local socketchannel = require "skynet.socketchannel"

local byte, char, sub = string.byte, string.char, string.sub

local mysql = {}
local conn = {}
local conn_meta = { __index = conn }

local COM_QUERY, COM_PING = 0x03, 0x0e
local COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_CLOSE, COM_STMT_RESET = 0x16, 0x17, 0x19, 0x1a
local MORE_RESULTS = 0x0008 -- server status: another result set follows
local UNSIGNED_FLAG = 0x0020 -- column flag
local MAX_CHUNK = 0xffffff -- a payload this long continues in the next packet

-- capabilities we ask for: LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41,
-- TRANSACTIONS, SECURE_CONNECTION, MULTI_STATEMENTS, MULTI_RESULTS, PS_MULTI_RESULTS,
-- PLUGIN_AUTH, PLUGIN_AUTH_LENENC_CLIENT_DATA
local CLIENT_FLAGS = 0x1 + 0x2 + 0x4 + 0x8 + 0x200 + 0x2000 + 0x8000 + 0x10000 + 0x20000
	+ 0x40000 + 0x80000 + 0x200000
local CLIENT_PLUGIN_AUTH = 0x80000

-- charset name -> default collation id sent in the handshake
local CHARSETS = {
	big5 = 1, latin1 = 8, latin2 = 9, ascii = 11, ujis = 12, sjis = 13, hebrew = 16,
	euckr = 19, gb2312 = 24, greek = 25, cp1250 = 26, gbk = 28, latin5 = 30, utf8 = 33,
	utf8mb3 = 33, ucs2 = 35, cp866 = 36, cp852 = 40, utf8mb4 = 45, cp1251 = 51, utf16 = 54,
	cp1256 = 57, cp1257 = 59, utf32 = 60, binary = 63, cp932 = 95, gb18030 = 248,
}

local function fail(fmt, ...)
	error("mysql: " .. string.format(fmt, ...), 0)
end

---------------------------------------------------------------------------- bytes

local scratch = ffi.new("union { uint8_t b[8]; double d; float f; int64_t i; uint64_t u; }")

local function le(n, width) -- a non-negative integer (< 2^53) as `width` little-endian bytes
	local out = {}
	for i = 1, width do
		out[i] = n % 256
		n = math.floor(n / 256)
	end
	return char(unpack(out))
end

-- unsigned little-endian integer of `width` (<= 6) bytes at pos
local function uint(s, pos, width)
	local n, mul = 0, 1
	for i = 0, width - 1 do
		local b = byte(s, pos + i)
		if not b then
			fail("malformed packet (ends inside an integer)")
		end
		n = n + b * mul
		mul = mul * 256
	end
	return n
end

-- 8-byte little-endian integer: a number while it is exact, else int64_t/uint64_t cdata
local function int8(s, pos, unsigned)
	local lo, hi = uint(s, pos, 4), uint(s, pos + 4, 4)
	if unsigned or hi < 0x80000000 then
		if hi < 0x200000 then
			return hi * 4294967296 + lo
		end
		local u = ffi.new("uint64_t", hi) * 4294967296 + lo
		return unsigned and u or ffi.cast("int64_t", u)
	end
	local v = (hi - 4294967296) * 4294967296 + lo
	if v >= -2 ^ 53 then
		return v
	end
	return ffi.cast("int64_t", ffi.new("uint64_t", hi) * 4294967296 + lo)
end

local function signed(n, width)
	local half = 2 ^ (width * 8 - 1)
	return n >= half and n - 2 * half or n
end

local function float_at(s, pos, width)
	for i = 0, width - 1 do
		scratch.b[i] = byte(s, pos + i) or fail("malformed packet (ends inside a float)")
	end
	return width == 4 and tonumber(scratch.f) or tonumber(scratch.d)
end

-- a decimal integer string: a number while exact, else int64_t/uint64_t cdata
local function integer_text(text, unsigned)
	local n = tonumber(text)
	if not n or (n < 2 ^ 53 and n > -2 ^ 53) then
		return n
	end
	local neg, digits = text:match "^(%-?)(%d+)$"
	if not digits then
		return n
	end
	local u = ffi.new("uint64_t", 0)
	for i = 1, #digits do
		u = u * 10 + (byte(digits, i) - 48)
	end
	if neg == "-" then
		return ffi.cast("int64_t", -u)
	end
	return unsigned and u or ffi.cast("int64_t", u)
end

-- length-encoded integer at pos: value (nil for the NULL marker 0xfb), next pos
local function lenenc(s, pos)
	local first = byte(s, pos)
	if not first then
		fail("malformed packet (ends before a length)")
	elseif first < 0xfb then
		return first, pos + 1
	elseif first == 0xfb then
		return nil, pos + 1
	elseif first == 0xfc then
		return uint(s, pos + 1, 2), pos + 3
	elseif first == 0xfd then
		return uint(s, pos + 1, 3), pos + 4
	elseif first == 0xfe then
		return int8(s, pos + 1, true), pos + 9
	end
	fail("malformed packet (bad length byte 0xff)")
end

local function lenenc_str(s, pos)
	local len
	len, pos = lenenc(s, pos)
	if len == nil then
		return nil, pos
	end
	if type(len) ~= "number" or pos + len - 1 > #s then
		fail("malformed packet (string runs past the end)")
	end
	return sub(s, pos, pos + len - 1), pos + len
end

local function lenenc_bytes(n)
	if n < 0xfb then
		return char(n)
	elseif n < 0x10000 then
		return "\252" .. le(n, 2)
	elseif n < 0x1000000 then
		return "\253" .. le(n, 3)
	end
	return "\254" .. le(n, 8)
end

local function cstring(s, pos)
	local e = s:find("\0", pos, true)
	if not e then
		fail("malformed packet (unterminated string)")
	end
	return sub(s, pos, e - 1), e + 1
end

---------------------------------------------------------------------------- packets

-- payload as packets (split at 16 MiB - 1), sequence numbers from seq
local function frame(payload, seq)
	local out, pos, len = {}, 1, #payload
	repeat
		local n = math.min(len - pos + 1, MAX_CHUNK)
		out[#out + 1] = le(n, 3) .. char(seq % 256) .. sub(payload, pos, pos + n - 1)
		pos, seq = pos + n, seq + 1
	until pos > len and n < MAX_CHUNK
	return table.concat(out)
end

-- one logical packet (continuations joined): payload, its kind ("OK", "ERR", "EOF", "DATA").
-- A payload over max_packet_size is still read (the stream stays in step) and noted in
-- self.__oversize, which turns the whole reply into a badresult.
local function read_packet(self, so)
	local parts = {}
	local total = 0
	repeat
		local head = so:read(4)
		local len = uint(head, 1, 3)
		self.__seq = byte(head, 4)
		parts[#parts + 1] = len > 0 and so:read(len) or ""
		total = total + len
	until len < MAX_CHUNK
	if total > self.__max_packet_size and not self.__oversize then
		self.__oversize = total
	end
	local payload = #parts == 1 and parts[1] or table.concat(parts)
	local first = byte(payload, 1)
	if not first then
		fail("empty packet")
	end
	local kind = "DATA"
	if first == 0x00 then
		kind = "OK"
	elseif first == 0xff then
		kind = "ERR"
	elseif first == 0xfe and #payload < 9 then
		kind = "EOF"
	end
	return payload, kind
end

local function parse_ok(p)
	local res, pos = {}, 2
	res.affected_rows, pos = lenenc(p, pos)
	res.insert_id, pos = lenenc(p, pos)
	res.server_status = uint(p, pos, 2)
	res.warning_count = uint(p, pos + 2, 2)
	local message = sub(p, pos + 4)
	if message ~= "" then
		res.message = message
	end
	return res
end

local function parse_err(p)
	local errno = uint(p, 2, 2)
	if sub(p, 4, 4) == "#" then
		return errno, sub(p, 10), sub(p, 5, 9)
	end
	return errno, sub(p, 4)
end

local function eof_status(p)
	return #p >= 5 and uint(p, 4, 2) or 0
end

local col_flags = setmetatable({}, { __mode = "k" }) -- column -> flags (kept off the column)

local function parse_column(p)
	local pos = 1
	for _ = 1, 4 do -- catalog, schema, table, org_table
		local _
		_, pos = lenenc_str(p, pos)
	end
	local col = {}
	col.name, pos = lenenc_str(p, pos)
	local _
	_, pos = lenenc_str(p, pos) -- org_name
	pos = pos + 1 -- length of the fixed fields (0x0c)
	-- charset (2), column length (4), type (1), flags (2), decimals (1)
	col.type = byte(p, pos + 6) or fail("malformed column definition")
	col_flags[col] = uint(p, pos + 7, 2)
	return col
end

-- column definitions up to their EOF
local function read_columns(self, so, count)
	local cols = {}
	for i = 1, count do
		local p, kind = read_packet(self, so)
		if kind ~= "DATA" then
			fail("expected a column definition, got %s", kind)
		end
		cols[i] = parse_column(p)
	end
	local _, kind = read_packet(self, so)
	if kind ~= "EOF" then
		fail("expected EOF after the column definitions, got %s", kind)
	end
	return cols
end

---------------------------------------------------------------------------- values

local NUMERIC_TEXT = { [0x01] = true, [0x02] = true, [0x03] = true, [0x04] = true, [0x05] = true,
	[0x09] = true, [0x0d] = true, [0xf6] = true }

local function text_value(col, v)
	local t = col.type
	if t == 0x08 then
		return integer_text(v, bit.band(col_flags[col] or 0, UNSIGNED_FLAG) ~= 0)
	elseif NUMERIC_TEXT[t] then
		return tonumber(v)
	end
	return v
end

local function text_row(p, cols, compact)
	local row, pos = {}, 1
	for i, col in ipairs(cols) do
		local v
		v, pos = lenenc_str(p, pos)
		if v ~= nil then
			v = text_value(col, v)
		end
		row[compact and i or col.name] = v
	end
	return row
end

local function date_text(p, pos, with_time)
	local n = byte(p, pos) or fail("malformed date")
	local y, mo, d, h, mi, s, us = 0, 0, 0, 0, 0, 0, 0
	if n >= 4 then
		y, mo, d = uint(p, pos + 1, 2), byte(p, pos + 3), byte(p, pos + 4)
	end
	if n >= 7 then
		h, mi, s = byte(p, pos + 5), byte(p, pos + 6), byte(p, pos + 7)
	end
	if n >= 11 then
		us = uint(p, pos + 8, 4)
	end
	local text = string.format("%04d-%02d-%02d", y, mo, d)
	if with_time then
		text = text .. string.format(" %02d:%02d:%02d", h, mi, s)
		if us > 0 then
			text = text .. string.format(".%06d", us)
		end
	end
	return text, pos + 1 + n
end

local function time_text(p, pos)
	local n = byte(p, pos) or fail("malformed time")
	local neg, hours, mi, s, us = false, 0, 0, 0, 0
	if n >= 8 then
		neg = byte(p, pos + 1) == 1
		hours = uint(p, pos + 2, 4) * 24 + byte(p, pos + 6)
		mi, s = byte(p, pos + 7), byte(p, pos + 8)
	end
	if n >= 12 then
		us = uint(p, pos + 9, 4)
	end
	local text = string.format("%s%02d:%02d:%02d", neg and "-" or "", hours, mi, s)
	if us > 0 then
		text = text .. string.format(".%06d", us)
	end
	return text, pos + 1 + n
end

-- binary-protocol readers by column type: (payload, pos, unsigned) -> value, next pos
local binary_value = {
	[0x01] = function(p, pos, u)
		local n = uint(p, pos, 1)
		return u and n or signed(n, 1), pos + 1
	end,
	[0x02] = function(p, pos, u)
		local n = uint(p, pos, 2)
		return u and n or signed(n, 2), pos + 2
	end,
	[0x03] = function(p, pos, u)
		local n = uint(p, pos, 4)
		return u and n or signed(n, 4), pos + 4
	end,
	[0x04] = function(p, pos)
		return float_at(p, pos, 4), pos + 4
	end,
	[0x05] = function(p, pos)
		return float_at(p, pos, 8), pos + 8
	end,
	[0x06] = function(_, pos)
		return nil, pos
	end,
	[0x07] = function(p, pos)
		return date_text(p, pos, true)
	end,
	[0x08] = function(p, pos, u)
		if pos + 7 > #p then
			fail("malformed packet (ends inside an integer)")
		end
		return int8(p, pos, u), pos + 8
	end,
	[0x0a] = function(p, pos)
		return date_text(p, pos, false)
	end,
	[0x0b] = time_text,
	[0x0c] = function(p, pos)
		return date_text(p, pos, true)
	end,
	[0xf6] = function(p, pos)
		local v, nxt = lenenc_str(p, pos)
		return tonumber(v), nxt
	end,
}
binary_value[0x09] = binary_value[0x03] -- INT24 travels as 4 bytes
binary_value[0x0d] = binary_value[0x02] -- YEAR travels as 2 bytes

local function binary_row(p, cols, compact)
	local ncols = #cols
	local bitmap = 2 -- the null bitmap follows the 0x00 header; its first 2 bits are unused
	local pos = bitmap + math.floor((ncols + 7 + 2) / 8)
	local row = {}
	for i, col in ipairs(cols) do
		local bitpos = i + 1
		local mask = byte(p, bitmap + math.floor(bitpos / 8)) or fail("malformed row")
		local v
		if bit.band(mask, bit.lshift(1, bitpos % 8)) == 0 then
			local read = binary_value[col.type] or lenenc_str
			v, pos = read(p, pos, bit.band(col_flags[col] or 0, UNSIGNED_FLAG) ~= 0)
		end
		row[compact and i or col.name] = v
	end
	return row
end

---------------------------------------------------------------------------- results

local function bad(err, errno, sqlstate)
	return { badresult = true, err = err, errno = errno, sqlstate = sqlstate }
end

-- one result (OK or a result set) of a reply: value or nil + error parts, and whether another
-- result follows
local function read_result(self, so, row_parser)
	local p, kind = read_packet(self, so)
	if kind == "ERR" then
		return nil, false, parse_err(p)
	elseif kind == "OK" then
		local res = parse_ok(p)
		return res, bit.band(res.server_status, MORE_RESULTS) ~= 0
	elseif kind ~= "DATA" then
		fail("unexpected %s packet at the start of a result", kind)
	end
	local ncols = lenenc(p, 1)
	local cols = read_columns(self, so, ncols)
	local rows, compact = {}, self.compact
	while true do
		p, kind = read_packet(self, so)
		if kind == "EOF" then
			return rows, bit.band(eof_status(p), MORE_RESULTS) ~= 0
		elseif kind == "ERR" then -- the query failed while sending rows
			return nil, false, parse_err(p)
		end
		rows[#rows + 1] = row_parser(p, cols, compact)
	end
end

-- the whole reply to a query or execute: one result, or an array of them flagged
-- mulitresultset (Skynet's spelling); an error makes it a badresult
local function read_reply(self, so, row_parser)
	self.__oversize = false
	local results = {}
	local more, res, errno, err, sqlstate
	repeat
		res, more, errno, err, sqlstate = read_result(self, so, row_parser)
		results[#results + 1] = res
	until not more or not res
	if self.__oversize then
		return bad("packet size too big: " .. self.__oversize)
	elseif #results == 0 then
		return bad(err, errno, sqlstate)
	elseif #results == 1 and res then
		return results[1]
	end
	results.mulitresultset = true
	if not res then
		results.badresult, results.err, results.errno, results.sqlstate = true, err, errno, sqlstate
	end
	return results
end

---------------------------------------------------------------------------- authentication

local function crypt_fn(name)
	local ok, crypt = pcall(require, "skynet.crypt")
	local f = ok and crypt[name]
	if not f then
		fail("password authentication needs skynet.crypt.%s, which this build lacks", name)
	end
	return f
end

-- SHA-256 from skynet.crypt when it has one, else from the OpenSSL libcrypto skyjet links
local function sha256_fn()
	local ok, crypt = pcall(require, "skynet.crypt")
	if ok and crypt.sha256 then
		return crypt.sha256
	end
	pcall(ffi.cdef, "unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);")
	local md = ffi.new("unsigned char[32]")
	return function(s)
		ffi.C.SHA256(s, #s, md)
		return ffi.string(md, 32)
	end
end

local function xor_bytes(a, b)
	local out = {}
	for i = 1, #a do
		out[i] = char(bit.bxor(byte(a, i), byte(b, (i - 1) % #b + 1)))
	end
	return table.concat(out)
end

-- auth plugin -> function(password, scramble) returning the auth response
local auth_plugins = {
	mysql_native_password = function(password, scramble)
		if password == "" then
			return ""
		end
		local sha1 = crypt_fn("sha1")
		local h1 = sha1(password)
		return xor_bytes(sha1(sub(scramble, 1, 20) .. sha1(h1)), h1)
	end,
	caching_sha2_password = function(password, scramble)
		if password == "" then
			return ""
		end
		local sha256 = sha256_fn()
		local h1 = sha256(password)
		return xor_bytes(h1, sha256(sha256(h1) .. sub(scramble, 1, 20)))
	end,
}

local function parse_greeting(self, p)
	if byte(p, 1) == 0xff then
		local errno, msg, sqlstate = parse_err(p)
		fail("server refused the connection: errno:%d, msg:%s,sqlstate:%s", errno, msg,
			tostring(sqlstate))
	end
	if byte(p, 1) ~= 10 then
		fail("unsupported protocol version %s", tostring(byte(p, 1)))
	end
	local version, pos = cstring(p, 2)
	self._server_ver = version
	local scramble = sub(p, pos + 4, pos + 11)
	pos = pos + 13 -- thread id (4), scramble part 1 (8), filler (1)
	local caps = uint(p, pos, 2) + uint(p, pos + 5, 2) * 65536
	local data_len = byte(p, pos + 7) or 0
	pos = pos + 18 -- caps (2), charset (1), status (2), caps (2), data length (1), reserved (10)
	local part2 = math.max(13, data_len - 8)
	scramble = scramble .. sub(p, pos, pos + part2 - 2) -- without its terminating NUL
	local plugin = "mysql_native_password"
	if bit.band(caps, CLIENT_PLUGIN_AUTH) ~= 0 and #p >= pos + part2 then
		plugin = sub(p, pos + part2):match "^[^%z]*" -- some servers leave out the final NUL
	end
	return scramble, plugin
end

-- during authentication the reader answers the server itself, on the socket it reads
local function send_raw(so, data)
	if not socket.write(so.fd, data) then
		error(socketchannel.error)
	end
end

-- after the handshake response: follow auth switches and caching_sha2 fast auth until OK
local function finish_auth(self, so, password)
	while true do
		local p, kind = read_packet(self, so)
		if kind == "OK" then
			return
		elseif kind == "ERR" then
			local errno, msg, sqlstate = parse_err(p)
			fail("errno:%d, msg:%s,sqlstate:%s", errno, msg, tostring(sqlstate))
		elseif kind == "EOF" or byte(p, 1) == 0xfe then -- auth switch request
			local plugin, pos = cstring(p, 2)
			local scramble = sub(p, pos):gsub("%z$", "")
			local make = auth_plugins[plugin] or fail("unsupported auth plugin %s", plugin)
			send_raw(so, frame(make(password, scramble), self.__seq + 1))
		elseif byte(p, 1) == 0x01 and byte(p, 2) == 0x04 then
			fail("caching_sha2_password full authentication needs TLS or RSA, which this driver"
				.. " does not do: log in once with the mysql client to fill the server's cache")
		elseif byte(p, 1) ~= 0x01 or byte(p, 2) ~= 0x03 then -- 01 03: fast auth passed, OK next
			fail("unexpected packet during authentication (0x%02x)", byte(p, 1))
		end
	end
end

local function login(self, opts)
	local user, password = opts.user or "", opts.password or ""
	local database = opts.database or ""
	local collation = CHARSETS[opts.charset or "utf8mb4"]
		or fail("unknown charset %s", tostring(opts.charset))
	return function(channel)
		local auth_reader = function(so)
			local scramble, plugin = parse_greeting(self, (read_packet(self, so)))
			local make = auth_plugins[plugin]
			if not make then -- answer as native and let the server switch us
				plugin, make = "mysql_native_password", auth_plugins.mysql_native_password
			end
			local token = make(password, scramble)
			local payload = table.concat {
				le(CLIENT_FLAGS, 4), le(self.__max_packet_size, 4), char(collation),
				string.rep("\0", 23), user, "\0", lenenc_bytes(#token), token, database, "\0",
				plugin, "\0",
			}
			send_raw(so, frame(payload, self.__seq + 1))
			finish_auth(self, so, password)
			return true, true
		end
		channel:response(auth_reader)
		if opts.on_connect then
			opts.on_connect(self)
		end
	end
end

---------------------------------------------------------------------------- API

-- opts: host, port (3306), database, user, password, charset (utf8mb4), max_packet_size
-- (bytes of one reply packet, 1 MiB), compact_arrays, on_connect(db), overload, and the
-- socketchannel options backup, connect_timeout (ms)
function mysql.connect(opts)
	local self = setmetatable({}, conn_meta)
	self.__max_packet_size = opts.max_packet_size or 1024 * 1024
	self.__seq = 0
	self.compact = opts.compact_arrays
	self.sockchannel = socketchannel.channel {
		host = opts.host,
		port = opts.port or 3306,
		backup = opts.backup,
		connect_timeout = opts.connect_timeout,
		auth = login(self, opts),
		overload = opts.overload,
	}
	self.sockchannel:connect(true)
	return self
end

function conn:disconnect()
	self.sockchannel:close()
	setmetatable(self, nil)
end

local function command(code, body)
	return frame(char(code) .. body, 0)
end

function conn:query(sql)
	return self.sockchannel:request(command(COM_QUERY, sql), function(so)
		return true, read_reply(self, so, text_row)
	end)
end

function conn:ping()
	return self.sockchannel:request(command(COM_PING, ""), function(so)
		local _, kind = read_packet(self, so)
		return true, kind == "OK"
	end)
end

function conn:server_ver()
	return self._server_ver
end

function conn:set_compact_arrays(value)
	self.compact = value
end

local function read_prepare(self, so)
	self.__oversize = false
	local p, kind = read_packet(self, so)
	if kind == "ERR" then
		local errno, err, sqlstate = parse_err(p)
		return bad(err, errno, sqlstate)
	elseif kind ~= "OK" or #p < 12 then
		fail("bad reply to a prepare")
	end
	local stmt = {
		prepare_id = uint(p, 2, 4),
		field_count = uint(p, 6, 2),
		param_count = uint(p, 8, 2),
		warning_count = uint(p, 11, 2),
	}
	stmt.params = stmt.param_count > 0 and read_columns(self, so, stmt.param_count) or {}
	stmt.fields = stmt.field_count > 0 and read_columns(self, so, stmt.field_count) or {}
	return stmt
end

-- returns the statement ({prepare_id, field_count, param_count, warning_count, params, fields})
-- or a badresult
function conn:prepare(sql)
	return self.sockchannel:request(command(COM_STMT_PREPARE, sql), function(so)
		return true, read_prepare(self, so)
	end)
end

-- one parameter: its type (2 bytes) and value bytes; nil is only marked in the null bitmap
local function encode_param(v)
	local t = type(v)
	if t == "string" then
		return "\253\0", lenenc_bytes(#v) .. v
	elseif t == "boolean" then
		return "\1\0", v and "\1" or "\0"
	elseif t == "number" then
		if v == math.floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 then
			scratch.i = v
			return "\8\0", ffi.string(scratch.b, 8)
		end
		scratch.d = v
		return "\5\0", ffi.string(scratch.b, 8)
	elseif t == "cdata" and ffi.istype("uint64_t", v) then
		scratch.u = v
		return "\8\128", ffi.string(scratch.b, 8)
	elseif t == "cdata" and ffi.istype("int64_t", v) then
		scratch.i = v
		return "\8\0", ffi.string(scratch.b, 8)
	end
	fail("cannot send a %s as a statement parameter", t)
end

local function execute_packet(stmt, n, args)
	local body = { char(COM_STMT_EXECUTE), le(stmt.prepare_id, 4), "\0", le(1, 4) }
	if n > 0 then
		local nulls, types, values = {}, {}, {}
		for i = 1, math.floor((n + 7) / 8) do
			nulls[i] = 0
		end
		for i = 1, n do
			local v = args[i]
			if v == nil then
				local k = math.floor((i - 1) / 8) + 1
				nulls[k] = nulls[k] + 2 ^ ((i - 1) % 8)
				types[i] = "\6\0"
			else
				types[i], values[#values + 1] = encode_param(v)
			end
		end
		body[#body + 1] = char(unpack(nulls)) .. "\1" .. table.concat(types) .. table.concat(values)
	end
	return frame(table.concat(body), 0)
end

-- execute(stmt, ...): the arguments bind the statement's parameters in order
function conn:execute(stmt, ...)
	if type(stmt) ~= "table" or not stmt.prepare_id then
		fail("execute needs a prepared statement")
	end
	local n = select("#", ...)
	if n ~= stmt.param_count then
		fail("statement has %d parameters, execute got %d", stmt.param_count, n)
	end
	return self.sockchannel:request(execute_packet(stmt, n, { ... }), function(so)
		return true, read_reply(self, so, binary_row)
	end)
end

function conn:stmt_reset(stmt)
	return self.sockchannel:request(command(COM_STMT_RESET, le(stmt.prepare_id, 4)), function(so)
		return true, read_reply(self, so, binary_row)
	end)
end

function conn:stmt_close(stmt)
	self.sockchannel:request(command(COM_STMT_CLOSE, le(stmt.prepare_id, 4)))
end

local escapes = { ["\0"] = "\\0", ["\b"] = "\\b", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
	["\26"] = "\\Z", ["\\"] = "\\\\", ["'"] = "\\'", ['"'] = '\\"' }

-- a string literal for SQL text: quoted, with the characters MySQL treats specially escaped
function mysql.quote_sql_str(s)
	return "'" .. s:gsub("[%z\b\n\r\t\26\\'\"]", escapes) .. "'"
end

return mysql
