-- Launched from the console's stdin by test_sproto.py: logs its arguments, then ends the node.
local skynet = require "skynet"

local args = table.concat({ ... }, " ")

skynet.start(function()
	skynet.error("CONSOLE PROBE " .. args)
	skynet.abort()
end)
