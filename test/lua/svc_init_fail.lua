-- svc_init_fail: its start function raises.
local skynet = require "skynet"
skynet.start(function()
	error("start went wrong")
end)
