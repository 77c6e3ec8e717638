-- svc_sockwatch: listens on [env] watch_port and logs what happens on each connection:
-- "SOCK accepted", "SOCK data <bytes>", "SOCK closed <rest>"; echoes data back.
local skynet = require "skynet"
local socket = require "skynet.socket"

skynet.start(function()
	local lid = socket.listen("127.0.0.1", tonumber(skynet.getenv "watch_port"))
	socket.start(lid, function(id)
		skynet.error("SOCK accepted")
		skynet.fork(function()
			socket.start(id)
			while true do
				local data, rest = socket.read(id)
				if not data then
					skynet.error("SOCK closed [" .. tostring(rest) .. "]")
					break
				end
				skynet.error("SOCK data [" .. data .. "]")
				socket.write(id, data)
			end
			socket.close(id)
		end)
	end)
	skynet.error("SOCK listening")
end)
