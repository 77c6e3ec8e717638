-- Coroutines and time: sleep, timeout, wait/wakeup, fork, yield, killthread and the clocks.
local skynet = require "skynet"
local T = require "testlib"

T.case("sleep_waits_about_the_given_ticks", function()
	local t0 = skynet.hpc()
	T.eq(skynet.sleep(20), nil, "sleep returns nothing on timeout")
	local ms = (skynet.hpc() - t0) / 1e6
	T.ok(ms >= 190 and ms < 1000, "slept " .. ms .. " ms for 20 ticks")
end)

T.case("sleep_rejects_fractional_ticks", function()
	T.raises(skynet.sleep, "integer representation", 1.5)
	T.raises(skynet.timeout, "integer representation", 0.5, function() end)
end)

T.case("timeout_runs_function_later_in_new_coroutine", function()
	local ran_at
	local t0 = skynet.hpc()
	local co = skynet.timeout(10, function()
		ran_at = skynet.hpc()
	end)
	T.eq(type(co), "thread")
	T.wait_until(function()
		return ran_at
	end, 5)
	local ms = (ran_at - t0) / 1e6
	T.ok(ms >= 90 and ms < 1000, "timeout fired after " .. ms .. " ms")
end)

T.case("timeouts_fire_in_deadline_order", function()
	local order = {}
	for _, ti in ipairs { 30, 10, 20, 10 } do
		skynet.timeout(ti, function()
			order[#order + 1] = ti
		end)
	end
	T.wait_until(function()
		return #order == 4
	end, 5)
	T.same(order, { 10, 10, 20, 30 })
end)

T.case("fork_runs_after_the_current_handler_with_nil_args_kept", function()
	local seen
	local ran = false
	skynet.fork(function(...)
		seen = table.pack(...)
		ran = true
	end, 1, nil, 3, nil)
	T.eq(ran, false, "fork did not run synchronously")
	skynet.yield()
	T.eq(ran, true)
	T.eq(seen.n, 4)
	T.eq(seen[3], 3)
end)

T.case("fork_fork_timeout0_order", function()
	local order = {}
	skynet.fork(function()
		order[#order + 1] = "fork1"
	end)
	skynet.fork(function()
		order[#order + 1] = "fork2"
	end)
	skynet.timeout(0, function()
		order[#order + 1] = "timeout0"
	end)
	T.wait_until(function()
		return #order == 3
	end, 2)
	T.same(order, { "fork1", "fork2", "timeout0" })
end)

T.case("wakeup_breaks_a_sleep", function()
	local token = {}
	local result, t0 = "pending", skynet.hpc()
	skynet.fork(function()
		result = skynet.sleep(1000, token)
	end)
	skynet.yield()
	T.eq(skynet.wakeup(token), true)
	T.eq(skynet.wakeup(token), true, "second wakeup before the sleeper runs is harmless")
	T.wait_until(function()
		return result ~= "pending"
	end, 2)
	T.eq(result, "BREAK")
	T.ok((skynet.hpc() - t0) / 1e9 < 5, "woke early")
	T.eq(skynet.wakeup(token), nil, "nobody sleeps on the token any more")
end)

T.case("duplicate_sleep_token_raises", function()
	local token = "tok"
	skynet.fork(function()
		skynet.sleep(50, token)
	end)
	skynet.yield()
	T.raises(skynet.sleep, "token duplicative", 1, token)
	skynet.wakeup(token)
end)

T.case("wait_returns_after_wakeup", function()
	local co_token = {}
	local woke = false
	skynet.fork(function()
		local r = skynet.wait(co_token)
		T.eq(r, nil)
		woke = true
	end)
	skynet.yield()
	T.eq(woke, false)
	skynet.wakeup(co_token)
	T.wait_until(function()
		return woke
	end, 2)
end)

T.case("wakeup_of_a_non_sleeper_returns_nil", function()
	T.eq(skynet.wakeup({}), nil)
end)

T.case("killthread_cancels_a_sleeping_coroutine", function()
	local finished = false
	local co = skynet.fork(function()
		skynet.sleep(20)
		finished = true
	end)
	skynet.yield()
	T.eq(skynet.killthread(co), co)
	skynet.sleep(40)
	T.eq(finished, false, "killed coroutine never resumed")
	T.eq(skynet.killthread(co), nil, "second kill finds nothing")
end)

T.case("killthread_removes_a_queued_fork", function()
	local ran = false
	local co = skynet.fork(function()
		ran = true
	end)
	T.eq(skynet.killthread(co), co)
	skynet.yield()
	T.eq(ran, false)
end)

T.case("now_time_starttime_hpc", function()
	local n1 = skynet.now()
	skynet.sleep(10)
	local n2 = skynet.now()
	T.ok(n2 - n1 >= 9 and n2 - n1 < 100, "now advanced " .. (n2 - n1) .. " ticks")
	T.ok(math.abs(skynet.time() - os.time()) < 2, "time() tracks the wall clock")
	T.ok(skynet.starttime() <= os.time() and skynet.starttime() > os.time() - 600)
	T.eq(skynet.starttime(), math.floor(skynet.starttime()), "starttime is an integer")
	local h1 = skynet.hpc()
	local h2 = skynet.hpc()
	T.ok(h2 >= h1 and h1 > 0, "hpc is monotonic nanoseconds")
end)

T.case("genid_gives_fresh_sessions", function()
	local a, b = skynet.genid(), skynet.genid()
	T.ok(a > 0 and b > 0 and a ~= b)
end)

T.case("task_counts_waiting_sessions", function()
	local before = skynet.task()
	local co = skynet.fork(function()
		skynet.sleep(100)
	end)
	skynet.yield()
	T.eq(skynet.task(), before + 1)
	local session = skynet.task(co)
	T.ok(type(session) == "number", "task(co) gives the session")
	T.ok(skynet.task(session):find("sleep", 1, true), "task(session) gives a traceback")
	T.eq(skynet.task(-5), "No session")
	local t = {}
	skynet.task(t)
	T.ok(next(t) ~= nil)
	skynet.killthread(co)
end)

T.case("yield_lets_queued_messages_run", function()
	local ran = false
	skynet.timeout(0, function()
		ran = true
	end)
	skynet.yield()
	T.eq(ran, true)
end)

skynet.start(T.run)
