-- skynet.debug: the commands of the "debug" protocol every Lua service answers (used by the launcher, the
-- debug console and liveness probes): MEM, GC, STAT, TASK, UNIQTASK, KILLTASK, INFO, EXIT,
-- TERM, SUPPORT, PING, LINK, RUN. An unknown command is a handler error, so the caller gets
-- "call failed".
local skynet = require "skynet"

local CMD = {}
local links = {}

function CMD.MEM()
	skynet.retpack(collectgarbage "count")
end

function CMD.GC()
	collectgarbage "collect"
	skynet.retpack(collectgarbage "count")
end

function CMD.STAT()
	skynet.retpack {
		task = skynet.task(),
		mqlen = skynet.mqlen(),
		cpu = skynet.stat "cpu",
		message = skynet.stat "message",
	}
end

function CMD.TASK(session)
	if session then
		skynet.retpack(skynet.task(session))
	else
		local t = {}
		skynet.task(t)
		skynet.retpack(t)
	end
end

function CMD.UNIQTASK()
	skynet.retpack(skynet.uniqtask())
end

function CMD.KILLTASK(name)
	local co = skynet.killthread(name)
	skynet.retpack(co and tostring(co) or nil)
end

function CMD.INFO(...)
	if skynet.info then
		skynet.retpack(skynet.info(...))
	else
		skynet.retpack(nil)
	end
end

function CMD.EXIT()
	skynet.exit()
end

function CMD.TERM(service)
	skynet.term(service)
	skynet.ret()
end

function CMD.SUPPORT(pname)
	skynet.retpack(skynet.dispatch(pname) ~= nil)
end

function CMD.PING()
	skynet.ret()
end

-- Never answered while we live: when we exit, the caller's call fails (a liveness probe).
function CMD.LINK()
	links[#links + 1] = skynet.response()
end

-- RUN(source, filename, ...): run a chunk inside this service (the console's inject); answers
-- (true, what it printed) or (false, its error). Its globals are the service's.
function CMD.RUN(source, filename, ...)
	local out = {}
	local env = setmetatable({
		print = function(...)
			local t = { ... }
			for i = 1, select("#", ...) do
				t[i] = tostring(t[i])
			end
			out[#out + 1] = table.concat(t, "\t")
		end,
	}, { __index = _G, __newindex = _G })
	local f, err = loadstring(source, "@" .. tostring(filename))
	if not f then
		return skynet.retpack(false, err)
	end
	local ok, e = pcall(setfenv(f, env), ...)
	skynet.retpack(ok, ok and table.concat(out, "\n") or tostring(e))
end

-- skynet.lua registers the "debug" protocol and loads this module on its first message.
return {
	commands = CMD,
	dispatch = function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("Invalid debug command " .. tostring(cmd))
		end
		f(...)
	end,
}
