/* fuzz_seri: libFuzzer harness for daemon/lua/seri.c. Every input goes to seri_check (with and
 * without light userdata) and to seri_unpack inside lua_pcall; they must agree, with the same
 * error text. Whatever decodes must pack again (depth errors aside) into a stream seri_check
 * accepts. One lua_State is reused; its stack is reset for each input.
 *   test/fuzz/seed_seri.sh /tmp/seri-corpus && /tmp/fuzz_seri /tmp/seri-corpus */
#include "seri.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static void disagree(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_seri: %s: %s\n", what, detail);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned runs;
    char e1[256], e0[256];
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    int c1 = seri_check(data, size, 1, e1, sizeof e1);
    int c0 = seri_check(data, size, 0, e0, sizeof e0);
    if (c0 == 0 && c1 != 0)
        disagree("accepted only without pointers", e1);
    if (c0 != 0 && c1 == 0 && !strstr(e0, "light userdata"))
        disagree("rejected without pointers for another reason", e0);

    lua_settop(L, 0);
    lua_pushcfunction(L, seri_unpack);
    lua_pushlightuserdata(L, (void *)data);
    lua_pushinteger(L, (lua_Integer)size);
    int rc = lua_pcall(L, 2, LUA_MULTRET, 0);
    if (rc != 0 && c1 == 0)
        disagree("seri_check accepts, unpack raises", lua_tostring(L, -1));
    if (rc == 0 && c1 != 0)
        disagree("unpack decodes, seri_check rejects", e1);
    if (rc != 0 && strcmp(lua_tostring(L, -1), e1) != 0)
        disagree("different reasons", lua_tostring(L, -1));

    if (rc == 0) { /* decoded values pack again */
        int n = lua_gettop(L);
        lua_pushcfunction(L, seri_packstring);
        lua_insert(L, 1);
        if (lua_pcall(L, n, 1, 0) != 0) {
            if (strcmp(lua_tostring(L, -1), "serialize can't pack too depth table") != 0)
                disagree("decoded values do not pack", lua_tostring(L, -1));
            lua_gc(L, LUA_GCCOLLECT, 0); /* a failed pack's block may wait for the GC */
        } else {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (seri_check(s, len, 1, e1, sizeof e1) != 0)
                disagree("re-packed values fail seri_check", e1);
        }
    }
    lua_settop(L, 0);
    if (++runs % 8192 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
