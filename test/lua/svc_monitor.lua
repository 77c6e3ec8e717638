-- svc_monitor: an exit monitor that records the handles it is told have retired.
local skynet = require "skynet"
local dead = {}
skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	unpack = function() end,
	dispatch = function(_, source)
		dead[#dead + 1] = source
	end,
}
skynet.start(function()
	skynet.dispatch("lua", function()
		skynet.retpack(dead)
	end)
end)
