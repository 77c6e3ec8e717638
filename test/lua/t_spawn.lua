-- Spawning many services: 10,000 created and retired, and the memory comes back.
local skynet = require "skynet"
local T = require "testlib"

local function rss_kb()
	for line in io.lines("/proc/self/status") do
		local kb = line:match "^VmRSS:%s+(%d+)"
		if kb then
			return tonumber(kb)
		end
	end
end

local function spawn_and_exit(total, spawners)
	local handles = {}
	local done = 0
	for w = 1, spawners do
		skynet.fork(function()
			for i = w, total, spawners do
				handles[i] = skynet.newservice("idle")
			end
			done = done + 1
		end)
	end
	T.wait_until(function()
		return done == spawners
	end, 120, "spawners")
	local live = 0
	for i = 1, total do
		if handles[i] then
			live = live + 1
		end
	end
	T.eq(live, total, "services created")
	for i = 1, total do
		skynet.send(handles[i], "lua", "exit")
	end
	T.wait_until(function()
		return require("skyjet").count() <= 8
	end, 60, "services to exit")
end

T.case("ten_thousand_services_spawn_and_exit_and_memory_returns", function()
	spawn_and_exit(500, 16) -- warm up allocator arenas and the chunk cache
	collectgarbage()
	local before = rss_kb()
	spawn_and_exit(10000, 16)
	-- the node trims freed memory once churn has been quiet for a second (or every 10 s)
	local after = rss_kb()
	local deadline = skynet.now() + 1500
	while after - before >= 40 * 1024 and skynet.now() < deadline
		and not skynet.getenv "skyjet_sanitizer" do
		skynet.sleep(20)
		after = rss_kb()
	end
	skynet.error(string.format("spawn test: RSS before %d KiB, after 10,000 spawn+exit %d KiB", before,
		after))
	if not skynet.getenv "skyjet_sanitizer" then -- ASan keeps freed memory in quarantine
		T.ok(after - before < 40 * 1024, string.format("RSS grew by %d KiB", after - before))
	end
	-- the launcher forgot them all
	local list = skynet.call(".launcher", "lua", "LIST")
	local n = 0
	for _ in pairs(list) do
		n = n + 1
	end
	T.ok(n <= 4, "launcher still lists " .. n .. " services")
end, 300)

skynet.start(T.run)
