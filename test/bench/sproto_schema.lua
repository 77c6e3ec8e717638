-- sproto_schema: the schema and the message of the sproto workload: a game protocol of 40
-- request/response pairs over a few shared types, and a typical player-state message.
local M = {}

local lines = { [[
.package { type 0 : integer session 1 : integer }
.Vec3 { x 0 : integer(2) y 1 : integer(2) z 2 : integer(2) }
.Item { id 0 : integer count 1 : integer bound 2 : boolean }
.Buff { id 0 : integer expire 1 : integer stacks 2 : integer }
.Player {
	id 0 : integer
	name 1 : string
	level 2 : integer
	hp 3 : integer
	mp 4 : integer
	pos 5 : Vec3
	online 6 : boolean
	items 7 : *Item(id)
	buffs 8 : *Buff
	friends 9 : *integer
	guild 10 : string
	exp 11 : integer
}
]] }
for i = 1, 40 do
	lines[#lines + 1] = string.format([[
op%d %d {
	request { player 0 : integer target 1 : integer args 2 : *string where 3 : Vec3 }
	response { ok 0 : boolean code 1 : integer state 2 : Player items 3 : *Item }
}
]], i, i)
end
M.text = table.concat(lines)

function M.player()
	local items = {}
	for i = 1, 8 do
		items[1000 + i] = { id = 1000 + i, count = i * 3, bound = i % 2 == 0 }
	end
	return {
		id = 1234567, name = "Aragorn", level = 60, hp = 31000, mp = 1200,
		pos = { x = 1024.5, y = -77.25, z = 3.75 }, online = true, items = items,
		buffs = { { id = 7, expire = 1700000000, stacks = 2 }, { id = 9, expire = 1700000300, stacks = 1 } },
		friends = { 1001, 1002, 1003, 2000000001, 5 }, guild = "Fellowship", exp = 9876543210,
	}
end

return M
