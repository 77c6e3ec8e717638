-- svc_args: answers "args" with the arguments it was launched with; counts its launches in env.
local skynet = require "skynet"
local args = table.pack(...)
local order = {}
skynet.init(function()
	order[#order + 1] = "init1"
end)
skynet.init(function()
	order[#order + 1] = "init2"
end)
skynet.start(function()
	order[#order + 1] = "start"
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "args" then
			skynet.retpack(args)
		elseif cmd == "order" then
			skynet.retpack(order)
		elseif cmd == "globals" then
			skynet.retpack(SERVICE_NAME, SERVICE_PATH, LUA_PATH, LUA_SERVICE)
		end
	end)
end)
