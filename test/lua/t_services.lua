-- Launching and retiring services: newservice, uniqueservice, queryservice, exit, kill,
-- launch, names, init hooks, the exit monitor.
local skynet = require "skynet"
require "skynet.manager"
local T = require "testlib"

T.case("newservice_passes_arguments_as_strings", function()
	local s = skynet.newservice("svc_args", "a b", 1, 2.5, "", "c")
	local args = skynet.call(s, "lua", "args")
	T.same({ args[1], args[2], args[3], args[4], args[5] }, { "a", "b", "1", "2.5", "c" })
	T.eq(args.n, 5)
	skynet.kill(s)
end)

T.case("newservice_nil_argument_cuts_the_list", function()
	local s = skynet.newservice("svc_args", "x", nil, "y")
	T.eq(skynet.call(s, "lua", "args").n, 1)
	skynet.kill(s)
end)

T.case("newservice_boolean_argument_fails", function()
	T.raises(skynet.newservice, "call failed", "svc_args", true)
end)

T.case("newservice_missing_file_raises", function()
	T.raises(skynet.newservice, "call failed", "no_such_service_file")
end)

T.case("newservice_syntax_error_raises", function()
	T.raises(skynet.newservice, "call failed", "svc_bad_syntax")
end)

T.case("newservice_start_error_raises", function()
	T.raises(skynet.newservice, "call failed", "svc_init_fail")
	T.raises(skynet.newservice, "call failed", "svc_main_raises")
end)

T.case("newservice_exit_during_start_returns_nil", function()
	T.eq(skynet.newservice("svc_exit_in_start"), nil)
end)

T.case("service_globals_and_init_order", function()
	local s = skynet.newservice("svc_args")
	local name, path, lua_path, lua_service = skynet.call(s, "lua", "globals")
	T.eq(name, "svc_args")
	T.ok(path:match "/test/lua/$", "SERVICE_PATH " .. tostring(path))
	T.eq(lua_path, nil)
	T.eq(lua_service, nil)
	T.same(skynet.call(s, "lua", "order"), { "init1", "init2", "start" })
	skynet.kill(s)
end)

T.case("uniqueservice_racing_callers_get_one_instance", function()
	local handles = {}
	for i = 1, 8 do
		skynet.fork(function()
			handles[i] = skynet.uniqueservice("svc_slow_start")
		end)
	end
	T.wait_until(function()
		return #handles == 8
	end, 10)
	for i = 2, 8 do
		T.eq(handles[i], handles[1], "caller " .. i)
	end
	T.eq(skynet.queryservice("svc_slow_start"), handles[1])
	local global = skynet.uniqueservice(true, "svc_slow_start")
	T.ok(global ~= handles[1], "the global namespace is separate")
	T.eq(skynet.queryservice(true, "svc_slow_start"), global)
end)

T.case("uniqueservice_failure_is_remembered", function()
	T.raises(skynet.uniqueservice, "svc_init_fail", "svc_init_fail")
	T.raises(skynet.uniqueservice, "svc_init_fail", "svc_init_fail")
	T.raises(skynet.queryservice, "svc_init_fail", "svc_init_fail")
end)

T.case("queryservice_waits_until_launched", function()
	local got
	skynet.fork(function()
		got = skynet.queryservice("svc_args")
	end)
	skynet.sleep(10)
	T.eq(got, nil, "still waiting")
	local h = skynet.uniqueservice("svc_args", "unique")
	T.wait_until(function()
		return got
	end, 5)
	T.eq(got, h)
end)

T.case("kill_retires_a_service_and_its_names", function()
	local s = skynet.newservice("probe", ".victim")
	T.eq(skynet.localname(".victim"), s)
	skynet.kill(s)
	T.eq(skynet.localname(".victim"), nil)
	T.raises(skynet.call, "call to invalid address", s, "lua", "echo")
	skynet.kill(".nosuch") -- unknown names are ignored
end)

T.case("kill_by_name_and_hex_string", function()
	local a = skynet.newservice("probe", ".killme")
	skynet.kill(".killme")
	T.eq(skynet.send(a, "lua", "echo"), nil)
	local b = skynet.newservice("probe")
	skynet.kill(skynet.address(b))
	T.eq(skynet.send(b, "lua", "echo"), nil)
end)

T.case("exit_answers_pending_callers", function()
	local s = skynet.newservice("probe")
	T.raises(skynet.call, "call failed", s, "lua", "exit")
end)

T.case("launch_creates_without_waiting_and_name_register_localname", function()
	local h = skynet.launch("snlua", "probe")
	T.ok(type(h) == "number")
	T.eq(skynet.launch("nosuchmodule"), nil)
	skynet.sleep(5) -- launch does not wait for the start function
	skynet.name(".launched", h)
	T.eq(skynet.localname(".launched"), h)
	skynet.name(".launched", skynet.self()) -- taken: silently ignored
	T.eq(skynet.localname(".launched"), h)
	skynet.name(".another", h) -- a handle may have several names
	T.eq(skynet.call(".another", "lua", "echo", 5), 5)
	T.eq(skynet.localname("nodot"), nil)
	skynet.name("globalx", h)
	T.eq(skynet.call("globalx", "lua", "echo", 6), 6)
	T.raises(skynet.name, "invalid global name", ":bad", h)
	skynet.register(".t_services")
	T.eq(skynet.localname(".t_services"), skynet.self())
	skynet.kill(h)
end)

T.case("address_formats_handles", function()
	T.eq(skynet.address(10), ":0000000a")
	T.eq(skynet.address("x"), "x")
	T.eq(skynet.address(nil), "nil")
	T.eq(skynet.self(), skynet.localname(".t_services") or skynet.self())
end)

T.case("monitor_hears_every_retirement", function()
	local m = skynet.monitor("svc_monitor")
	local a = skynet.newservice("probe")
	local b = skynet.newservice("probe")
	skynet.kill(a)
	skynet.send(b, "lua", "exit")
	T.wait_until(function()
		local dead = skynet.call(m, "lua")
		local seen = {}
		for _, h in ipairs(dead) do
			seen[h] = true
		end
		return seen[a] and seen[b]
	end, 5, "monitor to see both")
end)

T.case("debug_protocol_ping_mem_stat_link", function()
	local s = skynet.newservice("probe")
	T.eq(select("#", skynet.call(s, "debug", "PING")), 0)
	T.ok(skynet.call(s, "debug", "MEM") > 0)
	local st = skynet.call(s, "debug", "STAT")
	T.ok(st.message >= 1 and st.mqlen == 0)
	local link
	skynet.fork(function()
		link = table.pack(pcall(skynet.call, s, "debug", "LINK"))
	end)
	skynet.sleep(2)
	T.eq(link, nil)
	skynet.send(s, "lua", "exit")
	T.wait_until(function()
		return link
	end, 5)
	T.eq(link[1], false, "LINK fails when the service goes away")
end)

T.case("launcher_list_and_kill", function()
	local s = skynet.newservice("probe", "listed")
	local list = skynet.call(".launcher", "lua", "LIST")
	T.eq(list[skynet.address(s)], "snlua probe listed")
	local killed = skynet.call(".launcher", "lua", "KILL", s)
	T.eq(killed[skynet.address(s)], "snlua probe listed")
	T.eq(skynet.send(s, "lua", "echo"), nil)
	T.same(skynet.call(".launcher", "lua", "NOSUCH"), { "Unknown command" })
end)

skynet.start(T.run)
