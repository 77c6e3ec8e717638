-- skynet.sharedata: tables shared by every service of the node, read through proxies, updated
-- live, deleted; bad input refused with a clear error.
local skynet = require "skynet"
local sharedata = require "skynet.sharedata"
local sharetree = require "skynet.sharetree"
local T = require "testlib"

local function readers(n)
	local list = {}
	for i = 1, n do
		list[i] = skynet.newservice("share_reader")
	end
	return list
end

local function close(list)
	for _, r in ipairs(list) do
		skynet.kill(r)
	end
end

local function keys_of(t)
	local seen = {}
	for k, v in pairs(t) do
		seen[#seen + 1] = tostring(k) .. "=" .. (type(v) == "table" and "table" or tostring(v))
	end
	table.sort(seen)
	return table.concat(seen, ",")
end

T.case("query_reads_nested_values_through_proxies", function()
	sharedata.new("cfg_read", { a = 1, s = "x\0y", b = { "hello", "world", n = { deep = true } },
		[2.5] = "float", [true] = "yes", [-1] = "neg", big = 2 ^ 53 })
	local q = sharedata.query("cfg_read")
	T.eq(q.a, 1)
	T.eq(q.s, "x\0y")
	T.eq(type(q.b), "table")
	T.eq(q.b[1], "hello")
	T.eq(q.b.n.deep, true)
	T.eq(q[2.5], "float")
	T.eq(q[true], "yes")
	T.eq(q[-1], "neg")
	T.eq(q.big, 2 ^ 53)
	T.eq(q.missing, nil)
	T.eq(q[{}], nil)
	T.eq(q.b, q.b, "a sub-table proxy is cached")
	T.eq(sharedata.query("cfg_read"), q, "query returns the same object")
	local seq = {}
	for i, v in ipairs(q.b) do
		seq[i] = v
	end
	T.same(seq, { "hello", "world" })
	T.eq(keys_of(q), "-1=neg,2.5=float,a=1,b=table,big=9.007199254741e+15,s=x\0y,true=yes")
	T.eq(sharetree.len(q.b), 2)
	T.eq(sharetree.next(q.b), 1)
	T.raises(function()
		return sharetree.next(q.b, "nokey")
	end, "invalid key to 'next'")
	T.raises(sharetree.len, "shared table expected", {})
end)

T.case("proxies_are_read_only", function()
	sharedata.new("cfg_ro", { a = 1, b = { c = 2 } })
	local q = sharedata.query("cfg_ro")
	T.raises(function()
		q.a = 2
	end, "Error newindex, the key []")
	T.raises(function()
		q.b.z = 2
	end, "Error newindex, the key [.b]")
	T.eq(q.a, 1)
end)

T.case("update_is_seen_by_many_readers_without_query", function()
	sharedata.new("cfg_live", { v = 1, list = { 10, 20 }, gone = { x = 1 } })
	local rs = readers(20)
	for _, r in ipairs(rs) do
		local v = skynet.call(r, "lua", "run", [[
			local sd = require "skynet.sharedata"
			S.q = sd.query("cfg_live")
			S.list = S.q.list
			S.gone = S.q.gone
			return S.q.v + S.list[2] + S.gone.x]])
		T.eq(v, 22)
	end
	sharedata.update("cfg_live", { v = 2, list = { 30, 40, 50 }, gone = 7 })
	for _, r in ipairs(rs) do
		T.eq(skynet.call(r, "lua", "run", "return S.q.v, S.list[3], S.q.gone"), 2)
		T.same({ skynet.call(r, "lua", "run", "return S.q.v, S.list[3], S.q.gone") }, { 2, 50, 7 })
		local ok, err = skynet.call(r, "lua", "try", "return S.gone.x")
		T.eq(ok, false)
		T.ok(err:find("The key [.gone] doesn't exist after update", 1, true), err)
	end
	local q = sharedata.query("cfg_live")
	T.eq(q.v, 2)
	close(rs)
end)

T.case("repeated_updates_reach_a_reader_holding_an_old_version", function()
	sharedata.new("cfg_chain", { n = 0 })
	local r = readers(1)[1]
	skynet.call(r, "lua", "run", "S.q = require('skynet.sharedata').query('cfg_chain')")
	for i = 1, 50 do
		sharedata.update("cfg_chain", { n = i })
	end
	T.eq(skynet.call(r, "lua", "run", "return S.q.n"), 50)
	close({ r })
end)

T.case("delete_keeps_old_readers_and_forgets_the_name", function()
	sharedata.new("cfg_del", { a = 1 })
	local q = sharedata.query("cfg_del")
	local r = readers(1)[1]
	skynet.call(r, "lua", "run", "S.q = require('skynet.sharedata').query('cfg_del')")
	sharedata.delete("cfg_del")
	T.eq(q.a, 1, "a reader keeps what it had")
	T.eq(skynet.call(r, "lua", "run", "return S.q.a"), 1)
	T.raises(sharedata.query, "sharedata cfg_del not found", "cfg_del")
	T.raises(sharedata.delete, "sharedata cfg_del not found", "cfg_del")
	T.raises(sharedata.deepcopy, "sharedata cfg_del not found", "cfg_del")
	sharedata.new("cfg_del", { a = 2 })
	T.eq(sharedata.query("cfg_del").a, 2, "a new table under the old name")
	T.eq(q.a, 1, "the deleted version stays as it was")
	close({ r })
end)

T.case("new_twice_and_unknown_names_raise", function()
	sharedata.new("cfg_twice", {})
	T.raises(sharedata.new, "sharedata cfg_twice exists", "cfg_twice", {})
	T.raises(sharedata.query, "sharedata nowhere not found", "nowhere")
	sharedata.update("cfg_fresh", { z = 1 })
	T.eq(sharedata.query("cfg_fresh").z, 1, "update creates a missing name")
end)

T.case("hostile_values_are_refused_and_nothing_is_published", function()
	T.raises(sharedata.new, "unsupported value type function at [a.f]", "bad1",
		{ a = { f = print } })
	T.raises(sharedata.new, "unsupported value type userdata at [[2]]", "bad2",
		{ 1, newproxy() })
	T.raises(sharedata.new, "unsupported value type thread", "bad3",
		{ co = coroutine.create(print) })
	T.raises(sharedata.new, "unsupported key type table", "bad4", { [{}] = 1 })
	local cyc = { a = {} }
	cyc.a.back = cyc
	T.raises(sharedata.new, "cycle in shared table: [a.back]", "bad5", cyc)
	local deep = {}
	local cur = deep
	for _ = 1, 150 do
		cur.next = {}
		cur = cur.next
	end
	T.raises(sharedata.new, "nested deeper than 100 levels", "bad6", deep)
	T.raises(sharedata.new, "Unknown data type number", "bad7", 42)
	for i = 1, 6 do
		T.raises(sharedata.query, "not found", "bad" .. i)
	end
	local shared = { 1 }
	sharedata.new("dag", { x = shared, y = shared })
	T.eq(sharedata.query("dag").y[1], 1, "a table reached twice (no cycle) is fine")
end)

T.case("sources_code_file_and_nil", function()
	sharedata.new("src_globals", "x = 1 y = { 2 }")
	T.eq(sharedata.query("src_globals").y[1], 2)
	sharedata.new("src_return", "return { sum = select(1, ...) + select(2, ...) }", 3, 4)
	T.eq(sharedata.query("src_return").sum, 7)
	local path = skynet.getenv("test_tmp") .. "/cfg.lua"
	local f = assert(io.open(path, "w"))
	f:write("return { from_file = true }")
	f:close()
	sharedata.new("src_file", "@" .. path)
	T.eq(sharedata.query("src_file").from_file, true)
	sharedata.new("src_nil")
	T.eq(next(sharedata.deepcopy("src_nil")), nil)
	T.raises(sharedata.new, "src_bad", "src_bad", "return {")
end)

T.case("deepcopy_returns_plain_tables", function()
	sharedata.new("cfg_copy", { a = { b = { 1, 2, c = "x" } }, n = 5 })
	local c = sharedata.deepcopy("cfg_copy")
	T.eq(getmetatable(c), nil)
	T.same(c, { a = { b = { 1, 2, c = "x" } }, n = 5 })
	T.same(sharedata.deepcopy("cfg_copy", "a", "b"), { 1, 2, c = "x" })
	T.eq(sharedata.deepcopy("cfg_copy", "n"), 5)
	T.eq(sharedata.deepcopy("cfg_copy", "a", "zz"), nil)
	c.n = 6
	T.eq(sharedata.query("cfg_copy").n, 5, "the copy is the caller's own")
end)

T.case("flush_moves_to_the_new_version", function()
	sharedata.new("cfg_flush", { a = 1 })
	local q = sharedata.query("cfg_flush")
	sharedata.update("cfg_flush", { a = 2 })
	sharedata.flush()
	T.eq(q.a, 2)
end)

T.case("readers_do_not_copy_the_table", function()
	local big = {}
	for i = 1, 20000 do
		big[i] = { id = i, name = "item" .. i, tags = { "a", "b" } }
	end
	sharedata.new("cfg_big", big)
	T.ok(sharetree.size("sharedata", "cfg_big") > 1000000, "the shared tree holds the data")
	local r = readers(1)[1]
	local before = skynet.call(r, "lua", "run", "collectgarbage() return collectgarbage('count')")
	local after, name = skynet.call(r, "lua", "run", [[
		S.q = require("skynet.sharedata").query("cfg_big")
		local name = S.q[12345].name
		collectgarbage()
		return collectgarbage('count'), name]])
	T.eq(name, "item12345")
	T.ok(after - before < 100, string.format("reader heap grew by %.0f KiB", after - before))
	local n, walked = skynet.call(r, "lua", "run", [[
		local n = 0
		local function walk(t)
			for _, v in pairs(t) do
				n = n + 1
				if type(v) == "table" then
					walk(v)
				end
			end
		end
		walk(S.q)
		collectgarbage()
		return n, collectgarbage('count')]])
	T.eq(n, 20000 * 6) -- each record, its id, name, tags and the two tags
	T.ok(walked - before < 100, string.format("after a full pass the heap grew by %.0f KiB",
		walked - before))
	close({ r })
end)

T.case("a_sub_table_keeps_its_identity_while_held", function()
	sharedata.new("cfg_ident", { sub = { 1 } })
	local q = sharedata.query("cfg_ident")
	local sub = q.sub
	collectgarbage()
	collectgarbage()
	T.eq(q.sub, sub)
	T.ok(sharetree.isproxy(sub))
	T.ok(not sharetree.isproxy({}))
	T.raises(sharetree.refresh, "not one of its sub-tables", sub)
end)

T.case("readers_on_other_threads_race_updates_safely", function()
	sharedata.new("cfg_race", { v = 0, list = { 0, 0 } })
	local rs = readers(8)
	local done = 0
	local me = coroutine.running()
	for _, r in ipairs(rs) do
		skynet.fork(function()
			local ok, err = skynet.call(r, "lua", "try", [[
				local skynet = require "skynet"
				local q = require("skynet.sharedata").query("cfg_race")
				local last = 0
				for _ = 1, 400 do
					local v = q.v
					local first = q.list[1]
					assert(v >= last and first >= v, "versions went back")
					last = v
					if _ % 50 == 0 then skynet.yield() end
				end
				return last]])
			T.ok(ok, err)
			done = done + 1
			if done == #rs then
				skynet.wakeup(me)
			end
		end)
	end
	for i = 1, 200 do
		sharedata.update("cfg_race", { v = i, list = { i, i } })
		if i % 20 == 0 then
			skynet.yield()
		end
	end
	if done < #rs then
		skynet.wait(me)
	end
	T.eq(sharedata.query("cfg_race").v, 200)
	close(rs)
end)

T.case("pairs_and_ipairs_keep_their_behaviour_for_other_values", function()
	local seen = {}
	for k, v in pairs({ a = 1 }) do
		seen[k] = v
	end
	T.same(seen, { a = 1 })
	local seq = {}
	for i, v in ipairs({ 1, 2, nil, 4 }) do
		seq[i] = v
	end
	T.same(seq, { 1, 2 })
	T.raises(pairs, "table expected, got nil", nil)
	T.raises(ipairs, "table expected, got nil", nil)
	local custom = setmetatable({}, { __pairs = function()
		return function(_, k)
			if not k then
				return "only", true
			end
		end
	end })
	for k, v in pairs(custom) do
		seen[k] = v
	end
	T.eq(seen.only, true, "__pairs of any table is honoured")
end)

skynet.start(T.run)
