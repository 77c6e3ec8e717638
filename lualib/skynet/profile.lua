-- skynet.profile: time spent running a coroutine, its suspensions excluded. start() marks the
-- running coroutine, stop() returns seconds (float). skyjet measures with the monotonic clock
-- while the coroutine runs (Skynet reads the thread CPU clock). Requiring this module makes
-- skynet.lua's resumes go through `timed` (no cost for services that never load it).
local skynet = require "skynet"

local hpc, running = skynet.hpc, coroutine.running

local total = setmetatable({}, { __mode = "k" }) -- profiled co -> ns of finished runs
local since = setmetatable({}, { __mode = "k" }) -- profiled co -> hpc when its run began

local function run_ended(co, ...)
	local t0 = since[co]
	if t0 then
		total[co] = total[co] + (hpc() - t0)
		since[co] = nil
	end
	return ...
end

skynet._wrap_resume(function(resume)
	return function(co, ...)
		if total[co] then
			since[co] = hpc()
		end
		return run_ended(co, resume(co, ...))
	end
end)

local profile = {}

function profile.start(co)
	co = co or running()
	if total[co] then
		error(string.format("Thread %s start profile more than once", tostring(co)), 2)
	end
	total[co] = 0
	since[co] = hpc()
end

function profile.stop(co)
	co = co or running()
	local t = total[co]
	if t == nil then
		error("Call profile.start() before profile.stop()", 2)
	end
	if since[co] then
		t = t + (hpc() - since[co])
	end
	total[co], since[co] = nil, nil
	return t / 1e9
end

return profile
