-- skynet.db.redis: a non-blocking Redis client (RESP2) on skynet.socketchannel in order mode, so
-- replies match requests by position and a call only suspends its own coroutine. Used by the
-- service that requires it (one channel per connect/watch object; no shared state between
-- services). Reply mapping as in Skynet: status -> string, error -> raised string, integer ->
-- number, bulk -> string or nil, multi-bulk -> array (nil entries for nil bulks) or nil.
local socketchannel = require "skynet.socketchannel"

local redis = {}

local command = {}
local command_meta = { __index = command }

---------------------------------------------------------------------------- wire format

-- "$<len>\r\n<NAME>\r\n" for each command name seen (upper-cased once)
local name_word = setmetatable({}, {
	__index = function(t, name)
		local NAME = string.upper(tostring(name))
		local w = "$" .. #NAME .. "\r\n" .. NAME .. "\r\n"
		t[name] = w
		return w
	end,
})

-- Appends one command to out: "*<n>\r\n", the name, then one "$<len>\r\n<bytes>\r\n" per
-- argument args[first], args[first + 1], ... up to the first nil (as Skynet's ipairs does);
-- values go through tostring.
local function append_command(out, name, args, first)
	local head = #out + 1
	out[head] = name_word[name]
	local n, i = 0, first
	local v = args[i]
	while v ~= nil do
		if type(v) ~= "string" then
			v = tostring(v)
		end
		n = n + 1
		out[head + n] = "$" .. #v .. "\r\n" .. v .. "\r\n"
		i = i + 1
		v = args[i]
	end
	out[head] = "*" .. (n + 1) .. "\r\n" .. out[head]
	return out
end

local function encode(name, args)
	return table.concat(append_command({}, name, args, 1))
end

local function bad_reply(what, line)
	error(string.format("redis: bad reply (%s): %q", what, line:sub(1, 64)), 0)
end

local read_reply

local reply_kind = {
	["+"] = function(_, text)
		return true, text
	end,
	["-"] = function(_, text)
		return false, text
	end,
	[":"] = function(_, text, line)
		local n = tonumber(text)
		if not n then
			bad_reply("integer", line)
		end
		return true, n
	end,
	["$"] = function(so, text, line)
		local len = tonumber(text)
		if not len or len ~= math.floor(len) then
			bad_reply("bulk length", line)
		end
		if len < 0 then
			return true, nil
		end
		local data = so:read(len + 2)
		if data:sub(-2) ~= "\r\n" then
			bad_reply("bulk end", data)
		end
		return true, data:sub(1, len)
	end,
	["*"] = function(so, text, line)
		local n = tonumber(text)
		if not n or n ~= math.floor(n) then
			bad_reply("array length", line)
		end
		if n < 0 then
			return true, nil
		end
		local items, all_ok = {}, true
		for i = 1, n do
			local ok, v = read_reply(so)
			all_ok = all_ok and ok
			items[i] = v
		end
		return all_ok, items
	end,
}

-- one reply from the socket object socketchannel passes: returns ok, value
function read_reply(so)
	local line = so:readline("\r\n")
	local kind = reply_kind[line:sub(1, 1)]
	if not kind then
		bad_reply("type", line)
	end
	return kind(so, line:sub(2), line)
end

local function read_flag(so)
	local ok, v = read_reply(so)
	return ok, v ~= 0
end

---------------------------------------------------------------------------- commands

local function auth_words(conf)
	if conf.username then
		return { conf.username, conf.auth }
	end
	return { conf.auth }
end

local function login(conf)
	if conf.auth == nil and conf.db == nil then
		return nil
	end
	return function(channel)
		if conf.auth then
			channel:request(encode("AUTH", auth_words(conf)), read_reply)
		end
		if conf.db then
			channel:request(encode("SELECT", { conf.db }), read_reply)
		end
	end
end

-- conf: host, port (6379), auth, username (skyjet: AUTH user pass), db, overload, and the
-- socketchannel options backup, connect_timeout (ms).
function redis.connect(conf)
	local channel = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		backup = conf.backup,
		connect_timeout = conf.connect_timeout,
		auth = login(conf),
		nodelay = true,
		overload = conf.overload,
	}
	channel:connect(true)
	return setmetatable({ channel }, command_meta)
