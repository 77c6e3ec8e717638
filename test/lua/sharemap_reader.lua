-- A reader service of t_sharemap: follows a sharemap it was handed a copy of.
local T = require "testlib"
local sharemap = require "skynet.sharemap"

local reader
local CMD = {}

function CMD.init(typename, copy)
	reader = sharemap.reader(typename, copy)
end

-- update(), then the fields asked for
function CMD.look(...)
	local changed = reader:update()
	local out = { changed = changed }
	for _, k in ipairs { ... } do
		out[k] = reader[k]
	end
	return out
end

function CMD.write()
	reader.x = 1
end

T.serve(CMD)
