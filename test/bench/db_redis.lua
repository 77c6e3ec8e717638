-- db_redis: GET round trips through skynet.db.redis against a redis-server scripts/bench started
-- (the same server redis-benchmark measures in the same run). Arguments: port, seconds per
-- variant (default 2).
-- redis_get_1: GETs/s from one coroutine (one request in flight), with p50/p99;
-- redis_get_64: 64 coroutines, each on its own connection (like redis-benchmark -c 64);
-- redis_get_64_shared: 64 coroutines sharing one connection (socketchannel queues them in
--   order, so up to 64 requests are in flight on it: the usual one-handle-per-service use);
-- redis_pipeline: one coroutine sending db:pipeline batches of 64 GETs; counted in GETs/s.
local redis = require "skynet.db.redis"
local bench = require "bench"

local port, seconds = ...
port, seconds = tonumber(port), tonumber(seconds) or 2

bench.main(function()
	local conns = {}
	for i = 1, 64 do
		conns[i] = redis.connect { host = "127.0.0.1", port = port }
	end
	local db = conns[1]
	db:set("bench:key", string.rep("v", 16))
	local variants = {
		{ "redis_get_1", 1, function()
			assert(db:get "bench:key")
		end },
		{ "redis_get_64", 64, function(i)
			assert(conns[i]:get "bench:key")
		end },
		{ "redis_get_64_shared", 64, function()
			assert(db:get "bench:key")
		end },
	}
	for _, v in ipairs(variants) do
		local name, n, get = v[1], v[2], v[3]
		bench.loop(n, seconds / 4, get)
		local count, elapsed, lat = bench.loop(n, seconds, get)
		bench.report(name, count / elapsed, "rt/s", n == 1 and lat or nil)
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
	for _, c in ipairs(conns) do
		c:disconnect()
	end
end)
