-- bench_sockecho: a skynet.socket server for the socket workload. Listens on 127.0.0.1
-- (ephemeral port), echoes every connection's bytes back ("echo" mode) or counts them ("sink"),
-- one coroutine per connection. Lua commands: "port" -> the port; "sunk" -> bytes counted.
local skynet = require "skynet"
local socket = require "skynet.socket"

local port, sunk = nil, 0

skynet.start(function()
	local lid, _, bound = socket.listen("127.0.0.1", 0)
	port = bound
	socket.start(lid, function(id)
		skynet.fork(function()
			socket.start(id)
			socket.nodelay(id)
			local first = socket.read(id, 1) -- "e" (echo) or "s" (sink)
			while true do
				local data = socket.read(id)
				if not data then
					break
				end
				if first == "e" then
					socket.write(id, data)
				else
					sunk = sunk + #data
				end
			end
			socket.close(id)
		end)
	end)
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "port" then
			skynet.retpack(port)
		else
			skynet.retpack(sunk)
		end
	end)
end)
