-- sprotoparser: the sproto schema language -> the binary schema that sproto.new / sproto.core
-- take (Skynet's module of the same name; same output, byte for byte). The grammar is LPeg
-- (Debian's lua-lpeg); the binary is itself a sproto message of the meta-schema
--   .type { .field { name 0:string buildin 1:integer type 2:integer tag 3:integer
--                    array 4:boolean key 5:integer map 6:boolean }  name 0:string fields 1:*field }
--   .protocol { name 0:string tag 1:integer request 2:integer response 3:integer confirm 4:boolean }
--   .group { type 0:*type protocol 1:*protocol }
-- with types numbered in the order of their sorted full names and protocols sorted by tag.

local function load_lpeg()
	local ok, lpeg = pcall(require, "lpeg")
	if ok then
		return lpeg
	end
	-- Debian's lua-lpeg, found even when [lua] cpath does not name its folder
	for _, dir in ipairs { "/usr/lib/x86_64-linux-gnu/lua/5.1/", "/usr/lib/aarch64-linux-gnu/lua/5.1/",
		"/usr/local/lib/lua/5.1/", "/usr/lib/lua/5.1/" } do
		local open = package.loadlib(dir .. "lpeg.so", "luaopen_lpeg")
		if open then
			lpeg = open()
			package.loaded.lpeg = lpeg
			return lpeg
		end
	end
	error("sprotoparser needs LPeg (Debian package lua-lpeg): " .. tostring(lpeg), 2)
end

local lpeg = load_lpeg()
local P, R, S, C, Ct, Cc, Cp, V = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Ct, lpeg.Cc, lpeg.Cp, lpeg.V

local BUILTIN = { integer = 0, boolean = 1, string = 2, binary = 2, double = 3 }

-- ---- grammar: text -> a list of definitions ----------------------------------------------

-- `far`: the furthest point the grammar got to, where a syntax error is reported
local far = 1
local reached = P(function(_, i)
	far = i > far and i or far
	return i
end)
local space = S(" \t\r\n") + P("#") * (1 - P("\n")) ^ 0
local sp0 = space ^ 0 * reached
local sp1 = space ^ 1 * reached
local word = (R("az", "AZ") + "_") * (R("az", "AZ", "09") + "_") ^ 0
local number = R("09") ^ 1 / tonumber
local dotted = C(word * ("." * word) ^ 0)

local function node(kind, patt)
	return Ct(Cc(kind) * Cp() * patt)
end

local grammar = P {
	"defs",
	defs = Ct(sp0 * ((V "typedef" + V "protocol") * sp0) ^ 0),
	-- { "field", pos, name, tag, "*"|"", typename, "key"|"dec"|nil, value }
	field = node("field", C(word) * sp1 * number * sp0 * ":" * sp0 * C(P("*") ^ -1) * sp0 * dotted
		* (sp0 * "(" * sp0 * (Cc("dec") * number + Cc("key") * C(word ^ 0)) * sp0 * ")") ^ -1),
	body = "{" * sp0 * Ct(((V "field" + V "typedef") * sp0) ^ 0) * "}",
	typedef = node("type", "." * C(word) * sp0 * V "body"),
	sub = Ct(C(P "request" + P "response") * sp1 * (dotted + V "body")),
	protocol = node("protocol", C(word) * sp1 * number * sp0 * "{" * sp0 * Ct((V "sub" * sp0) ^ 0) * "}"),
}

local function line_of(text, pos)
	local _, n = string.gsub(string.sub(text, 1, pos - 1), "\n", "")
	return n + 1
end

local function syntax(text, name)
	far = 1
	local defs, stop = lpeg.match(grammar * Cp(), text)
	if defs and stop == #text + 1 then
		return defs
	end
	error(string.format("syntax error at [%s] line (%d)", name or "", line_of(text, far)), 0)
end

-- ---- definitions -> types and protocols, names resolved ----------------------------------

local convert = {}

-- Register the struct `fullname` with its fields (nested types get "Outer.Inner" names).
function convert.struct(all, fullname, items)
	if all.types[fullname] then
		error("redefined " .. fullname, 0)
	end
	local fields, names, tags = {}, {}, {}
	all.types[fullname] = fields
	all.order[#all.order + 1] = fullname
	for _, it in ipairs(items) do
		if it[1] == "type" then
			convert.struct(all, fullname .. "." .. it[3], it[4])
		else
			local name, tag, star, tname, how, arg = it[3], it[4], it[5], it[6], it[7], it[8]
			if names[name] then
				error(string.format("redefine %s in type %s", name, fullname), 0)
			end
			if tags[tag] then
				error(string.format("redefine tag %d in type %s", tag, fullname), 0)
			end
			names[name], tags[tag] = true, true
			local f = { name = name, tag = tag, array = star == "*", typename = tname }
			if how == "dec" and tname == "integer" then
				f.decimal = arg
			elseif how then
				if not f.array then
					error(string.format("%s in type %s: only an array may name a key", name, fullname), 0)
				end
				f.key = how == "dec" and tostring(arg) or arg
			end
			fields[#fields + 1] = f
		end
	end
	table.sort(fields, function(a, b)
		return a.tag < b.tag
	end)
end

function convert.protocol(all, def)
	local name, tag, subs = def[3], def[4], def[5]
	if all.protocols[name] then
		error("redefined " .. name, 0)
	end
	local p = { name = name, tag = tag }
	for _, sub in ipairs(subs) do
		local what, t = sub[1], sub[2]
		if p[what] ~= nil or (what == "response" and p.confirm) then
			error(string.format("redefine %s in protocol %s", what, name), 0)
		end
		if type(t) == "table" then
			local tname = name .. "." .. what
			convert.struct(all, tname, t)
			p[what] = tname
		elseif t == "nil" then
			p.confirm = what == "response" or nil
		else
			p[what] = t
		end
	end
	all.protocols[name] = p
end

-- A field's type name, looked up from its struct outwards: A.B's "C" is A.B.C, else A.C, else C.
local function resolve(types, scope, tname)
	if BUILTIN[tname] then
		return tname
	end
	while scope do
		local full = scope .. "." .. tname
		if types[full] then
			return full
		end
		scope = string.match(scope, "^(.+)%.[^.]+$")
	end
	return types[tname] and tname
end

local function check(all)
	local bytag = {}
	for name, p in pairs(all.protocols) do
		if bytag[p.tag] then
			error(string.format("redefined protocol tag %d at %s", p.tag, name), 0)
		end
		bytag[p.tag] = p
		for _, what in ipairs { "request", "response" } do
			if p[what] and not all.types[p[what]] then
				error(string.format("Undefined %s type %s in protocol %s", what, p[what], name), 0)
			end
		end
	end
	for tname, fields in pairs(all.types) do
		for _, f in ipairs(fields) do
			local full = resolve(all.types, tname, f.typename)
			if not full then
				error(string.format("Undefined type %s in type %s", f.typename, tname), 0)
			end
			f.typename = full
		end
	end
end

-- ---- binary output ---------------------------------------------------------------------------

local function u16(n)
	return string.char(n % 256, math.floor(n / 256) % 256)
end

-- a data part: 4-byte little-endian length, then the bytes
local function part(s)
	local n = #s
	return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
		math.floor(n / 16777216) % 256) .. s
end

-- an inline field slot holding v
local function slot(v)
	assert(v >= 0 and v < 0x7fff, "sproto value out of range")
	return u16((v + 1) * 2)
end

local NAME_SLOT, SKIP1 = u16(0), u16(1) -- "value in the data part", "skip one tag"

-- The tag a keyed array's elements are indexed by (builtin fields only, as Skynet).
local function key_tag(f, sub)
	local builtin = {}
	for _, sf in ipairs(sub) do
		if BUILTIN[sf.typename] then
			builtin[sf.name] = sf.tag
		end
	end
	if f.key ~= "" then
		return (builtin[f.key] or error("Invalid map index :" .. f.key, 0)), nil
	end
	local min, count = nil, 0
	for _, tag in pairs(builtin) do
		count = count + 1
		min = (min == nil or tag < min) and tag or min
	end
	if count > 2 then
		error(string.format("Invalid map definition: %s, more than two fields", f.name), 0)
	end
	return (min or error("Invalid map index :", 0)), 1
end

local function encode_field(f, all)
	local slots = { NAME_SLOT }
	local builtin = BUILTIN[f.typename]
	local extra = f.decimal or (f.typename == "binary" and 1) or nil
	if builtin then
		slots[2] = slot(builtin)
		slots[3] = extra and slot(extra) or SKIP1
	else
		slots[2] = SKIP1
		slots[3] = slot(all.index[f.typename])
	end
	slots[4] = slot(f.tag)
	if f.array then
		slots[5] = slot(1)
		if f.key then
			local tag, map = key_tag(f, all.types[f.typename])
			slots[6] = slot(tag)
			slots[7] = map and slot(map) or nil
		end
	end
	return part(u16(#slots) .. table.concat(slots) .. part(f.name))
end

local function encode_type(name, fields, all)
	if #fields == 0 then
		return part(u16(1) .. NAME_SLOT .. part(name))
	end
	local out = {}
	for i, f in ipairs(fields) do
		out[i] = encode_field(f, all)
	end
	return part(u16(2) .. NAME_SLOT .. NAME_SLOT .. part(name) .. part(table.concat(out)))
end

local function encode_protocol(p, all)
	local slots = { NAME_SLOT, slot(p.tag) }
	if p.request or p.response or p.confirm then
		slots[3] = p.request and slot(all.index[p.request]) or SKIP1
		if p.response then
			slots[4] = slot(all.index[p.response])
		elseif p.confirm then
			slots[4], slots[5] = SKIP1, slot(1)
		end
	end
	return part(u16(#slots) .. table.concat(slots) .. part(p.name))
end

local function encode(all)
	if next(all.types) == nil then
		assert(next(all.protocols) == nil)
		return u16(0)
	end
	local names = {}
	for name in pairs(all.types) do
		names[#names + 1] = name
	end
	table.sort(names)
	all.index = {}
	for i, name in ipairs(names) do
		all.index[name] = i - 1
	end
	local types = {}
	for i, name in ipairs(names) do
		types[i] = encode_type(name, all.types[name], all)
	end
	local protos = {}
	for _, p in pairs(all.protocols) do
		protos[#protos + 1] = p
	end
	if #protos == 0 then
		return u16(1) .. NAME_SLOT .. part(table.concat(types))
	end
	table.sort(protos, function(a, b)
		return a.tag < b.tag
	end)
	for i, p in ipairs(protos) do
		protos[i] = encode_protocol(p, all)
	end
	return u16(2) .. NAME_SLOT .. NAME_SLOT .. part(table.concat(types)) .. part(table.concat(protos))
end

local parser = {}

-- parse(text [, name]) -> the binary schema; raises "syntax error at [name] line (N)" or a
-- message naming the offending definition.
function parser.parse(text, name)
	assert(type(text) == "string", "sprotoparser.parse needs the schema text")
	local all = { types = {}, protocols = {}, order = {} }
	for _, def in ipairs(syntax(text, name or "=text")) do
		if def[1] == "type" then
			convert.struct(all, def[3], def[4])
		else
			convert.protocol(all, def)
		end
	end
	check(all)
	return encode(all)
end

return parser
