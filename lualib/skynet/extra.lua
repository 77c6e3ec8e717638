-- skynet/extra: the rarely used part of the skynet API (killthread, task, trace, term, stat,
-- names, unique services, kill/abort, ...). skynet.lua loads it on the first access to one of
-- these functions; it reaches the session state only through the functions skynet.lua hands it.
local c = require "skynet.core"

local format = string.format
local c_send, c_redirect = c.send, c.redirect

return function(skynet, I)
	local proto = skynet.proto
	local PTYPE_TRACE = skynet.PTYPE_TRACE
	local starttime = c.starttime()
	local trace_counter = 0

	-- the first waiting or forked coroutine whose tostring contains `pattern` (Lua pattern)
	local function find_thread(pattern)
		local function match(co)
			return string.find(tostring(co), pattern) and co or nil
		end
		return I.each_waiter(function(_, co)
			return match(co)
		end) or I.each_fork(match)
	end

	function skynet.killthread(co)
		if type(co) == "string" then
			co = find_thread(co)
		end
		if type(co) ~= "thread" then
			return
		end
		if I.unfork(co) then
			return co
		end
		return I.cancel(co)
	end

	local function waiter_trace(co)
		return I.timeout_origin(co) or I.traceback(co)
	end

	function skynet.task(ret)
		if ret == nil then
			local n = 0
			I.each_waiter(function()
				n = n + 1
			end)
			return n
		end
		if ret == "init" then
			return I.init_thread() and I.traceback(I.init_thread()) or nil
		end
		local t = type(ret)
		if t == "table" then
			I.each_waiter(function(session, co)
				ret[tostring(co) .. " session: " .. session] = waiter_trace(co)
			end)
			return
		elseif t == "number" then
			return I.each_waiter(function(session, co)
				return session == ret and waiter_trace(co) or nil
			end) or "No session"
		elseif t == "thread" then
			return I.each_waiter(function(session, co)
				return co == ret and session or nil
			end)
		end
	end

	function skynet.uniqtask()
		local stacks = {}
		I.each_waiter(function(session, co)
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

	function skynet.term(service)
		I.callee_gone(service)
	end

	function skynet.trace(info)
		trace_counter = trace_counter + 1
		local tag = format(":%08x-%d", I.self, trace_counter)
		I.set_tracetag(I.running() or "main", tag)
		I.trace_log(tag, info and ("trace " .. tostring(info)) or "trace")
	end

	function skynet.tracetag()
		return I.tracetag(I.running() or "main")
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

	function skynet.harbor(addr)
		return (addr - addr % 0x1000000) / 0x1000000, false
	end

	function skynet.setenv(key, value)
		if c.getenv(key) ~= nil then
			error("Can't setenv exist key : " .. key)
		end
		c.setenv(key, "" .. value)
	end

	function skynet.memlimit(bytes)
		c.memlimit(bytes)
	end

	function skynet.mqlen()
		return c.mqlen()
	end

	function skynet.stat(what)
		if what == "time" then
			return (c.hpc() - I.dispatch_start()) / 1e9
		end
		return c.stat(what)
	end

	function skynet.endless()
		return c.stat("endless") == 1
	end

	function skynet.info_func(f)
		skynet.info = f
	end

	function skynet.coroutine_running()
		return I.running()
	end

	function skynet.queryservice(global, ...)
		if global == true then
			return assert(skynet.call(".service", "lua", "GQUERY", ...))
		end
		return assert(skynet.call(".service", "lua", "QUERY", global, ...))
	end

	function skynet.uniqueservice(global, ...)
		if global == true then
			return assert(skynet.call(".service", "lua", "GLAUNCH", ...))
		end
		return assert(skynet.call(".service", "lua", "LAUNCH", global, ...))
	end

	function skynet.tracecall(tag, addr, typename, msg, sz)
		c_send(addr, PTYPE_TRACE, 0, tag)
		local p = proto[typename]
		local session = I.new_session()
		local r = c_send(addr, p.id, session, msg, sz)
		if r == nil then
			error "call to invalid address"
		end
		return I.yield_call(addr, session)
	end

	function skynet.rawsend(addr, typename, msg, sz)
		local p = proto[typename]
		return c_send(addr, p.id, 0, msg, sz)
	end

	function skynet.redirect(dest, source, typename, session, msg, sz)
		local p = proto[typename]
		return c_redirect(dest, source, p.id, session or I.new_session(), msg, sz)
	end

	function skynet.genid()
		return I.new_session()
	end

	function skynet.context()
		return I.request_of(I.running())
	end

	function skynet.ignoreret()
		I.unbind_request(I.running())
	end

	function skynet.log(level, ...)
		c.log(level, I.to_text(...))
	end

	function skynet.kill(addr)
		if type(addr) == "number" or (type(addr) == "string" and addr:sub(1, 1) == ":") then
			local h = type(addr) == "number" and addr or tonumber(addr:sub(2), 16)
			skynet.send(".launcher", "lua", "REMOVE", h, true)
		end
		if c.kill(addr) then
			c.error("KILL " .. (type(addr) == "number" and format(":%x", addr) or addr))
		end
	end

	function skynet.abort()
		c.abort()
	end

	function skynet.localname(name)
		if type(name) == "string" and name:sub(1, 1) == "." then
			return c.query(name)
		end
	end

	function skynet.starttime()
		return starttime
	end

	function skynet.time()
		return c.now() / 100 + starttime
	end
end
