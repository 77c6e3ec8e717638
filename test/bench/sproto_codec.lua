-- sproto_codec: codec speed and the memory of a shared schema.
-- Arguments: seconds per codec (default 2), agents per memory variant (default 1000).
-- sproto_codec: one typical player-state message (sproto_schema.player) through what a client
--   packet costs each way: sp:encode + sproto.pack, then sproto.unpack + sp:decode. Value: round
--   trips (encode+decode) per second on one service. seri_codec: the same message through
--   skynet.packstring + skynet.unpack, in the same run.
-- sproto_mem_shared / sproto_mem_own: VmRSS growth per agent while `n` bench_sproto_agent
--   services hold the schema: loaded from the sprotoloader slot vs each parsing its own copy.
local skynet = require "skynet"
local sproto = require "sproto"
local loader = require "sprotoloader"
local parser = require "sprotoparser"
local schema = require "sproto_schema"
local bench = require "bench"

local seconds, nagents = ...
seconds, nagents = tonumber(seconds) or 2, tonumber(nagents) or 1000

local function rate(f)
	local n, t0 = 0, skynet.hpc()
	local deadline = t0 + seconds * 1e9
	repeat
		for _ = 1, 100 do
			f()
		end
		n = n + 100
	until skynet.hpc() >= deadline
	return n / ((skynet.hpc() - t0) / 1e9)
end

local function codecs()
	local sp = sproto.parse(schema.text)
	local msg = schema.player()
	local pack, unpack = sproto.pack, sproto.unpack
	assert(sp:decode("Player", unpack(pack(sp:encode("Player", msg)))).exp == msg.exp)
	local function sproto_trip()
		return sp:decode("Player", unpack(pack(sp:encode("Player", msg))))
	end
	local function seri_trip()
		return skynet.unpack(skynet.packstring(msg))
	end
	rate(sproto_trip) -- warm-up (the JIT)
	bench.report("sproto_codec", rate(sproto_trip), "msgs/s")
	rate(seri_trip)
	bench.report("seri_codec", rate(seri_trip), "msgs/s")
end

local function memory(mode)
	collectgarbage()
	skynet.sleep(150) -- freed memory of earlier services is trimmed after a quiet second
	local before = bench.rss_kib()
	local agents = {}
	bench.parallel(16, function(w)
		for i = w, nagents, 16 do
			agents[i] = skynet.newservice("bench_sproto_agent", mode)
		end
	end)
	local after = bench.rss_kib()
	bench.report("sproto_mem_" .. mode, (after - before) / nagents, "KiB/agent")
	bench.parallel(16, function(w)
		for i = w, nagents, 16 do
			skynet.call(agents[i], "lua", "exit")
		end
	end)
end

bench.main(function()
	loader.save(parser.parse(schema.text), 1)
	codecs()
	memory("shared")
	memory("own")
end)
