-- The schema of t_sproto_gate's little game: requests from the client (c2s) and pushes from the
-- server (s2c), each with the `package` header sproto's RPC layer puts before every message.
local parser = require "sprotoparser"

local header = [[
.package {
	type 0 : integer
	session 1 : integer
}
]]

return {
	c2s = parser.parse(header .. [[
.Pos { x 0 : integer y 1 : integer }
login 1 {
	request { name 0 : string }
	response { id 0 : integer greeting 1 : string }
}
move 2 {
	request { to 0 : Pos }
	response { at 0 : Pos steps 1 : integer }
}
bye 3 {}
]]),
	s2c = parser.parse(header .. [[
tick 1 { request { n 0 : integer } }
]]),
}
