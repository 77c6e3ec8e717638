-- skynet.datasheet: read a sheet made with skynet.datasheet.builder. The sheet is one shared C
-- tree per version (skynet.sharetree); the object query() returns follows updates by itself on
-- its next access, and sub-tables taken from it find their key again in the new version.
local core = require "skynet.sharetree"

local datasheet = {}
local sheets = {} -- name -> the object this service reads

function datasheet.query(name)
	local obj = sheets[name]
	if obj then
		return obj
	end
	obj = core.query("datasheet", name, true)
	if not obj then
		error(string.format("datasheet %s: create data first", tostring(name)), 2)
	end
	sheets[name] = obj
	return obj
end

return datasheet
