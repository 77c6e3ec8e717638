-- whoami: answers "who" with the name it was started with (tells nodes apart in reload tests).
local skynet = require "skynet"
local name = ...
skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.retpack(name)
	end)
end)
