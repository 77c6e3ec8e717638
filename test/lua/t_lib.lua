-- Coroutine and control libraries: skynet.queue, skynet.coroutine, skynet.profile,
-- skynet.request/select, skynet.trace_timeout, skynet.service.
local skynet = require "skynet"
local T = require "testlib"

local slave

local function answers(reqs, ti)
	local got = {}
	for req, resp in reqs:select(ti) do
		got[#got + 1] = { req = req, resp = resp }
	end
	return got
end

T.case("select_iterates_answers_in_arrival_order", function()
	local got = answers(skynet.request
		{ slave, "lua", "ping", 3, "three" }
		{ slave, "lua", "ping", 1, "one", tag = "x" }
		{ slave, "lua", "ping", 2, "two" })
	T.eq(#got, 3)
	T.eq(got[1].resp[1], "one")
	T.eq(got[1].resp.n, 1)
	T.eq(got[1].req.tag, "x")
	T.eq(got[2].resp[1], "two")
	T.eq(got[3].resp[1], "three")
end)

T.case("select_reports_errors_and_bad_addresses_per_request", function()
	local reqs = skynet.request()
	reqs:add { slave, "lua", "fail" }
	reqs:add { ".no_such_service", "lua", "ping", 0, "x" }
	reqs:add { slave, "lua", "ping", 1, "fine" }
	local got = answers(reqs)
	T.eq(#got, 3)
	T.eq(got[1].req[1], ".no_such_service", "bad addresses come first")
	T.eq(got[1].resp, nil)
	T.eq(got[2].resp, false, "the failed request")
	T.eq(got[2].req[3], "fail")
	T.eq(got[3].resp[1], "fine")
	T.eq(reqs.timeout, nil)
end)

T.case("select_timeout_stops_the_loop_and_drops_late_answers", function()
	local reqs = skynet.request { slave, "lua", "ping", 1, "quick" } { slave, "lua", "ping", 60, "late" }
	local got = answers(reqs, 20)
	T.eq(#got, 1)
	T.eq(got[1].resp[1], "quick")
	T.eq(reqs.timeout, true)
	skynet.sleep(60) -- the late answer arrives and is dropped (no "Unknown session" error)
	T.eq(skynet.call(slave, "lua", "ping", 0, "still fine"), "still fine")
	T.raises(function()
		reqs:select()
	end, "select more than once")
	T.raises(function()
		reqs:add { slave, "lua", "ping", 0, "x" }
	end, "add a table before select")
end)

T.case("select_close_abandons_the_rest", function()
	local before = skynet.task()
	local reqs = skynet.request { slave, "lua", "ping", 1, "a" } { slave, "lua", "ping", 30, "b" }
	local iter = reqs:select()
	T.eq(select(2, iter())[1], "a")
	reqs:close()
	skynet.sleep(40)
	T.eq(skynet.task(), before, "no session left waiting")
end)

T.case("queue_serialises_and_is_reentrant", function()
	local cs = require "skynet.queue"()
	local log = {}
	local function worker(name, ticks)
		cs(function()
			log[#log + 1] = name .. " in"
			skynet.sleep(ticks)
			cs(function() -- re-entered by the same coroutine: no deadlock
				log[#log + 1] = name .. " nested"
			end)
			log[#log + 1] = name .. " out"
		end)
	end
	local done = 0
	for i, name in ipairs { "a", "b", "c" } do
		skynet.fork(function()
			worker(name, 4 - i)
			done = done + 1
		end)
	end
	T.wait_until(function()
		return done == 3
	end)
	T.eq(table.concat(log, ","), "a in,a nested,a out,b in,b nested,b out,c in,c nested,c out")
	T.eq(cs(function(x, y)
		return x + y, "r"
	end, 1, 2), 3)
	T.raises(cs, "boom", function()
		error "boom"
	end)
	T.eq(cs(function()
		return "released after an error"
	end), "released after an error")
end)

T.case("coroutine_blocks_inside_skynet_and_yields_to_its_resumer", function()
	local co = require "skynet.coroutine"
	local inner = co.create(function(a)
		local b = co.yield(a + 1)
		T.eq(skynet.call(slave, "lua", "ping", 1, "from inner"), "from inner")
		return b * 2
	end)
	T.eq(co.status(inner), "suspended")
	local ok, v = co.resume(inner, 1)
	T.eq(ok, true)
	T.eq(v, 2)
	local status_while_blocked
	skynet.fork(function()
		status_while_blocked = co.status(inner)
		local ok2, err = co.resume(inner)
		T.eq(ok2, false)
		T.eq(err, "cannot resume a skynet coroutine suspend by skynet framework")
	end)
	ok, v = co.resume(inner, 5)
	T.eq(status_while_blocked, "blocked")
	T.eq(ok, true)
	T.eq(v, 10)
	T.eq(co.status(inner), "dead")
	local main, ismain = co.thread()
	T.eq(main, coroutine.running())
	T.eq(ismain, true)
	T.same({ co.resume(coroutine.running()) }, { false, "cannot resume none skynet coroutine" })
	local w = co.wrap(function()
		local t, im = co.thread()
		co.yield(t, im)
		error("wrapped", 0)
	end)
	local t, im = w()
	T.eq(t, coroutine.running())
	T.eq(im, false)
	T.raises(w, "wrapped")
end)

T.case("coroutine_yield_outside_resume_is_an_error", function()
	local co = require "skynet.coroutine"
	local ok = true
	skynet.fork(function()
		co.yield "stray"
		ok = "resumed"
	end)
	skynet.sleep(1)
	T.eq(ok, true, "the forked coroutine was stopped")
	local log = io.open(skynet.getenv("test_tmp") .. "/node.log"):read("*a")
	T.ok(log:find("Call skynet.coroutine.yield out of skynet.coroutine.resume", 1, true), "error logged")
end)

T.case("profile_excludes_suspended_time", function()
	local profile = require "skynet.profile"
	profile.start()
	skynet.sleep(30)
	local busy = 0
	for i = 1, 1e5 do
		busy = busy + i
	end
	local t = profile.stop()
	T.ok(type(t) == "number" and t >= 0 and t < 0.3, "the 0.3 s asleep is not counted: " .. tostring(t))
	T.raises(profile.stop, "Call profile.start() before profile.stop()")
	profile.start()
	T.raises(profile.start, "start profile more than once")
	profile.stop()
end)

T.case("trace_timeout_records_where_a_timeout_was_set", function()
	skynet.trace_timeout(true)
	local fired = false
	skynet.timeout(5, function()
		fired = true
	end)
	local info = {}
	skynet.task(info)
	skynet.trace_timeout(false)
	local found
	for key, trace in pairs(info) do
		if trace:find("^TIMER %d+%+5 : ") then
			found = trace
			T.ok(key:find(" session: ", 1, true), "key names the session")
		end
	end
	T.ok(found and found:find("t_lib.lua", 1, true), "the trace names this file")
	T.wait_until(function()
		return fired
	end)
end)

T.case("killthread_through_the_interface", function()
	local before = skynet.task()
	local co = skynet.fork(function() end)
	T.eq(skynet.killthread(co), co, "a queued fork is removed")
	local sleeper_done = false
	local sleeper = skynet.fork(function()
		skynet.sleep(1000)
		sleeper_done = true
	end)
	skynet.yield()
	T.eq(skynet.task(sleeper) ~= nil, true)
	T.eq(skynet.killthread(tostring(sleeper):match("0x%x+")), sleeper)
	T.eq(skynet.task(sleeper), nil)
	T.eq(skynet.killthread(sleeper), nil, "not waiting any more")
	local waiter = skynet.fork(function()
		skynet.wait()
	end)
	skynet.yield()
	T.eq(skynet.killthread(waiter), waiter)
	T.eq(skynet.task(), before)
	T.eq(sleeper_done, false)
end)

local function kv_main(greeting)
	local sk = require "skynet"
	local db = {}
	sk.start(function()
		sk.dispatch("lua", function(_, _, cmd, k, v)
			if cmd == "set" then
				db[k] = v
				sk.ret()
			else
				sk.retpack(db[k], greeting)
			end
		end)
	end)
end

T.case("service_new_query_close", function()
	local service = require "skynet.service"
	local addr = service.new("t_lib_kv", kv_main, "hi")
	T.eq(type(addr), "number")
	T.eq(service.new("t_lib_kv", kv_main, "ignored"), addr, "one service per name")
	T.eq(service.query("t_lib_kv"), addr)
	skynet.call(addr, "lua", "set", "k", 42)
	T.same({ skynet.call(addr, "lua", "get", "k") }, { 42, "hi" })
	local queried
	skynet.fork(function()
		queried = service.query("t_lib_later")
	end)
	skynet.sleep(1)
	T.eq(queried, nil, "query waits for the service")
	local later = service.new("t_lib_later", kv_main)
	T.wait_until(function()
		return queried ~= nil
	end)
	T.eq(queried, later)
	T.eq(service.close("t_lib_kv"), true)
	T.eq(service.close("t_lib_kv"), false)
	T.raises(skynet.call, "call to invalid address", addr, "lua", "get", "k")
	local up = 1
	T.raises(service.new, "must not use upvalues", "t_lib_bad", function()
		return up
	end)
	T.raises(service.new, "failed", "t_lib_raises", function()
		error "cell boom"
	end)
	T.raises(service.query, "cell boom", "t_lib_raises")
end)

skynet.start(function()
	slave = skynet.newservice("lib_slave")
	T.run()
end)
