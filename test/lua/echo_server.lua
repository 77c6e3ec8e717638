-- echo_server: listens on 127.0.0.1 (ephemeral port) and echoes every byte back on each
-- connection. Commands: "port" -> the port; "stats" -> { accepted, closed }.
local skynet = require "skynet"
local socket = require "skynet.socket"

local port
local accepted, closed = 0, 0

skynet.start(function()
	local lid, _, bound = socket.listen("127.0.0.1", 0)
	port = bound
	socket.start(lid, function(id)
		accepted = accepted + 1
		skynet.fork(function()
			socket.start(id)
			while true do
				local data = socket.read(id)
				if not data then
					break
				end
				socket.write(id, data)
			end
			closed = closed + 1
			socket.close(id)
		end)
	end)
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "port" then
			skynet.retpack(port)
		elseif cmd == "stats" then
			skynet.retpack { accepted = accepted, closed = closed }
		end
	end)
end)
