-- sproto, sprotoparser, sprotoloader: every vector of test/vectors/sproto.txt (made by Skynet's own
-- modules) byte for byte, round trips of a corpus of our own, the RPC layer, errors, hostile input.
local skynet = require "skynet"
local sproto = require "sproto"
local parser = require "sprotoparser"
local loader = require "sprotoloader"
local core = require "sproto.core"
local T = require "testlib"

local ROOT = assert(string.match(skynet.getenv("lua_path"), "([^;]*)/test/lua/%?%.lua"))

local function readfile(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

local function hex(s)
	return (string.gsub(s, ".", function(c)
		return string.format("%02x", string.byte(c))
	end))
end

local function sha256(s)
	local path = skynet.getenv("test_tmp") .. "/sha.bin"
	local f = assert(io.open(path, "wb"))
	f:write(s)
	f:close()
	local p = assert(io.popen("sha256sum " .. path))
	local out = p:read("*a")
	p:close()
	return string.match(out, "^(%x+)")
end

local vectors = {}
for line in string.gmatch(readfile(ROOT .. "/test/vectors/sproto.txt"), "[^\n]+") do
	local name, desc, bytes = string.match(line, "^([^\t]+)\t([^\t]*)\t([^\t]*)$")
	vectors[name] = { desc = desc, bytes = bytes }
end
local SCHEMA = readfile(ROOT .. "/test/vectors/sproto-schema.txt")
local HEADER = ".package {\n\ttype 0 : integer\n\tsession 1 : integer\n}\n"

-- Compare produced bytes with the vector's bytes column (hex, or len= sha256=).
local function check_vector(name, got)
	local v = assert(vectors[name], "no vector " .. name)
	local len, digest = string.match(v.bytes, "^len=(%d+) sha256=(%x+)$")
	if len then
		T.eq(#got, tonumber(len), name .. " length")
		T.eq(sha256(got), digest, name .. " sha256")
	else
		T.eq(hex(got), v.bytes, name)
	end
end

-- The vectors' messages, as their descriptions give them.
local messages = {
	phone_empty = { "Phone", {} },
	phone = { "Phone", { number = "123456", type = 1 } },
	person_small = { "Person", { name = "Alice", id = 10000 } },
	person_neg = { "Person", { name = "B", id = -1, online = false } },
	person_big = { "Person", { name = "C", id = 0x7fffffffffff, score = 12345 } },
	person_full = { "Person", { name = "Dave", id = 3, email = "d@x", online = true, score = 99,
		tags = { "a", "bb", "" }, ratio = 0.25, blob = "\0\1\2", friends = { 1, 2, 0x100000000, -5 },
		phone = { { number = "1", type = 2 }, { number = "22" } } } },
	book_one = { "AddressBook", { person = { [20000] = { name = "Bob", id = 20000,
		phone = { { number = "01234567890", type = 1 } } } }, others = { { name = "Carol", id = 3 } } } },
	person_longstr = { "Person", { name = string.rep("n", 300), id = 1 } },
	person_manyints = { "Person", { name = "m", friends = (function()
		local t = {}
		for i = 1, 40 do
			t[i] = i * 1000
		end
		return t
	end)() } },
	person_bigints = { "Person", { id = 0x7fffffff, friends = { 0x7fffffff, 0x80000000, -0x80000000, -0x80000001 } } },
}

T.case("schema_bin_matches_skynet", function()
	check_vector("schema_bin", parser.parse(SCHEMA))
end)

T.case("encode_and_pack_vectors", function()
	local sp = sproto.new(parser.parse(SCHEMA))
	local n = 0
	for name, m in pairs(messages) do
		local bin = sp:encode(m[1], m[2])
		check_vector("encode_" .. name, bin)
		check_vector("pack_" .. name, sproto.pack(bin))
		T.eq(sproto.unpack(sproto.pack(bin)):sub(1, #bin), bin, name .. " unpack")
		T.same(sp:decode(m[1], bin), m[2], name .. " decode")
		T.same(sp:pdecode(m[1], sproto.pack(bin)), m[2], name .. " pdecode")
		T.eq(sp:pencode(m[1], m[2]), sproto.pack(bin), name .. " pencode")
		n = n + 1
	end
	T.eq(n, 10, "messages checked")
end)

T.case("rpc_vectors", function()
	local sp = sproto.new(parser.parse(HEADER .. SCHEMA))
	local client = sp:host "package"
	local request = client:attach(sp)
	check_vector("rpc_req_handshake", request("handshake", nil, 1))
	check_vector("rpc_req_set", request("set", { what = "hello", value = "world" }, 2))
	local get = request("get", { what = "hello" }, 3)
	check_vector("rpc_req_get", get)
	check_vector("rpc_req_quit_nosession", request("quit"))
	-- the server's side of the get: dispatch it, answer it, and the client matches the session
	local server = sp:host "package"
	local kind, name, args, response = server:dispatch(get)
	T.eq(kind, "REQUEST")
	T.eq(name, "get")
	T.same(args, { what = "hello" })
	local reply = response({ result = "world" })
	check_vector("rpc_resp_get", reply)
	local k2, session, result = client:dispatch(reply)
	T.eq(k2, "RESPONSE")
	T.eq(session, 3)
	T.same(result, { result = "world" })
	T.raises(function()
		client:dispatch(reply)
	end, "Unknown session")
end)

-- ---- our own corpus ----------------------------------------------------------------------

local CORPUS = [[
# every kind of field
.Game {
	.Item {
		id 0 : integer
		name 1 : string
		.Stat {
			key 0 : string
			value 1 : integer
		}
		stats 2 : *Stat(key)
	}
	.Pair {
		k 0 : integer
		v 1 : string
	}
	id 0 : integer
	big 1 : integer
	money 2 : integer(2)
	speed 3 : double
	alive 4 : boolean
	blob 5 : binary
	items 6 : *Item
	bag 7 : *Item(id)
	flags 8 : *boolean
	ints 9 : *integer
	reals 10 : *double
	names 11 : *string
	dict 12 : *Pair()
	prices 13 : *integer(3)
	child 20 : Game
	sparse 1000 : integer
}
.Empty {}
ping 10 {
	request Game
	response { ok 0 : boolean }
}
notify 11 { request Empty }
ack 12 { response nil }
]]

local function corpus()
	return sproto.parse(CORPUS)
end

T.case("round_trips_every_field_kind", function()
	local ffi = require "ffi"
	local sp = corpus()
	local msg = {
		id = 7, big = 2 ^ 40, money = -12.34, speed = -1.5e300, alive = false, blob = "\0\255\0x",
		items = { { id = 1, name = "sword", stats = { atk = { key = "atk", value = 10 } } }, { id = 2 } },
		bag = { [5] = { id = 5, name = "five" }, [-9] = { id = -9 } },
		flags = { true, false, true }, ints = { 0, -1, 0x7ffe, 0x7fff, 2 ^ 31 - 1, 2 ^ 31, -2 ^ 31, -2 ^ 31 - 1 },
		reals = { 0.5, -0, 1 / 3 }, names = { "", "a", string.rep("z", 1000) },
		dict = { [1] = "one", [100000] = "big" }, prices = { 1.5, -0.001, 0 },
		child = { id = 1, child = { id = 2, child = { alive = true } } },
		sparse = 1,
	}
	local back = sp:decode("Game", sp:encode("Game", msg))
	T.same(back, msg)
	-- integers of every size, on their own and beyond 2^53 as int64_t cdata
	local edge = { 0, 1, 0x7ffe, 0x7fff, 0x8000, -1, 2 ^ 31 - 1, 2 ^ 31, -2 ^ 31, -2 ^ 31 - 1, 2 ^ 53, -2 ^ 53 }
	for _, v in ipairs(edge) do
		T.eq(sp:decode("Game", sp:encode("Game", { id = v })).id, v, "integer " .. v)
	end
	local max = ffi.new("int64_t", 0x7fffffff) * 0x100000000 + 0xffffffff
	local min = -max - 1
	local odd = ffi.new("int64_t", 2 ^ 53) + 1
	local got = sp:decode("Game", sp:encode("Game", { id = max, big = min, ints = { odd, 3 } }))
	T.ok(ffi.istype("int64_t", got.id) and got.id == max, "int64 max")
	T.ok(got.big == min, "int64 min")
	T.ok(got.ints[1] == odd and got.ints[2] == 3, "int64 in an array")
	T.eq(sp:decode("Game", sp:encode("Game", { id = ffi.new("uint64_t", 42) })).id, 42, "uint64 cdata")
end)

T.case("empty_large_and_unknown_fields", function()
	local sp = corpus()
	T.eq(sp:encode("Empty", {}), "\0\0")
	T.same(sp:decode("Empty", sp:encode("Game", { id = 1, names = { "x" } })), {}, "unknown tags skipped")
	T.same(sp:decode("Game", "\0\0"), {})
	T.same(sp:decode("Game", sp:encode("Game", { ints = {}, items = {}, names = {} })),
		{ ints = {}, items = {}, names = {} }, "empty arrays")
	local big = { names = {}, ints = {}, blob = string.rep("\1\0", 300000) }
	for i = 1, 20000 do
		big.names[i] = tostring(i)
		big.ints[i] = i * 1000003
	end
	local bin = sp:encode("Game", big)
	T.ok(#bin > 700000, "large message")
	T.same(sp:pdecode("Game", sp:pencode("Game", big)), big, "large round trip")
	-- decode reports the bytes it used; trailing bytes are left alone
	local t, used = sp:decode("Game", bin .. "trailing")
	T.eq(used, #bin)
	T.eq(#t.names, 20000)
	-- a userdata message with its size, as Skynet hands messages over
	local ud, sz = skynet.pack(1)
	T.raises(core.decode, "decode error", core.querytype(sp.__cobj, "Game"), ud, 1)
	skynet.trash(ud, sz)
end)

T.case("protocol_queries_and_defaults", function()
	local sp = corpus()
	T.ok(sp:exist_type("Game.Item.Stat"))
	T.ok(not sp:exist_type("Nope"))
	T.ok(sp:exist_proto("ping") and sp:exist_proto(12) and not sp:exist_proto("pong"))
	local p = sp:queryproto("ping")
	T.eq(p.tag, 10)
	T.eq(sp:queryproto(10).name, "ping")
	local req, tag = sp:request_encode("ping", { id = 3 })
	T.eq(tag, 10)
	local args, name = sp:request_decode("ping", req)
	T.eq(name, "ping")
	T.eq(args.id, 3)
	T.same(sp:response_decode("ping", sp:response_encode("ping", { ok = true })), { ok = true })
	T.eq(sp:response_encode("notify", nil), "")
	T.same(sp:default("Game.Pair"), { k = 0, v = "" })
	local d = sp:default("Game")
	T.eq(d.alive, false)
	T.eq(d.money, 0)
	T.same(d.items, { __array = "Game.Item" })
	T.same(d.child, { __type = "Game" })
	T.same(sp:default("ping", "RESPONSE"), { ok = false })
	T.eq(sp:default("ack", "REQUEST"), nil)
	T.raises(function()
		sp:default("ping", "BOTH")
	end, "Invalid type")
	T.raises(function()
		sp:encode("Nope", {})
	end, "type not found")
	T.raises(function()
		sp:queryproto("pong")
	end, "pong not found")
end)

T.case("rpc_sessions_confirm_and_notifications", function()
	local sp = sproto.parse(HEADER .. CORPUS)
	local client, server = sp:host(), sp:host "package"
	local send = client:attach(sp)
	-- a request without session is a notification: no response function
	local kind, name, args, resp = server:dispatch(send("notify", {}))
	T.eq(kind, "REQUEST")
	T.eq(name, "notify")
	T.same(args, {})
	T.eq(resp, nil)
	-- `response nil`: the answer carries the session only
	local msg = send("ack", nil, 7)
	kind, name, args, resp = server:dispatch(msg)
	T.eq(kind, "REQUEST")
	T.eq(name, "ack")
	T.eq(args, nil)
	local k, session, result = client:dispatch(resp())
	T.eq(k, "RESPONSE")
	T.eq(session, 7)
	T.eq(result, nil)
	-- sessions are matched independently, answers in any order
	local m1, m2 = send("ping", { id = 1 }, 100), send("ping", { id = 2 }, 101)
	local _, _, a2, r2 = server:dispatch(m2)
	local _, _, a1, r1 = server:dispatch(m1)
	T.eq(a1.id + a2.id, 3)
	T.same({ client:dispatch(r2({ ok = false })) }, { "RESPONSE", 101, { ok = false } })
	T.same({ client:dispatch(r1({ ok = true })) }, { "RESPONSE", 100, { ok = true } })
	T.raises(function()
		sproto.parse(CORPUS):host()
	end, "type package not found")
end)

T.case("rpc_header_ud_travels_both_ways", function()
	local sp = sproto.parse(".package { type 0 : integer session 1 : integer ud 2 : string }\n" .. CORPUS)
	local client, server = sp:host(), sp:host()
	local send = client:attach(sp)
	local kind, name, args, resp, ud = server:dispatch(send("ping", { id = 9 }, 1, "trace-1"))
	T.eq(kind, "REQUEST")
	T.eq(name, "ping")
	T.eq(args.id, 9)
	T.eq(ud, "trace-1")
	local k, session, result, rud = client:dispatch(resp({ ok = true }, "back"))
	T.same({ k, session, result, rud }, { "RESPONSE", 1, { ok = true }, "back" })
	local _, _, _, none, nud = server:dispatch(send("notify", {}, nil, "n"))
	T.eq(none, nil)
	T.eq(nud, "n")
end)

T.case("encode_errors_name_the_field", function()
	local sp = corpus()
	T.raises(sp.encode, ".id[0] is not an integer (Is a string)", sp, "Game", { id = "1" })
	T.raises(sp.encode, ".id[0] is not an integer (Is a number)", sp, "Game", { id = 1.5 })
	T.raises(sp.encode, ".ints[2] is not an integer", sp, "Game", { ints = { 1, "x" } })
	T.raises(sp.encode, ".alive[0] is not a boolean", sp, "Game", { alive = 1 })
	T.raises(sp.encode, ".names[1] is not a string", sp, "Game", { names = { 1 } })
	T.raises(sp.encode, ".items[0] is not a table", sp, "Game", { items = 3 })
	T.raises(sp.encode, ".speed[0] is not a number", sp, "Game", { speed = "fast" })
	T.raises(sp.encode, ".id[0] is not an integer", sp, "Game", { id = 2 ^ 63 })
	local deep = {}
	local t = deep
	for _ = 1, 100 do
		t.child = {}
		t = t.child
	end
	T.raises(sp.encode, "The table is too deep", sp, "Game", deep)
	local ok = pcall(sp.encode, sp, "Game", { id = 1 }) -- the scratch buffer is fine after errors
	T.ok(ok)
end)

T.case("hostile_input_raises_errors_never_crashes", function()
	local sp = corpus()
	local bin = sp:encode("Game", { id = 70000, names = { "ab", "c" }, items = { { id = 1 } }, ints = { 1, 2 } })
	T.raises(sp.decode, "decode error", sp, "Game", "\1")
	T.raises(sp.decode, "decode error", sp, "Game", bin:sub(1, #bin - 1))
	T.raises(sp.decode, "decode error", sp, "Game", "\1\0\0\0\9\0\0\0ab") -- data part past the end
	T.raises(sp.decode, "decode error", sp, "Game", "\2\0\1\0\0\0\3\0\0\0\1\0\0") -- speed: 3-byte double
	T.raises(sproto.unpack, "Invalid unpack stream", "\255\3abc")
	T.raises(sproto.unpack, "Invalid unpack stream", "\7ab")
	T.eq(core.newproto("\1\0\0\0\9\0\0\0"), nil, "a broken schema is refused")
	T.eq(core.newproto(""), nil)
	-- every truncation and many random byte flips: an error or a value, never a crash
	local types = { "Game", "Game.Item", "Game.Pair", "Empty" }
	local seed = 12345
	local function rnd(n)
		seed = (seed * 1103515245 + 12345) % 2147483648
		return seed % n
	end
	for cut = 0, #bin do
		pcall(sp.decode, sp, "Game", bin:sub(1, cut))
	end
	for _ = 1, 3000 do
		local bytes = { string.byte(bin, 1, -1) }
		for _ = 1, 1 + rnd(4) do
			bytes[1 + rnd(#bytes)] = rnd(256)
		end
		local s = string.char(unpack(bytes))
		pcall(sp.decode, sp, types[1 + rnd(#types)], s)
		pcall(sproto.unpack, s)
		local ok, schema = pcall(core.newproto, s)
		if ok and schema then
			core.deleteproto(schema)
		end
	end
	T.same(sp:decode("Game", bin).names, { "ab", "c" }, "still decoding after the storm")
end)

T.case("parser_errors", function()
	T.raises(parser.parse, "syntax error at [=text] line (3)", ".A {\n a 0 : integer\n b : integer\n}")
	T.raises(parser.parse, "syntax error at [my.sproto] line (1)", ".A { a 0 integer }", "my.sproto")
	T.raises(parser.parse, "Undefined type B in type A", ".A { b 0 : B }")
	T.raises(parser.parse, "redefine tag 0 in type A", ".A { a 0 : integer b 0 : string }")
	T.raises(parser.parse, "redefine a in type A", ".A { a 0 : integer a 1 : string }")
	T.raises(parser.parse, "redefined protocol tag 1 at", "a 1 {} b 1 {}")
	T.raises(parser.parse, "Undefined request type X in protocol a", "a 1 { request X }")
	T.raises(parser.parse, "Invalid map index :nokey", ".P { id 0 : integer } .A { p 0 : *P(nokey) }")
	T.raises(parser.parse, "more than two fields", ".P { a 0 : integer b 1 : integer c 2 : integer } .A { p 0 : *P() }")
	-- scoping: the innermost type of the name wins
	local sp = sproto.parse(".X { v 0 : string } .A { .X { n 0 : integer } x 0 : X } .B { x 0 : X }")
	T.same(sp:decode("A", sp:encode("A", { x = { n = 1 } })), { x = { n = 1 } })
	T.same(sp:decode("B", sp:encode("B", { x = { v = "s" } })), { x = { v = "s" } })
	T.eq(parser.parse(""), "\0\0")
end)

T.case("sprotoloader_shares_one_schema_between_services", function()
	loader.save(parser.parse(HEADER .. SCHEMA), 3)
	local sp = loader.load(3)
	local mine = sp:pencode("Person", messages.person_full[2])
	-- another service loads slot 3 and packs the same message
	local peer = skynet.newservice("sproto_peer")
	T.eq(skynet.call(peer, "lua", "pencode", 3, "Person", messages.person_full[2]), mine)
	T.eq(skynet.call(peer, "lua", "pointer", 3), tostring(sp.__cobj), "the very same C schema")
	local file = skynet.getenv("test_tmp") .. "/s.sproto"
	local f = assert(io.open(file, "w"))
	f:write(SCHEMA)
	f:close()
	loader.register(file, 4)
	T.eq(loader.load(4):pencode("Person", messages.person_full[2]), mine)
	T.raises(loader.load, "nil sproto at index 5", 5)
	T.raises(loader.load, "Invalid global slot index 16", 16)
	T.raises(loader.save, "not a sproto schema", "junk", 6)
	skynet.kill(peer)
end)

skynet.start(T.run)
