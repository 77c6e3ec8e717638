-- The skynet API after its split into a core every service loads and lazy parts (skynet.lua's
-- `parts`): every public function of Skynet's API is reachable as skynet.X from a fresh service,
-- a part loads on the first use of one of its names only, and works when it is the first thing
-- a service touches.
local skynet = require "skynet"
local T = require "testlib"

-- Skynet's public skynet.* functions (the spec's section 2 and skynet.manager's base ones)
local API = {
	"register_protocol", "dispatch", "dispatch_unknown_request", "dispatch_unknown_response",
	"traceproto", "send", "rawsend", "call", "rawcall", "redirect", "tracecall", "ret", "retpack",
	"response", "ignoreret", "context", "sleep", "yield", "wait", "wakeup", "timeout", "fork",
	"killthread", "task", "uniqtask", "trace_timeout", "self", "address", "localname", "harbor",
	"now", "time", "starttime", "hpc", "getenv", "setenv", "newservice", "uniqueservice",
	"queryservice", "exit", "kill", "abort", "term", "start", "init", "init_service",
	"dispatch_message", "pack", "packstring", "unpack", "tostring", "trash", "error", "trace",
	"tracetag", "tracelog", "stat", "mqlen", "memlimit", "endless", "info_func", "genid",
	"request", "coroutine_running", "pcall",
}

local function fresh()
	return skynet.newservice "api_fresh"
end

local function bye(s)
	skynet.kill(s)
end

T.case("an_idle_service_loads_no_lazy_part", function()
	local s = fresh()
	T.eq(skynet.call(s, "lua", "loaded"), "")
	bye(s)
end)

T.case("a_library_opened_on_first_use_needs_no_coroutine_require", function()
	local s = fresh()
	local file, time, coroutine_require = skynet.call(s, "lua", "lib")
	T.eq(file, "file")
	T.eq(time, true)
	T.eq(coroutine_require, false)
	bye(s)
end)

T.case("math_loads_ffi_only_for_maxinteger", function()
	local s = fresh()
	local floor, ffi_loaded, maxtype, minok = skynet.call(s, "lua", "math")
	T.eq(floor, 2)
	T.eq(ffi_loaded, false)
	T.eq(maxtype, "cdata")
	T.eq(minok, true)
	bye(s)
end)

T.case("every_api_function_is_reachable_from_a_fresh_service", function()
	for _, name in ipairs(API) do
		local s = fresh()
		local types = skynet.call(s, "lua", "types", name)
		T.eq(types[1], "function", "skynet." .. name)
		bye(s)
	end
	local s = fresh()
	local types = skynet.call(s, "lua", "types", table.unpack(API))
	for i, name in ipairs(API) do
		T.eq(types[i], "function", "skynet." .. name .. " (all from one service)")
	end
	bye(s)
end)

T.case("a_part_loads_on_first_use_of_one_of_its_names", function()
	local s = fresh()
	local _, loaded = skynet.call(s, "lua", "types", "time")
	T.eq(loaded, "skynet.runtime skynet.internal")
	_, loaded = skynet.call(s, "lua", "types", "response")
	T.eq(loaded, "skynet.extra skynet.runtime skynet.internal")
	_, loaded = skynet.call(s, "lua", "types", "task")
	T.eq(loaded, "skynet.extra skynet.runtime skynet.inspect skynet.internal")
	_, loaded = skynet.call(s, "lua", "types", "request")
	T.eq(loaded, "skynet.extra skynet.runtime skynet.inspect skynet.select skynet.internal")
	bye(s)
end)

T.case("an_unknown_name_is_nil_and_loads_every_part", function()
	local s = fresh()
	local types, loaded = skynet.call(s, "lua", "types", "no_such_function", "rawcall", "stat")
	T.same(types, { "nil", "function", "function" })
	T.eq(loaded, "skynet.extra skynet.runtime skynet.inspect skynet.select skynet.internal")
	bye(s)
end)

T.case("lazy_functions_work_as_the_first_call_of_a_fresh_service", function()
	local s = fresh()
	T.eq(skynet.call(s, "lua", "use", "response"), "late answer")
	bye(s)
	s = fresh()
	T.eq(skynet.call(s, "lua", "use", "yield"), nil)
	bye(s)
	s = fresh()
	local later, harbor = skynet.call(s, "lua", "use", "time")
	T.eq(later, true)
	T.eq(harbor, 0)
	bye(s)
	s = fresh()
	local n, listed, trace, killed, after = skynet.call(s, "lua", "use", "task")
	T.eq(n, 1, "one waiting timeout")
	T.eq(listed, true)
	T.eq(trace, "No session")
	T.eq(killed, true)
	T.eq(after, 0, "killthread cancelled it")
	bye(s)
	s = fresh()
	local prev, mine = skynet.call(s, "lua", "use", "unknown")
	T.eq(prev, "function")
	T.eq(mine, "function")
	bye(s)
	s = fresh()
	T.eq(skynet.call(s, "lua", "use", "request"), 1)
	bye(s)
end)

-- required by the main chunk (the host's require): Lua 5.2+ arguments, the module's path
local main_args = require "api_mod_args"

T.case("require_passes_name_and_path_and_reports_what_was_tried", function()
	T.eq(main_args[1], "api_mod_args")
	T.ok(main_args[2]:find("test/lua/api_mod_args.lua", 1, true), main_args[2])
	T.eq(require "api_mod_args", main_args, "loaded once")
	local err = T.raises(require, "module 'api_no_such_mod' not found:", "api_no_such_mod")
	T.ok(err:find("no file '", 1, true), err)
end)

T.case("require_from_coroutines_waits_for_a_module_that_yields_while_loading", function()
	local got, left, me = {}, 2, coroutine.running()
	for i = 1, 2 do
		skynet.fork(function()
			got[i] = require "api_mod_yield"
			left = left - 1
			if left == 0 then
				skynet.wakeup(me)
			end
		end)
	end
	skynet.wait(me)
	T.ok(got[1] and got[1] == got[2], "both coroutines get the one module")
	T.raises(require, "circular dependency when require 'api_mod_loop'", "api_mod_loop")
end)

skynet.start(function()
	T.run()
end)
