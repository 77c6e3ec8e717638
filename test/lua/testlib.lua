-- testlib: a tiny test harness for Lua tests that run inside a real node. A test service
-- declares cases with T.case(name, fn) and calls T.run() from skynet.start: each case runs in
-- its own coroutine with a deadline, results are logged as "TEST PASS name" / "TEST FAIL name
-- reason" (read by test/run.py), then "TEST DONE" and the node aborts.
local skynet = require "skynet"

local T = {}
local cases = {}

function T.case(name, fn, timeout_s)
	cases[#cases + 1] = { name = name, fn = fn, timeout = timeout_s or 30 }
end

local function show(v)
	if type(v) == "string" then
		return string.format("%q", v)
	end
	return tostring(v)
end

function T.eq(got, want, what)
	if got ~= want then
		error(string.format("%s: expected %s, got %s", what or "value", show(want), show(got)), 2)
	end
end

function T.ok(v, what)
	if not v then
		error((what or "expected a true value") .. ", got " .. show(v), 2)
	end
	return v
end

function T.near(got, want, tolerance, what)
	if type(got) ~= "number" or math.abs(got - want) > tolerance then
		error(string.format("%s: expected %s +/- %s, got %s", what or "value", show(want),
			show(tolerance), show(got)), 2)
	end
end

-- Run fn and return its error text; fail if it does not raise or the text lacks `pattern`
-- (a plain substring).
function T.raises(fn, pattern, ...)
	local ok, err = pcall(fn, ...)
	if ok then
		error("expected an error" .. (pattern and (" matching '" .. pattern .. "'") or ""), 2)
	end
	err = tostring(err)
	if pattern and not string.find(err, pattern, 1, true) then
		error(string.format("error %s does not contain %s", show(err), show(pattern)), 2)
	end
	return err
end

-- Deep equality for plain values and tables.
function T.same(a, b, path)
	path = path or "value"
	if type(a) ~= type(b) then
		error(string.format("%s: type %s vs %s", path, type(a), type(b)), 2)
	end
	if type(a) ~= "table" then
		if a ~= b and not (a ~= a and b ~= b) then
			error(string.format("%s: %s vs %s", path, show(a), show(b)), 2)
		end
		return
	end
	for k, v in pairs(a) do
		T.same(v, b[k], path .. "." .. tostring(k))
	end
	for k in pairs(b) do
		if a[k] == nil then
			error(path .. "." .. tostring(k) .. ": missing on the left", 2)
		end
	end
end

-- Poll cond() every tick until it is true or `seconds` pass.
function T.wait_until(cond, seconds, what)
	local deadline = skynet.now() + (seconds or 5) * 100
	while not cond() do
		if skynet.now() > deadline then
			error("timed out waiting for " .. (what or "condition"), 2)
		end
		skynet.sleep(1)
	end
end

-- The start of a helper service that tests drive with skynet.call: each "lua" request
-- (cmd, ...) is answered with what cmds[cmd](...) returns.
function T.serve(cmds)
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, cmd, ...)
			skynet.retpack(cmds[cmd](...))
		end)
	end)
end

function T.run()
	for _, case in ipairs(cases) do
		local done, ok, err = false, false, nil
		local waiter = {}
		skynet.fork(function()
			ok, err = xpcall(case.fn, debug.traceback)
			done = true
			skynet.wakeup(waiter)
		end)
		skynet.timeout(case.timeout * 100, function()
			if not done then
				err = "timed out after " .. case.timeout .. " s"
				skynet.wakeup(waiter)
			end
		end)
		skynet.wait(waiter)
		if done and ok then
			skynet.error("TEST PASS " .. case.name)
		else
			skynet.error("TEST FAIL " .. case.name .. " " .. tostring(err))
		end
	end
	skynet.error("TEST DONE")
	skynet.abort()
end

return T
