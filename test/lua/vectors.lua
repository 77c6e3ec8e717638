-- vectors: reads the known-answer files in test/vectors/ (format: shared spec vectors README:
-- name TAB description TAB bytes) for Lua tests, and checks a result against a line's bytes
-- field (hex, empty, "-", or "len=N sha256=..." for long results, checked with a small SHA-256).
local skynet = require "skynet"
local bit = require "bit"

local V = {}

local function dir()
	for pat in string.gmatch(skynet.getenv("luaservice") or "", "[^;]+") do
		local d = pat:match("^(.*)/test/lua/%?%.lua$")
		if d then
			return d .. "/test/vectors/"
		end
	end
	error("cannot find test/vectors from luaservice")
end

function V.load(file)
	local list = {}
	for line in io.lines(dir() .. file) do
		local name, desc, bytes = line:match("^([^\t]+)\t([^\t]*)\t([^\t]*)$")
		assert(name, "bad vector line in " .. file .. ": " .. line:sub(1, 80))
		list[#list + 1] = { name = name, desc = desc, bytes = bytes }
	end
	return list
end

function V.unhex(h)
	return (h:gsub("%x%x", function(x)
		return string.char(tonumber(x, 16))
	end))
end

function V.hex(s)
	return (s:gsub(".", function(c)
		return string.format("%02x", c:byte())
	end))
end

-- SHA-256 (FIPS 180-4) on LuaJIT's bit library, only for the len=/sha256= vector lines.
local K = {}
do
	local primes, n = {}, 2
	while #primes < 64 do
		local prime = true
		for _, p in ipairs(primes) do
			if p * p > n then
				break
			end
			if n % p == 0 then
				prime = false
				break
			end
		end
		if prime then
			primes[#primes + 1] = n
		end
		n = n + 1
	end
	for i, p in ipairs(primes) do
		local f = p ^ (1 / 3)
		K[i] = bit.tobit(math.floor((f - math.floor(f)) * 2 ^ 32))
	end
end
local H0 = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
	0x5be0cd19 }

local function block(h, s, at)
	local w = {}
	for i = 0, 15 do
		local a, b, c, d = s:byte(at + 4 * i, at + 4 * i + 3)
		w[i] = bit.bor(bit.lshift(a, 24), bit.lshift(b, 16), bit.lshift(c, 8), d)
	end
	for i = 16, 63 do
		local x, y = w[i - 15], w[i - 2]
		local s0 = bit.bxor(bit.ror(x, 7), bit.ror(x, 18), bit.rshift(x, 3))
		local s1 = bit.bxor(bit.ror(y, 17), bit.ror(y, 19), bit.rshift(y, 10))
		w[i] = bit.tobit(w[i - 16] + s0 + w[i - 7] + s1)
	end
	local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
	for i = 0, 63 do
		local S1 = bit.bxor(bit.ror(e, 6), bit.ror(e, 11), bit.ror(e, 25))
		local ch = bit.bxor(bit.band(e, f), bit.band(bit.bnot(e), g))
		local t1 = hh + S1 + ch + K[i + 1] + w[i]
		local S0 = bit.bxor(bit.ror(a, 2), bit.ror(a, 13), bit.ror(a, 22))
		local maj = bit.bxor(bit.band(a, b), bit.band(a, c), bit.band(b, c))
		hh, g, f, e = g, f, e, bit.tobit(d + t1)
		d, c, b, a = c, b, a, bit.tobit(t1 + S0 + maj)
	end
	local v = { a, b, c, d, e, f, g, hh }
	for i = 1, 8 do
		h[i] = bit.tobit(h[i] + v[i])
	end
end

function V.sha256hex(s)
	local len = #s
	local tail = 64 - (len + 9) % 64
	if tail == 64 then
		tail = 0
	end
	local bits = len * 8
	local lenbytes = {}
	for i = 7, 0, -1 do
		lenbytes[#lenbytes + 1] = string.char(math.floor(bits / 2 ^ (8 * i)) % 256)
	end
	s = s .. "\128" .. string.rep("\0", tail) .. table.concat(lenbytes)
	local h = {}
	for i = 1, 8 do
		h[i] = bit.tobit(H0[i])
	end
	for at = 1, #s, 64 do
		block(h, s, at)
	end
	local out = {}
	for i = 1, 8 do
		out[i] = bit.tohex(h[i])
	end
	return table.concat(out)
end

-- Does `got` (a byte string) match the line's bytes field? Returns ok, what-was-expected.
function V.matches(got, field)
	local n, digest = field:match("^len=(%d+) sha256=(%x+)$")
	if n then
		return #got == tonumber(n) and V.sha256hex(got) == digest, field
	end
	return got == V.unhex(field), field
end

-- The description's expression with each hex:... argument turned into a Lua string literal.
function V.expr(desc)
	desc = desc:gsub("; bytes begin %x+$", "")
	return (desc:gsub("hex:(%x+)", function(h)
		return '"' .. h:gsub("%x%x", function(x)
			return string.format("\\%03d", tonumber(x, 16))
		end) .. '"'
	end))
end

-- Evaluates each line's description of `file` as a Lua expression over `env` (`trim`, when
-- given, rewrites the expression first) and raises at the first result that differs from the
-- line's bytes. Returns the number of lines checked.
function V.check_expressions(file, env, trim)
	local n = 0
	for _, v in ipairs(V.load(file)) do
		local expr = V.expr(v.desc)
		if trim then
			expr = trim(expr)
		end
		local f = assert(loadstring("return " .. expr, v.name))
		local got = setfenv(f, env)()
		local ok, want = V.matches(got, v.bytes)
		if not ok then
			error(v.name .. ": got " .. V.hex(got) .. " want " .. want)
		end
		n = n + 1
	end
	return n
end

return V
