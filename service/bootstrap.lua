-- bootstrap: the first Lua service. Starts the launcher (.launcher) and the unique-service
-- manager (.service), then the start service named by the config ([node] start), and exits.
-- A start service that fails is logged; the node keeps running (as in Skynet).
local skynet = require "skynet"
require "skynet.manager"

skynet.start(function()
	local launcher = assert(skynet.launch("snlua", "launcher"), "cannot launch the launcher")
	skynet.name(".launcher", launcher)
	skynet.newservice "service_mgr"
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
