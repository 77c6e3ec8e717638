-- clusterd (.clusterd, one per node): owns the cluster node table (from the file named by
-- [cluster] file, or cluster.reload), one clustersender per remote node, the listeners and every
-- inbound connection until its clusteragent takes it over (and its slot until it closes), the
-- shared secret (read once, handed to senders and agents), the proxy cache and the registry of
-- names remote nodes may call as "@name". A reload changes only what changed: a node with a new address gets a
-- new connection, a node set to false fails its calls, the others keep their connection.
-- Reload also happens on SIGHUP (the runtime sends us the text "reload").
local skynet = require "skynet"
require "skynet.manager"
local cluster_core = require "skynet.cluster.core"
local settings = require "skynet.cluster.settings"
local wire = require "skynet.cluster.wire"
local inbound = require "skynet.cluster.listener"
local skyjet = require "skyjet"
local nodetable = require "skynet.cluster.nodetable"

local config_file = settings.file
local nodename = cluster_core.nodename()
cluster_core.setmaxmessage(settings.max_message)
cluster_core.setassemblytotal(settings.max_assembly_total)

local node_address = {} -- node -> "host:port" | false
local node_sender = {} -- node -> sender handle
local creating = {} -- node -> waiters while its sender is created
local waiting = {} -- node -> coroutines waiting for the node to be defined
local options = {} -- "__" options: nowaiting
local proxies = {} -- "node.name" -> proxy handle
local names = {} -- registered name -> handle
local handle_names = {} -- handle -> registered name
local watchers = {} -- service handle -> true (cluster.watch)
local node_state = {} -- node -> "up" | "down" (from the senders)
local secret -- [cluster] secret_file contents
local plain_peers = settings.plain_peers
local CMD = {}

local function log(fmt, ...)
	skynet.error(string.format(fmt, ...))
end

-- Problems the node detects (a dropped message, a cap hit, a failed reload, a bad secret).
local function warn(fmt, ...)
	skynet.log("warn", string.format(fmt, ...))
end

local function wake_waiters(node)
	local w = waiting[node]
	if w then
		waiting[node] = nil
		for _, co in ipairs(w) do
			skynet.wakeup(co)
		end
	end
end

local function read_file()
	if not config_file then
		error("no cluster file configured ([cluster] file)")
	end
	return nodetable.read(config_file)
end

-- Merge a (validated) node table into ours and apply what changed; returns the changes.
local function apply(tbl)
	local bad = nodetable.problems(tbl)
	if #bad > 0 then
		error(table.concat(bad, "; "), 0)
	end
	local changes = {}
	for name, address in pairs(tbl) do
		if name:sub(1, 2) == "__" then
			local opt = name:sub(3)
			if options[opt] ~= address then
				options[opt] = address
				log("Config %s = %s", opt, tostring(address))
			end
		else
			local old = node_address[name]
			if old ~= address then
				node_address[name] = address
				local what
				if old == nil then
					what = "added"
				elseif address == false then
					what = "down"
				elseif old == false then
					what = "up"
				else
					what = "moved"
				end
				changes[#changes + 1] = string.format("%s %s (%s -> %s)", name, what, tostring(old),
					tostring(address))
				local s = node_sender[name]
				if s then
					skynet.call(s, "lua", "changenode", address)
				end
			end
			wake_waiters(name)
		end
	end
	if options.nowaiting then
		for node in pairs(waiting) do
			wake_waiters(node)
		end
	end
	return changes
end

local function reload(tbl)
	local changes = apply(tbl or read_file())
	if #changes > 0 then
		log("cluster reload: %s", table.concat(changes, "; "))
	else
		log("cluster reload: no change")
	end
	return changes
end

function CMD.reload(tbl)
	skynet.retpack(reload(tbl))
end

function CMD.sender(node)
	local s = node_sender[node]
	if s then
		return skynet.retpack(s)
	end
	while node_address[node] == nil do
		if options.nowaiting then
			error(string.format("cluster node [%s] is absent.", tostring(node)), 0)
		end
		local co = coroutine.running()
		waiting[node] = waiting[node] or {}
		table.insert(waiting[node], co)
		skynet.wait(co)
	end
	s = node_sender[node]
	if s then
		return skynet.retpack(s)
	end
	if node_address[node] == false and not creating[node] then
		error(string.format("cluster node [%s] is down", node), 0)
	end
	local w = creating[node]
	if w then
		local co = coroutine.running()
		table.insert(w, co)
		skynet.wait(co)
		s = node_sender[node]
		if not s then
			error(string.format("cluster node [%s]: no sender", node), 0)
		end
		return skynet.retpack(s)
	end
	creating[node] = {}
	local ok, handle = pcall(skynet.newservice, "clustersender", node, nodename,
		tostring(node_address[node]))
	local w2 = creating[node]
	creating[node] = nil
	if ok then
		node_sender[node] = handle
		-- the address may have changed while the sender started
		if node_address[node] ~= nil then
			skynet.call(handle, "lua", "changenode", node_address[node])
		end
	end
	for _, co in ipairs(w2) do
		skynet.wakeup(co)
	end
	if not ok then
		error(string.format("cluster node [%s]: cannot start a sender: %s", node, tostring(handle)), 0)
	end
	skynet.retpack(handle)
end

function CMD.senders()
	skynet.retpack(node_sender)
end

-- Inbound connections live in skynet.cluster.listener; these are its commands.
function CMD.listeners()
	skynet.retpack(inbound.listeners())
end

function CMD.takeover(fd, serial, agent)
	skynet.retpack(inbound.takeover(fd, serial, agent))
end

function CMD.closed(fd, serial)
	inbound.closed(fd, serial)
end