end

function command:disconnect()
	self[1]:close()
	setmetatable(self, nil)
end

-- db:anything(a, b, ...) or db:anything({a, b, ...}) sends ANYTHING a b ...
setmetatable(command, {
	__index = function(t, name)
		local f = function(self, first, ...)
			local args = type(first) == "table" and first or { first, ... }
			return self[1]:request(encode(name, args), read_reply)
		end
		t[name] = f
		return f
	end,
})

function command:exists(key)
	return self[1]:request(encode("EXISTS", { key }), read_flag)
end

function command:sismember(key, member)
	return self[1]:request(encode("SISMEMBER", { key, member }), read_flag)
end

-- ops: array of {cmd, args...}; with resp, each reply is appended to it as {ok=, out=} and resp
-- is returned; without, the last reply is returned (raised if it is an error).
function command:pipeline(ops, resp)
	assert(ops and #ops > 0, "pipeline is null")
	local words = {}
	for _, op in ipairs(ops) do
		append_command(words, op[1], op, 2)
	end
	local count = #ops
	local reader
	if resp then
		reader = function(so)
			for _ = 1, count do
				local ok, out = read_reply(so)
				resp[#resp + 1] = { ok = ok, out = out }
			end
			return true, resp
		end
	else
		reader = function(so)
			local ok, out
			for _ = 1, count do
				ok, out = read_reply(so)
			end
			return ok, out
		end
	end
	return self[1]:request(table.concat(words), reader)
end

---------------------------------------------------------------------------- watch (pub/sub)

local watch = {}
local watch_meta = { __index = watch }

-- on every (re)connect: authenticate, then subscribe again to what this object follows
local function watch_login(obj, conf)
	return function(channel)
		if conf.auth then
			channel:request(encode("AUTH", auth_words(conf)), read_reply)
		end
		for pattern in pairs(obj.__psubscribe) do
			channel:request(encode("PSUBSCRIBE", { pattern }))
		end
		for name in pairs(obj.__subscribe) do
			channel:request(encode("SUBSCRIBE", { name }))
		end
	end
end

function redis.watch(conf)
	local obj = { __subscribe = {}, __psubscribe = {} }
	local channel = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		backup = conf.backup,
		connect_timeout = conf.connect_timeout,
		auth = watch_login(obj, conf),
		nodelay = true,
	}
	obj.__sock = channel
	channel:connect(true)
	return setmetatable(obj, watch_meta)
end

function watch:disconnect()
	self.__sock:close()
	setmetatable(self, nil)
end

-- each name is sent as its own command; confirmations arrive through watch:message()
for _, name in ipairs { "subscribe", "psubscribe", "unsubscribe", "punsubscribe" } do
	watch[name] = function(self, ...)
		for i = 1, select("#", ...) do
			self.__sock:request(encode(name, { (select(i, ...)) }))
		end
	end
end

-- what a confirmation does to the set of names followed (replayed on reconnect)
local follow = {
	subscribe = function(self, name)
		self.__subscribe[name] = true
	end,
	psubscribe = function(self, name)
		self.__psubscribe[name] = true
	end,
	unsubscribe = function(self, name)
		self.__subscribe[name] = nil
	end,
	punsubscribe = function(self, name)
		self.__psubscribe[name] = nil
	end,
}

-- waits for the next published message: returns data, channel (or data, channel, pattern for a
-- pattern subscription)
function watch:message()
	while true do
		local push = self.__sock:response(read_reply)
		local kind = push[1]
		if kind == "message" then
			return push[3], push[2]
		elseif kind == "pmessage" then
			return push[4], push[3], push[2]
		elseif follow[kind] then
			follow[kind](self, push[2])
		end
	end
end

return redis
