-- api_fresh: a service whose state is fresh when t_api first asks it something: it reports
-- which lazy parts of skynet.lua it has loaded and what a name of the skynet table is, so
-- the test sees each part load on first use from a service that has touched nothing yet.
local skynet = require "skynet"

local PARTS = { "skynet.extra", "skynet.runtime", "skynet.inspect", "skynet.select", "skynet.internal",
	"skynet.require" }

local function loaded()
	local t = {}
	for _, name in ipairs(PARTS) do
		if package.loaded[name] then
			t[#t + 1] = name
		end
	end
	return table.concat(t, " ")
end

local cmds = {}

-- the lazy parts loaded so far
cmds.loaded = loaded

-- a standard library opened on first use from a coroutine (this handler's), and whether that
-- loaded the coroutine require (skynet.require) with it
function cmds.lib()
	return io.type(io.stdout), os.time() > 0, package.loaded["skynet.require"] ~= nil
end

-- math opened on first use: whether that loaded ffi, then math.maxinteger's type (it does)
function cmds.math()
	local floor = math.floor(2.5)
	local ffi_loaded = package.loaded.ffi ~= nil
	return floor, ffi_loaded, type(math.maxinteger), math.mininteger == -2 ^ 63
end

-- type(skynet[name]) for each name, then the lazy parts loaded
function cmds.types(...)
	local t = {}
	for i = 1, select("#", ...) do
		t[i] = type(skynet[select(i, ...)])
	end
	return t, loaded()
end

-- the first API call a fresh service makes, by name (each touches one lazy part first)
function cmds.use(what)
	if what == "response" then
		local r = skynet.response()
		assert(r("TEST"), "the answer is owed")
		r(true, "late answer")
		assert(not r("TEST"), "the answer is no longer owed")
		return
	elseif what == "yield" then
		return skynet.yield()
	elseif what == "time" then
		return skynet.time() >= skynet.starttime(), skynet.harbor(skynet.self())
	elseif what == "task" then
		skynet.trace_timeout(true)
		local co = skynet.timeout(1000, function() end)
		local t = {}
		skynet.task(t)
		local trace = skynet.task(1) -- no such session
		return skynet.task(), next(t) ~= nil, trace, skynet.killthread(co) == co, skynet.task()
	elseif what == "unknown" then
		local prev = skynet.dispatch_unknown_request(function() end)
		return type(prev), type(skynet.dispatch_unknown_request(prev))
	elseif what == "request" then
		local n = 0
		for _, ok in skynet.request { skynet.self(), "lua", "loaded" }:select() do
			n = n + (ok and 1 or 0)
		end
		return n
	end
	error("no use " .. tostring(what))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "use" and ... == "response" then
			return cmds.use(...) -- answers through the response closure
		end
		skynet.retpack(cmds[cmd](...))
	end)
end)
