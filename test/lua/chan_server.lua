-- chan_server: a session-protocol server for the socketchannel tests. Frames are a 2-byte
-- big-endian length + body; a request body is a 4-byte session + command, a reply body is the
-- session + a flag byte (0 error, 1 final, 2 part: more follow) + data.
-- Commands: "echo:X" (reply X), "later:X" (reply X after the requests queued behind it),
-- "hold" (no reply until the connection drops), "parts:N" (N parts), "fail" (error reply).
-- Lua commands: "port", "drop" (close every connection), "accepted".
local skynet = require "skynet"
local socket = require "skynet.socket"

local conns = {}
local accepted = 0

local function frame(session, flag, data)
	local body = string.char(math.floor(session / 2 ^ 24) % 256, math.floor(session / 2 ^ 16) % 256,
		math.floor(session / 256) % 256, session % 256, flag) .. data
	return string.char(math.floor(#body / 256), #body % 256) .. body
end

local function serve(id)
	conns[id] = true
	socket.start(id)
	local later = {}
	while true do
		local hdr = socket.read(id, 2)
		if not hdr then
			break
		end
		local body = socket.read(id, socket.header(hdr))
		if not body then
			break
		end
		local session = socket.header(body:sub(1, 4))
		local cmd = body:sub(5)
		local op, arg = cmd:match "^(%w+):?(.*)$"
		if op == "echo" then
			socket.write(id, frame(session, 1, arg))
			for _, f in ipairs(later) do
				socket.write(id, f)
			end
			later = {}
		elseif op == "later" then
			later[#later + 1] = frame(session, 1, arg)
		elseif op == "parts" then
			local n = tonumber(arg)
			for i = 1, n do
				socket.write(id, frame(session, i < n and 2 or 1, "p" .. i))
			end
		elseif op == "fail" then
			socket.write(id, frame(session, 0, "request failed on purpose"))
		elseif op == "stray" then
			socket.write(id, frame(999999, 1, "nobody asked"))
			socket.write(id, frame(session, 1, "after stray"))
		end -- "hold": never answered
	end
	conns[id] = nil
	socket.close(id)
end

skynet.start(function()
	local lid, _, port = socket.listen("127.0.0.1", 0)
	socket.start(lid, function(id)
		accepted = accepted + 1
		skynet.fork(serve, id)
	end)
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "port" then
			skynet.retpack(port)
		elseif cmd == "drop" then
			for id in pairs(conns) do
				socket.close(id)
			end
			skynet.retpack(true)
		elseif cmd == "accepted" then
			skynet.retpack(accepted)
		end
	end)
end)
