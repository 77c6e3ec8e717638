-- skynet.queue: queue() returns a critical section cs; cs(f, ...) runs f(...) once no other
-- coroutine is inside cs, in arrival order, and returns f's results (f's error is raised again
-- after the section is released). Re-entrant: f may call cs again from the same coroutine.
local skynet = require "skynet"

local running, tremove, traceback = coroutine.running, table.remove, debug.traceback

return function()
	local owner -- the coroutine inside, and how many times it entered
	local depth = 0
	local waiting = {}

	local function leave(ok, ...)
		depth = depth - 1
		if depth == 0 then
			owner = tremove(waiting, 1) -- handed over before anyone else can enter
			if owner then
				skynet.wakeup(owner)
			end
		end
		if not ok then
			error((...), 0)
		end
		return ...
	end

	return function(f, ...)
		local co = running()
		if owner == nil then
			owner = co
		elseif owner ~= co then
			waiting[#waiting + 1] = co
			skynet.wait(co)
		end
		depth = depth + 1
		return leave(xpcall(f, traceback, ...))
	end
end
