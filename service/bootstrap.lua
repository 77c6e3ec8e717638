-- bootstrap: the first Lua service. Starts the launcher (.launcher) and the unique-service
-- manager (.service), the debug console and the metrics listener when [node] console / metrics
-- name an address, then the start service named by the config ([node] start), and exits.
-- It tells main the verdict (skyjet.startup): ready once the start service's start
-- function has returned, or failed with the cause (a service that does not load or raises, a
-- listener that cannot bind), and main then stops the node with exit status 1.
local skynet = require "skynet"
require "skynet.manager"
local skyjet = require "skyjet"

-- Launch a service and wait for its start function; raises "<what> failed: <cause>".
local function start(what, service, ...)
	local _, cause = skynet.call(".launcher", "lua", "START", "snlua", service, ...)
	if cause then
		error(what .. " failed: " .. tostring(cause), 0)
	end
end

-- The operator's listeners ([node] console, metrics).
local function start_listener(key, service)
	local addr = skynet.getenv(key)
	if addr then
		start(service .. " on " .. addr, service, addr)
	end
end

local function start_node()
	local launcher = assert(skynet.launch("snlua", "launcher"), "cannot launch the launcher")
	skynet.name(".launcher", launcher)
	start("service manager", "service_mgr")
	start_listener("console", "debug_console")
	start_listener("metrics", "metrics")
	local cmdline = skynet.getenv "start" -- config.c publishes its default
	local args = {}
	for word in cmdline:gmatch "%S+" do
		args[#args + 1] = word
	end
	start("start service '" .. cmdline .. "'", unpack(args))
end

skynet.start(function()
	local ok, err = pcall(start_node)
	if not ok then
		skynet.log("error", tostring(err))
	end
	skyjet.startup(ok, not ok and tostring(err) or nil)
	skynet.exit()
end)
