-- skynet.datasheet.builder: create and update the sheets skynet.datasheet reads. A sheet is a
-- table, or a string made by builder.compile; it is converted once into a shared C tree and every
-- reader of the node moves to a new version on its next access.
local skynet = require "skynet"
local core = require "skynet.sharetree"

local SPACE = "datasheet"
local builder = {}

local function sheet(v)
	if type(v) == "string" then
		v = skynet.unpack(v)
	end
	if type(v) ~= "table" then
		error("datasheet: a sheet is a table or a string from builder.compile, not " .. type(v), 3)
	end
	return v
end

function builder.new(name, v)
	if not core.publish(SPACE, name, sheet(v), "new") then
		error(string.format("datasheet %s exists", tostring(name)), 2)
	end
end

function builder.update(name, v)
	if not core.exists(SPACE, name) then
		error(string.format("datasheet %s: create data first", tostring(name)), 2)
	end
	core.publish(SPACE, name, sheet(v), "replace")
end

-- A sheet as a string, to build or to store (new and update accept it).
function builder.compile(v)
	return skynet.packstring(v)
end

return builder
