-- skynet/inspect: the introspection part of the skynet API (tasks, killthread, tracing, stat,
-- unknown-message hooks, the profile hook). skynet.lua loads it on the first access to one of
-- these names (the list in skynet.lua's `parts`); it reaches the session state only through the
-- functions skynet.lua and skynet/internal.lua hand it in `I`.
local c = require "skynet.core"

local format = string.format

return function(skynet, I)
	local proto = skynet.proto
	local trace_counter = 0

	local function running()
		return (I.now())
	end

	-- each waiting coroutine: f(session, co) until f returns a value
	local function each_waiter(f)
		return I.each(function(session, co)
			return session and f(session, co)
		end)
	end

	function skynet.killthread(co)
		if type(co) == "string" then -- the first waiting or forked coroutine it names
			local pattern = co
			co = I.each(function(_, thr)
				return string.find(tostring(thr), pattern) and thr
			end)
		end
		if type(co) == "thread" then
			return I.cancel(co)
		end
	end

	local function waiter_trace(co)
		return I.timeout_origin(co) or I.traceback(co)
	end

	function skynet.task(ret)
		if ret == nil then
			local n = 0
			each_waiter(function()
				n = n + 1
			end)
			return n
		end
		if ret == "init" then
			local init = select(2, I.now())
			return init and I.traceback(init) or nil
		end
		local t = type(ret)
		if t == "table" then
			each_waiter(function(session, co)
				ret[tostring(co) .. " session: " .. session] = waiter_trace(co)
			end)
		elseif t == "number" then
			return each_waiter(function(session, co)
				return session == ret and waiter_trace(co)
			end) or "No session"
		elseif t == "thread" then
			return each_waiter(function(session, co)
				return co == ret and session
			end)
		end
	end

	function skynet.uniqtask()
		local stacks = {}
		each_waiter(function(session, co)
			local key = I.traceback(co)
			local s = stacks[key]
			if s then
				s.n = s.n + 1
			else
				stacks[key] = { n = 1, session = session }
			end
		end)
		return stacks
	end

	function skynet.trace(info)
		trace_counter = trace_counter + 1
		local tag = format(":%08x-%d", I.self, trace_counter)
		I.tag(running() or "main", tag)
		I.trace_log(tag, info and ("trace " .. tostring(info)) or "trace")
	end

	function skynet.tracetag()
		return I.tag(running() or "main")
	end

	function skynet.tracelog(tag, text)
		if tag then
			I.trace_log(tag, tostring(text))
		end
	end

	function skynet.traceproto(typename, flag)
		local p = assert(proto[typename])
		p.trace = flag
	end

	function skynet.stat(what)
		if what == "time" then
			return (c.hpc() - select(3, I.now())) / 1e9
		end
		return c.stat(what)
	end

	function skynet.mqlen()
		return c.mqlen()
	end

	function skynet.endless()
		return c.stat("endless") == 1
	end

	function skynet.info_func(f)
		skynet.info = f
	end

	function skynet.coroutine_running()
		return running()
	end

	function skynet.trace_timeout(on)
		if on then
			I.var("timeout_origin", true, I.var "timeout_origin" or setmetatable({}, { __mode = "k" }))
		else
			I.var("timeout_origin", true, nil)
		end
	end

	-- f(session, address, msg, sz, prototype) for requests nobody handles; returns the previous one
	function skynet.dispatch_unknown_request(f)
		return I.var("unknown_request", true, f)
	end

	-- f(session, address, msg, sz) for responses to no pending session; returns the previous one
	function skynet.dispatch_unknown_response(f)
		return I.var("unknown_response", true, f)
	end

	-- skynet.profile: wrap(resume) returns the function used from now on to resume coroutines.
	function skynet._wrap_resume(wrap)
		I.var("coroutine_resume", true, wrap(I.var "coroutine_resume"))
	end
end
