-- share_mem: the memory of N services reading one shared table (skynet.sharedata) against N
-- services each holding a plain copy of it. Arguments: services (default 1000), table size in
-- KiB of skynet.packstring (default 1024).
-- share_table_kib: the table as published, in KiB of its C tree (sharetree.size).
-- share_rss_idle: VmRSS growth per service for N bench_share_reader services that hold nothing.
-- share_rss_shared: VmRSS growth (MiB, all N together) once each of them queried the table and
--   read every field of one record in ten (bench_share_reader.lua), then collected its garbage.
-- share_rss_copy: VmRSS growth (MiB, all N together) once each also took a plain copy
--   (sharedata.deepcopy: what a service holds when it loads the data itself) and read it.
local skynet = require "skynet"
local sharedata = require "skynet.sharedata"
local sharetree = require "skynet.sharetree"
local bench = require "bench"

local nservices, kib = ...
nservices, kib = tonumber(nservices) or 1000, tonumber(kib) or 1024

local function make_table(bytes)
	local t, i = {}, 0
	repeat
		for _ = 1, 500 do
			i = i + 1
			t[i] = { id = i, name = "item" .. i, price = i * 0.25, level = i % 100,
				tags = { "red", "blue" }, text = "description of item number " .. i }
		end
	until #skynet.packstring(t) >= bytes
	return t
end

local function each_reader(readers, cmd)
	bench.parallel(16, function(w)
		for i = w, #readers, 16 do
			skynet.call(readers[i], "lua", cmd)
		end
	end)
	skynet.sleep(150) -- freed memory is handed back after a quiet second
end

bench.main(function()
	sharedata.new("bench_share", make_table(kib * 1024))
	collectgarbage()
	bench.report("share_table_kib", sharetree.size("sharedata", "bench_share") / 1024, "KiB")
	skynet.sleep(150)
	local r0 = bench.rss_kib()
	local readers = {}
	bench.parallel(16, function(w)
		for i = w, nservices, 16 do
			readers[i] = skynet.newservice("bench_share_reader")
		end
	end)
	skynet.sleep(150)
	local r1 = bench.rss_kib()
	bench.report("share_rss_idle", (r1 - r0) / nservices, "KiB/service")
	each_reader(readers, "query")
	local r2 = bench.rss_kib()
	bench.report("share_rss_shared", (r2 - r1) / 1024, "MiB")
	each_reader(readers, "copy")
	local r3 = bench.rss_kib()
	bench.report("share_rss_copy", (r3 - r2) / 1024, "MiB")
	each_reader(readers, "exit")
end)
