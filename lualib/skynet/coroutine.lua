-- skynet.coroutine: coroutines a service may create and resume itself while their bodies still
-- call, sleep and wait through skynet. A skynet suspension inside such a coroutine (anything it
-- yields other than through this module's yield) is passed up to the skynet thread that resumed
-- it, and the answer is passed back down; meanwhile the coroutine's status reads "blocked".
local coroutine = coroutine
local resume, yield, status, running = coroutine.resume, coroutine.yield, coroutine.status,
	coroutine.running
local select = select

local co = {
	running = running,
	isyieldable = coroutine.isyieldable,
}

-- ours[co]: true while it may be resumed, false while it waits inside skynet
local ours = setmetatable({}, { __mode = "k" })
local root = setmetatable({}, { __mode = "k" }) -- co -> the skynet thread that resumed it

function co.create(f)
	local thread = coroutine.create(f)
	ours[thread] = true
	return thread
end

local after

-- skynet answered what the coroutine waits for: hand the answer down to it
local function resumed(thread, ...)
	ours[thread] = true
	return after(thread, resume(thread, ...))
end

-- The coroutine stopped with resume's results (ok, ...): it failed, finished, yielded to us, or
-- is suspended inside skynet; then pass the suspension up to our own resumer.
function after(thread, ok, ...)
	if not ok or status(thread) == "dead" then
		ours[thread] = nil
		return ok, ...
	end
	if (...) == "USER" then
		return true, select(2, ...)
	end
	ours[thread] = false
	return resumed(thread, yield(...))
end

function co.resume(thread, ...)
	local state = ours[thread]
	if not state then
		if state == false then
			return false, "cannot resume a skynet coroutine suspend by skynet framework"
		end
		if status(thread) == "dead" then
			return resume(thread, ...)
		end
		return false, "cannot resume none skynet coroutine"
	end
	local from = running()
	root[thread] = root[from] or from
	return after(thread, resume(thread, ...))
end

-- thread(co): the skynet thread co runs under and false, or co itself and true when co is a
-- skynet thread (co defaults to the running coroutine)
function co.thread(thread)
	thread = thread or running()
	if ours[thread] ~= nil then
		return root[thread], false
	end
	return thread, true
end

function co.status(thread)
	local s = status(thread)
	if s == "suspended" and ours[thread] == false then
		return "blocked"
	end
	return s
end

function co.yield(...)
	return yield("USER", ...)
end

local function unwrap(ok, ...)
	if ok then
		return ...
	end
	error((...), 0)
end

function co.wrap(f)
	local thread = co.create(f)
	return function(...)
		return unwrap(co.resume(thread, ...))
	end
end

return co