function CMD.listen(addr, port, maxclient)
	local name
	if port == nil then
		name = addr
		local address = node_address[name]
		if not address then
			error(string.format("cluster.open(%q): the node table has no address for it", name), 0)
		end
		addr, port = address:match "^(.+):(%d+)$"
		port = tonumber(port)
	end
	local bound = inbound.listen(addr, port, maxclient or settings.maxclient)
	if name then
		log("Listen on %s:%d %s", addr, bound, name)
		return skynet.retpack(name, nil)
	end
	log("Listen on %s:%d", addr, bound)
	skynet.retpack(addr, bound)
end

function CMD.proxy(node, name)
	if name == nil then
		local n, rest = node:match "^([^.@]+)([.@].+)$"
		if not n then
			error("cluster.proxy: invalid name " .. tostring(node), 0)
		end
		node, name = n, rest
	end
	local key = node .. "." .. tostring(name)
	local p = proxies[key]
	if p then
		return skynet.retpack(p)
	end
	p = skynet.newservice("clusterproxy", node, name)
	proxies[key] = p
	skynet.retpack(p)
end

local function flush_agent_caches()
	for agent in pairs(inbound.agents()) do
		skynet.send(agent, "lua", "namechange")
	end
end

function CMD.register(name, handle)
	if names[name] then
		error(string.format("cluster.register: name %s is already registered to %s", name,
			skynet.address(names[name])), 0)
	end
	local old = handle_names[handle]
	if old then
		names[old] = nil
		flush_agent_caches()
	end
	names[name] = handle
	handle_names[handle] = name
	log("Register [%s] :%08x", name, handle)
	skynet.ret()
end

function CMD.unregister(name)
	local handle = names[name]
	if handle then
		names[name] = nil
		handle_names[handle] = nil
		log("Unregister [%s] :%08x", name, handle)
		flush_agent_caches()
	end
	skynet.ret()
end

function CMD.queryname(name)
	skynet.retpack(names[name])
end

-- Operator view: one entry per node.
function CMD.status()
	local result = {}
	for node, address in pairs(node_address) do
		local entry = { address = address or "down" }
		local s = node_sender[node]
		if s then
			local ok, st = pcall(skynet.call, s, "lua", "status")
			if ok then
				for k, v in pairs(st) do
					entry[k] = v
				end
			end
		else
			entry.connected = false
		end
		result[node] = entry
	end
	skynet.retpack(result)
end

function CMD.disconnect(node)
	local s = node_sender[node]
	if s then
		skynet.call(s, "lua", "disconnect")
	end
	skynet.retpack(s ~= nil)
end

function CMD.connect(node)
	local s = node_sender[node]
	if not s then
		CMD.sender(node)
		return
	end
	skynet.retpack(skynet.call(s, "lua", "connect"))
end

function CMD.agents()
	local t = {}
	for agent, address in pairs(inbound.agents()) do
		t[skynet.address(agent)] = address
	end
	skynet.retpack(t)
end

-- The secret an inbound link must prove, or nil: none configured, or the peer's host is the
-- host of a node named in plain_peers (a stock Skynet node).
function CMD.secret_for(peer)
	if not secret then
		return skynet.retpack(nil)
	end
	local host = tostring(peer):match "^%[?(.-)%]?:%d+$"
	for name in pairs(plain_peers) do
		local address = node_address[name]
		if address and address:match "^(.+):%d+$" == host then
			return skynet.retpack(nil)
		end
	end
	skynet.retpack(secret)
end

-- The secret a link to `node` must prove, or nil: none configured, or node is a plain peer.
function CMD.secret_for_node(node)
	skynet.retpack(not plain_peers[node] and secret or nil)
end

-- node up/down events from the senders, fanned out to cluster.watch services
function CMD.nodeevent(node, state, detail)
	node_state[node] = state
	for w in pairs(watchers) do
		if not skynet.send(w, wire.CLUSTER_EVENT, node, state, detail) then
			watchers[w] = nil -- the watcher is gone
		end
	end
end

function CMD.watch(handle)
	watchers[handle] = true
	skynet.retpack(node_state)
end

function CMD.unwatch(handle)
	watchers[handle] = nil
	skynet.ret()
end

local function load_security()
	local file = settings.secret_file
	if file then
		local f = io.open(file, "rb")
		if f then
			secret = f:read "*a"
			f:close()
			if #secret < 16 then
				warn("cluster secret_file %s holds only %d bytes; use at least 16 random bytes", file, #secret)
			end
		else
			secret = "\0unreadable"
			warn("cluster secret_file %s cannot be read: every inbound link will be refused", file)
		end
	end
end

skynet.register_protocol {
	name = wire.CLUSTER_EVENT,
	id = wire.PTYPE_CLUSTER_EVENT,
	pack = skynet.pack,
}

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	unpack = skynet.tostring,
	dispatch = function(_, _, text)
		if text == "shutdown" then
			-- SIGTERM: stop accepting, let agents finish what is in flight, then close
			log("node stopping: listeners closed, %d inbound link(s) draining", inbound.shutdown())
		elseif text == "reload" then
			local ok, err = pcall(reload)
			if not ok then
				warn("cluster reload failed, node table unchanged: %s", tostring(err))
			end
			skyjet.reloaded() -- READY=1: the reload is done, applied or refused

		end
	end,
}

skynet.start(function()
	skyjet.internal() -- never callable from other nodes
	load_security()
	if config_file then
		local ok, err = pcall(function()
			apply(read_file())
		end)
		if not ok then
			warn("cluster file %s: %s", config_file, tostring(err))
		end
	end
	skynet.register ".clusterd"
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("clusterd: unknown command " .. tostring(cmd), 0)
		end
		f(...)
	end)
end)
