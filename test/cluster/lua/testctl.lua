-- testctl: the test harness's remote control of a node. Listens on 127.0.0.1:<port> (its first
-- argument) for frames of Lua code (4-byte big-endian length + code) and answers each with
-- "OK <json array of results>" or "ERR <message>" in the same framing. Code runs in a coroutine
-- of this service with skynet, cluster, socket and a persistent table G in scope; requests on
-- one connection run one at a time (open several connections for concurrency).
local skynet = require "skynet"
require "skynet.manager"
local socket = require "skynet.socket"
local cluster = require "skynet.cluster"

local port = tonumber(...)
local G = {}

local function encode(v, out)
	local t = type(v)
	if v == nil then
		out[#out + 1] = "null"
	elseif t == "boolean" then
		out[#out + 1] = tostring(v)
	elseif t == "number" then
		if v ~= v or v == math.huge or v == -math.huge then
			out[#out + 1] = string.format('"%s"', tostring(v))
		elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
			out[#out + 1] = string.format("%d", v)
		else
			out[#out + 1] = string.format("%.17g", v)
		end
	elseif t == "string" then
		out[#out + 1] = '"' .. v:gsub('[%c"\\\128-\255]', function(c)
			return string.format("\\u%04x", c:byte())
		end) .. '"'
	elseif t == "table" then
		local n = #v
		local is_array = next(v) == nil or n > 0
		if is_array then
			for k in pairs(v) do
				if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then
					is_array = false
					break
				end
			end
		end
		if is_array then
			out[#out + 1] = "["
			for i = 1, n do
				if i > 1 then
					out[#out + 1] = ","
				end
				encode(v[i], out)
			end
			out[#out + 1] = "]"
		else
			out[#out + 1] = "{"
			local first = true
			for k, val in pairs(v) do
				if not first then
					out[#out + 1] = ","
				end
				first = false
				encode(tostring(k), out)
				out[#out + 1] = ":"
				encode(val, out)
			end
			out[#out + 1] = "}"
		end
	else
		encode(tostring(v), out)
	end
end

local function json(...)
	local n = select("#", ...)
	local t = { ... }
	local out = { "[" }
	for i = 1, n do
		if i > 1 then
			out[#out + 1] = ","
		end
		encode(t[i], out)
	end
	out[#out + 1] = "]"
	return table.concat(out)
end

local env = setmetatable({ skynet = skynet, cluster = cluster, socket = socket, G = G },
	{ __index = _G })

local function frame(s)
	local n = #s
	return string.char(math.floor(n / 2 ^ 24) % 256, math.floor(n / 2 ^ 16) % 256,
		math.floor(n / 256) % 256, n % 256) .. s
end

local function serve(id)
	socket.start(id)
	while true do
		local hdr = socket.read(id, 4)
		if not hdr then
			break
		end
		local code = socket.read(id, socket.header(hdr))
		if not code then
			break
		end
		local f, err = load(code, "=eval", "t", env)
		local reply
		if not f then
			reply = "ERR " .. err
		else
			local r = table.pack(pcall(f))
			if r[1] then
				reply = "OK " .. json(unpack(r, 2, r.n))
			else
				reply = "ERR " .. tostring(r[2])
			end
		end
		socket.write(id, frame(reply))
	end
	socket.close(id)
end

skynet.start(function()
	local lid = socket.listen("127.0.0.1", port)
	socket.start(lid, function(id)
		skynet.fork(serve, id)
	end)
	skynet.error("TESTCTL ready on " .. port)
end)
