-- idle: a service that does nothing until told to exit (for spawn and memory tests).
local skynet = require "skynet"
skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "exit" then
			skynet.exit()
		end
		skynet.ret()
	end)
end)
