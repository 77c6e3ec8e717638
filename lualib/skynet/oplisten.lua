-- skynet/oplisten: the listening socket of an operator service (the debug console, metrics).
-- Such a service serves only the local machine unless [node] console_allow_remote = true: a
-- non-loopback address is refused. Returns listen_id, host, port; raises when the address is
-- missing, refused or cannot be bound (bootstrap then stops the node: a start failure).
local skynet = require "skynet"
local socket = require "skynet.socket"
local opaddress = require "skynet.opaddress"

return function(what, address)
	if not address then
		error(string.format("%s: no address given (start it with HOST:PORT)", what), 0)
	end
	local refused = opaddress.refusal(what, address, skynet.getenv "console_allow_remote" == "true")
	if refused then
		error(refused, 0)
	end
	return socket.listen(address)
end
