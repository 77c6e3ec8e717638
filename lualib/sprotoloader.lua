-- sprotoloader: one parsed schema per node, shared by every service (Skynet's module).
-- register(file, index) / save(bin, index) build the schema in C once and put it in slot
-- `index` (0..15); load(index) gives a service a sproto object over that same C structure
-- (immutable, never freed), so a thousand agents hold one copy.
local sproto = require "sproto"
local sprotocore = require "sproto.core"

local M = {}

-- Build the schema from its binary form and publish it in slot `index`.
function M.save(bin, index)
	local cobj = sprotocore.newproto(bin)
	if not cobj then
		error("sprotoloader.save: not a sproto schema", 2)
	end
	sprotocore.saveproto(cobj, index)
end

function M.register(filename, index)
	local f = assert(io.open(filename), "Can't open sproto file")
	local text = f:read "*a"
	f:close()
	M.save(require("sprotoparser").parse(text, filename), index)
end

function M.load(index)
	return sproto.sharenew(sprotocore.loadproto(index))
end

return M
