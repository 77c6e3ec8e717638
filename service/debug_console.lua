-- debug_console: Skynet's debug console, on [node] console = HOST:PORT (started by bootstrap) or
-- skynet.newservice("debug_console", [IP,] PORT). One command per line (`nc 127.0.0.1 PORT`),
-- or one `GET /cmd/arg` request; answers end with "<CMD OK>" or "<CMD Error>" as Skynet's do.
-- Loopback only unless console_allow_remote = true. Clients are served concurrently, at most
-- BATCH commands of one client per turn; calls into other services carry a deadline, so a stuck
-- service cannot hang a client. Node-internal services cannot be killed from here.
local skynet = require "skynet"
local socket = require "skynet.socket"
local oplisten = require "skynet.oplisten"
local skyjet = require "skyjet"

-- Skynet's forms too: `debug_console PORT` (127.0.0.1) and `debug_console IP PORT`.
local arg1, arg2 = ...
local listen_address = arg2 and (arg1 .. ":" .. arg2) or (tonumber(arg1) and "127.0.0.1:" .. arg1) or arg1
local MAX_LINE = 4096
local BATCH = 32 -- commands of one client before it yields to the others
local ASK_TICKS = 100 -- 1 s for each service to answer a debug query
local GREETING = "Welcome to skynet console\n"
local CMD = {}
local HELP = {} -- command -> "usage: what it does"

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
	if not skyjet.serviceinfo(h) then
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
	local info = skyjet.serviceinfo(h)
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

HELP.list = "list: services: address, Lua memory (KB), messages, queue length, name"
function CMD.list()
	local _, desc = lua_services()
	local handles = skyjet.list()
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
		local info = skyjet.serviceinfo(h)
		if info then
			out[#out + 1] = string.format("%-10s %10s %10d %6d  %s", skynet.address(h), kb(mem[h]),
				info.messages, info.mqlen, describe(h, desc))
		end
	end
	return out
end

