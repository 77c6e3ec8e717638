-- bson: every known answer of test/vectors/bson.txt (made by Skynet's bson module) encodes to the
-- same bytes and decodes back; the type constructors, bson.type, makeindex/replace, and
-- truncated or hostile documents giving clear errors.
local skynet = require "skynet"
local bson = require "bson"
local T = require "testlib"
local V = require "vectors"

-- The vector descriptions are Lua 5.4 expressions; these are the same values for LuaJIT.
local cases = {
	int32 = { "a", 1 },
	int64 = { "a", 2 ^ 40 },
	negint = { "a", -7 },
	double = { "a", 3.5 },
	string = { "s", "hello" },
	bools = { "t", true, "f", false },
	array = { "arr", { 1, 2, "three" } },
	nested = { "doc", { x = 1 } },
	binary = { "b", bson.binary("\0\1\2") },
	objectid = { "_id", bson.objectid("0123456789abcdef01234567") },
	date = { "d", bson.date(1700000000) },
	timestamp = { "ts", bson.timestamp(1700000000, 5) },
	regex = { "r", bson.regex("^a.*", "i") },
	int64ctor = { "n", bson.int64(5) },
	multi = { "a", 1, "b", "two", "c", { 3 } },
}

T.case("every_bson_vector_matches_skynet", function()
	local n = 0
	for _, v in ipairs(V.load("bson.txt")) do
		local args = assert(cases[v.name], "no case for vector " .. v.name)
		local doc = bson.encode_order(unpack(args))
		local ok, want = V.matches(tostring(doc), v.bytes)
		if not ok then
			error(v.name .. ": got " .. V.hex(tostring(doc)) .. " want " .. want)
		end
		T.eq(#doc, #tostring(doc), "__len")
		-- decoding gives the value back (int64 constructor: a plain number)
		local back = bson.decode(V.unhex(v.bytes))
		for i = 1, #args, 2 do
			local value = args[i + 1]
			if v.name == "int64ctor" then
				value = 5
			end
			T.same(back[args[i]], value, v.name .. "." .. args[i])
		end
		n = n + 1
	end
	T.eq(n, 15, "vector count")
end)

T.case("encode_and_decode_round_trip_a_table", function()
	local sub = bson.encode_order("hello", 1, "world", 2)
	local t = {
		a = 1, b = true, c = bson.null, d = { 1, 2, 3, 4 }, e = bson.binary("hello"),
		f = bson.regex("*", "i"), g = bson.regex("hello"), k = { a = false, b = true }, l = {},
		m = bson.minkey, n = bson.maxkey, o = sub, p = 2 ^ 32 - 1, q = -2 ^ 53, big = 2 ^ 62,
		[7] = "seven",
	}
	local back = bson.decode(bson.encode(t))
	for _, k in ipairs({ "a", "b", "c", "d", "e", "f", "g", "k", "m", "n", "p", "q", "big" }) do
		T.same(back[k], t[k], k)
	end
	T.same(back.l, {}, "empty table is an empty document")
	T.same(back.o, { hello = 1, world = 2 }, "a bson document value is embedded")
	T.eq(back["7"], "seven", "number keys become their decimal text")
	T.eq(sub:decode().world, 2, "method form")
end)

T.case("pairs_and_len_metamethods_are_honoured", function()
	local data = { [1] = 2, [3] = 4 }
	local obj = setmetatable({}, { __pairs = function()
		return next, data, nil
	end })
	local arr = setmetatable({ n = 3 }, {
		__len = function(self)
			return self.n
		end,
		__index = function(_, i)
			return tostring(i)
		end,
	})
	local back = bson.decode(bson.encode({ q = obj, r = arr }))
	T.same(back.q, { ["1"] = 2, ["3"] = 4 })
	T.same(back.r, { "1", "2", "3" })
end)

T.case("type_reports_skynet_names_and_parts", function()
	local function all(...)
		return { n = select("#", ...), ... }
	end
	T.same(all(bson.type(1)), { n = 2, "number", 1 })
	T.same(all(bson.type("x")), { n = 2, "string", "x" })
	T.same(all(bson.type(true)), { n = 2, "boolean", true })
	T.same(all(bson.type(nil)), { n = 1, "nil" })
	T.same(all(bson.type(bson.null)), { n = 1, "nil" })
	T.same(all(bson.type(bson.minkey)), { n = 1, "minkey" })
	T.same(all(bson.type(bson.maxkey)), { n = 1, "maxkey" })
	T.same(all(bson.type(bson.binary("ab"))), { n = 3, "binary", "ab", 0 })
	T.same(all(bson.type(bson.regex("p", "i"))), { n = 3, "regex", "p", "i" })
	T.same(all(bson.type(bson.regex("p"))), { n = 3, "regex", "p", "" })
	T.same(all(bson.type(bson.date(1700000000))), { n = 2, "date", 1700000000 })
	T.same(all(bson.type(bson.timestamp(1700000000, 5))), { n = 3, "timestamp", 1700000000, 5 })
	T.same(all(bson.type(bson.objectid("0123456789abcdef01234567"))),
		{ n = 2, "objectid", "0123456789abcdef01234567" })
	T.same(all(bson.type(bson.int64(7))), { n = 2, "int64", 7 })
	local decoded = bson.decode(bson.encode({ o = bson.encode_order("hello", 1) }))
	T.same(all(bson.type(decoded.o.hello)), { n = 2, "number", 1 })
end)

T.case("objectids_are_fresh_and_timestamps_count", function()
	local a, b = bson.objectid(), bson.objectid()
	T.eq(#a, 14)
	T.ok(a ~= b, "two ids differ")
	local _, ha = bson.type(a)
	local _, hb = bson.type(b)
	T.eq(ha:sub(9, 18), hb:sub(9, 18), "same process part")
	local t1 = bson.timestamp(100)
	local t2 = bson.timestamp(100)
	T.ok(t1 ~= t2, "increment advances")
	T.raises(bson.objectid, "Invalid objectid", "0123")
	T.raises(bson.objectid, "Invalid objectid", "0123456789abcdef0123456z")
end)

T.case("makeindex_then_replace_in_place", function()
	local doc = bson.encode_order("a", 1, "b", true, "c", 2.5, "big", 2 ^ 40, "s", "str",
		"h", bson.date(1000), "i", bson.timestamp(1, 2), "j", bson.objectid("0123456789abcdef01234567"))
	T.raises(function()
		doc.a = 2
	end, "call makeindex first")
	T.eq(doc:makeindex(), doc)
	doc.a = 7
	doc.b = false
	doc.c = -1.25
	doc.big = 2 ^ 41
	doc.h = bson.date(2000)
	doc.i = bson.timestamp(3, 4)
	doc.j = bson.objectid("ffffffffffffffffffffffff")
	local t = doc:decode()
	T.eq(t.a, 7)
	T.eq(t.b, false)
	T.eq(t.c, -1.25)
	T.eq(t.big, 2 ^ 41)
	T.eq(t.h, bson.date(2000))
	T.eq(t.i, bson.timestamp(3, 4))
	T.eq(t.j, bson.objectid("ffffffffffffffffffffffff"))
	T.raises(function()
		doc.s = "other"
	end, "Can't replace key : s")
	T.raises(function()
		doc.a = 1.5
	end, "must be a 32bit integer")
	T.raises(function()
		doc.a = 2 ^ 40
	end, "must be a 32bit integer")
	T.raises(function()
		doc.h = bson.timestamp(1, 1)
	end, "Type mismatch, need bson type 9")
end)

T.case("encoder_rejects_what_bson_cannot_hold", function()
	T.raises(bson.encode_order, "Invalid ordered dict", "a")
	T.raises(bson.encode_order, "Argument 1 need a string", 1, 2)
	T.raises(bson.encode, "Invalid value type : function", { f = print })
	T.raises(bson.encode, "Invalid key type : boolean", { [true] = 1 })
	T.raises(bson.encode, "Invalid subtype 99", { x = "\0\99" })
	T.raises(bson.encode, "Invalid object id", { x = "\0\7abc" })
	local deep = {}
	for _ = 1, 200 do
		deep = { deep }
	end
	T.raises(bson.encode, "Too depth while encoding bson", { d = deep })
	local loop = {}
	loop.self = loop
	T.raises(bson.encode, "Too depth while encoding bson", loop)
end)

T.case("decoder_rejects_truncated_and_hostile_documents", function()
	local good = tostring(bson.encode_order("s", "hello", "n", 1, "d", { x = 1 }))
	for cut = 0, #good - 1 do
		local ok, err = pcall(bson.decode, good:sub(1, cut))
		T.ok(not ok, "prefix of " .. cut .. " bytes is refused")
		T.ok(err:find("Invalid", 1, true), "clear error: " .. err)
	end
	local function doc(body)
		return string.pack("<i4", #body + 5) .. body .. "\0"
	end
	T.raises(bson.decode, "Invalid bson type : 99", doc("\99k\0"))
	T.raises(bson.decode, "Invalid bson string , length = -1", doc("\2k\0" .. string.pack("<i4", -1)))
	T.raises(bson.decode, "Invalid bson block", doc("\2k\0" .. string.pack("<i4", 1000) .. "ab\0"))
	T.raises(bson.decode, "no terminating zero", doc("\2k\0" .. string.pack("<i4", 2) .. "ab"))
	T.raises(bson.decode, "Invalid document end", string.pack("<i4", 6) .. "\0\1")
	T.raises(bson.decode, "Invalid bson block : cstring", doc("\16kkk"))
	T.raises(bson.decode, "Invalid bson block", string.pack("<i4", 3) .. "\0")
	T.raises(bson.decode, "Invalid bson binary", doc("\5b\0" .. string.pack("<i4", -5) .. "\0"))
	local nest = doc("")
	for _ = 1, 300 do
		nest = doc("\3d\0" .. nest)
	end
	T.raises(bson.decode, "Too depth while decoding bson", nest)
	T.eq(bson.decode(nil), nil, "nothing to decode gives nothing, as Skynet")
end)

skynet.start(T.run)
