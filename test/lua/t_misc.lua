-- Environment, logging, serialisation helpers, protocols, stats and tracing.
local skynet = require "skynet"
require "skynet.manager"
local T = require "testlib"

T.case("getenv_reads_ini_keys_and_skynet_aliases", function()
	T.eq(skynet.getenv("name"), "test")
	T.eq(skynet.getenv("nodename"), "test")
	T.eq(skynet.getenv("threads"), "4")
	T.eq(skynet.getenv("thread"), "4")
	T.eq(skynet.getenv("node.threads"), "4")
	T.eq(skynet.getenv("start"), "t_misc")
	T.ok(skynet.getenv("luaservice"):find("/test/lua/?.lua", 1, true))
	T.ok(skynet.getenv("lua_path"):find("lualib/?.lua", 1, true))
	T.eq(skynet.getenv("harbor"), "0")
	T.ok(skynet.getenv("test_tmp") ~= nil, "[env] keys are visible")
	T.eq(skynet.getenv("no_such_key"), nil)
end)

T.case("setenv_sets_once", function()
	skynet.setenv("t_misc_key", 42)
	T.eq(skynet.getenv("t_misc_key"), "42")
	T.raises(skynet.setenv, "Can't setenv exist key : t_misc_key", "t_misc_key", "again")
end)

T.case("error_logs_joined_arguments", function()
	skynet.error("t_misc", "log", 1, nil, true)
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	T.ok(log:find("[:" .. string.format("%08x", skynet.self()) .. "] t_misc log 1 nil true", 1, true),
		"log line present")
end)

T.case("pack_unpack_packstring_tostring_trash", function()
	local msg, sz = skynet.pack(1, "two", { three = 3 }, nil)
	T.eq(type(msg), "userdata")
	local a, b, c, d = skynet.unpack(msg, sz)
	T.eq(a, 1)
	T.eq(b, "two")
	T.eq(c.three, 3)
	T.eq(d, nil)
	T.eq(skynet.tostring(msg, sz), skynet.packstring(1, "two", { three = 3 }, nil))
	skynet.trash(msg, sz)
	T.eq(skynet.packstring(1, "a", nil, true), "\10\1\12a\0\9")
	T.eq(select("#", skynet.unpack("")), 0)
	T.raises(skynet.unpack, "Invalid serialize stream", "\7")
	T.raises(skynet.trash, "skynet.trash invalid param", {})
	T.eq(skynet.tostring(nil), nil)
end)

T.case("register_protocol_and_dispatch", function()
	T.raises(skynet.register_protocol, "assertion failed", { name = "lua", id = 200 })
	skynet.register_protocol {
		name = "t_misc_proto",
		id = 200,
		pack = function(s)
			return s
		end,
		unpack = skynet.tostring,
	}
	local prev = skynet.dispatch("t_misc_proto", function(_, _, text)
		skynet.ret(text:upper())
	end)
	T.eq(prev, nil)
	T.ok(skynet.dispatch("t_misc_proto") ~= nil)
	T.eq(skynet.dispatch("no_such_proto"), nil)
	T.eq(skynet.call(skynet.self(), "t_misc_proto", "shout"), "SHOUT")
end)

T.case("unknown_request_and_response_handlers", function()
	local seen
	local prev = skynet.dispatch_unknown_request(function(_, _, _, _, proto)
		seen = proto
	end)
	T.ok(type(prev) == "function")
	skynet.send(skynet.self(), "lua", "x") -- "lua" is registered but has no dispatch here
	skynet.sleep(1)
	T.eq(seen, "lua")
	skynet.dispatch_unknown_request(prev)
end)

T.case("mqlen_and_stat", function()
	local p = skynet.newservice("probe")
	T.eq(skynet.call(p, "lua", "mqlen"), 0)
	T.ok(skynet.call(p, "lua", "stat", "message") >= 1)
	T.eq(skynet.call(p, "lua", "stat", "unknown"), 0)
	T.ok(skynet.call(p, "lua", "stat", "cpu") >= 0)
	T.eq(skynet.mqlen(), 0)
	skynet.kill(p)
end)

T.case("trace_tags_calls_and_tracetag", function()
	T.eq(skynet.tracetag(), nil)
	local p = skynet.newservice("probe")
	skynet.trace("unit")
	local tag = skynet.tracetag()
	T.ok(tag and tag:match "^:%x+%-%d+$", "tag " .. tostring(tag))
	skynet.call(p, "lua", "echo", 1)
	skynet.sleep(1)
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	local etag = tag:gsub("%p", "%%%0")
	T.ok(log:find("<TRACE " .. etag .. "> %d+ trace unit"), "trace line")
	T.ok(log:find("<TRACE " .. etag .. "> %d+ request"), "callee logs the request under the tag")
	skynet.kill(p)
end)

T.case("forward_type_and_filter_services", function()
	local f = skynet.newservice("svc_forward")
	T.eq(skynet.call(f, "lua", "ping"), "forwarded:ping")
	skynet.kill(f)
end)

T.case("filter_rewrites_messages_before_dispatch", function()
	local f = skynet.newservice("svc_filter")
	local cmd, marker = skynet.call(f, "lua", "hello")
	T.eq(cmd, "hello")
	T.eq(marker, "filtered")
	skynet.kill(f)
end)

T.case("endless_service_is_reported_by_the_monitor", function()
	local p = skynet.newservice("probe")
	local stuck = skynet.call(p, "lua", "busy", 6.5)
	T.eq(stuck, true, "skynet.endless() is set after 5 s in one message")
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	T.ok(log:find(string.format("to [ :%08x ] maybe in an endless loop", p), 1, true), "log line")
	skynet.kill(p)
end, 30)

T.case("handler_error_is_logged_with_skynet_header", function()
	local p = skynet.newservice("probe")
	pcall(skynet.call, p, "lua", "fail", "logged-boom")
	skynet.sleep(1)
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	T.ok(log:find(string.format("lua call %%[%x to :%x : %%d+ msgsz = %%d+%%] error : [^\n]-logged%%-boom",
		skynet.self(), p)), "handler error line")
	T.ok(not log:find("\27", 1, true), "no colour codes in a log file")
	skynet.kill(p)
end)

T.case("forgot_response_is_logged", function()
	local p = skynet.newservice("probe")
	pcall(skynet.call, p, "lua", "noreply")
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	T.ok(log:find("Maybe forgot response session", 1, true))
	skynet.kill(p)
end)

skynet.start(T.run)
