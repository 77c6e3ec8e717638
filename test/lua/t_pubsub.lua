-- Shared state and publish/subscribe: skynet.datacenter and skynet.multicast.
local skynet = require "skynet"
local dc = require "skynet.datacenter"
local mc = require "skynet.multicast"
local T = require "testlib"

local inbox = {}

T.case("datacenter_set_get_nested", function()
	T.eq(dc.get("t_pubsub", "missing"), nil)
	T.eq(dc.set("t_pubsub", "a", "b", 1), nil, "set returns the old value")
	T.eq(dc.get("t_pubsub", "a", "b"), 1)
	T.eq(dc.set("t_pubsub", "a", "b", 2), 1)
	T.same(dc.get("t_pubsub", "a"), { b = 2 })
	T.eq(dc.get("t_pubsub", "a", "b", "deeper"), nil, "a path through a value is missing")
	T.eq(dc.set("t_pubsub", "a", "b", nil), 2)
	T.eq(dc.get("t_pubsub", "a", "b"), nil)
end)

T.case("datacenter_is_node_wide", function()
	dc.set("t_pubsub_shared", "from test")
	local other = skynet.newservice("lib_sub") -- another service, another Lua state
	T.eq(skynet.call(".service", "lua", "QUERY", "datacenterd") ~= nil, true)
	skynet.kill(other)
	T.eq(dc.wait("t_pubsub_shared"), "from test", "an existing value returns at once")
end)

T.case("datacenter_wait_wakes_on_set_and_fails_on_branch", function()
	local got, branch_err = {}, nil
	for _ = 1, 2 do
		skynet.fork(function()
			local v = dc.wait("t_pubsub_w", "leaf")
			got[#got + 1] = v
		end)
	end
	skynet.fork(function()
		local ok, err = pcall(dc.wait, "t_pubsub_w")
		branch_err = ok and "no error" or err
	end)
	skynet.sleep(2)
	T.eq(#got, 0, "waiting")
	dc.set("t_pubsub_w", "leaf", "value")
	T.wait_until(function()
		return #got == 2 and branch_err ~= nil
	end)
	T.same(got, { "value", "value" })
	T.ok(branch_err:find("t_pubsub_w is a branch, not a value", 1, true), branch_err)
end)

T.case("multicast_publish_reaches_every_subscriber", function()
	local ch = mc.new()
	T.eq(tostring(ch), string.format("[Multicast:%x]", ch.channel))
	local subs = {}
	for i = 1, 3 do
		subs[i] = skynet.newservice("lib_sub")
		skynet.call(subs[i], "lua", "sub", ch.channel, skynet.self())
	end
	ch:publish("hello", 42, { t = true })
	T.wait_until(function()
		return #inbox == 3
	end)
	local seen = {}
	for _, m in ipairs(inbox) do
		seen[m[1]] = true
		T.eq(m[2], skynet.self(), "source is the publisher")
		T.eq(m[3], ch.channel)
		T.same({ m[4], m[5], m[6] }, { "hello", 42, { t = true } })
	end
	for i = 1, 3 do
		T.ok(seen[subs[i]], "subscriber " .. i)
	end
	inbox = {}
	skynet.call(subs[1], "lua", "unsub")
	skynet.kill(subs[2]) -- a subscriber that is gone is skipped
	ch:publish("again")
	T.wait_until(function()
		return #inbox == 1
	end)
	skynet.sleep(2)
	T.eq(#inbox, 1)
	T.eq(inbox[1][1], subs[3])
	T.eq(inbox[1][4], "again")
	ch:delete()
	T.eq(ch.channel, nil)
	T.raises(function()
		ch:publish("x")
	end, "channel deleted")
	local again = mc.new { channel = 0x7fff0001 }
	T.raises(function()
		again:publish("x")
	end, "no channel")
end)

T.case("multicast_own_subscription_and_custom_pack", function()
	local got
	local ch = mc.new {
		pack = function(s)
			return s, #s
		end,
		unpack = function(msg, sz)
			return skynet.tostring(msg, sz)
		end,
		dispatch = function(c, source, text)
			got = { c, source, text }
		end,
	}
	ch:subscribe()
	ch:subscribe() -- twice is once
	ch:publish("raw text")
	T.wait_until(function()
		return got ~= nil
	end)
	T.eq(got[1], ch)
	T.eq(got[2], skynet.self())
	T.eq(got[3], "raw text")
	ch:unsubscribe()
	ch:delete()
end)

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "got" then
			inbox[#inbox + 1] = { ... }
		end
	end)
	T.run()
end)
