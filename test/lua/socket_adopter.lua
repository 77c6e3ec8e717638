-- socket_adopter: takes over a socket id another service abandoned and echoes lines on it.
local skynet = require "skynet"
local socket = require "skynet.socket"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, id)
		assert(cmd == "adopt")
		assert(socket.start(id))
		skynet.fork(function()
			while true do
				local line = socket.readline(id)
				if not line then
					break
				end
				socket.write(id, line .. "\n")
			end
			socket.close(id)
		end)
		skynet.ret()
	end)
end)
