-- multicastd (unique, node-internal): the channels behind skynet.multicast. PUB sends the
-- published bytes to every subscriber as a "multicast" message from the publisher, with the
-- channel id in the session field; a subscriber that is gone is dropped from its channels.
local skynet = require "skynet"

local channels = {} -- id -> { [subscriber handle] = true }
local next_id = 1 -- ids 1, 0x101, 0x201, ... (Skynet's ids with harbor 1)

skynet.register_protocol {
	name = "multicast",
	id = skynet.PTYPE_MULTICAST,
	pack = function(msg)
		return msg
	end,
}

local CMD = {}

function CMD.NEW()
	local id = next_id
	next_id = next_id + 0x100
	channels[id] = {}
	return id
end

local function members(id)
	return channels[id] or error("multicast: no channel " .. tostring(id))
end

function CMD.PUB(source, id, msg)
	for handle in pairs(members(id)) do
		if not skynet.redirect(handle, source, "multicast", id, msg) then
			channels[id][handle] = nil
		end
	end
end

function CMD.SUB(source, id)
	members(id)[source] = true
end

function CMD.USUB(source, id)
	members(id)[source] = nil
end

function CMD.DEL(_, id)
	channels[id] = nil
end

skynet.start(function()
	require("skyjet").internal()
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("multicastd: unknown command " .. tostring(cmd))
		end
		local r = f(source, ...)
		if session ~= 0 then
			skynet.retpack(r)
		end
	end)
end)
