-- skynet.socketchannel: a client connection for request/response protocols that reconnects
-- lazily. Two modes: "session" (a `response(sock)` function returns session, ok, data[, padding]
-- and replies may come back in any order; padding = true means more parts follow for that
-- session) and "order" (each request gives its own reader function and replies come back in
-- request order). When the connection drops, every waiting request raises channel.error at once;
-- the next request makes one connect attempt (plus backups).
local skynet = require "skynet"
local socket = require "skynet.socket"

local socketchannel = {}
local channel = {}
local channel_meta = { __index = channel, __name = "socketchannel" }

local socket_error = setmetatable({}, {
	__tostring = function()
		return "[Error: socket]"
	end,
})
socketchannel.error = socket_error

-- skyjet: what a request raises when its deadline passes (session mode)
local timeout_error = setmetatable({}, {
	__tostring = function()
		return "[Error: timeout]"
	end,
})
socketchannel.timeout = timeout_error

function socketchannel.channel(desc)
	local c = {
		__host = assert(desc.host, "socketchannel needs a host"),
		__port = desc.port,
		__backup = desc.backup,
		__auth = desc.auth,
		__response = desc.response, -- session mode when present
		__nodelay = desc.nodelay,
		__connect_timeout = desc.connect_timeout, -- skyjet: ms, per connect attempt
		__overload_notify = desc.overload,
		__socket_read = desc.socket_read,
		__socket_readline = desc.socket_readline,
		__on_close = desc.on_close, -- skyjet: on_close(err) before a connection is closed
		__sock = false, -- { fd } while connected
		__closed = false,
		__connecting = false, -- coroutines waiting for a connect in progress
		__auth_co = false,
		__wait = {}, -- session mode: session -> coroutine; order mode: array of coroutines
		__order = {}, -- order mode: array of reader functions, parallel to __wait
		__result = {}, -- coroutine -> true | false | socket_error
		__result_data = {}, -- coroutine -> data
		__parts = {}, -- session -> array of parts of a multi-part reply
		__expired = {}, -- session -> true: its request timed out; a late reply is dropped
		__deadline_at = {}, -- coroutine -> tick its request times out
		__deadline_session = {}, -- coroutine -> that request's session
		__sweeping = false,
		__dispatcher = false,
	}
	return setmetatable(c, channel_meta)
end

-- the object response/auth functions read from: a closed socket raises socket_error
local function wrap_socket(self, fd)
	local read = self.__socket_read or socket.read
	local readline = self.__socket_readline or socket.readline
	return {
		fd = fd,
		read = function(_, n)
			local r = read(fd, n)
			if not r then
				error(socket_error)
			end
			return r
		end,
		readline = function(_, sep)
			local r = readline(fd, sep)
			if not r then
				error(socket_error)
			end
			return r
		end,
	}
end

local function wake(self, co, result, data)
	self.__result[co] = result
	self.__result_data[co] = data
	skynet.wakeup(co)
end

-- Fail every waiting request with `err` (socket_error or a message).
local function wake_all(self, err)
	if self.__response then
		local waiting = self.__wait
		self.__wait = {}
		for _, co in pairs(waiting) do
			wake(self, co, socket_error, err)
		end
		self.__parts = {}
		self.__expired = {}
	else
		local waiting = self.__wait
		self.__wait = {}
		self.__order = {}
		for _, co in ipairs(waiting) do
			wake(self, co, socket_error, err)
		end
	end
end

local function close_socket(self, err)
	local sock = self.__sock
	if sock then
		self.__sock = false
		if self.__on_close then
			self.__on_close(err)
		end
		socket.close(sock.fd)
	end
	wake_all(self, err)
end

