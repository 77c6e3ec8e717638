-- skynet/oplisten: the listening socket of an operator service (the debug console, metrics).
-- Such a service serves only the local machine unless [node] console_allow_remote = true: a
-- non-loopback address is refused. Returns listen_id, host, port; raises when the address is
-- missing, refused or cannot be bound (bootstrap then stops the node: a start failure).
local skynet = require "skynet"
local socket = require "skynet.socket"

local function loopback(addr)
	local host = addr:match "^%[(.-)%]:%d+$" or addr:match "^(.*):%d+$"
	return host == "localhost" or host == "::1" or (host and host:match "^127%.%d+%.%d+%.%d+$") ~= nil
end

return function(what, address)
	if not address then
		error(string.format("%s: no address given (start it with HOST:PORT)", what), 0)
	end
	if not loopback(address) and skynet.getenv "console_allow_remote" ~= "true" then
		error(string.format("%s: refusing non-loopback address %s (set [node] "
			.. "console_allow_remote = true to allow it)", what, address), 0)
	end
	return socket.listen(address)
end