function CMD.stat(addr)
	local h = parse_address(addr)
	local _, desc = lua_services()
	local info = skyjet.serviceinfo(h) or fail("service %s is gone", skynet.address(h))
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
		-- Skynet's launcher MEM form: ADDR<TAB>12.34 Kb (launch line)
		out[#out + 1] = string.format("%s\t%s Kb (%s)", skynet.address(h), kb(v), desc[h])
	end
	out[#out + 1] = string.format("total\t%.2f Kb in %d services", total, #handles)
	return out
end

HELP.mem = "mem: Lua memory of every service"
function CMD.mem()
	return memory_lines "MEM"
end

HELP.gc = "gc: full garbage collection in every service, then its memory"
function CMD.gc()
	return memory_lines "GC"
end

-- Node-internal services (they marked themselves with skyjet.internal()) and the logger keep
-- the node running: the console refuses to stop them.
local function stoppable(addr, verb)
	local h = parse_address(addr)
	if skyjet.isinternal(h) or h == skynet.localname ".logger" then
		local _, desc = lua_services()
		fail("%s %s is node-internal; refusing to %s it", skynet.address(h), describe(h, desc), verb)
	end
	return h
end

HELP.kill = "kill ADDR: kill a service (not a node-internal one)"
function CMD.kill(addr)
	local h = stoppable(addr, "kill")
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

HELP.cluster = "cluster: the node table and the state of each link"
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

HELP.reload = "reload: re-read the cluster file and show what changed"
function CMD.reload()
	local d = clusterd() or fail "no cluster service running; nothing to reload"
	local changes = skynet.call(d, "lua", "reload")
	if #changes == 0 then
		return { "cluster reload: no change" }
	end
	return changes
end

HELP.ping = "ping ADDR: debug PING a service and show the round trip"
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

HELP.log = "log [LEVEL]: show or set the log level (debug, info, warn, error)"
function CMD.log(level)
	if level then
		local ok, err = pcall(skyjet.loglevel, level)
		if not ok then
			fail("%s (use debug, info, warn or error)", (tostring(err):gsub("^.-: ", "")))
		end
		skynet.log("warn", "debug console: log level set to " .. skyjet.loglevel())
	end
	return { "log level " .. skyjet.loglevel() }
end

-- Skynet's way of printing a table: one "key<TAB>value" line per key, sorted; a table value
-- becomes "k:v<TAB>k:v".
local function flat(v)
	if type(v) ~= "table" then
		return tostring(v)
	end
	local keys, parts = {}, {}
	for k in pairs(v) do
		keys[#keys + 1] = k
	end
	table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
	for _, k in ipairs(keys) do
		parts[#parts + 1] = tostring(k) .. ":" .. tostring(v[k])
	end
	return table.concat(parts, "\t")
end

local function dump(t)
	if type(t) ~= "table" then
		return t ~= nil and { tostring(t) } or {}
	end
	local keys, out = {}, {}
	for k in pairs(t) do
		keys[#keys + 1] = k
	end
	table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
	for _, k in ipairs(keys) do
		out[#out + 1] = tostring(k) .. "\t" .. flat(t[k])
	end
	return out
end

-- A call to one Lua service with a deadline: the results, or an error naming the service.
local function ask(addr, proto, ...)
	local h = parse_address(addr)
	local _, desc = lua_services()
	if not desc[h] then
		fail("%s is not a Lua service", skynet.address(h))
	end
	local token, r, args = {}, nil, { n = select("#", ...), ... }
	local function keep(...)
		r = { n = select("#", ...), ... }
	end
	skynet.fork(function()
		keep(pcall(skynet.call, h, proto, unpack(args, 1, args.n)))
		skynet.wakeup(token)
	end)
	skynet.sleep(3 * ASK_TICKS, token)
	if not r then
		fail("%s: no answer in %d s", skynet.address(h), 3 * ASK_TICKS / 100)
	elseif not r[1] then
		fail("%s: %s", skynet.address(h), tostring(r[2]))
	end
	return unpack(r, 2, r.n)
end

HELP.exit = "exit ADDR: ask a Lua service to exit (debug EXIT)"
function CMD.exit(addr)
	local h = stoppable(addr, "exit")
	local _, desc = lua_services()
	if not desc[h] then
		fail("%s is not a Lua service", skynet.address(h))
	end
	skynet.send(h, "debug", "EXIT")
end

HELP.stat = "stat [ADDR]: every Lua service's task, mqlen, cpu, message; or one service in full"
local stat_one = CMD.stat
function CMD.stat(addr)
	if addr then
		return stat_one(addr)
	end
	local handles = lua_services()
	local answers = ask_all(handles, "STAT", ASK_TICKS)
	local t = {}
	for _, h in ipairs(handles) do
		t[skynet.address(h)] = answers[h] or "no answer"
	end
	return dump(t)
end

HELP.info = "info ADDR [ARGS]: what the service's skynet.info_func returns"
function CMD.info(addr, ...)
	return dump((ask(addr, "debug", "INFO", ...)))
end

HELP.task = "task ADDR: the service's suspended coroutines (session: traceback)"
function CMD.task(addr)
	return dump((ask(addr, "debug", "TASK")))
end

HELP.killtask = "killtask ADDR NAME: kill one of the service's coroutines (name from task)"
function CMD.killtask(addr, name)
	return dump((ask(addr, "debug", "KILLTASK", name or fail "missing task name (see task ADDR)")))
end

local function launched(what, h, ...)
	return { skynet.address(h) .. "\t" .. table.concat({ what, ... }, " ") }
end

HELP.start = "start NAME [ARGS]: launch a Lua service"
function CMD.start(name, ...)
	local ok, h = pcall(skynet.newservice, name or fail "missing service name", ...)
	if not ok then
		fail("Failed: %s", tostring(h))
	end
	return h and launched(name, h, ...) or { "Exit" }
end

HELP.snax = "snax NAME [ARGS]: launch a snax service"
function CMD.snax(name, ...)
	local snax = require "skynet.snax"
	local ok, s = pcall(snax.newservice, name or fail "missing service name", ...)
	if not ok then
		fail("Failed: %s", tostring(s))
	end
	return launched(name, s.handle, ...)
end

HELP.service = "service: the unique services (skynet.uniqueservice) by name"
function CMD.service()
	return dump(skynet.call(".service", "lua", "LIST"))
end

-- call's arguments are a Lua expression list, evaluated with no globals.
local function call_args(text)
	local f, err = loadstring("return " .. text, "=(debug console)")
	if not f then
		fail("invalid arguments: %s", err)
	end
	-- counted with select("#"), not table.maxn: trailing nils are arguments too (Skynet's table.pack)
	local r = { n = 0 }
	local function keep(ok, ...)
		if not ok then
			fail("invalid arguments: %s", tostring((...)))
		end
		r = { n = select("#", ...), ... }
	end
	keep(pcall(setfenv(f, {})))
	return r
end

HELP.call = "call ADDR ARGS: skynet.call(ADDR, \"lua\", ARGS), ARGS a Lua expression list"
CMD.call = { whole_line = true }
function CMD.call.run(line)
	local addr, rest = line:match "^%s*%S+%s+(%S+)%s+(.-)%s*$"
	if not rest or rest == "" then
		fail "need arguments: call ADDR ARGS (a Lua expression list, e.g. \"echo\", 1)"
	end
	local args = call_args(rest)
	local r = { n = 0 }
	local function keep(...)
		r = { n = select("#", ...), ... }
	end
	keep(ask(addr, "lua", unpack(args, 1, args.n)))
	return dump(r)
end

HELP.signal = "signal ADDR [SIG]: signal a service (SIG 0, the default, breaks an endless loop)"
function CMD.signal(addr, sig)
	local h = parse_address(addr)
	local n = sig and (tonumber(sig) or fail("bad signal '%s' (a number)", sig)) or 0
	if not skyjet.signal(h, n) then
		fail("cannot signal %s", skynet.address(h))
	end
end

HELP.getenv = "getenv KEY: a [node]/[lua] setting or a skynet.setenv value"
function CMD.getenv(key)
	key = key or fail "missing key"
	return dump { [key] = skynet.getenv(key) }
end

HELP.setenv = "setenv KEY VALUE: skynet.setenv (a key not set yet)"
function CMD.setenv(key, value)
	skynet.setenv(key or fail "missing key", value or fail "missing value")
end

HELP.cmem = "cmem: memory of the process: Lua heaps of all services and resident set, in bytes"
function CMD.cmem()
	local st = skyjet.stats()
	return dump { lua = st.lua_memory, rss = st.process.resident_bytes }
end

HELP.inject = "inject ADDR FILE: run a Lua file inside a service (debug RUN); prints what it prints"
function CMD.inject(addr, file, ...)
	local f = io.open(file or fail "missing file name", "rb") or fail("Can't open %s", file)
	local source = f:read "*a"
	f:close()
	local ok, out = ask(addr, "debug", "RUN", source, file, ...)
	if ok == false then
		fail("%s", tostring(out))
	end
	return out ~= "" and { out } or nil
end

-- Skynet commands skyjet has no machinery for: a clear error, listed in help.
local MISSING = {
	trace = "trace ADDR [PROTO] [on|off]: not on skyjet (no message trace log)",
	netstat = "netstat: not on skyjet (the reactor keeps no per-socket byte counters)",
	logon = "logon ADDR: not on skyjet (no per-service message log)",
	logoff = "logoff ADDR: not on skyjet (no per-service message log)",
	jmem = "jmem: not on skyjet (no jemalloc)",
	shrtbl = "shrtbl: not on skyjet (LuaJIT has no shared short-string table)",
	clearcache = "clearcache: not on skyjet (no code cache: each service loads its files)",
	debug = "debug ADDR: not on skyjet (no remote debugger)",
}
for name, text in pairs(MISSING) do
	HELP[name] = text
	CMD[name] = function()
		fail("%s", text:match ": (.*)$")
	end
end

HELP.help = "help: this text; quit (or a bare exit) closes the connection"
function CMD.help()
	return dump(HELP)
end

local function answer(lines, tail)
	if #lines == 0 then
		return tail
	end
	return table.concat(lines, "\n") .. "\n" .. tail
end

-- One command line -> its answer, ending with <CMD OK> or, after the error text, <CMD Error>.
local function run(line)
	local words = {}
	for w in line:gmatch "%S+" do
		words[#words + 1] = w
	end
	local f = CMD[words[1]]
	if not f then
		return "Invalid command, type help for command list\n<CMD Error>\n"
	end
	local ok, out
	if type(f) == "table" then
		ok, out = pcall(f.run, line)
	else
		ok, out = pcall(f, unpack(words, 2))
	end
	if not ok then
		return tostring(out) .. "\n<CMD Error>\n"
	end
	return answer(out or {}, "<CMD OK>\n")
end

-- [node] console_idle_timeout: a connection silent that long is closed (0 = never).
local function watch_idle(id, from, state)
	local idle = tonumber(skynet.getenv "console_idle_timeout") * 100
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

-- Skynet's HTTP form: `GET /cmd/arg/arg HTTP/1.x`, headers skipped, one answer, then close.
local function http_command(request)
	local url = request:match "^GET%s+(%S+)" or "/"
	url = url:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end)
	return (url:sub(2):gsub("/", " "))
end

-- The client's commands, in order; `buf` is cut only when more data arrives, so a pipeline of
-- many short lines costs linear time. Yields after BATCH commands: other clients get a turn.
local function serve(id, from)
	if not socket.start(id) then
		return
	end
	socket.write(id, GREETING)
	local state = { last = skynet.now() }
	watch_idle(id, from, state)
	local buf, pos, served, http = "", 1, 0, nil
	while true do
		local nl = buf:find("\n", pos, true)
		if nl then
			local line = buf:sub(pos, nl - 1):gsub("\r$", "")
			pos = nl + 1
			if http then
				if line == "" then
					socket.write(id, run(http_command(http)))
					break
				end
			elseif line:match "^GET " then
				http = line
			elseif line:match "^%s*quit%s*$" or line:match "^%s*exit%s*$" then
				break
			elseif line:find "%S" then
				socket.write(id, run(line))
				served = served + 1
				if served % BATCH == 0 then
					skynet.yield()
				end
			end
		else
			buf = buf:sub(pos)
			pos = 1
			if #buf > MAX_LINE then
				socket.write(id, "line longer than " .. MAX_LINE .. " bytes\n<CMD Error>\n")
				break
			end
			local data = socket.read(id)
			if not data then
				if http then -- a request ended by EOF instead of a blank line
					socket.write(id, run(http_command(http)))
				end
				break
			end
			state.last = skynet.now()
			buf = buf .. data
		end
	end
	state.done = true
	socket.close(id)
	skynet.log("debug", "debug console: " .. tostring(from) .. " disconnected")
end

skynet.start(function()
	skyjet.internal()
	local lid, host, port = oplisten("debug console", listen_address)
	if not lid then
		return skynet.exit()
	end
	socket.accept_limit(lid, tonumber(skynet.getenv "console_maxconn"))
	socket.start(lid, function(id, from)
		-- debug, not info: a connection churn must not flood the log (the listener already
		-- summarises refused connections once a second)
		skynet.log("debug", "debug console: connected " .. tostring(from))
		skynet.fork(serve, id, from)
	end)
	skynet.log("info", string.format("debug console listening on %s:%d", host, port))
end)
