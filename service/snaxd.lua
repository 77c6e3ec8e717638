-- snaxd: runs one snax service (skynet.snax). Loads the service file through snax.interface,
-- then dispatches protocol "snax" (and "lua" after snax.enablecluster(), for calls through
-- cluster proxies) by method id; system methods init/exit/hotfix/profile are handled here.
-- Each accept/response is timed; debug INFO and snax.profile_info return the counts and times.
local skynet = require "skynet"
local snax = require "skynet.snax"
local interface = require "snax.interface"
local profile = require "skynet.profile"

local name = tostring((...))
local methods, pattern, env = interface(name, _G)
SERVICE_NAME = name
SERVICE_PATH = string.sub(pattern, 1, (string.find(pattern, "?", 1, true) or 1) - 1) .. name .. "/"
package.path = SERVICE_PATH .. "?.lua;" .. package.path

local stats = {} -- method name -> { count, time }

local function answer(f, ...)
	return skynet.retpack(f(...))
end

-- Every call is counted, failed ones too (as Skynet); a failure is raised again with its
-- message (which names the line that raised) and reaches the caller as "call failed: ...".
local function timed(m, ...)
	profile.start()
	local ok, err
	if m[2] == "accept" then
		ok, err = pcall(m[4], ...)
	else
		ok, err = pcall(answer, m[4], ...)
	end
	local t = profile.stop()
	local s = stats[m[3]]
	if not s then
		s = { count = 0, time = 0 }
		stats[m[3]] = s
	end
	s.count = s.count + 1
	s.time = s.time + t
	if not ok then
		error(err, 0)
	end
end

local started = false
local system = {}

function system.init(f, ...)
	assert(not started, "Already init")
	if f then
		f(...)
	end
	started = true
	skynet.info_func(function()
		return stats
	end)
	skynet.ret()
end

function system.exit(f, ...)
	assert(started, "Never init")
	if f then
		f(...)
	end
	skynet.ret()
	started = false
	skynet.exit()
end

function system.hotfix(_, ...)
	skynet.retpack(require "snax.hotfix"(methods, env, ...))
end

function system.profile()
	skynet.retpack(stats)
end

local function dispatch(_, _, id, ...)
	local m = methods[id]
	if not m then
		error(string.format("snax %s: no method %s", name, tostring(id)))
	end
	if m[2] == "system" then
		return system[m[3]](m[4], ...)
	end
	assert(started, "Init first")
	timed(m, ...)
end

skynet.start(function()
	skynet.dispatch("snax", dispatch)
	-- calls through a cluster proxy arrive as protocol "lua"
	function snax.enablecluster()
		skynet.dispatch("lua", dispatch)
	end
end)
