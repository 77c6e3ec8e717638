-- skynet.cluster: calls and sends to services on other nodes. Requests go through the node's
-- clustersender (one per remote node, found through clusterd and cached here forever: a reload
-- reconfigures the same sender); arguments are serialised at call time. Every failure raises an
-- error containing "call failed" plus the node, the address and the reason.
-- skyjet's fast path: once the sender's link is up, a single request (or push) is framed and
-- written on this service's worker (skynet.cluster.link) and its reply comes straight from the
-- reactor, as if the sender had answered; large, traced or early messages go through the sender.
-- Order per node is kept (skynet.cluster.fastpath).
local skynet = require "skynet"
local wire = require "skynet.cluster.wire"
local fastpath = require "skynet.cluster.fastpath"

local cluster = {}
local clusterd

-- every request below goes to the node's one clusterd, as a "lua" call named by its verb
local function ask_clusterd(verb, ...)
	return skynet.call(clusterd, "lua", verb, ...)
end

local senders = {} -- node -> sender handle
local pending_sends = {} -- node -> queue of pushes waiting for the sender lookup
local order = {} -- node -> the fast path's order state (skynet.cluster.fastpath)

local function order_of(node)
	local o = order[node]
	if not o then
		o = fastpath.order()
		order[node] = o
	end
	return o
end

local function get_sender(node)
	local s = senders[node]
	if not s then
		s = ask_clusterd("sender", node)
		senders[node] = s
	end
	return s
end

-- Pushes made before the sender is known keep their order: they queue here while the first
-- lookup runs, then drain in order.
local function push_queued(node, address, msg, sz)
	local q = pending_sends[node]
	if q then
		q[#q + 1] = { address, msg, sz }
		return
	end
	q = { { address, msg, sz } }
	pending_sends[node] = q
	skynet.fork(function()
		local ok, s = pcall(get_sender, node)
		pending_sends[node] = nil
		for _, t in ipairs(q) do
			if ok then
				fastpath.slow(order_of(node))
				fastpath.barrier(order_of(node), s)
				skynet.send(s, "lua", "push", t[1], t[2], t[3])
			else
				skynet.trash(t[2], t[3])
			end
		end
		for _, co in ipairs(q.waiters or {}) do
			skynet.wakeup(co)
		end
		if not ok then
			skynet.log("warn", string.format("cluster.send to %s dropped %d message(s): %s", node, #q,
				tostring(s)))
		end
	end)
end

-- A call made while earlier sends to the node still wait for the sender lookup goes after them.
local function after_queued_sends(node)
	local q = pending_sends[node]
	if q then
		local co = coroutine.running()
		q.waiters = q.waiters or {}
		q.waiters[#q.waiters + 1] = co
		skynet.wait(co)
	end
end

-- A request through the node's sender; `ms` (optional) is this call's deadline.
local function remote_call(node, address, ms, ...)
	local msg, sz = skynet.pack(...)
	after_queued_sends(node)
	local s = senders[node]
	if not s then
		local ok, err = pcall(get_sender, node)
		if not ok then
			skynet.trash(msg, sz)
			error(string.format("call failed: cluster node %s: %s", tostring(node), tostring(err)), 3)
		end
		s = err
	end
	local o = order_of(node)
	if fastpath.clear(o) and not skynet.tracetag() then
		local sent, reply, rsz = fastpath.call(s, address, msg, sz, ms)
		if sent then
			return skynet.unpack(reply, rsz)
		end
	end
	local seq = fastpath.slow(o)
	local ok, reply, rsz = pcall(skynet.rawcall, s, "lua", skynet.pack("req", address, msg, sz, ms))
	fastpath.passed(o, seq)
	if not ok then
		error(reply, 0)
	end
	return skynet.unpack(reply, rsz)
end

function cluster.call(node, address, ...)
	return remote_call(node, address, nil, ...)
end

-- skyjet: cluster.call with a deadline of `ms` milliseconds for this call (overrides
-- [cluster] call_timeout); raises "call failed: ... timeout after <ms> ms" when it passes.
function cluster.call_timeout(ms, node, address, ...)
	assert(type(ms) == "number" and ms > 0, "cluster.call_timeout: ms must be a positive number")
	return remote_call(node, address, ms, ...)
end

function cluster.send(node, address, ...)
	local msg, sz = skynet.pack(...)
	local s = senders[node]
	if s and not pending_sends[node] then
		local o = order_of(node)
		if fastpath.clear(o) and fastpath.push(s, address, msg, sz) then
			return
		end
		fastpath.slow(o)
		fastpath.barrier(o, s)
		skynet.send(s, "lua", "push", address, msg, sz)
	else
		push_queued(node, address, msg, sz)
	end
end

-- a string is "host:port" (or a node name from the cluster config); a number listens on all
-- interfaces
function cluster.open(port, maxclient)
	local host = "0.0.0.0"
	if type(port) == "string" then
		host, port = port, nil
	end
	return ask_clusterd("listen", host, port, maxclient)
end

function cluster.reload(config)
	ask_clusterd("reload", config)
end

function cluster.proxy(node, name)
	return ask_clusterd("proxy", node, name)
end

function cluster.register(name, addr)
	assert(type(name) == "string" and (addr == nil or type(addr) == "number"))
	return ask_clusterd("register", name, addr)
end

function cluster.unregister(name)
	assert(type(name) == "string")
	return ask_clusterd("unregister", name)
end

function cluster.query(node, name)
	return skynet.unpack(skynet.rawcall(get_sender(node), "lua",
		skynet.pack("req", 0, skynet.pack(name))))
end

function cluster.get_sender(node)
	return get_sender(node)
end

-- skyjet: watch remote nodes go up and down. fn(node, state, detail) runs in this service for
-- every change ("up" when a link to the node is established, "down" when it drops, a heartbeat
-- goes unanswered or the node is set to false). Returns the states known now and a function that
-- stops watching.
local watch_fns
function cluster.watch(fn)
	assert(type(fn) == "function")
	if not watch_fns then
		watch_fns = {}
		skynet.register_protocol {
			name = wire.CLUSTER_EVENT,
			id = wire.PTYPE_CLUSTER_EVENT,
			unpack = skynet.unpack,
			dispatch = function(_, _, node, state, detail)
				for f in pairs(watch_fns) do
					f(node, state, detail)
				end
			end,
		}
	end
	watch_fns[fn] = true
	local states = ask_clusterd("watch", skynet.self())
	return states, function()
		watch_fns[fn] = nil
		if next(watch_fns) == nil then
			ask_clusterd("unwatch", skynet.self())
		end
	end
end

-- skyjet: the state of every remote node (address, connected, pending, bytes, last error).
function cluster.status()
	return ask_clusterd("status")
end

skynet.init(function()
	clusterd = skynet.uniqueservice("clusterd")
end)

-- A snax object for snax service `name` on `node` (found through that node's .service unless
-- `address` is given); its calls go through a cluster proxy. A skyjet node that does not expose
-- .service names its unique snax services .snaxd.<name> (service_mgr): use that name then.
function cluster.snax(node, name, address)
	if address == nil then
		local ok, found = pcall(cluster.call, node, ".service", "QUERY", "snaxd", name)
		if ok then
			address = found
		elseif string.find(tostring(found), "not exposed", 1, true) then
			address = ".snaxd." .. name
		else
			error(found, 0)
		end
	end
	local proxy = cluster.proxy(node, address)
	return require("skynet.snax").bind(proxy, name)
end

return cluster
