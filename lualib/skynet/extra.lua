-- skynet/extra: the less used messaging and service part of the skynet API (response, rawcall,
-- redirect, unique services, kill/abort, names, time, ...). skynet.lua loads it on the first
-- access to one of these names (the list in skynet.lua's `parts`); it reaches the session state
-- only through the functions skynet.lua and skynet/internal.lua hand it in `I`.
local c = require "skynet.core"

local format = string.format
local c_send, c_redirect = c.send, c.redirect

return function(skynet, I)
	local proto = skynet.proto
	local PTYPE_TRACE, PTYPE_RESPONSE, PTYPE_ERROR = skynet.PTYPE_TRACE, skynet.PTYPE_RESPONSE,
		skynet.PTYPE_ERROR
	local starttime = c.starttime()

	local function running()
		return (I.now())
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

	function skynet.term(service)
		I.callee_gone(service)
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

	function skynet.yield()
		return skynet.sleep(0)
	end

	function skynet.newservice(name, ...)
		return skynet.call(".launcher", "lua", "LAUNCH", "snlua", name, ...)
	end

	-- Under skynet.forward_type with RESPONSE forwarded (skynet.manager), the runtime does not
	-- free replies; skynet.call then frees the ones it decodes itself.
	function skynet._forward_responses(on)
		I.var("responses_forwarded", true, on)
	end
end
