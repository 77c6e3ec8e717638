-- svc_exit_in_start: exits during its start function (newservice then returns nil).
local skynet = require "skynet"
skynet.start(function()
	skynet.exit()
end)
