-- demo_store: a key/value store service (one instance per node via uniqueservice).
local skynet = require "skynet"

local data, puts, gets, keys = {}, 0, 0, 0
local CMD = {}

function CMD.put(k, v)
	if data[k] == nil then
		keys = keys + 1
	end
	data[k] = v
	puts = puts + 1
	return true
end

function CMD.get(k)
	gets = gets + 1
	return data[k]
end

function CMD.get_strict(k)
	local v = data[k]
	if v == nil then
		error("no key " .. k)
	end
	return v
end

function CMD.stats()
	return { keys = keys, puts = puts, gets = gets }
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.retpack(assert(CMD[cmd], "unknown command")(...))
	end)
end)