-- A reply (or one part of it) for `key` (the session, or the waiting coroutine in order mode):
-- parts are kept until the last one; returns true and the data (an array when there were parts)
-- once the reply is complete.
local function collect(self, key, result_ok, data, padding)
	local parts = self.__parts[key]
	if padding and result_ok then
		if not parts then
			parts = {}
			self.__parts[key] = parts
		end
		parts[#parts + 1] = data
		return false
	end
	if parts then
		self.__parts[key] = nil
		parts[#parts + 1] = data
		data = parts
	end
	return true, data
end

local function dispatch_by_session(self, sock)
	local response = self.__response
	while self.__sock == sock do
		local ok, session, result_ok, result_data, padding = pcall(response, sock.obj)
		if ok and session then
			local co = self.__wait[session]
			if co then
				local done, data = collect(self, session, result_ok, result_data, padding)
				if done then
					self.__wait[session] = nil
					wake(self, co, result_ok, data)
				end
			elseif self.__expired[session] then
				-- the answer to a request that timed out: drop it (and its parts) quietly
				if not padding then
					self.__expired[session] = nil
				end
			else
				self.__parts[session] = nil
				skynet.error("socket: unknown session : " .. tostring(session))
			end
		elseif not ok then
			-- the peer closed, or sent bytes the response function rejected
			if self.__sock == sock then
				local err = session ~= socket_error and tostring(session) or nil
				if err then
					skynet.error("socket: " .. err)
				end
				close_socket(self, err)
			end
			break
		end
	end
end

local function dispatch_by_order(self, sock)
	while self.__sock == sock do
		local func = self.__order[1]
		if not func then
			self.__idle = coroutine.running()
			skynet.wait(self.__idle)
			self.__idle = false
		else
			local co = self.__wait[1]
			local ok, result_ok, result_data, padding = pcall(func, sock.obj)
			if ok then
				local done, data = collect(self, co, result_ok, result_data, padding)
				if done then
					table.remove(self.__order, 1)
					table.remove(self.__wait, 1)
					wake(self, co, result_ok, data)
				end
			else
				if self.__sock == sock then
					local err = result_ok ~= socket_error and tostring(result_ok) or nil
					close_socket(self, err)
				end
				break
			end
		end
	end
end

local function try_connect(self, host, port)
	local h, p = host, port
	if type(host) == "table" then
		h, p = host.host, host.port or port
	end
	if p == nil then
		local hh, pp = tostring(h):match "^(.*):(%d+)$"
		h, p = hh or h, tonumber(pp)
	end
	local fd, err = socket.open(h, p, self.__connect_timeout)
	if not fd then
		return nil, err, h, p
	end
	if self.__nodelay then
		socket.nodelay(fd)
	end
	return fd, nil, h, p
end

-- One attempt at the host, then at each backup. Runs auth. Returns true, or false and a reason.
local function connect_once(self)
	if self.__closed then
		return false, "channel closed"
	end
	local targets = { self.__host }
	for _, b in ipairs(self.__backup or {}) do
		targets[#targets + 1] = b
	end
	local last_err
	for _, target in ipairs(targets) do
		local fd, err, h, p = try_connect(self, target, self.__port)
		if fd then
			local sock = { fd = fd }
			sock.obj = wrap_socket(self, fd)
			if self.__overload_notify then
				socket.warning(fd, function(_, kbytes)
					self.__overload_notify(kbytes > 0)
				end)
			end
			self.__sock = sock
			local dispatcher = self.__response and dispatch_by_session or dispatch_by_order
			skynet.fork(dispatcher, self, sock)
			if self.__auth then
				self.__auth_co = coroutine.running()
				local ok, aerr = pcall(self.__auth, self)
				self.__auth_co = false
				if ok and self.__sock == sock then
					return true
				end
				if ok then -- auth switched host (closed the socket): start over
					return connect_once(self)
				end
				skynet.error(string.format("socket: auth failed %s", tostring(aerr)))
				close_socket(self)
				last_err = "auth failed: " .. tostring(aerr)
			else
				return true
			end
		else
			skynet.error(string.format("Connect failed %s %s %s", tostring(err), tostring(h), tostring(p)))
			last_err = err
		end
	end
	if #targets > 1 then
		return false, "no more backup host"
	end
	return false, last_err
end

-- Make sure the channel is connected: wait for a connect in progress, or do one.
local function block_connect(self, once)
	if self.__sock and not socket.disconnected(self.__sock.fd) then
		return true
	end
	if self.__auth_co and self.__auth_co == coroutine.running() then
		return self.__sock and true
	end
	if self.__sock then
		skynet.error(string.format("socket: disconnect detected %s %s", tostring(self.__host),
			tostring(self.__port)))
		close_socket(self)
	end
	if self.__connecting then
		local co = coroutine.running()
		table.insert(self.__connecting, co)
		skynet.wait(co)
		return self.__sock and true, self.__connect_err
	end
	self.__connecting = {}
	local ok, err = connect_once(self)
	if not ok and not once then
		local delay = 0
		while not ok and not self.__closed do
			skynet.error(string.format("socket: connect %s", tostring(err)))
			if delay == 11 then
				skynet.error(string.format("socket: try to reconnect %s %s", tostring(self.__host),
					tostring(self.__port)))
			end
			skynet.sleep(delay * 100)
			delay = delay >= 11 and 1 or delay + 1
			ok, err = connect_once(self)
		end
		if ok then
			skynet.error(string.format("socket: connect to %s %s", tostring(self.__host),
				tostring(self.__port)))
		end
	end
	self.__connect_err = err
	local waiting = self.__connecting
	self.__connecting = false
	for _, co in ipairs(waiting) do
		skynet.wakeup(co)
	end
	return ok, err
end

function channel:connect(once)
	self.__closed = false
	local ok = block_connect(self, once)
	if not ok then
		error(socket_error)
	end
	return true
end

-- Deadlines (session mode): one sweeper per channel checks them every tick while any is set,
-- so an answered request leaves nothing behind (no timer per request).
local function sweep_deadlines(self)
	local at, sessions = self.__deadline_at, self.__deadline_session
	while next(at) do
		skynet.sleep(1)
		local now = skynet.now()
		for co, tick in pairs(at) do
			if now >= tick then
				local session = sessions[co]
				at[co], sessions[co] = nil, nil
				if self.__wait[session] == co then
					self.__wait[session] = nil
					self.__parts[session] = nil
					self.__expired[session] = true
					wake(self, co, timeout_error)
				end
			end
		end
	end
	self.__sweeping = false
end

local function wait_for_response(self, response, timeout)
	local co = coroutine.running()
	if self.__response then
		self.__wait[response] = co
		if timeout and timeout > 0 then
			self.__deadline_at[co] = skynet.now() + math.ceil(timeout / 10)
			self.__deadline_session[co] = response
			if not self.__sweeping then
				self.__sweeping = true
				skynet.fork(sweep_deadlines, self)
			end
		end
	else
		table.insert(self.__order, response)
		table.insert(self.__wait, co)
		if self.__idle then
			skynet.wakeup(self.__idle)
		end
	end
	skynet.wait(co)
	self.__deadline_at[co], self.__deadline_session[co] = nil, nil
	local result, data = self.__result[co], self.__result_data[co]
	self.__result[co] = nil
	self.__result_data[co] = nil
	if result == socket_error then
		if data then
			error(data)
		end
		error(socket_error)
	elseif result == timeout_error then
		error(timeout_error)
	end
	assert(result, data)
	return data
end

local function write(self, request, padding)
	local fd = self.__sock.fd
	if not socket.write(fd, request) then
		close_socket(self)
		error(socket_error)
	end
	if padding then
		for _, part in ipairs(padding) do
			if not socket.lwrite(fd, part) then
				close_socket(self)
				error(socket_error)
			end
		end
	end
end

-- request(req [, response [, padding [, timeout]]]): response is the session (session mode) or
-- the reader function (order mode); nil means no reply is expected. skyjet: in session mode a
-- timeout in ms makes the request raise socketchannel.timeout when it passes.
function channel:request(request, response, padding, timeout)
	assert(not self.__closed)
	local ok, err = block_connect(self, true)
	if not ok then
		if type(err) == "string" and err:find("^auth failed") then
			error(err, 0)
		end
		error(socket_error)
	end
	write(self, request, padding)
	if response == nil then
		return
	end
	return wait_for_response(self, response, timeout)
end

-- skyjet: drop the current connection (pending requests fail) but keep the channel usable; the
-- next request reconnects.
function channel:reset()
	close_socket(self)
end

function channel:response(response)
	assert(block_connect(self) or error(socket_error))
	return wait_for_response(self, response)
end

function channel:close()
	if not self.__closed then
		self.__closed = true
		close_socket(self)
	end
end

function channel:changehost(host, port)
	self.__host = host
	if port then
		self.__port = port
	end
	if not self.__closed then
		close_socket(self)
	end
end

function channel:changebackup(backup)
	self.__backup = backup
end

-- skyjet: how many requests are waiting for a reply (for status reports)
function channel:pending()
	local n = 0
	for _ in pairs(self.__wait) do
		n = n + 1
	end
	return n
end

function channel:connected()
	return self.__sock and not socket.disconnected(self.__sock.fd) or false
end

return socketchannel
