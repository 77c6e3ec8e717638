-- skynet/extra: the less used messaging part of the skynet API (response, rawcall, rawsend,
-- redirect, context, ignoreret, tracecall, term, yield). skynet.lua loads it on the first
-- access to one of these names (the list in skynet.lua's `parts`); it reaches the session state
-- only through the functions skynet.lua and skynet/internal.lua hand it in `I`.
local c = require "skynet.core"

local c_send, c_redirect = c.send, c.redirect

return function(skynet, I)
	local proto = skynet.proto
	local PTYPE_TRACE, PTYPE_RESPONSE, PTYPE_ERROR = skynet.PTYPE_TRACE, skynet.PTYPE_RESPONSE,
		skynet.PTYPE_ERROR

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

	function skynet.term(service)
		I.callee_gone(service)
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

	function skynet.yield()
		return skynet.sleep(0)
	end

	-- Under skynet.forward_type with RESPONSE forwarded (skynet.manager), the runtime does not
	-- free replies; skynet.call then frees the ones it decodes itself.
	function skynet._forward_responses(on)
		I.var("responses_forwarded", true, on)
	end
end
