-- svc_abort: logs, then aborts the node (exit status 0).
local skynet = require "skynet"
require "skynet.manager"
skynet.start(function()
	skynet.error("aborting now")
	skynet.abort()
end)
