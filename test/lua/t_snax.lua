-- skynet.snax: services of accept/response methods run by snaxd (snax.interface ids, bind,
-- unique/global/query, hotfix, profile, kill/exit).
local skynet = require "skynet"
local snax = require "skynet.snax"
local T = require "testlib"

local function log_text()
	return io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
end

T.case("interface_ids_follow_definition_order", function()
	local t = snax.interface("snax_counter")
	T.same(t.system, { init = 1, exit = 2, hotfix = 3, profile = 4 })
	T.same(t.accept, { add = 5, quit = 10 })
	T.same(t.response, { get = 6, slow = 7, fail = 8, whoami = 9 })
	T.raises(snax.interface, "snax_nosuch", "snax_nosuch")
end)

T.case("newservice_post_req_and_errors", function()
	local c = snax.newservice("snax_counter", "first")
	T.eq(tostring(c), string.format("[snax_counter:%x]", c.handle))
	T.eq(c.post.add(2), nil, "post returns nothing")
	c.post.add(3)
	T.same({ c.req.get() }, { 5, "first" })
	T.same({ c.req.whoami() }, { "snax_counter", true, "snax_counter" })
	local err = T.raises(c.req.fail, "call failed")
	T.ok(err:find("counter failure", 1, true), err)
	T.raises(function()
		return c.post.nosuch
	end, "post snax_counter:nosuch no exist")
	T.raises(function()
		return c.req.add
	end, "request snax_counter:add no exist")
	T.eq(snax.bind(c.handle, "snax_counter"), c, "one object per handle")
	T.raises(snax.bind, "bound to another type", c.handle, "other")
	snax.kill(c, "bye")
	T.ok(log_text():find("snax_counter exit first bye", 1, true), "exit(...) ran")
	-- the service answers the kill before it retires, so a request right after may still be
	-- queued to it: it fails either way ("service exited" or "invalid address")
	local gone = T.raises(c.req.get, nil)
	T.ok(gone:find("call to invalid address", 1, true) or gone:find("exited", 1, true), gone)
	T.wait_until(function()
		local _, e = pcall(c.req.get)
		return tostring(e):find("call to invalid address", 1, true)
	end, 5, "the killed service to retire")
end)

T.case("unique_global_and_query", function()
	local got
	skynet.fork(function()
		got = snax.queryservice("snax_counter")
	end)
	local u = snax.uniqueservice("snax_counter", "unique")
	T.eq(snax.uniqueservice("snax_counter", "ignored"), u)
	T.wait_until(function()
		return got ~= nil
	end)
	T.eq(got, u)
	T.same({ u.req.get() }, { 0, "unique" }, "init ran once with the first arguments")
	local g = snax.globalservice("snax_counter", "global")
	T.ok(g.handle ~= u.handle, "the global namespace is separate")
	T.eq(snax.queryglobal("snax_counter"), g)
	T.eq(skynet.call(".service", "lua", "QUERY", "snaxd", "snax_counter"), u.handle)
end)

T.case("hotfix_swaps_methods_sharing_state", function()
	local c = snax.newservice("snax_counter", "hot")
	c.post.add(7)
	local old = snax.hotfix(c, [[
local count
function response.get()
	return count * 10, "patched"
end
function hotfix(bump)
	local before = count
	count = count + bump
	return before, "hotfix ran"
end
]], 1)
	T.eq(old, 7)
	T.same({ c.req.get() }, { 80, "patched" })
	c.post.add(1)
	T.same({ c.req.get() }, { 90, "patched" }, "accept.add and the patch share count")
	T.raises(snax.hotfix, "Patch mismatch response.nosuch", c, "function response.nosuch() end")
	T.raises(snax.hotfix, "patch", c, "this is not lua")
	snax.kill(c)
end)

T.case("profile_and_debug_info_count_calls", function()
	local c = snax.newservice("snax_counter", "prof")
	local wall0 = skynet.hpc()
	c.req.slow(30)
	local wall = (skynet.hpc() - wall0) / 1e9
	c.req.get()
	c.req.get()
	pcall(c.req.fail)
	local info = snax.profile_info(c)
	T.eq(info.get.count, 2)
	T.eq(info.slow.count, 1)
	T.eq(info.fail.count, 1, "failed calls count")
	-- the 0.3 s asleep is most of the wall time and is not counted (no bound on the load)
	T.ok(info.slow.time > 0 and info.slow.time <= wall / 2,
		string.format("time asleep is not counted: %s of %s", info.slow.time, wall))
	T.same(skynet.call(c.handle, "debug", "INFO"), info)
	snax.kill(c)
end)

T.case("exit_from_inside", function()
	local c = snax.newservice("snax_counter", "inside")
	c.post.quit("done")
	T.wait_until(function()
		return log_text():find("snax_counter exit inside done", 1, true) ~= nil
	end)
	T.wait_until(function()
		return not pcall(c.req.get)
	end)
end)

skynet.start(function()
	T.run()
end)
