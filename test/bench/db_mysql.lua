-- db_mysql: primary-key SELECTs through skynet.db.mysql against a MariaDB scripts/bench started
-- (the same server mysqlslap measures in the same run). Arguments: port, seconds per variant
-- (default 2). The table skynet.bench (id INT PRIMARY KEY, v VARCHAR(32)) has rows 1..1000.
-- mysql_select_1: SELECT v FROM bench WHERE id = 500 from one coroutine on one connection, with
-- p50/p99; mysql_select_16: 16 coroutines, each on its own connection. Queries/s.
local mysql = require "skynet.db.mysql"
local bench = require "bench"

local port, seconds = ...
port, seconds = tonumber(port), tonumber(seconds) or 2

bench.main(function()
	local conns = {}
	for i = 1, 16 do
		conns[i] = mysql.connect { host = "127.0.0.1", port = port, user = "bench",
			database = "skynet" }
	end
	local function select_one(i)
		local rows = conns[i]:query("SELECT v FROM bench WHERE id = 500")
		assert(rows[1] and rows[1].v, "no row")
	end
	for _, n in ipairs { 1, 16 } do
		bench.loop(n, seconds / 4, select_one)
		local count, elapsed, lat = bench.loop(n, seconds, select_one)
		bench.report("mysql_select_" .. n, count / elapsed, "q/s", n == 1 and lat or nil)
	end
	for _, db in ipairs(conns) do
		db:disconnect()
	end
end)
