-- service_mgr (.service): unique services. LAUNCH/QUERY key plain names, GLAUNCH/GQUERY the
-- "global" namespace ("@name"); concurrent first launches share one, queries wait until some
-- caller launches the name, and a failed launch is remembered (every later call fails).
-- Replies are pack(handle) or pack(nil, reason).
local skynet = require "skynet"
require "skynet.manager"

local services = {} -- key -> handle | error text | table of waiters while launching
local CMD = {}

local function wait_for(key)
	local s = services[key]
	if s == nil then
		s = { launching = false }
		services[key] = s
	end
	if type(s) == "table" then
		local co = coroutine.running()
		s[#s + 1] = co
		skynet.wait(co)
		s = services[key]
	end
	if type(s) == "string" then
		error(s, 0)
	end
	return s
end

local function get_or_launch(key, launch, ...)
	local s = services[key]
	if type(s) == "number" then
		return s
	elseif type(s) == "string" then
		error(s, 0)
	elseif type(s) == "table" and s.launching then
		return wait_for(key)
	end
	local waiters = s or {}
	waiters.launching = true
	services[key] = waiters
	local ok, handle = pcall(launch, ...)
	if ok and handle then
		services[key] = handle
	else
		services[key] = string.format("launch %s failed: %s", key, tostring(handle))
	end
	for _, co in ipairs(waiters) do
		skynet.wakeup(co)
	end
	if not ok or not handle then
		error(services[key], 0)
	end
	return handle
end

-- A unique snax service is also named .snaxd.<name>: other nodes reach it by that name
-- (cluster.snax) where .service itself is not exposed to them.
local function named_snax(sub, ...)
	local handle = require("skynet.snax").rawnewservice(sub, ...)
	skynet.name(".snaxd." .. tostring(sub), handle)
	return handle
end

-- The key of a unique service and how to start it: snax services (skynet.snax's
-- uniqueservice/globalservice/queryservice) are keyed "snaxd.<name>" and started with their init.
local function unique(prefix, name, ...)
	if name == "snaxd" then
		local launch = prefix == "" and named_snax or require("skynet.snax").rawnewservice
		return prefix .. "snaxd." .. tostring((...)), launch, ...
	end
	return prefix .. name, skynet.newservice, name, ...
end

function CMD.LAUNCH(...)
	return get_or_launch(unique("", ...))
end

function CMD.QUERY(...)
	return wait_for((unique("", ...)))
end

function CMD.GLAUNCH(...)
	return get_or_launch(unique("@", ...))
end

function CMD.GQUERY(...)
	return wait_for((unique("@", ...)))
end

function CMD.LIST()
	local t = {}
	for k, v in pairs(services) do
		t[k] = type(v) == "number" and skynet.address(v) or (type(v) == "string" and v or "launching")
	end
	return t
end

skynet.dispatch("lua", function(_, _, cmd, ...)
	local f = CMD[cmd]
	if not f then
		skynet.retpack(nil, "Invalid command " .. tostring(cmd))
		return
	end
	local ok, r = pcall(f, ...)
	if ok then
		skynet.retpack(r)
	else
		skynet.retpack(nil, r)
	end
end)

skynet.start(function()
	require("skyjet").internal()
	skynet.register ".service"
end)
