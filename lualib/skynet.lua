-- skynet: the Lua service API (Skynet's), on skyjet's C core ("skynet.core").
-- One dispatcher per service receives every message; requests run in pooled coroutines, and a
-- coroutine that calls/sleeps/waits yields back to the dispatcher with "SUSPEND" until the
-- matching RESPONSE (or ERROR) arrives by session. Differences from Skynet, all in the
-- direction of never leaving a caller hanging: a handler that returns without answering, a
-- request that cannot be decoded and a service killed mid-request all answer ERROR.
local c = require "skynet.core"

local assert, error, pairs, ipairs, select, tostring, type = assert, error, pairs, ipairs, select,
	tostring, type
local pcall, xpcall, setmetatable, unpack = pcall, xpcall, setmetatable, unpack
-- `debug` and `math` are opened on first use (see daemon/lua/host.c): don't touch them here
local function traceback(...)
	return debug.traceback(...)
end
local format, tinsert, tremove, concat = string.format, table.insert, table.remove, table.concat
local coroutine_create, coroutine_yield, coroutine_running = coroutine.create, coroutine.yield,
	coroutine.running
-- every resume of a service coroutine goes through this upvalue; skynet.profile wraps it
local coroutine_resume = coroutine.resume

local c_send, c_tostring, c_trash = c.send, c.tostring, c.trash

local skynet = {
	PTYPE_TEXT = 0,
	PTYPE_RESPONSE = 1,
	PTYPE_MULTICAST = 2,
	PTYPE_CLIENT = 3,
	PTYPE_SYSTEM = 4,
	PTYPE_HARBOR = 5,
	PTYPE_SOCKET = 6,
	PTYPE_ERROR = 7,
	PTYPE_QUEUE = 8,
	PTYPE_DEBUG = 9,
	PTYPE_LUA = 10,
	PTYPE_SNAX = 11,
	PTYPE_TRACE = 12,
}
local PTYPE_RESPONSE, PTYPE_ERROR, PTYPE_TRACE = skynet.PTYPE_RESPONSE, skynet.PTYPE_ERROR,
	skynet.PTYPE_TRACE

local self_handle = c.self()

-- protocols ------------------------------------------------------------------------------
local proto = {}
skynet.proto = proto

function skynet.register_protocol(class)
	local name, id = class.name, class.id
	assert(type(name) == "string" and type(id) == "number" and id >= 0 and id <= 255)
	assert(proto[name] == nil and proto[id] == nil)
	proto[name] = class
	proto[id] = class
end

-- coroutine and session state ------------------------------------------------------------
local running_thread -- the coroutine being resumed by the dispatcher (nil in the main chunk)
local init_thread
local waiting_co = {} -- session -> waiting coroutine, or "BREAK" (late reply dropped)
local owed_session = {} -- coroutine -> request session it must answer (0 = a send)
local owed_to = {} -- coroutine -> requester
local trace_tag_of = {}
local open_responses = {} -- response closure -> requester, while the answer is owed
local callee_of = {} -- session of our pending call -> callee
local call_error = {} -- session -> error text that failed it
local sleep_session = {} -- token -> session
local sleep_timer = {} -- session -> timer id (cancelled on wakeup)
local wakeup_queue = {}
local error_queue = {}
local fork_queue = { h = 1, t = 0 }
local trace_source = {} -- source -> trace tag sent ahead of its next request
-- Under skynet.forward_type with RESPONSE forwarded, the runtime does not free replies (rawcall
-- callers hand them on); skynet.call decodes its reply, so it frees it itself.
local responses_forwarded = false
local exited = false
local dispatch_start = 0

local session_counter = 0
local function new_session()
	local s = session_counter
	repeat
		s = s + 1
		if s > 0x7fffffff then
			s = 1
		end
	until waiting_co[s] == nil
	session_counter = s
	return s
end

local coroutine_pool = setmetatable({}, { __mode = "kv" })

local function forgot_response(co, f)
	local session = owed_session[co]
	if session and session ~= 0 then
		local address = owed_to[co]
		local info = debug.getinfo(f, "S")
		c.error(format("Maybe forgot response session %s from %s : %s:%d", session,
			skynet.address(address), info.short_src, info.linedefined))
		c_send(address, PTYPE_ERROR, session, "the handler returned without answering")
	end
end

-- Pooled coroutines: a coroutine runs its function, cleans up, parks itself in the pool and
-- yields "EXIT"; the next co_create takes it from the pool and sets its next function in
-- co_func, so starting it is a single resume with the arguments.
local co_func = setmetatable({}, { __mode = "k" })

local co_body
function co_body(...)
	local me = coroutine_running()
	local f = co_func[me]
	f(...)
	forgot_response(me, f)
	owed_session[me] = nil
	owed_to[me] = nil
	trace_tag_of[me] = nil
	co_func[me] = nil
	coroutine_pool[#coroutine_pool + 1] = me
	return co_body(coroutine_yield "EXIT") -- a tail call: the stack does not grow
end

local function co_create(f)
	local co = tremove(coroutine_pool) or coroutine_create(co_body)
	co_func[co] = f
	return co
end

local function trace_log(tag, event)
	c.error(format("<TRACE %s> %.0f %s", tag, c.hpc(), event))
end

local suspend

local function dispatch_wakeup()
	while true do
		local token = tremove(wakeup_queue, 1)
		if token == nil then
			return
		end
		local session = sleep_session[token]
		if session then
			local co = waiting_co[session]
			local timer = sleep_timer[session]
			sleep_timer[session] = nil
			if timer and timer ~= 0 and c.canceltimer(timer) then
				waiting_co[session] = nil
			else
				waiting_co[session] = "BREAK"
			end
			if type(co) == "thread" then
				running_thread = co
				suspend(co, coroutine_resume(co, false, "BREAK", nil, session))
			end
		end
	end
end

local function dispatch_error_queue()
	while true do
		local session = tremove(error_queue, 1)
		if session == nil then
			return
		end
		local co = waiting_co[session]
		waiting_co[session] = nil
		if type(co) == "thread" then
			running_thread = co
			suspend(co, coroutine_resume(co, false, call_error[session], nil, session))
		end
		call_error[session] = nil
	end
end

-- After a coroutine stops: report its error, answer its request if it failed, then run what
-- its stop made ready (wakeups first, then calls failed by ERROR messages).
function suspend(co, result, command)
	if not result then
		local session = owed_session[co]
		if session then
			local addr = owed_to[co]
			if session ~= 0 then
				c_send(addr, PTYPE_ERROR, session, tostring(command))
			end
			owed_session[co] = nil
		end
		owed_to[co] = nil
		trace_tag_of[co] = nil
		error(traceback(co, tostring(command)), 0)
	end
	if command == "SUSPEND" or command == "EXIT" or command == "QUIT" then
		dispatch_wakeup()
		dispatch_error_queue()
	elseif command == "USER" then
		error("Call skynet.coroutine.yield out of skynet.coroutine.resume\n" .. traceback(co))
	elseif command ~= nil then
		error("Unknown command : " .. tostring(command) .. "\n" .. traceback(co))
	end
end

-- timers, sleep, wait, wakeup, fork --------------------------------------------------------
local function suspend_sleep(session, token)
	local co = running_thread
	local tag = trace_tag_of[co]
	if tag then
		trace_log(tag, "sleep")
	end
	waiting_co[session] = co
	sleep_session[token] = session
	return coroutine_yield "SUSPEND"
end

local function check_ticks(ti)
	if type(ti) ~= "number" then
		error("bad argument #1 (number expected, got " .. type(ti) .. ")", 3)
	end
	if ti % 1 ~= 0 then
		error("number has no integer representation", 3)
	end
end

function skynet.sleep(ti, token)
	check_ticks(ti)
	token = token or coroutine_running()
	if sleep_session[token] then
		error("token duplicative", 2)
	end
	local session = new_session()
	sleep_timer[session] = c.timeout(ti, session)
	local woke, why = suspend_sleep(session, token)
	sleep_session[token] = nil
	sleep_timer[session] = nil
	-- a normal wake-up returns nothing; skynet.wakeup ends the sleep early with "BREAK"
	if not woke then
		if why ~= "BREAK" then
			error(why)
		end
		return why
	end
end

function skynet.wait(token)
	local session = new_session()
	token = token or coroutine_running()
	if sleep_session[token] then
		error("token duplicative", 2)
	end
	suspend_sleep(session, token)
	sleep_session[token] = nil
	waiting_co[session] = nil
end

function skynet.wakeup(token)
	if sleep_session[token] then
		tinsert(wakeup_queue, token)
		return true
	end
end

local timeout_origin -- coroutine -> where its timeout was set, while skynet.trace_timeout(true)

function skynet.timeout(ti, func)
	check_ticks(ti)
	local session = new_session()
	c.timeout(ti, session)
	local co
	if timeout_origin then
		local origin = timeout_origin
		co = co_create(function()
			origin[coroutine_running()] = nil
			func()
		end)
		origin[co] = format("TIMER %d+%d : ", c.now(), ti) .. traceback("", 2)
	else
		co = co_create(function()
			func()
		end)
	end
	waiting_co[session] = co
	return co
end

-- func itself when there is nothing to bind, else a closure that calls it with the arguments
local function with_args(func, ...)
	local argc = select("#", ...)
	if argc == 0 then
		return func
	end
	local argv = { ... }
	return function()
		func(unpack(argv, 1, argc))
	end
end

function skynet.fork(func, ...)
	local co = co_create(with_args(func, ...))
	local tail = fork_queue.t + 1
	fork_queue[tail], fork_queue.t = co, tail
	return co
end

-- calls and sends -------------------------------------------------------------------------
local function yield_call(service, session)
	callee_of[session] = service
	waiting_co[session] = running_thread
	local succ, msg, sz = coroutine_yield "SUSPEND"
	callee_of[session] = nil
	if not succ then
		if msg and msg ~= "" then
			error("call failed: " .. msg)
		end
		error("call failed")
	end
	return msg, sz
end

local function send_trace(addr)
	local tag = trace_tag_of[running_thread]
	if tag then
		trace_log(tag, "call")
		c_send(addr, PTYPE_TRACE, 0, tag)
	end
end


local function free_then(msg, sz, ...)
	c_trash(msg, sz)
	return ...
end

local function unpack_and_free(p, msg, sz)
	return free_then(msg, sz, p.unpack(msg, sz))
end

function skynet.call(addr, typename, ...)
	local p = proto[typename]
	if trace_tag_of[running_thread] then
		send_trace(addr)
	end
	local session = new_session()
	local r = c_send(addr, p.id, session, p.pack(...))
	if r == nil then
		error("call to invalid address " .. skynet.address(addr))
	elseif r == false then
		error("call failed: message too large")
	end
	if responses_forwarded then
		return unpack_and_free(p, yield_call(addr, session))
	end
	return p.unpack(yield_call(addr, session))
end

function skynet.send(addr, typename, ...)
	local p = proto[typename]
	return c_send(addr, p.id, 0, p.pack(...))
end




-- answering ---------------------------------------------------------------------------------
function skynet.ret(msg, sz)
	msg = msg or ""
	local co = running_thread
	local session = owed_session[co]
	if session == nil then
		if sz ~= nil then
			c_trash(msg, sz)
		end
		error "No session"
	end
	owed_session[co] = nil
	if session == 0 then
		if sz ~= nil then
			c_trash(msg, sz)
		end
		return false
	end
	local address = owed_to[co]
	local tag = trace_tag_of[co]
	if tag then
		trace_log(tag, "response")
	end
	local r = c_send(address, PTYPE_RESPONSE, session, msg, sz)
	if r then
		return true
	elseif r == false then
		c_send(address, PTYPE_ERROR, session, "reply too large")
	end
	return false
end

function skynet.retpack(...)
	return skynet.ret(skynet.pack(...))
end



-- dispatch -----------------------------------------------------------------------------------
local function unknown_request(session, address, msg, sz, prototype)
	c.error(format("Unknown request (%s): %s", prototype, c_tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

local function unknown_response(session, address, msg, sz)
	c.error(format("Response message : %s", c_tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

-- A callee went away (ERROR with session 0): fail our calls pending on it and drop the answers
-- we owed it.
local function callee_gone(address)
	for resp, addr in pairs(open_responses) do
		if addr == address then
			open_responses[resp] = nil
		end
	end
	for session, srv in pairs(callee_of) do
		if srv == address then
			call_error[session] = "service " .. skynet.address(address) .. " is gone"
			tinsert(error_queue, session)
		end
	end
end

local function start_request(p, session, source, ok, ...)
	if not ok then
		if session ~= 0 then
			c_send(source, PTYPE_ERROR, session, "cannot decode the request: " .. tostring((...)))
		end
		error(tostring((...)), 0)
	end
	local co = co_create(p.dispatch)
	owed_session[co] = session
	owed_to[co] = source
	local traceflag = p.trace
	if traceflag == false then
		trace_source[source] = nil
	else
		local tag = trace_source[source]
		if tag then
			trace_source[source] = nil
			trace_log(tag, "request")
			trace_tag_of[co] = tag
		elseif traceflag then
			running_thread = co
			skynet.trace()
		end
	end
	running_thread = co
	return suspend(co, coroutine_resume(co, session, source, ...))
end

local function raw_dispatch_message(prototype, msg, sz, session, source)
	if prototype == PTYPE_RESPONSE then
		local co = waiting_co[session]
		if co == "BREAK" then
			waiting_co[session] = nil
		elseif co == nil then
			unknown_response(session, source, msg, sz)
		else
			local tag = trace_tag_of[co]
			if tag then
				trace_log(tag, "resume")
			end
			waiting_co[session] = nil
			running_thread = co
			suspend(co, coroutine_resume(co, true, msg, sz, session))
		end
	elseif prototype == PTYPE_ERROR then
		if session == 0 then
			callee_gone(source)
		elseif callee_of[session] then
			call_error[session] = sz and sz > 0 and c_tostring(msg, sz) or false
			tinsert(error_queue, session)
		elseif waiting_co[session] == "BREAK" then
			waiting_co[session] = nil
		end
		dispatch_error_queue()
	else
		local p = proto[prototype]
		if p == nil then
			if prototype == PTYPE_TRACE then
				trace_source[source] = c_tostring(msg, sz)
			elseif session ~= 0 then
				c_send(source, PTYPE_ERROR, session, "no protocol " .. prototype .. " in "
					.. skynet.address(self_handle))
			else
				unknown_request(session, source, msg, sz, prototype)
			end
			return
		end
		if p.dispatch then
			return start_request(p, session, source, pcall(p.unpack, msg, sz))
		end
		trace_source[source] = nil
		if session ~= 0 then
			c_send(source, PTYPE_ERROR, session, "no dispatch for protocol " .. p.name)
		else
			unknown_request(session, source, msg, sz, p.name)
		end
	end
end

function skynet.dispatch_message(...)
	dispatch_start = c.hpc()
	local succ, err = pcall(raw_dispatch_message, ...)
	while fork_queue.h <= fork_queue.t do
		local h = fork_queue.h
		local co = fork_queue[h]
		fork_queue[h] = nil
		fork_queue.h = h + 1
		running_thread = co
		local ok, ferr = pcall(suspend, co, coroutine_resume(co))
		if not ok then
			if succ then
				succ, err = false, tostring(ferr)
			else
				err = tostring(err) .. "\n" .. tostring(ferr)
			end
		end
	end
	running_thread = nil
	if not succ then
		error(tostring(err), 0)
	end
end

function skynet.dispatch(typename, func)
	local p = proto[typename]
	if func then
		local prev = p.dispatch
		p.dispatch = func
		return prev
	end
	return p and p.dispatch
end

-- coroutines ----------------------------------------------------------------------------------

-- identity, time, env ----------------------------------------------------------------------------
function skynet.self()
	return self_handle
end

function skynet.address(addr)
	if type(addr) == "number" then
		return format(":%08x", addr)
	end
	return tostring(addr)
end



skynet.now = c.now
skynet.hpc = c.hpc



skynet.getenv = c.getenv


-- serialisation, memory ------------------------------------------------------------------------
skynet.pack = c.pack
skynet.packstring = c.packstring
skynet.unpack = c.unpack
skynet.tostring = c_tostring
skynet.trash = c_trash

local function to_text(...)
	local n = select("#", ...)
	if n <= 1 then
		return tostring((...))
	end
	local t = { ... }
	for i = 1, n do
		t[i] = tostring(t[i])
	end
	return concat(t, " ", 1, n)
end

function skynet.error(...)
	c.error(to_text(...))
end









-- tracing ---------------------------------------------------------------------------------------







-- Answer everything still owed and tell our callees we are gone. Used by exit and, through the
-- registry hook, when the service is killed from outside.
local function settle_before_exit(reason)
	for co, session in pairs(owed_session) do
		local address = owed_to[co]
		if session ~= 0 and address then
			c_send(address, PTYPE_ERROR, session, reason)
		end
	end
	for co in pairs(owed_session) do
		owed_session[co] = nil
	end
	for resp in pairs(open_responses) do
		resp(false)
	end
	local callees = {}
	for _, address in pairs(callee_of) do
		callees[address] = true
	end
	for address in pairs(callees) do
		c_send(address, PTYPE_ERROR, 0, "")
	end
end

c.onrelease(function()
	if not exited then
		exited = true
		settle_before_exit("service " .. skynet.address(self_handle) .. " was killed")
	end
end)

function skynet.exit()
	for i = fork_queue.h, fork_queue.t do
		fork_queue[i] = nil
	end
	fork_queue.h, fork_queue.t = 1, 0
	exited = true
	c_send(".launcher", skynet.PTYPE_LUA, 0, skynet.pack("REMOVE", self_handle, false))
	settle_before_exit("service " .. skynet.address(self_handle) .. " exited")
	c.callback(function(prototype, _, _, session, source)
		if session ~= 0 and source ~= 0 and prototype ~= PTYPE_RESPONSE and prototype ~= PTYPE_ERROR then
			c_send(source, PTYPE_ERROR, session, "service exited")
		end
	end)
	c.error("KILL self")
	c.exit()
	coroutine_yield "QUIT"
end



-- start-up ---------------------------------------------------------------------------------------
local init_funcs = {}

function skynet.init(f)
	assert(type(f) == "function")
	if init_funcs then
		init_funcs[#init_funcs + 1] = f
		return
	end
	-- while a coroutine loads a module, skynet.require (loaded by then) runs f after its body
	local require_mod = package.loaded["skynet.require"]
	if not (require_mod and require_mod.init_hook(f)) then
		f()
	end
end

local function run_init()
	while init_funcs and #init_funcs > 0 do
		local funcs = init_funcs
		init_funcs = {}
		for _, f in ipairs(funcs) do
			f()
		end
	end
	init_funcs = nil
end

function skynet.init_service(start)
	local ok, err = xpcall(function()
		run_init()
		init_funcs = {}
		start()
		run_init()
	end, traceback)
	if not ok then
		c.log("error", "init service failed: " .. tostring(err))
		skynet.send(".launcher", "lua", "ERROR", tostring(err))
		skynet.exit()
	else
		-- An idle service keeps what it holds now: drop the garbage of loading and starting
		-- (about 14 KiB; the incremental collector would keep it until the heap doubles).
		collectgarbage "collect"
		skynet.send(".launcher", "lua", "LAUNCHOK")
	end
end

-- The start function runs from a timer at the next tick, after the dispatcher is installed;
-- init_thread names its coroutine while it runs (read by the internals view below).
function skynet.start(start_func)
	local function run_start()
		skynet.init_service(start_func)
		init_thread = nil
	end
	c.callback(skynet.dispatch_message)
	init_thread = skynet.timeout(0, run_start)
end



skynet.pcall = pcall

-- The session state above has one owner: this file. The rarely used parts of the API load on
-- first use (every service holds its own copy of the code it loads, so what an idle service
-- never calls is not loaded) and reach that state only through `I`: the state tables and the
-- accessors below, completed by skynet/internal.lua on the first access to such a name.
local function interface()
	local S = {
		self = self_handle,
		traceback = traceback,
		to_text = to_text,
		trace_log = trace_log,
		new_session = new_session,
		yield_call = yield_call,
		send_trace = send_trace,
		gone = callee_gone,
		dispatch_error_queue = dispatch_error_queue,
		c_send = c_send,
		canceltimer = c.canceltimer,
		PTYPE_ERROR = PTYPE_ERROR,
		waiting_co = waiting_co,
		owed_session = owed_session,
		owed_to = owed_to,
		trace_tag_of = trace_tag_of,
		open_responses = open_responses,
		callee_of = callee_of,
		sleep_session = sleep_session,
		sleep_timer = sleep_timer,
		fork_queue = fork_queue,
	}

	-- the coroutine being run, the start coroutine (while it runs), when this message began
	function S.now()
		return running_thread, init_thread, dispatch_start
	end

	-- The value of one of the settings the lazy parts change; with `set`, replaced by v first.
	-- Returns the value it had.
	function S.var(name, set, v)
		local old
		if name == "timeout_origin" then
			old = timeout_origin
			if set then
				timeout_origin = v
			end
		elseif name == "unknown_request" then
			old = unknown_request
			if set then
				unknown_request = v
			end
		elseif name == "unknown_response" then
			old = unknown_response
			if set then
				unknown_response = v
			end
		elseif name == "responses_forwarded" then
			old = responses_forwarded
			if set then
				responses_forwarded = v
			end
		elseif name == "coroutine_resume" then
			old = coroutine_resume
			if set then
				coroutine_resume = v
			end
		else
			error("no setting " .. tostring(name))
		end
		return old
	end

	return c.require "skynet.internal"(S)
end

-- The lazy parts, each a module returning function(skynet, I) that defines the names listed
-- (one string each: a table of names would cost every service a hash slot per name). A name
-- that no part lists loads every part not loaded yet, then is looked up.
local parts = {
	{
		"skynet.extra",
		" response rawcall rawsend redirect genid context ignoreret tracecall yield term"
			.. " _forward_responses ",
	},
	{
		"skynet.runtime",
		" newservice uniqueservice queryservice kill abort localname harbor setenv memlimit"
			.. " starttime time log ",
	},
	{
		"skynet.inspect",
		" killthread task uniqtask trace tracetag tracelog traceproto trace_timeout stat mqlen"
			.. " endless info_func coroutine_running dispatch_unknown_request"
			.. " dispatch_unknown_response _wrap_resume ",
	},
	{ "skynet.select", " request " },
}

local I
local function load_part(t, i)
	local part = parts[i]
	if part then
		parts[i] = false
		I = I or interface()
		c.require(part[1])(t, I) -- loading a part never yields: the host's require
	end
end

setmetatable(skynet, {
	__index = function(t, k)
		local key = " " .. tostring(k) .. " "
		for i = 1, #parts do
			local part = parts[i]
			if part and string.find(part[2], key, 1, true) then
				load_part(t, i)
				return rawget(t, k)
			end
		end
		for i = 1, #parts do
			if rawget(t, k) ~= nil then
				break
			end
			load_part(t, i)
		end
		return rawget(t, k)
	end,
})

-- built-in protocols --------------------------------------------------------------------------------
skynet.register_protocol {
	name = "lua",
	id = skynet.PTYPE_LUA,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

skynet.register_protocol {
	name = "response",
	id = skynet.PTYPE_RESPONSE,
}

skynet.register_protocol {
	name = "error",
	id = skynet.PTYPE_ERROR,
	unpack = function(...)
		return ...
	end,
}

-- The debug protocol's commands load on its first message (lualib/skynet/debug.lua).
skynet.register_protocol {
	name = "debug",
	id = skynet.PTYPE_DEBUG,
	pack = skynet.pack,
	unpack = skynet.unpack,
	dispatch = function(...)
		local p = proto.debug
		p.dispatch = require("skynet.debug").dispatch
		return p.dispatch(...)
	end,
}

package.loaded.skynet = skynet

return skynet
