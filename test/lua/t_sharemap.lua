-- skynet.sharemap (and its legacy name sharemap): a writer's commits reach a reader service in
-- the same node through stm, decoded with the sproto schema of sprotoloader slot 0.
local skynet = require "skynet"
local sharemap = require "sharemap"
local T = require "testlib"

local SCHEMA = [[
.Pos { x 0 : integer y 1 : integer }
.Zone {
	name 0 : string
	players 1 : integer
	open 2 : boolean
	spawn 3 : Pos
	tags 4 : *string
}
]]

T.case("writer_commits_reach_the_reader", function()
	local file = skynet.getenv("test_tmp") .. "/zone.sproto"
	local f = assert(io.open(file, "w"))
	f:write(SCHEMA)
	f:close()
	sharemap.register(file)
	local w = sharemap.writer("Zone", { name = "north", players = 0, open = true })
	local r = skynet.newservice("sharemap_reader")
	skynet.call(r, "lua", "init", "Zone", w:copy())
	local seen = skynet.call(r, "lua", "look", "name", "players", "open")
	T.same(seen, { changed = false, name = "north", players = 0, open = true })
	w.players = 12
	w.spawn = { x = -5, y = 7 }
	T.eq(w.players, 12, "the writer reads its own table")
	w:commit()
	seen = skynet.call(r, "lua", "look", "players", "spawn")
	T.same(seen, { changed = true, players = 12, spawn = { x = -5, y = 7 } })
	T.same(skynet.call(r, "lua", "look", "players"), { changed = false, players = 12 }, "no commit, no change")
	w.open = nil -- a field removed by the writer disappears for the reader
	w.tags = { "pvp", "event" }
	w:commit()
	seen = skynet.call(r, "lua", "look", "open", "tags", "name")
	T.same(seen, { changed = true, tags = { "pvp", "event" }, name = "north" })
	T.raises(skynet.call, "read-only", r, "lua", "write")
	T.raises(function()
		w.players = "many"
		w:commit()
	end, ".players[0] is not an integer")
	skynet.kill(r)
end)

skynet.start(T.run)
