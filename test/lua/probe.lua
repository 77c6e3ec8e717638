-- probe: a helper service for the Lua tests. Each command shows one way a callee can behave
-- (answer, raise, forget to answer, answer later, exit mid-request, ...).
local skynet = require "skynet"
require "skynet.manager"

local name = ...
local records = {}
local CMD = {}

function CMD.echo(...)
	skynet.retpack(...)
end

function CMD.fail(msg)
	error(msg or "probe failure")
end

function CMD.fail_table()
	error({ code = 42 })
end

function CMD.noreply() end

function CMD.ignore()
	skynet.ignoreret()
end

function CMD.later(ticks, ...)
	local r = skynet.response()
	local args = table.pack(...)
	skynet.timeout(ticks, function()
		r(true, table.unpack(args, 1, args.n))
	end)
end

function CMD.later_fail(ticks)
	local r = skynet.response()
	skynet.timeout(ticks, function()
		r(false)
	end)
end

function CMD.hold() -- takes the response and never answers
	records.held = skynet.response()
end

function CMD.test_held()
	skynet.retpack(records.held and records.held "TEST")
end

function CMD.big(n) -- a large answer to a small request
	skynet.retpack(string.rep("r", n))
end

function CMD.exit()
	skynet.exit()
end

function CMD.sleep(ticks)
	skynet.sleep(ticks)
	skynet.retpack "slept"
end

function CMD.record(x)
	records[#records + 1] = x
end

function CMD.records()
	skynet.retpack(records)
end

function CMD.count()
	skynet.retpack(#records)
end

function CMD.call(addr, ...)
	skynet.retpack(skynet.call(addr, "lua", ...))
end

function CMD.pcall(addr, ...)
	skynet.retpack(pcall(skynet.call, addr, "lua", ...))
end

function CMD.busy(seconds)
	local t = skynet.hpc()
	while skynet.hpc() - t < seconds * 1e9 do
	end
	skynet.retpack(skynet.endless())
end

function CMD.twice()
	skynet.retpack(1)
	skynet.retpack(2)
end

function CMD.name()
	skynet.retpack(name)
end

function CMD.mqlen()
	skynet.retpack(skynet.mqlen())
end

function CMD.stat(what)
	skynet.retpack(skynet.stat(what))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("probe: unknown command " .. tostring(cmd))
		end
		f(...)
	end)
	if name and name:sub(1, 1) == "." then
		skynet.register(name)
	end
end)
