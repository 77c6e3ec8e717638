-- skynet/select: skynet.request{addr, typename, ...}{...}:select([ti]), a batch of calls whose
-- answers are iterated in the order they arrive. Each request is a skynet.call in a fork of its
-- own; the iterating coroutine waits for the next answer, the timer or the end of the batch.
-- close() (also at the timeout) kills the forks still waiting, so late answers are dropped.
-- Loaded by skynet.lua the first time a service touches skynet.request.
local unpack, tremove = unpack, table.remove

return function(skynet)
	local batch = {}
	batch.__index = batch

	function batch:add(obj)
		assert(type(obj) == "table" and self._pending == nil, "request: add a table before select")
		self[#self + 1] = obj
		return self
	end
	batch.__call = batch.add

	local function done(self, req, ok, ...)
		self._waiting[req] = nil
		if ok then
			self._arrived[#self._arrived + 1] = { req, { n = select("#", ...), ... } }
		elseif string.find(tostring((...)), "call to invalid address", 1, true) then
			self._bad[#self._bad + 1] = req
		else
			self._arrived[#self._arrived + 1] = { req, false }
		end
		skynet.wakeup(self)
	end

	local function ask(self, req)
		done(self, req, pcall(skynet.call, req[1], req[2], unpack(req, 3, req.n or #req)))
	end

	local function next_answer(self)
		while true do
			local req = tremove(self._bad, 1)
			if req then -- requests to invalid addresses come first, without an answer
				self._pending = self._pending - 1
				return req, nil
			end
			local a = tremove(self._arrived, 1)
			if a then
				self._pending = self._pending - 1
				return a[1], a[2]
			end
			if self._pending == 0 or self.timeout then
				self:close()
				return nil
			end
			skynet.wait(self)
		end
	end

	function batch:select(ti)
		assert(self._pending == nil, "request: select more than once")
		self._arrived, self._bad, self._waiting, self._pending = {}, {}, {}, #self
		for i = 1, #self do
			local req = self[i]
			assert(skynet.proto[req[2]], "request: unknown protocol")
			self._waiting[req] = skynet.fork(ask, self, req)
		end
		if ti then
			self._timer = true
			skynet.timeout(ti, function()
				if self._timer then
					self.timeout = true
					skynet.wakeup(self)
				end
			end)
		end
		return function()
			return next_answer(self)
		end, nil, nil, self
	end

	-- Abandon what has not arrived: late answers are dropped.
	function batch:close()
		self._timer = nil
		for _, co in pairs(self._waiting or {}) do
			skynet.killthread(co)
		end
		self._waiting = {}
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
