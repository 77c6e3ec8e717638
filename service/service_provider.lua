-- service_provider (unique): the registry behind skynet.service. One entry per name: booting
-- (callers of query/launch wait), running (address), failed (error text, raised to every later
-- caller) or closed (forgotten). A launch starts a service_cell and hands it the code.
local skynet = require "skynet"

local entries = {} -- name -> { address, error, booting, waiting = {responses}, args, time }
local provider = {}
local WAITING = {} -- a command answers later, through skynet.response()

local function entry(name)
	local e = entries[name]
	if not e then
		e = { waiting = {} }
		entries[name] = e
	end
	return e
end

local function settle(e)
	local waiting = e.waiting
	e.waiting = nil
	for _, resp in ipairs(waiting) do
		if e.address then
			resp(true, e.address)
		else
			resp(false, e.error)
		end
	end
end

function provider.test(name)
	local e = entries[name]
	if e and e.error then
		error(e.error, 0)
	end
	if e and e.address then
		return e.address
	end
	return nil, e ~= nil and e.booting == true
end

function provider.query(name)
	local e = entry(name)
	if e.error then
		error(e.error, 0)
	elseif e.address then
		return e.address
	end
	e.waiting[#e.waiting + 1] = skynet.response()
	return WAITING
end

function provider.launch(name, code, ...)
	local e = entry(name)
	if e.address then
		return e.address
	elseif e.error then
		error(e.error, 0)
	elseif e.booting then
		e.waiting[#e.waiting + 1] = skynet.response()
		return WAITING
	end
	e.booting = true
	local ok, addr = pcall(skynet.newservice, "service_cell", name)
	local err
	if ok and addr then
		ok, err = pcall(skynet.call, addr, "lua", "init", code, ...)
		if not ok then
			skynet.kill(addr)
		end
	else
		err = tostring(addr)
	end
	e.booting = nil
	if ok then
		e.address = addr
		local args = { n = select("#", ...), ... }
		for i = 1, args.n do
			args[i] = tostring(args[i])
		end
		e.args = table.concat(args, ",", 1, args.n)
		e.time = skynet.time()
	else
		e.error = string.format("service %s failed: %s", name, tostring(err))
	end
	settle(e)
	if not ok then
		error(e.error, 0)
	end
	return addr
end

function provider.close(name)
	local e = entries[name]
	if e and e.address then
		entries[name] = nil
		return e.address
	end
end

skynet.start(function()
	require("skyjet").internal() -- never callable from other nodes
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = provider[cmd]
		if not f then
			error("service_provider: unknown command " .. tostring(cmd))
		end
		local r, booting = f(...)
		if r ~= WAITING then
			skynet.retpack(r, booting)
		end
	end)
	skynet.info_func(function()
		local info = {}
		for name, e in pairs(entries) do
			info[name] = {
				address = e.address and skynet.address(e.address),
				status = e.booting and "booting" or (e.error and "failed") or "running",
				init = e.args,
				time = e.time and os.date("%Y %b %d %T %z", math.floor(e.time)),
			}
		end
		return info
	end)
end)
