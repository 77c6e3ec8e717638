-- http_echo: an HTTP server on [env] http_port for test_http.py. Each connection runs in its own
-- coroutine and may carry several requests (keep-alive). The answer describes the request:
-- "method <m>\npath <p>\nquery <k>=<v>...\nheader <name>=<value>...\nbody <body>"; /chunked
-- answers in chunks, /big answers with 1 MiB. Refusals and socket errors are logged as
-- "HTTPD refused <code>" and "HTTPD error <message>".
local skynet = require "skynet"
local socket = require "skynet.socket"
local httpd = require "http.httpd"
local sockethelper = require "http.sockethelper"
local urllib = require "http.url"

local BODY_LIMIT = 64 * 1024
local READ_TIMEOUT = 100 -- centiseconds

local function sorted_lines(prefix, t, out)
	local keys = {}
	for k in pairs(t) do
		keys[#keys + 1] = k
	end
	table.sort(keys)
	for _, k in ipairs(keys) do
		local v = t[k]
		out[#out + 1] = string.format("%s %s=%s", prefix, k, type(v) == "table" and table.concat(v, "|") or v)
	end
end

local function describe(method, url, header, body)
	local path, query = urllib.parse(url)
	local out = { "method " .. method, "path " .. path }
	sorted_lines("query", urllib.parse_query(query), out)
	sorted_lines("header", header, out)
	out[#out + 1] = "body " .. body
	return table.concat(out, "\n")
end

local function answer(id, write, method, url, header, body)
	local path = urllib.parse(url)
	if path == "/chunked" then
		local pieces = { "alpha-", "", "beta-", "gamma" }
		local i = 0
		return httpd.write_response(write, 200, function()
			i = i + 1
			return pieces[i]
		end)
	elseif path == "/big" then
		return httpd.write_response(write, 200, string.rep("0123456789abcdef", 65536))
	elseif path == "/whoami" then
		return httpd.write_response(write, 200, tostring(id), { ["x-conn"] = tostring(id) })
	end
	return httpd.write_response(write, 200, describe(method, url, header, body),
		{ ["content-type"] = "text/plain", ["x-multi"] = { "one", "two" } })
end

local function serve(id)
	socket.start(id)
	local read = sockethelper.readfunc(id, nil, READ_TIMEOUT)
	local write = sockethelper.writefunc(id)
	while true do
		local code, url, method, header, body = httpd.read_request(read, BODY_LIMIT)
		if not code then
			skynet.error("HTTPD error " .. tostring(url))
			break
		elseif code ~= 200 then
			skynet.error("HTTPD refused " .. code)
			httpd.write_response(write, code, "refused\n")
			break
		end
		local ok, err = answer(id, write, method, url, header, body)
		if not ok then
			skynet.error("HTTPD write " .. tostring(err))
			break
		end
		local conn = header.connection
		if type(conn) == "string" and conn:lower() == "close" then
			break
		end
	end
	socket.close(id)
end

skynet.start(function()
	local port = tonumber(skynet.getenv "http_port")
	local lid = socket.listen("127.0.0.1", port)
	socket.start(lid, function(id)
		skynet.fork(serve, id)
	end)
	skynet.error("HTTPD listening " .. port)
end)
