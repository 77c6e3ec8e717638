-- debug_console: the operator's line protocol on [node] console = HOST:PORT (started by
-- bootstrap). One command per line, usable with `nc 127.0.0.1 PORT`; every answer ends with a
-- line "<ok>" or "<error> reason". Loopback addresses only unless console_allow_remote = true:
-- the console can kill services. Clients are served concurrently, commands of one client in
-- order. Calls into other services carry a deadline, so a stuck service cannot hang a client.
local skynet = require "skynet"
local socket = require "skynet.socket"
local oplisten = require "skynet.oplisten"
local core = require "skynet.core"

-- Skynet's forms too: `debug_console PORT` (127.0.0.1) and `debug_console IP PORT`.
local arg1, arg2 = ...
local listen_address = arg2 and (arg1 .. ":" .. arg2) or (tonumber(arg1) and "127.0.0.1:" .. arg1) or arg1
local MAX_LINE = 4096
local ASK_TICKS = 100 -- 1 s for each service to answer a debug query
local CMD = {}
local HELP = {}

-- Same rule as service/metrics.lua: 127.0.0.0/8, ::1 or localhost, unless allowed.
local function fail(fmt, ...)
	error(string.format(fmt, ...), 0)
end

-- `:0000000a`, `0xa` and `a` are hex, `10` (digits only) is decimal, `.name` a local name.
local function parse_address(s)
	if not s then
		fail "missing address (:0000000a, a, 10 or .name)"
	end
	local h
	if s:sub(1, 1) == "." then
		h = skynet.localname(s) or fail("no service named %s", s)
	elseif s:match "^:%x+$" then
		h = tonumber(s:sub(2), 16)
	elseif s:match "^0x%x+$" then
		h = tonumber(s:sub(3), 16)
	elseif s:match "^%d+$" then
		h = tonumber(s)
	elseif s:match "^%x+$" then
		h = tonumber(s, 16)
	else
		fail("bad address '%s' (use :0000000a, a, 10 or .name)", s)
	end
	if h > 0xffffffff then
		fail("bad address '%s': more than 32 bits", s)
	end
	if not core.serviceinfo(h) then
		fail("no service %s", skynet.address(h))
	end
	return h
end

-- Ask every handle the same debug command at once; answers[h] is nil when one did not answer
-- within `ticks` (a C service, or one stuck in a loop).
local function ask_all(handles, cmd, ticks)
	local answers, left, token = {}, #handles, {}
	for _, h in ipairs(handles) do
		skynet.fork(function()
			local ok, v = pcall(skynet.call, h, "debug", cmd)
			if ok then
				answers[h] = v
			end
			left = left - 1
			if left == 0 then
				skynet.wakeup(token)
			end
		end)
	end
	if left > 0 then
		skynet.sleep(ticks, token)
	end
	return answers
end

