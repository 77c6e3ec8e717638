-- http.httpd: the server side of HTTP/1.0 and 1.1 as Skynet's: read_request reads one request
-- through a read function (http.sockethelper.readfunc) and write_response writes one answer
-- through a write function. Parsing and its limits live in http.internal; this file maps their
-- failures to status codes. Runs in the calling coroutine; no state.
local internal = require "http.internal"

local format, type, pcall, tonumber = string.format, type, pcall, tonumber

local httpd = {}

local reason_phrase = {
	[100] = "Continue", [101] = "Switching Protocols",
	[200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
	[204] = "No Content", [205] = "Reset Content", [206] = "Partial Content",
	[300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
	[304] = "Not Modified", [305] = "Use Proxy", [307] = "Temporary Redirect",
	[308] = "Permanent Redirect",
	[400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
	[404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable",
	[407] = "Proxy Authentication Required", [408] = "Request Time-out", [409] = "Conflict",
	[410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
	[413] = "Request Entity Too Large", [414] = "Request-URI Too Large",
	[415] = "Unsupported Media Type", [416] = "Requested range not satisfiable",
	[417] = "Expectation Failed", [426] = "Upgrade Required",
	[431] = "Request Header Fields Too Large",
	[500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
	[503] = "Service Unavailable", [504] = "Gateway Time-out", [505] = "HTTP Version not supported",
}
httpd.reason_phrase = reason_phrase

-- The request line and header. Returns code (200 when usable), url, method, header, rest.
local function read_head(read)
	local lines = {}
	local rest = internal.recvheader(read, lines, "")
	if not rest then
		return 413 -- header block over the limit (Skynet answers 413 too)
	end
	local method, url, major, minor = (lines[1] or ""):match "^(%S+) (%S+) HTTP/(%d)%.(%d)$"
	if not method or not method:find(internal.TOKEN) or url:find "[%z\1-\31\127]" then
		return 400
	end
	if major ~= "1" then
		return 505
	end
	local header = internal.parseheader(lines, 2, {})
	if not header then
		return 400
	end
	if minor == "1" and header.host == nil then
		return 400 -- HTTP/1.1 requires Host
	end
	return 200, url, method, header, rest
end

local function read_all(read, bodylimit)
	local code, url, method, header, rest = read_head(read)
	if code ~= 200 then
		return code
	end
	local mode, bad = internal.framing(header)
	if mode == nil then
		return bad
	end
	local body
	if mode == "chunked" then
		local err
		body, err = internal.recvchunkedbody(read, bodylimit, header, rest)
		if not body then
			return err == "too large" and 413 or 400
		end
	elseif mode then
		if bodylimit and mode > bodylimit then
			return 413
		end
		body = internal.take(read, rest, mode)
	else
		body = ""
	end
	return 200, url, method, header, body
end

-- read_request(read [, bodylimit]) -> code, url, method, header, body. code ~= 200: the request
-- was refused (answer it with that code); nil, err: the socket failed (err is socket_error).
function httpd.read_request(read, bodylimit)
	local ok, code, url, method, header, body = pcall(read_all, read, tonumber(bodylimit))
	if ok then
		return code, url, method, header, body
	end
	return nil, code
end

local function write_all(write, code, body, header)
	local out = { format("HTTP/1.1 %03d %s\r\n", code, reason_phrase[code] or "") }
	local text = internal.header_text(header or {}, out)
	local t = type(body)
	if t == "string" then
		write(format("%scontent-length: %d\r\n\r\n", text, #body))
		write(body)
	elseif t == "function" then
		write(text .. "transfer-encoding: chunked\r\n\r\n")
		while true do
			local s = body()
			if not s then
				break
			end
			if s ~= "" then
				write(format("%x\r\n", #s))
				write(s)
				write("\r\n")
			end
		end
		write("0\r\n\r\n")
	elseif t == "nil" then
		write(text .. "\r\n")
	else
		error("bad response body: " .. t)
	end
end

-- write_response(write, code [, body [, header]]) -> true, or false and the error. body: a
-- string (sent with content-length), a function returning pieces until nil (sent chunked), or nil.
function httpd.write_response(...)
	return pcall(write_all, ...)
end

return httpd
