/* fuzz_bson: libFuzzer harness for daemon/lua/bson.c. Every input goes to bson.decode inside
 * lua_pcall: it must return a table or raise a Lua error (ASan/UBSan catch any bad read). A
 * decoded table encodes again into a document that decodes, unless encoding raises "Too depth"
 * or "Invalid ..." (a BSON string whose first byte is 0 reads back in the "\0<type>" form
 * Skynet uses for special values: the same ambiguity as Skynet's module).
 *   test/fuzz/seed_bson.sh /tmp/bson-corpus && /tmp/fuzz_bson /tmp/bson-corpus */
#include "bson.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_bson: %s: %s\n", what, detail ? detail : "?");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_pushcfunction(L, luaopen_bson);
        lua_call(L, 0, 1);
        lua_setglobal(L, "bson");
    }
    lua_settop(L, 0);
    lua_getglobal(L, "bson");
    lua_getfield(L, 1, "decode");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        if (!lua_isstring(L, -1))
            fail("decode raised a non-string error", NULL);
    } else {
        if (!lua_istable(L, -1))
            fail("decode returned no table", lua_typename(L, lua_type(L, -1)));
        lua_getfield(L, 1, "encode");
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            const char *e = lua_tostring(L, -1);
            if (!strstr(e, "Too depth") && !strstr(e, "Invalid"))
                fail("decoded table does not encode", e);
        } else {
            lua_getfield(L, 1, "decode");
            lua_insert(L, -2);
            if (lua_pcall(L, 1, 1, 0) != 0)
                fail("re-encoded document does not decode", lua_tostring(L, -1));
        }
    }
    /* an encode that raised leaves its buffer to the GC: collect now, so LeakSanitizer's check
     * after each input finds it freed (the state is small, a full cycle is cheap) */
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
