-- Start service of test_sproto.py's console test: starts Skynet's stdin console.
local skynet = require "skynet"

skynet.start(function()
	skynet.newservice("console")
end)
