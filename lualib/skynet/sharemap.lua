-- skynet.sharemap: Skynet's shared map, a table of one sproto type that a writer service
-- publishes and reader services in the same node follow. The types live in sprotoloader slot 0
-- (sharemap.register); a writer's commit() encodes its table into an stm object, a reader
-- holds a copy of that object and update() decodes the newest version into its own table.
local stm = require "skynet.stm"
local loader = require "sprotoloader"

local SLOT = 0

local sharemap = {}
local schema -- this service's view of slot 0, loaded on first use

local function sp()
	if not schema then
		schema = loader.load(SLOT)
	end
	return schema
end

function sharemap.register(protofile)
	loader.register(protofile, SLOT)
end

-- The writer: fields read and written through it go to its table; commit() publishes them.
local writer = {}

function writer:commit()
	self.__obj(sp():encode(self.__typename, self.__data))
end

function writer:copy()
	return stm.copy(self.__obj)
end

function sharemap.writer(typename, data)
	data = data or {}
	local w = {
		__typename = typename,
		__data = data,
		__obj = stm.new(sp():encode(typename, data)),
		commit = writer.commit,
		copy = writer.copy,
	}
	return setmetatable(w, { __index = data, __newindex = data })
end

-- The reader: read-only fields; update() refreshes them when the writer committed since.
local reader = {}

local function refill(msg, sz, self)
	local data = self.__data
	for k in pairs(data) do
		data[k] = nil
	end
	return sp():decode(self.__typename, msg, sz, data)
end

function reader:update()
	return self.__obj(refill, self)
end

function sharemap.reader(typename, stmcopy)
	local obj = stm.newcopy(stmcopy)
	local r = { __typename = typename, __obj = obj, __data = {}, update = reader.update }
	r.__obj(refill, r)
	return setmetatable(r, {
		__index = r.__data,
		__newindex = function(_, k)
			error("sharemap reader: field " .. tostring(k) .. " is read-only", 2)
		end,
	})
end

return sharemap
