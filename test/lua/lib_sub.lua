-- lib_sub: subscribes to a multicast channel on "sub"(channel, reporter) and reports each
-- message it receives to `reporter` as "got"(self, source, channel id, ...); "unsub" leaves.
local skynet = require "skynet"
local mc = require "skynet.multicast"

local chan, reporter

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, id, to)
		if cmd == "sub" then
			reporter = to
			chan = mc.new {
				channel = id,
				dispatch = function(c, source, ...)
					skynet.send(reporter, "lua", "got", skynet.self(), source, c.channel, ...)
				end,
			}
			chan:subscribe()
		elseif cmd == "unsub" then
			chan:unsubscribe()
		end
		skynet.ret()
	end)
end)
