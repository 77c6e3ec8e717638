/* compat: Lua 5.3/5.4 library functions for LuaJIT services (string.pack family, table.move,
 * math.type & co, utf8), under skyjet's int64 policy. */
#ifndef SKYJET_COMPAT_H
#define SKYJET_COMPAT_H

#include <lua.h>

/* Give a fresh state's string table its lazy pack/unpack/packsize and table.move. */
void compat_install(lua_State *L);
/* Openers for the lazy libraries: the math library plus type/tointeger/ult/maxinteger/
 * mininteger, and utf8 (Debian's lua-compat53 module). */
int compat_open_math(lua_State *L);
int compat_open_utf8(lua_State *L);

#endif
