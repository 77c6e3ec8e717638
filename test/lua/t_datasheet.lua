-- skynet.datasheet + builder: sheets built once per node; readers follow updates by themselves.
local skynet = require "skynet"
local builder = require "skynet.datasheet.builder"
local datasheet = require "skynet.datasheet"
local T = require "testlib"

T.case("query_reads_and_follows_updates", function()
	builder.new("ds_live", { a = 1, b = 2, c = { 3 } })
	local t = datasheet.query("ds_live")
	local c = t.c
	T.eq(t.a, 1)
	T.eq(c[1], 3)
	T.eq(datasheet.query("ds_live"), t, "one object per service")
	builder.update("ds_live", { b = 4, c = { 5 } })
	T.eq(t.a, nil)
	T.eq(t.b, 4)
	T.eq(c[1], 5, "a sub-table follows too")
	builder.update("ds_live", { a = 6, c = 7, d = 8 })
	T.eq(t.c, 7)
	T.raises(function()
		return c[1]
	end, "The key [.c] doesn't exist after update")
end)

T.case("many_readers_follow_one_update", function()
	builder.new("ds_many", { v = 1 })
	local rs = {}
	for i = 1, 10 do
		rs[i] = skynet.newservice("share_reader")
		T.eq(skynet.call(rs[i], "lua", "run",
			"S.t = require('skynet.datasheet').query('ds_many') return S.t.v"), 1)
	end
	builder.update("ds_many", { v = 2 })
	for _, r in ipairs(rs) do
		T.eq(skynet.call(r, "lua", "run", "return S.t.v"), 2)
		skynet.kill(r)
	end
end)

T.case("compiled_sheets_are_accepted", function()
	local s = builder.compile({ k = "v", list = { 1, 2 } })
	T.eq(type(s), "string")
	builder.new("ds_compiled", s)
	local t = datasheet.query("ds_compiled")
	T.eq(t.k, "v")
	T.eq(t.list[2], 2)
	builder.update("ds_compiled", builder.compile({ k = "w" }))
	T.eq(t.k, "w")
end)

T.case("errors_are_clear", function()
	builder.new("ds_err", { kept = true })
	T.raises(builder.new, "datasheet ds_err exists", "ds_err", {})
	T.raises(builder.update, "datasheet ds_nowhere: create data first", "ds_nowhere", {})
	T.raises(datasheet.query, "datasheet ds_nowhere: create data first", "ds_nowhere")
	T.raises(builder.new, "not number", "ds_num", 42)
	T.raises(builder.new, "unsupported value type function at [x.f]", "ds_fn",
		{ x = { f = print } })
	local cyc = {}
	cyc[1] = cyc
	T.raises(builder.update, "cycle in shared table", "ds_err", cyc)
	T.eq(datasheet.query("ds_err").kept, true, "a failed update leaves the sheet as it was")
end)

skynet.start(T.run)
