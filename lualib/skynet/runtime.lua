-- skynet/runtime: the part of the skynet API about the node (services, unique services,
-- kill/abort, local names, environment, memory limit, time, log). skynet.lua loads it on the
-- first access to one of these names (the list in skynet.lua's `parts`).
local c = require "skynet.core"

local format = string.format

return function(skynet, I)
	local starttime = c.starttime()

	function skynet.harbor(addr)
		return (addr - addr % 0x1000000) / 0x1000000, false
	end

	function skynet.setenv(key, value)
		if c.getenv(key) ~= nil then
			error("Can't setenv exist key : " .. key)
		end
		c.setenv(key, "" .. value)
	end

	function skynet.memlimit(bytes)
		c.memlimit(bytes)
	end

	-- service_mgr's commands: `global == true` asks the global variant (GQUERY/GLAUNCH)
	local function service_mgr(cmd, global, ...)
		if global == true then
			return assert(skynet.call(".service", "lua", "G" .. cmd, ...))
		end
		return assert(skynet.call(".service", "lua", cmd, global, ...))
	end

	function skynet.queryservice(...)
		return service_mgr("QUERY", ...)
	end

	function skynet.uniqueservice(...)
		return service_mgr("LAUNCH", ...)
	end

	function skynet.log(level, ...)
		c.log(level, I.to_text(...))
	end

	function skynet.kill(addr)
		if type(addr) == "number" or (type(addr) == "string" and addr:sub(1, 1) == ":") then
			local h = type(addr) == "number" and addr or tonumber(addr:sub(2), 16)
			skynet.send(".launcher", "lua", "REMOVE", h, true)
		end
		if c.kill(addr) then
			c.error("KILL " .. (type(addr) == "number" and format(":%x", addr) or addr))
		end
	end

	function skynet.abort()
		c.abort()
	end

	function skynet.localname(name)
		if type(name) == "string" and name:sub(1, 1) == "." then
			return c.query(name)
		end
	end

	function skynet.starttime()
		return starttime
	end

	function skynet.time()
		return c.now() / 100 + starttime
	end

	function skynet.newservice(name, ...)
		return skynet.call(".launcher", "lua", "LAUNCH", "snlua", name, ...)
	end
end
