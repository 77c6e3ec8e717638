-- seed_sproto.lua DIR: binary schemas (compiled by lualib/sprotoparser.lua) for fuzz_sproto's
-- schema mode, each behind the mode byte 2. Run by scripts/fuzz from the repository root.
package.path = "lualib/?.lua"
local parser = require "sprotoparser"
local dir = assert(arg[1], "usage: seed_sproto.lua DIR")
local f = assert(io.open("test/vectors/sproto-schema.txt"))
local schemas = {
	vectors = f:read("*a"),
	header = ".package { type 0 : integer session 1 : integer }\na 1 { request package }",
	map = ".P { k 0 : integer v 1 : string } .M { m 0 : *P() b 1 : binary d 2 : double x 3 : integer(2) }\n" ..
		"m 2 { request M response nil }",
	keyed = ".K { id 0 : string n 1 : *integer } .B { k 100 : *K(id) s 5 : K } p 0 { response B }",
}
f:close()
for name, text in pairs(schemas) do
	local out = assert(io.open(dir .. "/schema-" .. name, "wb"))
	out:write("\2" .. parser.parse(text))
	out:close()
end
