-- skynet/extra: the rarely used part of the skynet API (killthread, task, trace, term, stat,
-- names, unique services, kill/abort, ...). skynet.lua loads it on the first access to one of
-- these functions; it reaches the session state only through the functions skynet.lua hands it.
local c = require "skynet.core"

local format = string.format
local c_send, c_redirect = c.send, c.redirect

return function(skynet, I)
	local proto = skynet.proto
	local PTYPE_TRACE, PTYPE_RESPONSE, PTYPE_ERROR = skynet.PTYPE_TRACE, skynet.PTYPE_RESPONSE,
		skynet.PTYPE_ERROR
	local starttime = c.starttime()
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

	-- Take the obligation to answer the running request later: returns response(ok, ...), which
	-- answers once (ok false: an ERROR carrying the reason); response("TEST") tells whether the
	-- answer is still owed. The requester going away cancels the debt.
	function skynet.response(pack)
		pack = pack or skynet.pack
		local session, address = I.request(running(), true)
		if session == nil then
			error "no session"
		elseif session == 0 then
			return function() end
		end
		local function response(ok, ...)
			if ok == "TEST" then
				return I.owed(response) ~= nil
			elseif not pack then
				error "Can't response more than once"
			end
			local sent = false
			if I.owed(response) then
				local r
				if ok then
					r = c_send(address, PTYPE_RESPONSE, session, pack(...))
					if r == false then
						c_send(address, PTYPE_ERROR, session, "reply too large")
					end
				else -- skyjet: response(false, reason) carries the reason to the caller's error
					local reason = ...
					r = c_send(address, PTYPE_ERROR, session, reason ~= nil and tostring(reason) or "")
				end
				I.owed(response, false)
				sent = r and true or false
			end
			pack = nil
			return sent
		end
		I.owed(response, address)
		return response
	end

	function skynet.rawcall(addr, typename, msg, sz)
		local p = proto[typename]
		I.send_trace(addr)
		local session = I.new_session()
		local r = c_send(addr, p.id, session, msg, sz)
		if r == nil then
			error "call to invalid address"
		elseif r == false then
			error "call failed: message too large"
		end
		return I.yield_call(addr, session)
	end

	-- skyjet: a call whose request write(session, ...) puts on its way by other means (the
	-- cluster fast path writes it to the socket); the answer is awaited as from `addr`. Returns
	-- false when write sent nothing, else true and the reply (msg, sz).
	function skynet._call_via(addr, write, ...)
		local session = I.new_session()
		if not write(session, ...) then
			return false
		end
		return true, I.yield_call(addr, session)
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

	function skynet.term(service)
		I.callee_gone(service)
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
			return (c.hpc() - select(3, I.now())) / 1e9
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
		return running()
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
		return I.request(running())
	end

	function skynet.ignoreret()
		I.request(running(), true)
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
