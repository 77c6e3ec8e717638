-- skynet.snax: Skynet's snax services. A snax service is a file of accept.* (no answer) and
-- response.* (answered) methods plus init/exit/hotfix, run by the snaxd service. A handle is
-- bound to an object with .post.<method>(...) (send) and .req.<method>(...) (call); methods
-- travel as protocol "snax" (PTYPE_SNAX) with their numeric id first (see snax.interface).
local skynet = require "skynet"
local interface = require "snax.interface"

local snax = {}
local types = {} -- service name -> { name, accept = {name -> id}, response = ..., system = ... }
local bound = setmetatable({}, { __mode = "kv" }) -- handle -> bound object

skynet.register_protocol {
	name = "snax",
	id = skynet.PTYPE_SNAX,
	pack = skynet.pack,
	unpack = skynet.unpack,
}

-- clients load the file only for its method names: its requires do nothing here
local client_env = {
	require = function() end,
}

function snax.interface(name)
	local t = types[name]
	if t then
		return t
	end
	t = { name = name, accept = {}, response = {}, system = {} }
	for _, m in ipairs(interface(name, client_env)) do
		t[m[2]][m[3]] = m[1]
	end
	types[name] = t
	return t
end

local function methods(t, group, what, handle, invoke)
	return setmetatable({}, {
		__index = function(cache, method)
			local id = t[group][method]
			if not id then
				error(string.format("%s %s:%s no exist", what, t.name, method), 2)
			end
			local f = invoke(handle, id)
			cache[method] = f
			return f
		end,
	})
end

local function post(handle, id)
	return function(...)
		skynet.send(handle, "snax", id, ...)
	end
end

local function request(handle, id)
	return function(...)
		return skynet.call(handle, "snax", id, ...)
	end
end

local object_meta = {
	__tostring = function(self)
		return string.format("[%s:%x]", self.type, self.handle)
	end,
}

function snax.bind(handle, name)
	local obj = bound[handle]
	if obj then
		assert(obj.type == name, "snax.bind: the handle is bound to another type")
		return obj
	end
	local t = snax.interface(name)
	obj = setmetatable({
		type = name,
		handle = handle,
		post = methods(t, "accept", "post", handle, post),
		req = methods(t, "response", "request", handle, request),
	}, object_meta)
	bound[handle] = obj
	return obj
end

-- Start a snax service and run its init(...); returns the handle.
function snax.rawnewservice(name, ...)
	local t = snax.interface(name)
	local handle = skynet.newservice("snaxd", name)
	skynet.call(handle, "snax", t.system.init, ...)
	return handle
end

function snax.newservice(name, ...)
	return snax.bind(snax.rawnewservice(name, ...), name)
end

local function unique(cmd, name, ...)
	return snax.bind(assert(skynet.call(".service", "lua", cmd, "snaxd", name, ...)), name)
end

function snax.uniqueservice(name, ...)
	return unique("LAUNCH", name, ...)
end

function snax.globalservice(name, ...)
	return unique("GLAUNCH", name, ...)
end

function snax.queryservice(name)
	return unique("QUERY", name)
end

function snax.queryglobal(name)
	return unique("GQUERY", name)
end

-- call system method `method` (exit, hotfix, profile) of the service behind obj
local function system_call(obj, method, ...)
	return skynet.call(obj.handle, "snax", snax.interface(obj.type).system[method], ...)
end

-- Run the service's exit(...) and stop it.
function snax.kill(obj, ...)
	system_call(obj, "exit", ...)
end

-- The object of the running snax service; snax.exit(...) stops it like snax.kill.
function snax.self()
	return snax.bind(skynet.self(), SERVICE_NAME)
end

function snax.exit(...)
	return snax.kill(snax.self(), ...)
end

local function raise_unless(ok, ...)
	if ok then
		return ...
	end
	error((...), 0)
end

-- Replace methods of a running service with those of `source`; returns what the patch's
-- hotfix(...) returns.
function snax.hotfix(obj, source, ...)
	return raise_unless(system_call(obj, "hotfix", source, ...))
end

-- { method name -> { count, time } } of the service behind obj
function snax.profile_info(obj)
	return system_call(obj, "profile")
end

function snax.printf(fmt, ...)
	return skynet.error(fmt:format(...))
end

return snax
