-- bench_share_reader: a service of the share_mem workload. "query" queries the shared table,
-- reads every field of one record in ten (a full pass costs ~3 us per value, too slow for 1,000
-- services on a small machine) and keeps only the table; "copy" takes a plain copy, reads it
-- all and keeps it; "exit" exits.
local skynet = require "skynet"
local sharedata = require "skynet.sharedata"
local sharetree = require "skynet.sharetree"

local shared, copy

local function walk(t)
	local n = 0
	for _, v in pairs(t) do
		n = n + 1
		if type(v) == "table" then
			n = n + walk(v)
		end
	end
	return n
end

local CMD = {}

function CMD.query()
	shared = sharedata.query("bench_share")
	local n = 0
	for i = 1, sharetree.len(shared), 10 do
		n = n + walk(shared[i])
	end
	collectgarbage()
	return n
end

function CMD.copy()
	copy = sharedata.deepcopy("bench_share")
	local n = walk(copy)
	collectgarbage()
	return n
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd)
		if cmd == "exit" then
			skynet.retpack(true)
			skynet.exit()
			return
		end
		skynet.retpack(CMD[cmd]())
	end)
end)
