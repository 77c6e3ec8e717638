-- Lua 5.3/5.4 library functions without a require: string.pack/unpack/packsize (known answers
-- from Lua 5.4), utf8, math.type/tointeger/maxinteger/mininteger/ult, table.move, and the int64
-- policy shared with skynet.pack.
local skynet = require "skynet"
local T = require "testlib"
local ffi = require "ffi"

local function bytes(...)
	return string.char(...)
end

T.case("pack_functions_load_on_first_use", function()
	T.eq(rawget(string, "pack"), nil, "not in the string table before use")
	T.eq(type(string.packsize), "function")
	T.eq(type(rawget(string, "pack")), "function", "all three installed together")
	T.eq(("<i2"):pack(1), bytes(1, 0), "method syntax on a format string")
end)

T.case("pack_matches_lua54", function()
	T.eq(string.pack(">s2", "hello"), "\0\5hello")
	T.eq(string.pack("<i4", -2), bytes(254, 255, 255, 255))
	T.eq(string.pack(">I2", 258), bytes(1, 2))
	T.eq(string.pack("z", "ab"), "ab\0")
	T.eq(string.pack("c5", "ab"), "ab\0\0\0")
	T.eq(string.pack("!4 b i4", 1, 2), bytes(1, 0, 0, 0, 2, 0, 0, 0))
	T.eq(string.pack("b Xi4 b", 1, 2), bytes(1, 2), "X without ! aligns to 1")
	T.eq(string.pack("!8 b Xd", 1), bytes(1, 0, 0, 0, 0, 0, 0, 0))
	T.eq(string.pack("<d", 1.5), bytes(0, 0, 0, 0, 0, 0, 248, 63))
	T.eq(string.pack(">f", -2), bytes(192, 0, 0, 0))
	T.eq(string.pack("<i16", -1), string.rep("\255", 16))
	T.eq(string.pack("<I3 x B", 65536 * 3 + 5, 9), bytes(5, 0, 3, 0, 9))
	T.eq(string.pack("<j", -1), string.rep("\255", 8))
	T.eq(string.packsize("i4i8"), 12)
	T.eq(string.packsize("!i1i8"), 16)
	T.eq(string.packsize("c10 d"), 18)
end)

T.case("unpack_matches_lua54", function()
	local function all(...)
		return { n = select("#", ...), ... }
	end
	T.same(all(string.unpack("<i2", "\255\255")), { n = 2, -1, 3 })
	T.same(all(string.unpack(">s2", "\0\5hello!")), { n = 2, "hello", 8 })
	T.same(all(string.unpack("z B", "ab\0\7")), { n = 3, "ab", 7, 5 })
	T.same(all(string.unpack("B", "\1\2", 2)), { n = 2, 2, 3 })
	T.same(all(string.unpack("B", "\1\2", -1)), { n = 2, 2, 3 })
	T.same(all(string.unpack("<I3 x B", bytes(5, 0, 3, 0, 9))), { n = 3, 65536 * 3 + 5, 9, 6 })
	T.same(all(string.unpack("<d >f", bytes(0, 0, 0, 0, 0, 0, 248, 63, 192, 0, 0, 0))),
		{ n = 3, 1.5, -2, 13 })
	T.eq(string.unpack("<i16", "\1" .. string.rep("\0", 15)), 1)
	T.eq(string.unpack("<i16", string.rep("\255", 16)), -1)
	T.eq(string.unpack("<I8", string.rep("\255", 8)), -1, "as Lua 5.4: wraps to a signed integer")
end)

T.case("pack_and_unpack_reject_bad_input", function()
	T.raises(string.pack, "integral size (17) out of limits [1,16]", "i17", 1)
	T.raises(string.pack, "invalid format option 'y'", "y")
	T.raises(string.pack, "missing size for format option 'c'", "c", "a")
	T.raises(string.pack, "integer overflow", "i1", 200)
	T.raises(string.pack, "unsigned overflow", "I1", 256)
	T.raises(string.pack, "number has no integer representation", "j", 1.5)
	T.raises(string.pack, "number has no integer representation", "j", 2 ^ 63)
	T.raises(string.pack, "number expected", "j", "x")
	T.raises(string.pack, "string longer than given size", "c2", "abc")
	T.raises(string.pack, "string contains zeros", "z", "a\0b")
	T.raises(string.pack, "string length does not fit in given size", "s1", string.rep("x", 256))
	T.raises(string.pack, "format asks for alignment not power of 2", "!4 i3", 1)
	T.raises(string.pack, "invalid next option for option 'X'", "X")
	T.raises(string.unpack, "data string too short", "i4", "ab")
	T.raises(string.unpack, "data string too short", ">s2", "\0\9abc")
	T.raises(string.unpack, "unfinished string for format 'z'", "z", "abc")
	T.raises(string.unpack, "initial position out of string", "B", "ab", 4)
	T.raises(string.unpack, "16-byte integer does not fit into Lua Integer", "<i16",
		string.rep("\0", 8) .. "\1" .. string.rep("\0", 7))
	T.raises(string.packsize, "variable-length format", "s")
end)

