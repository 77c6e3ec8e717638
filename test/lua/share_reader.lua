-- share_reader: a helper service for the shared-state tests (sharedata, sharetable, datasheet,
-- stm). `run` executes a chunk of Lua in this service with a table S kept between calls, so a
-- test can hold proxies here and read them later, as another service of the node would.
local skynet = require "skynet"

local S = {}
local CMD = {}

function CMD.run(code, ...)
	local f = assert(load(code, "=reader", "t", setmetatable({ S = S }, { __index = _G })))
	return f(...)
end

-- Like run, but answers (false, error text) instead of failing the call.
function CMD.try(code, ...)
	local f = assert(load(code, "=reader", "t", setmetatable({ S = S }, { __index = _G })))
	local r = table.pack(pcall(f, ...))
	if not r[1] then
		r[2] = tostring(r[2])
	end
	return table.unpack(r, 1, r.n)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.retpack(assert(CMD[cmd], cmd)(...))
	end)
end)
