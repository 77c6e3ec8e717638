-- skynet.cluster.fastpath: how a service (cluster.lua's callers, a clusterproxy) uses the
-- fast path of a node's sender (skynet.cluster.link, issue 14): a single request or push is
-- framed and written on this service's worker, and the reply comes from the reactor as if the
-- sender had answered. And the order rule that goes with it: after a message of this service
-- went through the sender (the link was down, the message was large, the caller traced), its
-- next messages to that node follow it through the sender until a call through the sender has
-- come back with nothing sent through it since; sends get a barrier call for that. One `order`
-- table per (service, node).
local skynet = require "skynet"
local linklib = require "skynet.cluster.link"
local settings = require "skynet.cluster.settings"

local fastpath = {}

function fastpath.order()
	return { n = nil, barrier = false } -- n: messages through the sender since the last barrier
end

-- whether this service may write to the node itself now
function fastpath.clear(order)
	return order.n == nil
end

-- a message goes through the sender: returns its number, for passed()
function fastpath.slow(order)
	order.n = (order.n or 0) + 1
	return order.n
end

-- a call through the sender came back: with nothing sent through it since, all is written
function fastpath.passed(order, seq)
	if order.n == seq then
		order.n = nil
	end
end

-- Sends went through the sender: a call behind them tells when they are written.
function fastpath.barrier(order, sender)
	if order.barrier then
		return
	end
	order.barrier = true
	skynet.fork(function()
		while order.n do
			local seq = order.n
			if not pcall(skynet.call, sender, "lua", "barrier") then
				break
			end
			fastpath.passed(order, seq)
		end
		order.barrier = false
	end)
end

-- Write a request whose reply goes to (caller, session) as from `sender`: true (msg is freed),
-- or false (nothing sent; msg is still the caller's). ms: its deadline (nil: [cluster]
-- call_timeout). The first deadline wakes the sender's sweeper.
function fastpath.write(session, sender, caller, address, msg, sz, ms)
	local ok, arm = linklib.call(sender, session, caller, address, msg, sz, ms or settings.call_timeout)
	if arm then
		skynet.send(sender, "lua", "sweep")
	end
	return ok
end

local function write_own(session, sender, address, msg, sz, ms)
	return fastpath.write(session, sender, skynet.self(), address, msg, sz, ms)
end

-- A call of this service's own: false when it was not written, else true, msg, sz (the reply)
function fastpath.call(sender, address, msg, sz, ms)
	return skynet._call_via(sender, write_own, sender, address, msg, sz, ms)
end

-- a push: true when written (msg freed)
fastpath.push = linklib.push

return fastpath
