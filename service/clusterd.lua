-- clusterd (.clusterd, one per node): owns the cluster node table (from the file named by
-- [cluster] file, or cluster.reload), one clustersender per remote node, the listeners and every
-- inbound connection until its clusteragent takes it over (and its slot until it closes), the
-- shared secret (read once, handed to senders and agents), the proxy cache and the registry of
-- names remote nodes may call as "@name". A reload changes only what changed: a node with a new address gets a
-- new connection, a node set to false fails its calls, the others keep their connection.
-- Reload also happens on SIGHUP (the runtime sends us the text "reload").
local skynet = require "skynet"
require "skynet.manager"
local driver = require "skynet.socketdriver"
local cluster_core = require "skynet.cluster.core"
local core = require "skynet.core"
local settings = require "skynet.cluster.settings"
local wire = require "skynet.cluster.wire"

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
local listeners = {} -- listen socket id -> listener (see "Inbound connections" below)
local conns = {} -- socket id -> inbound connection, from accept until its socket closes
local watchers = {} -- service handle -> true (cluster.watch)
local node_state = {} -- node -> "up" | "down" (from the senders)
local secret -- [cluster] secret_file contents
local plain_peers = settings.plain_peers
local CMD = {}

local function log(fmt, ...)
	skynet.error(string.format(fmt, ...))
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
	local f, err = io.open(config_file)
	if not f then
		error("cannot read cluster file: " .. tostring(err))
	end
	local source = f:read "*a"
	f:close()
	local env = {}
	local chunk, cerr = load(source, "@" .. config_file, "t", env)
	if not chunk then
		error("cluster file " .. config_file .. ": " .. cerr)
	end
	chunk()
	return env
end

-- Merge a node table into ours and apply what changed. Returns a summary of the changes.
local function validate(tbl)
	if type(tbl) ~= "table" then
		error("cluster table expected, got " .. type(tbl), 0)
	end
	for name, address in pairs(tbl) do
		if type(name) ~= "string" then
			error("cluster table: node names must be strings, got " .. tostring(name), 0)
		end
		if name:sub(1, 2) ~= "__" then
			if address ~= false and (type(address) ~= "string" or not address:match "^.+:%d+$") then
				error(string.format("cluster table: node %s has address %s; expected \"host:port\" or false",
					name, tostring(address)), 0)
			end
			if name:find "[.@]" then
				error("cluster table: node name " .. name .. " may not contain '.' or '@'", 0)
			end
		end
	end
end

-- Merge a (validated) node table into ours and apply what changed; returns the changes.
local function apply(tbl)
	validate(tbl)
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

-- Inbound connections. clusterd owns each listener and reads every new connection itself until
-- its first whole frame has arrived: a connection that sends nothing costs no service, is closed
-- after first_frame_timeout, and is the first to go (oldest first) when a listener is at
-- maxclient, so idle connections can never lock a node out. With a frame, clusterd starts a
-- clusteragent, which takes the socket over (driver.start) and then collects the bytes read so
-- far (takeover). A slot is counted from accept until the socket closes: clusterd sees the close
-- while it reads, the agent reports it (closed) as soon as it sees it.
--   conn.state: "new" (no frame yet) -> "starting" (agent being started) -> "agent"
local conn_serial = 0 -- tells a connection from a later one that reuses its socket id

local function release_hold(c)
	if c.holding then
		c.holding = false
		core.hold(-1)
	end
end

local function drop_conn(c)
	if conns[c.fd] == c then
		conns[c.fd] = nil
		c.listener.live = c.listener.live - 1
		release_hold(c)
	end
end

-- The oldest connection of l that has not sent a frame yet, closed to make room.
local function evict_idle(l)
	local q = l.fresh
	while q.head <= q.tail do
		local c = q[q.head]
		q[q.head] = nil
		q.head = q.head + 1
		if c.state == "new" and conns[c.fd] == c then
			drop_conn(c)
			driver.close(c.fd)
			l.evicted = l.evicted + 1
			return true
		end
	end
	return false
end

local function start_agent(c)
	local ok, err = pcall(skynet.newservice, "clusteragent", skynet.self(), c.fd, c.serial, c.address)
	if not ok and conns[c.fd] == c then
		log("cluster link from %s refused: cannot start an agent: %s", c.address, tostring(err))
		drop_conn(c)
		driver.close(c.fd)
	end
end

local function on_accept(l, fd, address)
	if l.live >= l.maxclient and not evict_idle(l) then
		l.refused = l.refused + 1
		driver.close(fd)
		return
	end
	conn_serial = conn_serial + 1
	local c = { fd = fd, address = address, listener = l, serial = conn_serial, state = "new", data = "" }
	conns[fd] = c
	l.live = l.live + 1
	l.fresh.tail = l.fresh.tail + 1
	l.fresh[l.fresh.tail] = c
	driver.nodelay(fd)
	driver.start(fd)
	skynet.timeout(math.floor(settings.first_frame_timeout / 10), function()
		if conns[fd] == c and c.state == "new" then
			drop_conn(c)
			driver.close(fd)
			l.idle = l.idle + 1
		end
	end)
	skynet.log("debug", string.format("cluster connection from %s", address))