T.case("int64_policy_is_one_rule_everywhere", function()
	-- maxinteger needs 64 bits: an int64_t cdata; mininteger (-2^63) is exact in a double.
	T.eq(type(math.maxinteger), "cdata")
	T.ok(ffi.istype("int64_t", math.maxinteger), "maxinteger is int64_t")
	T.eq(tostring(math.maxinteger), "9223372036854775807LL")
	T.eq(type(math.mininteger), "number")
	T.eq(math.mininteger, -2 ^ 63)
	local maxbytes = string.pack("<j", math.maxinteger)
	T.eq(maxbytes, string.rep("\255", 7) .. "\127")
	T.eq(string.pack("<j", math.mininteger), string.rep("\0", 7) .. "\128")
	T.eq(string.unpack("<j", maxbytes), math.maxinteger)
	T.eq(type(string.unpack("<j", maxbytes)), "cdata")
	T.eq(type(string.unpack("<j", string.rep("\0", 7) .. "\128")), "number")
	T.eq(string.unpack("<i8", string.pack("<i8", 2 ^ 60)), 2 ^ 60, "exact large values stay numbers")
	local big = string.unpack("<i8", bytes(1, 0, 0, 0, 0, 0, 32, 0)) -- 2^53 + 1
	T.eq(tostring(big), "9007199254740993LL")
	T.eq(string.pack("<i8", big), bytes(1, 0, 0, 0, 0, 0, 32, 0), "cdata packs back exactly")
	T.eq(string.pack("<J", ffi.new("uint64_t", 0) - 1), string.rep("\255", 8))
	-- skynet.pack agrees: the same values come back in the same form
	for _, v in ipairs({ math.maxinteger, math.mininteger, big, 2 ^ 53, -2 ^ 53 }) do
		local back = skynet.unpack(skynet.packstring(v))
		T.eq(type(back), type(v), "skynet.pack round trip type of " .. tostring(v))
		T.eq(back, v)
	end
end)

T.case("math_type_and_tointeger_follow_the_encoder", function()
	T.eq(math.type(1), "integer")
	T.eq(math.type(-2 ^ 63), "integer")
	T.eq(math.type(1.5), "float")
	T.eq(math.type(-0.0), "float")
	T.eq(math.type(2 ^ 63), "float")
	T.eq(math.type(1 / 0), "float")
	T.eq(math.type(0 / 0), "float")
	T.eq(math.type("1"), nil)
	T.eq(math.type(ffi.new("int64_t", 5)), "integer")
	T.raises(math.type, "bad argument #1")
	T.eq(math.tointeger(3.0), 3)
	T.eq(math.tointeger(3.5), nil)
	T.eq(math.tointeger("8"), nil)
	T.eq(math.ult(1, -1), true)
	T.eq(math.ult(-1, 1), false)
	T.eq(math.floor(7 / 2), 3, "the rest of math is there")
end)

T.case("utf8_library_is_a_global", function()
	T.eq(utf8.char(72, 228, 8364), "Hä€")
	T.eq(utf8.len("häll€"), 5)
	T.eq(utf8.codepoint("€"), 8364)
	local bad, at = utf8.len("ab\255")
	T.eq(bad, nil)
	T.eq(at, 3)
	local seen = {}
	for p, c in utf8.codes("hé!") do
		seen[#seen + 1] = p .. ":" .. c
	end
	T.eq(table.concat(seen, " "), "1:104 2:233 4:33")
	T.eq(utf8.offset("hé!", 3), 4)
	T.ok(("é"):match("^" .. utf8.charpattern .. "$"), "charpattern matches one character")
	T.eq(require "utf8", utf8)
end)

T.case("table_move_copies_in_the_safe_direction", function()
	T.same(table.move({ 1, 2, 3 }, 1, 3, 2), { 1, 1, 2, 3 })
	T.same(table.move({ 1, 2, 3, 4 }, 2, 4, 1), { 2, 3, 4, 4 })
	local dst = {}
	T.eq(table.move({ 1, 2, 3 }, 1, 3, 1, dst), dst)
	T.same(dst, { 1, 2, 3 })
	T.same(table.move({ 1 }, 2, 1, 1), { 1 }, "empty range")
	T.raises(table.move, "bad argument #1", nil, 1, 1, 1)
end)

skynet.start(T.run)