-- The Lua services: the launcher's list plus the launcher itself (bootstrap started it).
local function lua_services()
	local launched = skynet.call(".launcher", "lua", "LIST")
	local desc, handles = {}, {}
	for addr, d in pairs(launched) do
		local h = tonumber(addr:sub(2), 16)
		desc[h] = d
		handles[#handles + 1] = h
	end
	local launcher = skynet.localname ".launcher"
	if launcher and not desc[launcher] then
		desc[launcher] = "snlua launcher"
		handles[#handles + 1] = launcher
	end
	table.sort(handles)
	return handles, desc
end

local function describe(h, desc)
	local info = core.serviceinfo(h)
	local name = info and info.name
	local d = desc[h]
	if d and name then
		return d .. " (" .. name .. ")"
	end
	return d or name or "-"
end

local function kb(v)
	return v and string.format("%.2f", v) or "-"
end

HELP[#HELP + 1] = "list            services: address, Lua memory (KB), messages, queue length, name"
function CMD.list()
	local _, desc = lua_services()
	local handles = core.list()
	table.sort(handles)
	local lua = {}
	for _, h in ipairs(handles) do
		if desc[h] then
			lua[#lua + 1] = h
		end
	end
	local mem = ask_all(lua, "MEM", ASK_TICKS)
	local out = { string.format("%-10s %10s %10s %6s  %s", "address", "mem_kb", "messages", "mqlen",
		"service") }
	for _, h in ipairs(handles) do
		local info = core.serviceinfo(h)
		if info then
			out[#out + 1] = string.format("%-10s %10s %10d %6d  %s", skynet.address(h), kb(mem[h]),
				info.messages, info.mqlen, describe(h, desc))
		end
	end
	return out
end

HELP[#HELP + 1] = "stat ADDR       one service: messages, queue, cpu, coroutines waiting, memory"
function CMD.stat(addr)
	local h = parse_address(addr)
	local _, desc = lua_services()
	local info = core.serviceinfo(h) or fail("service %s is gone", skynet.address(h))
	local out = {
		"address   " .. skynet.address(h),
		"service   " .. describe(h, desc),
		"messages  " .. info.messages,
		"mqlen     " .. info.mqlen,
		string.format("cpu       %.6f", info.cpu),
		"endless   " .. tostring(info.endless),
	}
	if desc[h] then
		local st = ask_all({ h }, "STAT", ASK_TICKS)[h]
		local mem = ask_all({ h }, "MEM", ASK_TICKS)[h]
		out[#out + 1] = "task      " .. (st and tostring(st.task) or "- (no answer)")
		out[#out + 1] = "mem_kb    " .. kb(mem)
	end
	return out
end

local function memory_lines(cmd)
	local handles, desc = lua_services()
	local answers = ask_all(handles, cmd, ASK_TICKS)
	local out, total = {}, 0
	for _, h in ipairs(handles) do
		local v = answers[h]
		total = total + (v or 0)
		out[#out + 1] = string.format("%-10s %10s KB  %s", skynet.address(h), kb(v), desc[h])
	end
	out[#out + 1] = string.format("total      %10.2f KB in %d services", total, #handles)
	return out
end

HELP[#HELP + 1] = "mem             Lua memory of every service"
function CMD.mem()
	return memory_lines "MEM"
end

HELP[#HELP + 1] = "gc              full garbage collection in every service, then its memory"
function CMD.gc()
	return memory_lines "GC"
end

HELP[#HELP + 1] = "kill ADDR       kill a service"
function CMD.kill(addr)
	local h = parse_address(addr)
	if h == skynet.self() then
		fail "that is this console; refusing to kill it"
	end
	local _, desc = lua_services()
	local what = describe(h, desc)
	skynet.call(".launcher", "lua", "KILL", h)
	return { string.format("killed %s %s", skynet.address(h), what) }
end

local function clusterd()
	return skynet.localname ".clusterd"
end

local CLUSTER_FIELDS = { "address", "state", "connected", "pending", "requests", "pushes",
	"bytes_out", "bytes_in", "failures", "rtt_us" }

-- errors = { kind = count } -> "kind:count,kind:count"
local function errors_text(errors)
	local kinds = {}
	for kind, n in pairs(errors) do
		kinds[#kinds + 1] = kind .. ":" .. tostring(n)
	end
	table.sort(kinds)
	return table.concat(kinds, ",")
end

HELP[#HELP + 1] = "cluster         the node table and the state of each link"
function CMD.cluster()
	local d = clusterd()
	if not d then
		return { "no cluster" }
	end
	local status = skynet.call(d, "lua", "status")
	local nodes = {}
	for node in pairs(status) do
		nodes[#nodes + 1] = node
	end
	table.sort(nodes)
	local out = {}
	for _, node in ipairs(nodes) do
		local st, known, parts = status[node], { last_error = true }, { node }
		for _, k in ipairs(CLUSTER_FIELDS) do
			known[k] = true
			if st[k] ~= nil then
				parts[#parts + 1] = k .. "=" .. tostring(st[k])
			end
		end
		if type(st.errors) == "table" and next(st.errors) then
			parts[#parts + 1] = "errors=" .. errors_text(st.errors)
		end
		for k, v in pairs(st) do -- fields added later still show
			if not known[k] and type(v) ~= "table" then
				parts[#parts + 1] = k .. "=" .. tostring(v)
			end
		end
		if st.last_error then -- last: it is free text
			parts[#parts + 1] = "last_error=" .. tostring(st.last_error):gsub("\n", " ")
		end
		out[#out + 1] = table.concat(parts, " ")
	end
	if #out == 0 then
		out[1] = "cluster: the node table is empty"
	end
	return out
end

HELP[#HELP + 1] = "reload          re-read the cluster file and show what changed"
function CMD.reload()
	local d = clusterd() or fail "no cluster service running; nothing to reload"
	local changes = skynet.call(d, "lua", "reload")
	if #changes == 0 then
		return { "cluster reload: no change" }
	end
	return changes
end

HELP[#HELP + 1] = "ping ADDR       debug PING a service and show the round trip"
function CMD.ping(addr)
	local h = parse_address(addr)
	local _, desc = lua_services()
	if not desc[h] then
		fail("%s is not a Lua service; only those answer debug PING", skynet.address(h))
	end
	local t0 = skynet.hpc()
	local token, done, err = {}, false, nil
	skynet.fork(function()
		local ok, e = pcall(skynet.call, h, "debug", "PING")
		done, err = ok, not ok and e
		skynet.wakeup(token)
	end)
	skynet.sleep(3 * ASK_TICKS, token)
	if err then
		fail("ping %s failed: %s", skynet.address(h), tostring(err))
	elseif not done then
		fail("ping %s: no answer in %d s", skynet.address(h), 3 * ASK_TICKS / 100)
	end
	return { string.format("pong %s %.3f ms", skynet.address(h), (skynet.hpc() - t0) / 1e6) }
end

HELP[#HELP + 1] = "log [LEVEL]     show or set the log level (debug, info, warn, error)"
function CMD.log(level)
	if level then
		local ok, err = pcall(core.loglevel, level)
		if not ok then
			fail("%s (use debug, info, warn or error)", (tostring(err):gsub("^.-: ", "")))
		end
		skynet.log("warn", "debug console: log level set to " .. core.loglevel())
	end
	return { "log level " .. core.loglevel() }
end

HELP[#HELP + 1] = "help            this text; quit closes the connection"
function CMD.help()
	return HELP
end

-- One command line -> the lines of its answer, ending with <ok> or <error>.
local function run(line)
	local words = {}
	for w in line:gmatch "%S+" do
		words[#words + 1] = w
	end
	local f = CMD[words[1]:lower()]
	if not f then
		return "<error> unknown command '" .. words[1] .. "' (try help)\n"
	end
	local ok, out = pcall(f, unpack(words, 2))
	if not ok then
		return "<error> " .. tostring(out):gsub("\n", " ") .. "\n"
	end
	if #out == 0 then
		return "<ok>\n"
	end
	return table.concat(out, "\n") .. "\n<ok>\n"
end

-- [node] console_idle_timeout: a connection silent that long is closed (0 = never).
local function watch_idle(id, from, state)
	local idle = (tonumber(skynet.getenv "console_idle_timeout") or 0) * 100
	if idle <= 0 then
		return
	end
	local function check()
		if state.done then
			return
		end
		local left = state.last + idle - skynet.now()
		if left > 0 then
			return skynet.timeout(left, check)
		end
		skynet.log("info", "debug console: " .. tostring(from) .. " idle for "
			.. math.floor(idle / 100) .. " s; closing it")
		socket.shutdown(id) -- the read in serve returns false
	end
	skynet.timeout(idle, check)
end

local function serve(id, from)
	if not socket.start(id) then
		return
	end
	local state = { last = skynet.now() }
	watch_idle(id, from, state)
	local buf = ""
	while true do
		local nl = buf:find("\n", 1, true)
		if nl then
			local line = buf:sub(1, nl - 1):gsub("\r$", "")
			buf = buf:sub(nl + 1)
			if line:match "^%s*quit%s*$" or line:match "^%s*exit%s*$" then
				break
			end
			if line:find "%S" then
				socket.write(id, run(line))
			end
		else
			if #buf > MAX_LINE then
				socket.write(id, "<error> line longer than " .. MAX_LINE .. " bytes\n")
				break
			end
			local data = socket.read(id)
			if not data then
				break
			end
			state.last = skynet.now()
			buf = buf .. data
		end
	end
	state.done = true
	socket.close(id)
	skynet.log("debug", "debug console: " .. tostring(from) .. " left")
end

skynet.start(function()
	core.internal() -- never callable from other nodes
	local lid, host, port = oplisten("debug console", listen_address)
	if not lid then
		return skynet.exit()
	end
	socket.accept_limit(lid, tonumber(skynet.getenv "console_maxconn") or 0)
	socket.start(lid, function(id, from)
		skynet.log("info", "debug console: connection from " .. tostring(from))
		skynet.fork(serve, id, from)
	end)
	skynet.log("info", string.format("debug console listening on %s:%d", host, port))
end)
