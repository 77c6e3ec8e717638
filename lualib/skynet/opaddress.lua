-- skynet.opaddress: the rule for an operator service's address (the debug console, metrics): the
-- local machine only unless [node] console_allow_remote = true. skynet.oplisten applies it when
-- the service listens and `skyjet --test` (daemon/preflight.c) before the node starts. Pure Lua.
local opaddress = {}

local function loopback(addr)
	local host = addr:match "^%[(.-)%]:%d+$" or addr:match "^(.*):%d+$"
	return host == "localhost" or host == "::1" or (host and host:match "^127%.%d+%.%d+%.%d+$") ~= nil
end

-- nil when `address` may be used, else why not (`what` names the service).
function opaddress.refusal(what, address, allow_remote)
	if not loopback(address) and not allow_remote then
		return string.format("%s: refusing non-loopback address %s (set [node] "
			.. "console_allow_remote = true to allow it)", what, address)
	end
end

return opaddress
