-- http.sockethelper: read/write functions over a skynet.socket id for the HTTP modules, which
-- raise `socket_error` when the socket is gone, so a parser never sees a short read. Runs in
-- the calling coroutine. skyjet extension: readfunc's `timeout` (centiseconds) shuts the socket
-- when one read waits longer, so a peer that stops mid-message cannot hold a coroutine forever.
local skynet = require "skynet"
local socket = require "skynet.socket"

local tostring, error, setmetatable = tostring, error, setmetatable

local sockethelper = {}

local last_error -- what went wrong, shown (once) by tostring(socket_error)
local socket_error = setmetatable({}, {
	__tostring = function()
		local info = "[Socket Error] " .. tostring(last_error)
		last_error = nil
		return info
	end,
})
sockethelper.socket_error = socket_error

local function fail(info)
	last_error = info
	error(socket_error)
end
sockethelper.error_info = function(info)
	last_error = info
end

-- One read of socket.read(fd, sz) that gives up after `timeout` centiseconds.
local function timed_reader(fd, timeout)
	local serial = 0
	return function(sz)
		serial = serial + 1
		local mine, expired = serial, false
		skynet.timeout(timeout, function()
			if serial == mine and not socket.invalid(fd) then
				expired = true
				socket.shutdown(fd)
			end
		end)
		local ret = socket.read(fd, sz)
		serial = serial + 1
		return ret, expired
	end
end

-- readfunc(fd [, pre [, timeout]]): read(sz) returns sz bytes (sz = nil: what has arrived),
-- first from the string `pre`; raises socket_error when the socket closes first.
function sockethelper.readfunc(fd, pre, timeout)
	local raw = timeout and timed_reader(fd, timeout) or function(sz)
		return socket.read(fd, sz)
	end
	local function read(sz)
		local ret, expired = raw(sz)
		if not ret then
			fail((expired and "read timeout fd = " or "read failed fd = ") .. fd)
		end
		return ret
	end
	if not pre or pre == "" then
		return read
	end
	return function(sz)
		if not pre then
			return read(sz)
		end
		local have = pre
		if sz == nil or sz == #have then
			pre = nil
			return have
		elseif sz < #have then
			pre = have:sub(sz + 1)
			return have:sub(1, sz)
		end
		pre = nil
		return have .. read(sz - #have)
	end
end

sockethelper.readall = socket.readall

function sockethelper.writefunc(fd)
	return function(content)
		if not socket.write(fd, content) then
			fail("write failed fd = " .. fd)
		end
	end
end

-- connect(host, port [, timeout]): timeout in centiseconds, as Skynet's.
function sockethelper.connect(host, port, timeout)
	local fd, err = socket.open(host, port, timeout and timeout * 10)
	if fd then
		return fd
	end
	fail(string.format("connect failed host = %s port = %s timeout = %s err = %s", host, tostring(port),
		tostring(timeout), tostring(err)))
end

sockethelper.close = socket.close
sockethelper.shutdown = socket.shutdown

return sockethelper
