-- luacheck configuration for skyjet's Lua (LuaJIT 2.1 / Lua 5.1).
std = "luajit"
unused = false
globals = { "SERVICE_NAME", "SERVICE_PATH", "LUA_SERVICE", "LUA_PATH", "LUA_CPATH", "LUA_PRELOAD" }
-- every service state gets table.pack/table.unpack (lualib/loader.lua)
read_globals = { table = { fields = { "pack", "unpack" }, other_fields = true } }
files["lualib/loader.lua"] = { globals = { "table" } }
-- this one is broken on purpose (the loader-error test)
exclude_files = { "test/lua/svc_bad_syntax.lua" }
max_line_length = 120