end

local function on_data(fd, data, size)
	local c = conns[fd]
	local bytes = skynet.tostring(data, size)
	skynet.trash(data, size)
	if not c or c.state == "agent" then
		return
	end
	c.data = c.data .. bytes
	if c.state == "new" then
		local hi, lo = c.data:byte(1, 2)
		if lo and #c.data >= wire.FRAME_PREFIX + hi * 256 + lo then
			c.state = "starting"
			skynet.fork(start_agent, c)
		end
	elseif #c.data > 4 * 65536 then
		driver.pause(fd) -- the agent, starting, resumes it
	end
end

local EV = wire.event
local function on_gone(id, text)
	local l = listeners[id]
	if l then
		log("cluster listener %s failed: %s", l.address, tostring(text))
		listeners[id] = nil
	elseif conns[id] and conns[id].state ~= "agent" then
		drop_conn(conns[id])
	end
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = driver.unpack,
	dispatch = function(_, _, t, id, ud, data, size)
		if t == EV.DATA then
			on_data(id, data, size)
		elseif t == EV.ACCEPT then
			if listeners[id] then
				on_accept(listeners[id], ud, data)
			else
				driver.close(ud)
			end
		elseif t == EV.CLOSE or t == EV.ERROR then
			on_gone(id, data)
		end
	end,
}

-- Refused, idle and evicted connections are summed up: one line per listener per second.
local function report_refusals()
	while true do
		skynet.sleep(100)
		for _, l in pairs(listeners) do
			if l.refused + l.idle + l.evicted > 0 then
				log("cluster listener %s: %d connection(s) refused at maxclient %d, %d closed without a "
					.. "frame within first_frame_timeout (%d ms), %d idle one(s) evicted for new ones",
					l.address, l.refused, l.maxclient, l.idle, settings.first_frame_timeout, l.evicted)
				l.refused, l.idle, l.evicted = 0, 0, 0
			end
		end
	end
end

local function listen(addr, port, maxclient)
	local id, bound = driver.listen(addr, port)
	if not id then
		error(string.format("cluster listen on %s:%s failed: %s", addr, tostring(port), tostring(bound)), 0)
	end
	if next(listeners) == nil then
		skynet.fork(report_refusals)
	end
	listeners[id] = {
		address = addr .. ":" .. bound,
		maxclient = maxclient,
		live = 0,
		refused = 0,
		idle = 0,
		evicted = 0,
		fresh = { head = 1, tail = 0 }, -- connections in accept order, for evict_idle
	}
	driver.start(id)
	return bound
end

-- Operator view of the listeners: address -> { live = connections now, maxclient = cap }.
function CMD.listeners()
	local t = {}
	for _, l in pairs(listeners) do
		t[l.address] = { live = l.live, maxclient = l.maxclient }
	end
	skynet.retpack(t)
end

-- An agent has taken its socket over: hand it the bytes read so far (nil: the link is gone).
function CMD.takeover(fd, serial, agent)
	local c = conns[fd]
	if not c or c.serial ~= serial then
		return skynet.retpack(nil)
	end
	c.state, c.agent = "agent", agent
	local data = c.data
	c.data = nil
	skynet.retpack(data)
	if c.holding then -- the node began stopping while the agent started
		skynet.send(agent, "lua", "drain")
		release_hold(c)
	end
end

-- An agent's socket closed (sent, not called: the agent exits right after).
function CMD.closed(fd, serial)
	local c = conns[fd]
	if c and c.serial == serial then
		drop_conn(c)
	end
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
	local bound = listen(addr, port, maxclient or settings.maxclient)
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
	for _, c in pairs(conns) do
		if c.agent then
			skynet.send(c.agent, "lua", "namechange")
		end
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
	for _, c in pairs(conns) do
		if c.agent then
			t[skynet.address(c.agent)] = c.address
		end
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
		if not skynet.send(w, "cluster_event", node, state, detail) then
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
				log("cluster secret_file %s holds only %d bytes; use at least 16 random bytes", file, #secret)
			end
		else
			secret = "\0unreadable"
			log("cluster secret_file %s cannot be read: every inbound link will be refused", file)
		end
	end
end

skynet.register_protocol {
	name = "cluster_event",
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
			for id in pairs(listeners) do
				driver.close(id)
			end
			listeners = {}
			local draining = 0
			for _, c in pairs(conns) do
				if c.agent then
					draining = draining + 1
					skynet.send(c.agent, "lua", "drain")
				elseif c.state == "new" then
					drop_conn(c)
					driver.close(c.fd)
				elseif not c.holding then -- its agent is starting: the node waits for it
					draining = draining + 1
					c.holding = true
					core.hold(1)
				end
			end
			log("node stopping: listeners closed, %d inbound link(s) draining", draining)
		elseif text == "reload" then
			local ok, err = pcall(reload)
			if not ok then
				log("cluster reload failed, node table unchanged: %s", tostring(err))
			end
		end
	end,
}

skynet.start(function()
	core.internal() -- never callable from other nodes
	load_security()
	if config_file then
		local ok, err = pcall(function()
			apply(read_file())
		end)
		if not ok then
			log("cluster file %s: %s", config_file, tostring(err))
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
