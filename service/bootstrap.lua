-- bootstrap: the first Lua service. Starts the launcher (.launcher) and the unique-service
-- manager (.service), the debug console and the metrics listener when [node] console / metrics
-- name an address, then the start service named by the config ([node] start), and exits.
-- A start service (or console, or metrics) that fails is logged; the node keeps running (as in
-- Skynet).
local skynet = require "skynet"
require "skynet.manager"

-- The operator's listeners ([node] console, metrics): a failure is logged, the node goes on.
local function start_listener(key, service)
	local addr = skynet.getenv(key)
	if addr then
		local ok, err = pcall(skynet.newservice, service, addr)
		if not ok then
			skynet.log("error", service .. " on " .. addr .. " failed to start: " .. tostring(err))
		end
	end
end

skynet.start(function()
	local launcher = assert(skynet.launch("snlua", "launcher"), "cannot launch the launcher")
	skynet.name(".launcher", launcher)
	skynet.newservice "service_mgr"
	start_listener("console", "debug_console")
	start_listener("metrics", "metrics")
	local start = skynet.getenv "start" or "main"
	local args = {}
	for word in start:gmatch "%S+" do
		args[#args + 1] = word
	end
	local ok, err = pcall(skynet.newservice, unpack(args))
	if not ok then
		skynet.log("error", "start service '" .. start .. "' failed: " .. tostring(err))
	end
	skynet.exit()
end)
