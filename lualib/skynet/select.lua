-- skynet/select: skynet.request{addr, typename, ...}{...}:select([ti]), a batch of calls whose
-- answers are iterated in the order they arrive. One helper coroutine per batch receives every
-- answer (skynet.lua resumes it by session) and wakes the iterating coroutine. Loaded by
-- skynet.lua the first time a service touches skynet.request.
local c = require "skynet.core"

local unpack, tremove, yield = unpack, table.remove, coroutine.yield

return function(skynet, I)
	local proto = skynet.proto

	local batch = {}
	batch.__index = batch

	function batch:add(obj)
		assert(type(obj) == "table" and self._sessions == nil, "request: add a table before select")
		self[#self + 1] = obj
		return self
	end
	batch.__call = batch.add

	local function keep(self, session, ok, ...)
		if ok then
			self._arrived[#self._arrived + 1] = { session, { n = select("#", ...), ... } }
		else
			self._arrived[#self._arrived + 1] = { session, false }
		end
	end

	-- the helper: resumed with (ok, msg, sz, session) for each answer, error or the timer
	local function collect(self)
		while true do
			local ok, msg, sz, session = yield "SUSPEND"
			if session == self._timer then
				self._timer = nil
				self.timeout = true
			elseif self._sessions[session] then
				I.unwatch(session)
				local p = proto[self._sessions[session][2]]
				if ok then
					keep(self, session, pcall(p.unpack, msg, sz))
				else
					keep(self, session, false)
				end
			end
			skynet.wakeup(self)
		end
	end

	local function send_all(self, helper)
		local sessions, bad, n = {}, {}, 0
		for i = 1, #self do
			local req = self[i]
			local p = proto[req[2]]
			assert(p and p.unpack, "request: unknown protocol")
			I.send_trace(req[1])
			local session = I.new_session()
			if c.send(req[1], p.id, session, p.pack(unpack(req, 3, req.n or #req))) then
				sessions[session] = req
				I.watch(session, req[1], helper)
				n = n + 1
			else
				bad[#bad + 1] = req
			end
		end
		return sessions, bad, n
	end

	local function next_answer(self)
		local req = tremove(self._bad, 1)
		if req then
			return req, nil
		end
		while true do
			local a = tremove(self._arrived, 1)
			if a then
				self._pending = self._pending - 1
				req = self._sessions[a[1]]
				self._sessions[a[1]] = nil
				return req, a[2]
			end
			if self._pending == 0 or self.timeout then
				self:close()
				return nil
			end
			skynet.wait(self)
		end
	end

	function batch:select(ti)
		assert(self._sessions == nil, "request: select more than once")
		local helper = coroutine.create(collect)
		coroutine.resume(helper, self)
		self._arrived = {}
		self._sessions, self._bad, self._pending = send_all(self, helper)
		if ti then
			self._timer = I.timer(ti, helper)
		end
		return function()
			return next_answer(self)
		end, nil, nil, self
	end

	-- Abandon what has not arrived: late answers are dropped.
	function batch:close()
		if self._sessions then
			for session in pairs(self._sessions) do
				I.abandon(session)
			end
		end
		if self._timer then
			I.abandon(self._timer)
			self._timer = nil
		end
	end
	batch.__close = batch.close

	function skynet.request(obj)
		local b = setmetatable({}, batch)
		if obj then
			return b(obj)
		end
		return b
	end
end
