-- loader: runs first in every Lua service. Splits the launch string into arguments, finds the
-- service file along LUA_SERVICE's patterns (the first file that compiles wins), sets
-- package.path/cpath, SERVICE_NAME and SERVICE_PATH, runs the preload script, installs the
-- coroutine-aware require, then runs the service's main chunk with the remaining arguments.
local args = {}
for word in string.gmatch(..., "%S+") do
	args[#args + 1] = word
end

-- Lua 5.2+ helpers that ported Skynet code expects.
table.unpack = table.unpack or unpack
table.pack = table.pack or function(...)
	return { n = select("#", ...), ... }
end

local core = require "skynet.core"
SERVICE_NAME = args[1]

local main, pattern
local errors = {}
for pat in string.gmatch(LUA_SERVICE, "([^;]+);*") do
	local filename = string.gsub(pat, "?", SERVICE_NAME)
	local f, msg = core.loadfile(filename)
	if f then
		main, pattern = f, pat
		break
	end
	errors[#errors + 1] = msg
end
if not main then
	error(table.concat(errors, "\n"), 0)
end

LUA_SERVICE = nil
package.path, package.cpath = LUA_PATH, LUA_CPATH
LUA_PATH, LUA_CPATH = nil, nil

local service_dir = string.match(pattern, "(.*/)[^/?]+$")
if service_dir then
	-- e.g. ./service/?/main.lua: a multi-file service may require its siblings.
	service_dir = string.gsub(service_dir, "?", args[1])
	package.path = service_dir .. "?.lua;" .. package.path
	SERVICE_PATH = service_dir
else
	SERVICE_PATH = string.match(pattern, "(.*/).+$")
end

if LUA_PRELOAD then
	local f = assert(core.loadfile(LUA_PRELOAD))
	f(unpack(args))
	LUA_PRELOAD = nil
end

-- require from a coroutine is skynet.require's (a module body may yield: call, sleep), loaded on
-- first such use; the main chunk's and a loaded module's need no Lua code (the host's require).
local host_require, loaded, running = require, package.loaded, coroutine.running
_G.require = function(name)
	local m = loaded[name]
	if m ~= nil then
		return m
	elseif running() == nil then
		return host_require(name)
	end
	return host_require("skynet.require").require(name)
end

main(select(2, unpack(args)))
