-- skynet/internal: the functions through which the lazily loaded parts of the skynet API
-- (skynet/extra.lua, skynet/runtime.lua, skynet/inspect.lua, skynet/select.lua) reach skynet.lua's session state.
-- skynet.lua hands over its state tables and a few accessors in `S` on the first access to a
-- lazy name; an idle service never loads this file.
local pairs, type = pairs, type

return function(S)
	local I = S
	local waiting_co, owed_session, owed_to = S.waiting_co, S.owed_session, S.owed_to
	local trace_tag_of, open_responses, callee_of = S.trace_tag_of, S.open_responses, S.callee_of
	local sleep_session, sleep_timer, fork_queue = S.sleep_session, S.sleep_timer, S.fork_queue
	local c_send, canceltimer, PTYPE_ERROR = S.c_send, S.canceltimer, S.PTYPE_ERROR

	-- The requester a response closure owes an answer to (nil once answered or gone);
	-- `address` records it, false forgets it.
	function I.owed(response, address)
		if address ~= nil then
			open_responses[response] = address or nil
		end
		return open_responses[response]
	end

	-- f(session, co) for each coroutine waiting on a session (call, sleep, wait, timeout), then
	-- f(nil, co) for each fork not yet run, until f returns a value, which is returned
	function I.each(f)
		local r
		for session, co in pairs(waiting_co) do
			r = type(co) == "thread" and f(session, co)
			if r then
				return r
			end
		end
		for i = fork_queue.h, fork_queue.t do
			r = fork_queue[i] and f(nil, fork_queue[i])
			if r then
				return r
			end
		end
	end

	-- the waiting session of a fork not yet run is none: drop it from the queue
	local function unqueue(co)
		local t = fork_queue.t
		for i = fork_queue.h, t do
			if fork_queue[i] == co then
				for j = i, t - 1 do
					fork_queue[j] = fork_queue[j + 1]
				end
				fork_queue[t], fork_queue.t = nil, t - 1
				return true
			end
		end
	end

	-- Cancel a coroutine (killthread): a fork not yet run leaves the queue; a waiting one has its
	-- request, if any, answered with an ERROR, what it waits for abandoned (a late answer or
	-- timer is dropped) and its sleep token released. Returns co, or nil if neither.
	function I.cancel(co)
		if unqueue(co) then
			return co
		end
		local session = I.each(function(s, thr)
			return s and thr == co and s
		end)
		if not session then
			return nil
		end
		local req, addr = owed_session[co], owed_to[co]
		if req and req ~= 0 and addr then
			c_send(addr, PTYPE_ERROR, req, "killed")
		end
		owed_session[co], owed_to[co] = nil, nil
		trace_tag_of[co] = nil
		callee_of[session] = nil
		local timer, waits = sleep_timer[session], false
		sleep_timer[session] = nil
		for token, s in pairs(sleep_session) do
			if s == session then
				sleep_session[token] = nil
				waits = timer == nil -- skynet.wait: no message will come
			end
		end
		if waits or (timer and timer ~= 0 and canceltimer(timer)) then
			waiting_co[session] = nil
		else
			waiting_co[session] = "BREAK"
		end
		return co
	end

	-- The request co must answer: session (0 = a send) and requester; `unbind` drops it unanswered.
	function I.request(co, unbind)
		local session, address = owed_session[co], owed_to[co]
		if unbind then
			owed_session[co] = nil
		end
		return session, address
	end

	-- co's trace tag; with `tag`, sets it first
	function I.tag(co, tag)
		if tag then
			trace_tag_of[co] = tag
		end
		return trace_tag_of[co]
	end

	-- where a pending timeout coroutine was set (skynet.trace_timeout), or nil
	function I.timeout_origin(co)
		local origin = S.var "timeout_origin"
		return origin and origin[co]
	end

	-- act as if `address` had said it is gone (skynet.term)
	function I.callee_gone(address)
		S.gone(address)
		S.dispatch_error_queue()
	end

	return I
end
