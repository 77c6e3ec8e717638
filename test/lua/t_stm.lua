-- skynet.stm: a writer publishes serialized messages; readers in other services see the newest
-- version, and only once.
local skynet = require "skynet"
local stm = require "skynet.stm"
local T = require "testlib"

local function reader()
	return skynet.newservice("share_reader")
end

local SETUP = [[
	local stm = require "skynet.stm"
	S.r = stm.newcopy(...)
	return S.r(skynet.unpack)]]
local READ = "return S.r(skynet.unpack)"

T.case("reader_sees_each_new_version_once", function()
	local obj = stm.new(skynet.pack(1, 2, 3))
	local r = reader()
	T.same({ skynet.call(r, "lua", "run", "local skynet = require 'skynet'\n" .. SETUP,
		stm.copy(obj)) }, { true, 1, 2, 3 })
	T.same({ skynet.call(r, "lua", "run", "local skynet = require 'skynet'\n" .. READ) }, { false })
	obj(skynet.pack("hello", 4))
	T.same({ skynet.call(r, "lua", "run", "local skynet = require 'skynet'\n" .. READ) },
		{ true, "hello", 4 })
	obj(skynet.pack("a"))
	obj(skynet.pack("b"))
	T.same({ skynet.call(r, "lua", "run", "local skynet = require 'skynet'\n" .. READ) },
		{ true, "b" }, "only the newest version is read")
	skynet.kill(r)
end)

T.case("many_readers_share_one_writer", function()
	local obj = stm.new(skynet.packstring({ v = 1 }))
	local rs = {}
	for i = 1, 10 do
		rs[i] = reader()
		local ok, t = skynet.call(rs[i], "lua", "run",
			"local skynet = require 'skynet'\n" .. SETUP, stm.copy(obj))
		T.eq(ok, true)
		T.eq(t.v, 1)
	end
	obj(skynet.packstring({ v = 2 }))
	for _, r in ipairs(rs) do
		local ok, t = skynet.call(r, "lua", "run", "local skynet = require 'skynet'\n" .. READ)
		T.eq(ok, true)
		T.eq(t.v, 2)
		skynet.kill(r)
	end
end)

T.case("string_messages_and_read_with_ud", function()
	local obj = stm.new("raw bytes")
	local r = stm.newcopy(stm.copy(obj))
	local ok, s, ud = stm.read(r, function(msg, sz, u)
		return skynet.tostring(msg, sz), u
	end, "extra")
	T.eq(ok, true)
	T.eq(s, "raw bytes")
	T.eq(ud, "extra")
	obj("")
	T.same({ r(function(_, sz)
		return sz
	end) }, { true, 0 })
end)

T.case("reader_gets_false_once_the_writer_is_gone", function()
	local obj = stm.new(skynet.pack(1))
	local r = stm.newcopy(stm.copy(obj))
	T.eq(select(2, r(skynet.unpack)), 1)
	obj(skynet.pack(2))
	obj = nil -- luacheck: ignore 311
	collectgarbage()
	collectgarbage()
	T.same({ r(skynet.unpack) }, { false })
end)

T.case("bad_pointers_and_types_raise", function()
	local obj = stm.new(skynet.pack(1))
	local p = stm.copy(obj)
	local r = stm.newcopy(p)
	T.raises(stm.newcopy, "not a pointer from stm.copy (or already used)", p)
	local msg, sz = skynet.pack(1)
	T.raises(stm.newcopy, "not a pointer from stm.copy", msg)
	skynet.trash(msg, sz)
	T.raises(stm.newcopy, "userdata expected, got string", "str")
	T.raises(stm.copy, "skynet.stm.writer expected", r)
	T.raises(r, "function expected", 42)
	T.raises(stm.new, "string expected", {})
end)

skynet.start(T.run)
