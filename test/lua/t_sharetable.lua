-- skynet.sharetable: tables loaded once per node, pinned to their version in each service until
-- sharetable.update(name) moves them, in place.
local skynet = require "skynet"
local sharetable = require "skynet.sharetable"
local T = require "testlib"

T.case("loadtable_query_and_iterate", function()
	sharetable.loadtable("st_tbl", { x = 1, y = { "hello world" }, ["hello world"] = true })
	local t = sharetable.query("st_tbl")
	T.eq(t.x, 1)
	T.eq(t.y[1], "hello world")
	T.eq(t["hello world"], true)
	local n = 0
	for _ in pairs(t) do
		n = n + 1
	end
	T.eq(n, 3)
	T.eq(sharetable.query("no_such_table"), nil)
	T.raises(sharetable.loadtable, "needs a table", "st_bad", "str")
end)

T.case("loadstring_passes_arguments", function()
	sharetable.loadstring("st_str", "return { ... }", 1, 2, 3)
	local t = sharetable.query("st_str")
	local seq = {}
	for i, v in ipairs(t) do
		seq[i] = v
	end
	T.same(seq, { 1, 2, 3 })
	T.raises(sharetable.loadstring, "returned number, not a table", "st_num", "return 1")
	T.raises(sharetable.loadstring, "st_syntax", "st_syntax", "return {")
	T.raises(sharetable.loadstring, "unsupported value type function at [f]", "st_fn",
		"return { f = print }")
	T.eq(sharetable.query("st_num"), nil)
end)

T.case("loadfile_is_named_by_its_path", function()
	local path = skynet.getenv("test_tmp") .. "/st_file.lua"
	local f = assert(io.open(path, "w"))
	f:write("local n = ... return { n = n, list = { 'a', 'b' } }")
	f:close()
	sharetable.loadfile(path, 7)
	local t = sharetable.query(path)
	T.eq(t.n, 7)
	T.eq(t.list[2], "b")
	T.raises(sharetable.loadfile, "No such file", skynet.getenv("test_tmp") .. "/missing.lua")
end)

T.case("tables_stay_pinned_until_update", function()
	sharetable.loadtable("st_pin", { v = 1, sub = { w = 1 }, gone = { z = 1 } })
	local t = sharetable.query("st_pin")
	local sub, gone = t.sub, t.gone
	local r = skynet.newservice("share_reader")
	skynet.call(r, "lua", "run", "S.t = require('skynet.sharetable').query('st_pin')")
	sharetable.loadtable("st_pin", { v = 2, sub = { w = 2 } })
	T.eq(t.v, 1, "pinned to the version it was made from")
	T.eq(sub.w, 1)
	T.eq(sharetable.query("st_pin").v, 2, "a new query gets the new version")
	T.eq(skynet.call(r, "lua", "run", "return S.t.v"), 1)
	sharetable.update("st_pin", "not_loaded_name")
	T.eq(t.v, 2, "update moved it in place")
	T.eq(sub.w, 2, "and the sub-tables taken from it")
	T.raises(function()
		return gone.z
	end, "The key [.gone] doesn't exist after update")
	T.eq(skynet.call(r, "lua", "run", "return S.t.v"), 1, "another service moves on its own update")
	T.eq(skynet.call(r, "lua", "run", "require('skynet.sharetable').update('st_pin') return S.t.v"), 2)
	skynet.kill(r)
end)

T.case("queryall_by_list_or_everything", function()
	sharetable.loadtable("st_all_a", { a = 1 })
	sharetable.loadtable("st_all_b", { b = 2 })
	local some = sharetable.queryall({ "st_all_a", "st_missing" })
	T.eq(some.st_all_a.a, 1)
	T.eq(some.st_missing, nil)
	local all = sharetable.queryall()
	T.eq(all.st_all_a.a, 1)
	T.eq(all.st_all_b.b, 2)
	T.eq(all.st_tbl.x, 1)
end)

skynet.start(T.run)
