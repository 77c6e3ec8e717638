-- launcher (.launcher): creates Lua services for skynet.newservice and answers the caller once
-- the new service's start function has returned (LAUNCHOK), failed (ERROR) or the service went
-- away (REMOVE). Also LIST, KILL, STAT, MEM, GC over every service it launched. START (skyjet's,
-- for bootstrap) is LAUNCH that answers (address) or (nil, the real cause) instead of raising.
local skynet = require "skynet"
require "skynet.manager"

local services = {} -- handle -> "snlua name args"
local pending = {} -- handle -> response closure of the newservice caller
local reporting = {} -- handle -> true when the caller asked with START (wants the cause)
local NORET = {}
local CMD = {}

local function list()
	local t = {}
	for h, desc in pairs(services) do
		t[skynet.address(h)] = desc
	end
	return t
end

function CMD.LIST()
	return list()
end

local function each_service(cmd)
	local t = {}
	for h, desc in pairs(services) do
		local ok, r = pcall(skynet.call, h, "debug", cmd)
		if not ok then
			r = "ERROR"
		elseif type(r) == "number" then
			r = string.format("%.2f Kb (%s)", r, desc)
		end
		t[skynet.address(h)] = r
	end
	return t
end

function CMD.STAT()
	return each_service "STAT"
end

function CMD.MEM()
	return each_service "MEM"
end

function CMD.GC()
	for h in pairs(services) do
		skynet.send(h, "debug", "GC")
	end
	return each_service "MEM"
end

function CMD.KILL(_, handle)
	handle = type(handle) == "string" and tonumber(handle:match ":(%x+)" or "", 16) or handle
	local t = {}
	if services[handle] then
		t[skynet.address(handle)] = services[handle]
	end
	skynet.kill(handle)
	return t
end

-- Answer the caller of LAUNCH/START for `handle` with a failure and its cause.
local function answer_failure(handle, cause)
	local response = pending[handle]
	if response then
		pending[handle] = nil
		if reporting[handle] then
			response(true, nil, cause)
		else
			response(false)
		end
	end
	reporting[handle] = nil
end

function CMD.REMOVE(_, handle, kill)
	services[handle] = nil
	if kill then
		answer_failure(handle, "killed during start")
	elseif pending[handle] then
		pending[handle](true) -- exited during start: newservice returns nil
		pending[handle], reporting[handle] = nil, nil
	end
	return NORET
end

local function join_args(service, ...)
	local args = { service }
	for i = 1, select("#", ...) do
		local v = select(i, ...)
		if v == nil then
			break
		end
		local tv = type(v)
		if tv ~= "string" and tv ~= "number" then
			error(string.format("launch %s: argument %d is a %s", service, i, tv))
		end
		args[#args + 1] = tostring(v)
	end
	return table.concat(args, " ")
end

local stopping = false

local function launch(report, mod, service, ...)
	if stopping then
		error("node is stopping: not launching " .. tostring(service))
	end
	local param = join_args(service, ...)
	local inst = skynet.launch(mod, param)
	local response = skynet.response()
	if inst then
		services[inst] = mod .. " " .. param
		pending[inst] = response
		reporting[inst] = report or nil
	elseif report then
		response(true, nil, "cannot launch " .. mod .. " " .. param)
	else
		response(false)
	end
	return NORET
end

function CMD.LAUNCH(_, mod, service, ...)
	return launch(false, mod, service, ...)
end

function CMD.START(_, mod, service, ...)
	return launch(true, mod, service, ...)
end

function CMD.LAUNCHOK(address)
	local response = pending[address]
	if response then
		pending[address], reporting[address] = nil, nil
		response(true, address)
	end
	return NORET
end

function CMD.ERROR(address, cause)
	answer_failure(address, cause or "start failed")
	services[address] = nil
	return NORET
end

skynet.dispatch("lua", function(_, address, cmd, ...)
	cmd = string.upper(cmd)
	local f = CMD[cmd]
	if not f then
		skynet.ret(skynet.pack { "Unknown command" })
		return
	end
	local ret = f(address, ...)
	if ret ~= NORET then
		skynet.ret(skynet.pack(ret))
	end
end)

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	unpack = skynet.tostring,
	dispatch = function(_, address, cmd)
		if cmd == "shutdown" and address == 0 then
			stopping = true
		elseif cmd == "" then
			CMD.LAUNCHOK(address)
		elseif cmd:sub(1, 5) == "ERROR" then
			CMD.ERROR(address, cmd:match "^ERROR (.*)")
		end
	end,
}

skynet.start(function() end)
	require("skyjet").internal()
