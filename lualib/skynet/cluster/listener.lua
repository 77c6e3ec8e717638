-- skynet.cluster.listener: clusterd's inbound side (loaded by clusterd only). clusterd owns each
-- listener and reads every new connection itself until its first whole frame has arrived: a
-- connection that sends nothing costs no service, is closed after first_frame_timeout, and is the
-- first to go (oldest first) when a listener is at maxclient, so idle connections can never lock
-- a node out. With a frame, clusterd starts a clusteragent, which takes the socket over
-- (driver.start) and then collects the bytes read so far (takeover). A slot is counted from
-- accept until the socket closes: clusterd sees the close while it reads, the agent reports it
-- (closed) as soon as it sees it. Refused, idle and evicted connections are summed up in one log
-- line per listener per second.
--   conn.state: "new" (no frame yet) -> "starting" (agent being started) -> "agent"
local skynet = require "skynet"
local driver = require "skynet.socketdriver"
local skyjet = require "skyjet"
local settings = require "skynet.cluster.settings"
local wire = require "skynet.cluster.wire"

local listener = {}
local listeners = {} -- listen socket id -> { address, maxclient, live, refused, idle, evicted, fresh }
local conns = {} -- socket id -> inbound connection, from accept until its socket closes
local conn_serial = 0 -- tells a connection from a later one that reuses its socket id

local function log(fmt, ...)
	skynet.error(string.format(fmt, ...))
end

local function release_hold(c)
	if c.holding then
		c.holding = false
		skyjet.hold(-1)
	end
end

local function drop_conn(c)
	if conns[c.fd] == c then
		conns[c.fd] = nil
		c.listener.live = c.listener.live - 1
		release_hold(c)
	end
end

local function is_fresh(c)
	return c.state == "new" and conns[c.fd] == c
end

-- l.fresh holds connections in accept order; those that sent a frame or closed leave from the
-- head, so it holds little more than the connections of the last first_frame_timeout.
local function trim(q)
	while q.head <= q.tail and not is_fresh(q[q.head]) do
		q[q.head] = nil
		q.head = q.head + 1
	end
end

local function evict_idle(l)
	local q = l.fresh
	trim(q)
	if q.head > q.tail then
		return false
	end
	local c = q[q.head]
	drop_conn(c)
	driver.close(c.fd)
	l.evicted = l.evicted + 1
	trim(q)
	return true
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
	local c = { fd = fd, address = address, listener = l, serial = conn_serial, state = "new",
		data = {}, size = 0 }
	conns[fd] = c
	l.live = l.live + 1
	trim(l.fresh)
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

-- Bytes before the takeover are kept as a list of strings (c.data) and c.size in total.
local function on_data(fd, data, size)
	local c = conns[fd]
	if not c or c.state == "agent" then
		skynet.trash(data, size)
		return
	end
	local bytes = skynet.tostring(data, size)
	skynet.trash(data, size)
	c.data[#c.data + 1] = bytes
	c.size = c.size + size
	if c.state == "new" then
		local head = #c.data[1] >= wire.FRAME_PREFIX and c.data[1] or table.concat(c.data)
		local hi, lo = head:byte(1, 2)
		if lo and c.size >= wire.FRAME_PREFIX + hi * 256 + lo then
			c.state = "starting"
			skynet.fork(start_agent, c)
		end
	elseif c.size > 4 * 65536 and not c.paused then
		-- the agent may have taken the socket over already: it resumes it after takeover
		c.paused = true
		driver.pause(fd)
	end
end

local EV = wire.event

-- CLOSE (ud 1: the peer's EOF, the socket still ours to close; else gone) or ERROR.
local function on_gone(id, eof, text)
	local l, c = listeners[id], conns[id]
	if l then
		log("cluster listener %s failed: %s", l.address, tostring(text))
		listeners[id] = nil
	elseif c and c.state == "new" then
		drop_conn(c)
		if eof then
			driver.close(id)
		end
	elseif c and c.state == "starting" and not eof then
		drop_conn(c) -- gone; after an EOF the agent takes the socket and hears the EOF itself
	end
end

wire.on_socket(function(t, id, ud, data, size)
	if t == EV.DATA then
		on_data(id, data, size)
	elseif t == EV.ACCEPT then
		if listeners[id] then
			on_accept(listeners[id], ud, data)
		else
			driver.close(ud)
		end
	elseif t == EV.CLOSE or t == EV.ERROR then
		on_gone(id, t == EV.CLOSE and ud == 1, data)
	end
end)

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

function listener.listen(addr, port, maxclient)
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

-- address -> { live = connections now, maxclient = cap }
function listener.listeners()
	local t = {}
	for _, l in pairs(listeners) do
		t[l.address] = { live = l.live, maxclient = l.maxclient }
	end
	return t
end

-- agent handle -> peer address, for every link an agent has taken over
function listener.agents()
	local t = {}
	for _, c in pairs(conns) do
		if c.agent then
			t[c.agent] = c.address
		end
	end
	return t
end

-- An agent has taken its socket over: the bytes read so far (nil: the link is gone), and true
-- when clusterd paused the socket (the agent must resume it: the pause may have come last).
function listener.takeover(fd, serial, agent)
	local c = conns[fd]
	if not c or c.serial ~= serial then
		return nil
	end
	c.state, c.agent = "agent", agent
	local data, paused = table.concat(c.data), c.paused
	c.data = nil
	if c.holding then -- the node began stopping while the agent started
		skynet.fork(function()
			skynet.send(agent, "lua", "drain") -- after the takeover answer
			release_hold(c)
		end)
	end
	return data, paused
end

-- An agent's socket closed.
function listener.closed(fd, serial)
	local c = conns[fd]
	if c and c.serial == serial then
		drop_conn(c)
	end
end

-- The node stops: close the listeners and the connections without a frame, ask every agent to
-- drain (the node waits for agents still starting). Returns the number of links draining.
function listener.shutdown()
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
			skyjet.hold(1)
		end
	end
	return draining
end

return listener
