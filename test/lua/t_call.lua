-- Calls, sends and answers between services: what callers see in every situation.
local skynet = require "skynet"
local T = require "testlib"

T.case("call_returns_all_reply_values", function()
	local p = skynet.newservice("probe")
	local a, b, c, n = skynet.call(p, "lua", "echo", 1, "two", { 3 }, nil)
	T.eq(a, 1)
	T.eq(b, "two")
	T.eq(c[1], 3)
	T.eq(n, nil)
	T.eq(select("#", skynet.call(p, "lua", "echo")), 0, "empty reply gives zero values")
	skynet.kill(p)
end)

T.case("call_to_missing_handle_raises_invalid_address", function()
	T.raises(skynet.call, "call to invalid address :00777777", 0x777777, "lua", "x")
	T.raises(skynet.call, "call to invalid address .nosuch", ".nosuch", "lua", "x")
	T.raises(skynet.call, "Invalid service address 0", 0, "lua", "x")
	T.raises(skynet.call, "dest address type (nil) must be a string or number.", nil, "lua", "x")
end)

T.case("error_in_handler_reaches_caller_and_callee_lives", function()
	local p = skynet.newservice("probe")
	local err = T.raises(skynet.call, "call failed", p, "lua", "fail", "boom in handler")
	T.ok(err:find("boom in handler", 1, true), "callee's message is carried: " .. err)
	T.raises(skynet.call, "call failed", p, "lua", "fail_table")
	T.eq(skynet.call(p, "lua", "echo", "alive"), "alive", "callee still answers")
	skynet.kill(p)
end)

T.case("handler_returning_without_answer_fails_the_caller", function()
	local p = skynet.newservice("probe")
	T.raises(skynet.call, "call failed", p, "lua", "noreply")
	skynet.kill(p)
end)

T.case("callee_exit_mid_request_fails_the_caller", function()
	local p = skynet.newservice("probe")
	T.raises(skynet.call, "call failed", p, "lua", "exit")
	-- the callee answers its callers before it retires (as Skynet does), so a call made right
	-- away may still be queued to it: it fails either way ("call failed" or "invalid address")
	local err = T.raises(skynet.call, nil, p, "lua", "echo")
	T.ok(err:find("call failed", 1, true) or err:find("call to invalid address", 1, true), err)
	skynet.sleep(1)
	T.raises(skynet.call, "call to invalid address", p, "lua", "echo")
end)

T.case("callee_killed_while_handler_sleeps_fails_the_caller", function()
	local p = skynet.newservice("probe")
	local result
	skynet.fork(function()
		result = table.pack(pcall(skynet.call, p, "lua", "sleep", 1000))
	end)
	skynet.sleep(5)
	skynet.kill(p)
	T.wait_until(function()
		return result ~= nil
	end, 5, "the caller to be answered")
	T.eq(result[1], false)
	T.ok(tostring(result[2]):find("call failed", 1, true), tostring(result[2]))
end)

T.case("queued_requests_of_a_killed_service_fail", function()
	local p = skynet.newservice("probe")
	local results = {}
	for i = 1, 5 do
		skynet.fork(function()
			results[i] = pcall(skynet.call, p, "lua", "sleep", 100)
		end)
	end
	skynet.sleep(2)
	skynet.kill(p)
	T.wait_until(function()
		return #results == 5
	end, 5, "all five callers")
	for i = 1, 5 do
		T.eq(results[i], false, "caller " .. i)
	end
end)

T.case("service_exiting_with_several_calls_pending_fails_every_caller", function()
	local p = skynet.newservice("probe")
	local results = {}
	for i = 1, 3 do
		skynet.fork(function()
			results[i] = table.pack(pcall(skynet.call, p, "lua", "sleep", 100))
		end)
	end
	skynet.sleep(2)
	skynet.send(p, "lua", "exit")
	T.wait_until(function()
		return results[1] and results[2] and results[3]
	end, 5, "all three callers")
	for i = 1, 3 do
		T.eq(results[i][1], false, "caller " .. i)
		T.ok(tostring(results[i][2]):find("call failed", 1, true), tostring(results[i][2]))
	end
end)

T.case("response_closure_answers_later_and_once", function()
	local p = skynet.newservice("probe")
	local a, b = skynet.call(p, "lua", "later", 2, "x", "y")
	T.eq(a, "x")
	T.eq(b, "y")
	T.raises(skynet.call, "call failed", p, "lua", "later_fail", 1)
	skynet.kill(p)
end)

T.case("response_closure_test_and_double_use", function()
	local s = skynet.newservice("call_helper")
	T.eq(skynet.call(s, "lua", "double"), true)
	skynet.kill(s)
end)

