-- luacheck configuration for skyjet's Lua (LuaJIT 2.1 / Lua 5.1).
std = "luajit"
-- unused variables, values and arguments are all checked: a handler that ignores some of Skynet's
-- arguments (session, source, ...) names them `_`.
globals = { "SERVICE_NAME", "SERVICE_PATH", "LUA_SERVICE", "LUA_PATH", "LUA_CPATH", "LUA_PRELOAD" }
-- every service state gets table.pack/table.unpack (lualib/loader.lua) and the Lua 5.3/5.4
-- library functions of daemon/lua/compat.c
read_globals = {
	table = { fields = { "pack", "unpack", "move" }, other_fields = true },
	string = { fields = { "pack", "unpack", "packsize" }, other_fields = true },
	math = { fields = { "type", "tointeger", "ult", "maxinteger", "mininteger" }, other_fields = true },
	"utf8",
}
files["lualib/loader.lua"] = { globals = { "table" } }
-- this one is broken on purpose (the loader-error test)
exclude_files = { "test/lua/svc_bad_syntax.lua" }
max_line_length = 120
-- snax service files define init/exit/hotfix and accept.*/response.* as globals (skynet.snax)
files["test/lua/snax_counter.lua"] = { globals = { "init", "exit", "hotfix", "accept", "response" } }
