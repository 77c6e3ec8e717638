-- db_redis: GET round trips through skynet.db.redis against a redis-server scripts/bench started
-- (the same server redis-benchmark measures in the same run). Arguments: port, seconds per
-- variant (default 2).
-- redis_get_1: GETs/s from one coroutine (one request in flight), with p50/p99;
-- redis_get_64: 64 coroutines sharing one connection (socketchannel queues them in order);
-- redis_pipeline: one coroutine sending db:pipeline batches of 64 GETs; counted in GETs/s.
local redis = require "skynet.db.redis"
local bench = require "bench"

local port, seconds = ...
port, seconds = tonumber(port), tonumber(seconds) or 2

bench.main(function()
	local db = redis.connect { host = "127.0.0.1", port = port }
	db:set("bench:key", string.rep("v", 16))
	local function get()
		assert(db:get "bench:key")
	end
	for _, n in ipairs { 1, 64 } do
		bench.loop(n, seconds / 4, get)
		local count, elapsed, lat = bench.loop(n, seconds, get)
		bench.report("redis_get_" .. n, count / elapsed, "rt/s", n == 1 and lat or nil)
	end
	local batch = {}
	for i = 1, 64 do
		batch[i] = { "get", "bench:key" }
	end
	local function pipeline()
		assert(db:pipeline(batch))
	end
	bench.loop(1, seconds / 4, pipeline)
	local count, elapsed = bench.loop(1, seconds, pipeline)
	bench.report("redis_pipeline", count * #batch / elapsed, "GET/s")
	db:disconnect()
end)
