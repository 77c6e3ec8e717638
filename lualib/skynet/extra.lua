-- skynet/extra: the rarely used part of the skynet API (killthread, task, trace, term, stat,
-- names, unique services, kill/abort, ...). skynet.lua loads it on the first access to one of
-- these functions and hands it the state it needs; each service only pays for what it uses.
local c = require "skynet.core"

local format, tremove = string.format, table.remove
local c_send, c_redirect, c_trash = c.send, c.redirect, c.trash
local PTYPE_ERROR, PTYPE_TRACE = 7, 12

return function(skynet, I)
	local proto = skynet.proto
	local starttime = c.starttime()
	local trace_counter = 0

	function skynet.killthread(co)
		local session
		if type(co) == "string" then
			for s, thr in pairs(I.session_id_coroutine) do
				if type(thr) == "thread" and string.find(tostring(thr), co) then
					session, co = s, thr
					break
				end
			end
			if session == nil then
				for i = I.fork_queue.h, I.fork_queue.t do
					local thr = I.fork_queue[i]
					if thr and string.find(tostring(thr), co) then
						co = thr
						break
					end
				end
			end
		end
		if type(co) ~= "thread" then
			return
		end
		for i = I.fork_queue.h, I.fork_queue.t do
			if I.fork_queue[i] == co then
				for j = i, I.fork_queue.t - 1 do
					I.fork_queue[j] = I.fork_queue[j + 1]
				end
				I.fork_queue[I.fork_queue.t] = nil
				I.fork_queue.t = I.fork_queue.t - 1
				return co
			end
		end
		if session == nil then
			for s, thr in pairs(I.session_id_coroutine) do
				if thr == co then
					session = s
					break
				end
			end
		end
		if session == nil then
			return
		end
		local addr = I.session_coroutine_address[co]
		local req = I.session_coroutine_id[co]
		if req and req ~= 0 and addr then
			c_send(addr, PTYPE_ERROR, req, "killed")
		end
		I.session_coroutine_id[co] = nil
		I.session_coroutine_address[co] = nil
		I.session_coroutine_tracetag[co] = nil
		if I.watching_session[session] then
			I.session_id_coroutine[session] = "BREAK"
			I.watching_session[session] = nil
		else
			I.session_id_coroutine[session] = nil
		end
		for token, s in pairs(I.sleep_session) do
			if s == session then
				I.sleep_session[token] = nil
				break
			end
		end
		return co
	end

	function skynet.task(ret)
		if ret == nil then
			local n = 0
			for _, co in pairs(I.session_id_coroutine) do
				if type(co) == "thread" then
					n = n + 1
				end
			end
			return n
		end
		if ret == "init" then
			return I.init_thread() and I.traceback(I.init_thread()) or nil
		end
		local t = type(ret)
		if t == "table" then
			for session, co in pairs(I.session_id_coroutine) do
				if type(co) == "thread" then
					ret[tostring(co) .. " session: " .. session] = I.traceback(co)
				end
			end
			return
		elseif t == "number" then
			local co = I.session_id_coroutine[ret]
			return type(co) == "thread" and I.traceback(co) or "No session"
		elseif t == "thread" then
			for session, co in pairs(I.session_id_coroutine) do
				if co == ret then
					return session
				end
			end
		end
	end

	function skynet.uniqtask()
		local stacks = {}
		for session, co in pairs(I.session_id_coroutine) do
			if type(co) == "thread" then
				local key = I.traceback(co)
				local s = stacks[key]
				if s then
					s.n = s.n + 1
				else
					stacks[key] = { n = 1, session = session }
				end
			end
		end
		return stacks
	end

	function skynet.term(service)
		I.callee_gone(service)
		I.dispatch_error_queue()
	end

	function skynet.trace(info)
		trace_counter = trace_counter + 1
		local tag = format(":%08x-%d", I.self, trace_counter)
		I.session_coroutine_tracetag[I.running() or "main"] = tag
		I.trace_log(tag, info and ("trace " .. tostring(info)) or "trace")
	end

	function skynet.tracetag()
		return I.session_coroutine_tracetag[I.running() or "main"]
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
		local co = I.running()
		return I.session_coroutine_id[co], I.session_coroutine_address[co]
	end

	function skynet.ignoreret()
		I.session_coroutine_id[I.running()] = nil
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
