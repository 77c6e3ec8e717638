-- skynet.multicast: publish/subscribe channels, served by the multicastd service. A channel
-- object (multicast.new{channel=, dispatch=, pack=, unpack=}) publishes with :publish(...) and
-- receives, once :subscribe()d, through dispatch(channel_object, source, ...). Messages come as
-- protocol "multicast" (PTYPE_MULTICAST) whose session field carries the channel id.
local skynet = require "skynet"

local multicast = {}
local server
local subscribed = {} -- channel id -> the subscribed channel object of this service

local channel = {}
local channel_meta = {
	__index = channel,
	__tostring = function(self)
		return string.format("[Multicast:%x]", self.channel)
	end,
}

local function call(...)
	return skynet.call(server, "lua", ...)
end

function multicast.new(conf)
	assert(server, "multicast: require skynet.multicast before skynet.start")
	conf = conf or {}
	local self = setmetatable({
		channel = conf.channel,
		__pack = conf.pack or skynet.pack,
		__unpack = conf.unpack or skynet.unpack,
		__dispatch = conf.dispatch,
	}, channel_meta)
	if self.channel == nil then
		self.channel = call("NEW")
	end
	return self
end

function channel:publish(...)
	local id = assert(self.channel, "multicast: channel deleted")
	local msg, sz = self.__pack(...)
	if type(msg) ~= "string" then
		local packed = msg
		msg = skynet.tostring(packed, sz)
		skynet.trash(packed, sz)
	end
	call("PUB", id, msg)
end

function channel:subscribe()
	local id = assert(self.channel, "multicast: channel deleted")
	if not self.__subscribe then
		call("SUB", id)
		self.__subscribe = true
		subscribed[id] = self
	end
end

function channel:unsubscribe()
	if self.__subscribe then
		local id = assert(self.channel)
		self.__subscribe = nil
		if subscribed[id] == self then
			subscribed[id] = nil
		end
		skynet.send(server, "lua", "USUB", id)
	end
end

function channel:delete()
	local id = assert(self.channel, "multicast: channel deleted")
	if subscribed[id] == self then
		subscribed[id] = nil
	end
	skynet.send(server, "lua", "DEL", id)
	self.channel = nil
	self.__subscribe = nil
end

local function deliver(id, source, msg, sz)
	skynet.ignoreret() -- the session field is the channel id: nothing to answer
	local self = subscribed[id]
	if self and self.__subscribe and self.__dispatch then
		self.__dispatch(self, source, self.__unpack(msg, sz))
	end
end

skynet.init(function()
	server = skynet.uniqueservice "multicastd"
	skynet.register_protocol {
		name = "multicast",
		id = skynet.PTYPE_MULTICAST,
		unpack = function(msg, sz)
			return msg, sz
		end,
		dispatch = deliver,
	}
end)

return multicast
