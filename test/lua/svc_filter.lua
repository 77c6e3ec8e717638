-- svc_filter: uses skynet.filter to rewrite every "lua" request before dispatch (adds a marker
-- argument), as a message filter would.
local skynet = require "skynet"
require "skynet.manager"

skynet.filter(function(ptype, msg, sz, session, source)
	if ptype == skynet.PTYPE_LUA then
		local cmd = skynet.unpack(msg, sz)
		return ptype, skynet.packstring(cmd, "filtered"), nil, session, source
	end
	return ptype, msg, sz, session, source
end, function()
	skynet.dispatch("lua", function(_, _, cmd, marker)
		skynet.retpack(cmd, marker)
	end)
end)