T.case("held_response_fails_when_callee_exits", function()
	local p = skynet.newservice("probe")
	local done
	skynet.fork(function()
		done = table.pack(pcall(skynet.call, p, "lua", "hold"))
	end)
	skynet.sleep(2)
	T.eq(skynet.call(p, "lua", "test_held"), true, "closure reports the answer is owed")
	skynet.send(p, "lua", "exit")
	T.wait_until(function()
		return done
	end, 5)
	T.eq(done[1], false)
end)

T.case("ignoreret_leaves_no_answer_and_no_error", function()
	local p = skynet.newservice("probe")
	local finished
	skynet.fork(function()
		finished = table.pack(pcall(skynet.call, p, "lua", "ignore"))
	end)
	skynet.sleep(20)
	T.eq(finished, nil, "caller still waiting")
	-- ignoreret gives up the answer for good; the caller releases itself with term
	skynet.kill(p)
	skynet.term(p)
	T.wait_until(function()
		return finished
	end, 5)
	T.eq(finished[1], false)
end)

T.case("second_ret_raises_no_session", function()
	local p = skynet.newservice("probe")
	T.eq(skynet.call(p, "lua", "twice"), 1)
	skynet.kill(p)
end)

T.case("ret_without_session_raises", function()
	T.raises(skynet.ret, "No session")
	T.raises(skynet.response, "no session")
end)

T.case("sends_arrive_in_send_order", function()
	local p = skynet.newservice("probe")
	for i = 1, 10000 do
		skynet.send(p, "lua", "record", i)
	end
	local got = skynet.call(p, "lua", "records")
	T.eq(#got, 10000)
	for i = 1, 10000 do
		if got[i] ~= i then
			error("message " .. i .. " arrived as " .. tostring(got[i]))
		end
	end
	skynet.kill(p)
end)

T.case("send_to_missing_returns_nil_and_send_returns_session_zero", function()
	T.eq(skynet.send(0x777777, "lua", "x"), nil)
	T.eq(skynet.send(".nosuch", "lua", "x"), nil)
	local p = skynet.newservice("probe")
	T.eq(skynet.send(p, "lua", "record", 1), 0)
	skynet.kill(p)
end)

T.case("rawcall_and_rawsend_carry_packed_bytes", function()
	local p = skynet.newservice("probe")
	local msg, sz = skynet.rawcall(p, "lua", skynet.pack("echo", "raw", 7))
	local a, b = skynet.unpack(msg, sz)
	T.eq(a, "raw")
	T.eq(b, 7)
	T.eq(skynet.rawsend(p, "lua", skynet.packstring("record", "r1")), 0)
	T.eq(skynet.call(p, "lua", "records")[1], "r1")
	T.raises(skynet.rawcall, "call to invalid address", 0x777777, "lua", skynet.packstring("x"))
	skynet.kill(p)
end)

T.case("redirect_forges_source_and_session", function()
	local p = skynet.newservice("probe")
	-- Ask p to echo, but forge the request so that the answer goes to a session we wait on.
	local session = skynet.genid()
	T.ok(session > 0)
	local r = skynet.redirect(p, skynet.self(), "lua", 0, skynet.pack("record", "redirected"))
	T.eq(r, 0)
	T.eq(skynet.call(p, "lua", "records")[1], "redirected")
	skynet.kill(p)
end)

T.case("call_chain_through_a_middle_service", function()
	local a = skynet.newservice("probe")
	local b = skynet.newservice("probe")
	T.eq(skynet.call(a, "lua", "call", b, "echo", "deep"), "deep")
	local ok, err = skynet.call(a, "lua", "pcall", b, "fail", "inner")
	T.eq(ok, false)
	T.ok(tostring(err):find("call failed", 1, true))
	skynet.kill(a)
	skynet.kill(b)
end)

T.case("concurrent_calls_from_many_coroutines", function()
	local p = skynet.newservice("probe")
	local n, done = 200, 0
	for i = 1, n do
		skynet.fork(function()
			local v = skynet.call(p, "lua", "later", i % 3, i)
			T.eq(v, i)
			done = done + 1
		end)
	end
	T.wait_until(function()
		return done == n
	end, 10)
	skynet.kill(p)
end)

T.case("term_fails_calls_pending_on_a_service", function()
	local p = skynet.newservice("probe")
	local res
	skynet.fork(function()
		res = table.pack(pcall(skynet.call, p, "lua", "hold"))
	end)
	skynet.sleep(2)
	skynet.term(p)
	T.wait_until(function()
		return res
	end, 5)
	T.eq(res[1], false)
	skynet.kill(p)
end)

T.case("unknown_protocol_request_fails_the_caller", function()
	local p = skynet.newservice("probe")
	T.raises(skynet.call, "call failed", p, "debug", "NOSUCHCMD")
	T.eq(skynet.call(p, "debug", "SUPPORT", "lua"), true)
	T.eq(skynet.call(p, "debug", "SUPPORT", "text"), false)
	skynet.kill(p)
end)

skynet.start(T.run)
