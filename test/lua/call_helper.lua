-- call_helper: checks a response closure's "TEST" and double-use rules from the inside.
local skynet = require "skynet"

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		assert(cmd == "double")
		local r = skynet.response()
		assert(r("TEST") == true, "owed before answering")
		assert(r(true, true) == true, "answer delivered")
		assert(r("TEST") == false, "not owed after answering")
		local ok, err = pcall(r, true, 1)
		assert(not ok and err:find("Can't response more than once", 1, true), tostring(err))
	end)
end)
