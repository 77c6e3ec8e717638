/* fuzz_netpack: libFuzzer harness for daemon/lua/netpack.c. The input is a script of socket
 * events for netpack.filter: each step is a control byte (low 2 bits: the connection; bit 2:
 * a CLOSE event instead of data; the rest: a chunk length) and the chunk's bytes as a DATA event.
 * Every frame filter or pop hands out goes back through netpack.tostring (which frees it), and
 * the bytes of all frames of a connection, with their 2-byte headers, must be a prefix of what
 * that connection sent since its last close. At the end the queue is cleared (LeakSanitizer
 * checks that every partial frame was freed). */
#include "netpack.h"
#include "reactor.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

struct conn {
    uint8_t sent[1 << 16], got[1 << 16];
    size_t nsent, ngot;
};
static struct conn conns[4];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_netpack: %s\n", what);
    abort();
}

/* Take the frame (fd, lightuserdata, size) at stack top-2..top and account for it. */
static void take_frame(int base)
{
    int fd = (int)lua_tointeger(L, base);
    size_t sz = (size_t)lua_tointeger(L, base + 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "np_tostring");
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base + 2);
    lua_call(L, 2, 1);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    struct conn *c = &conns[fd & 3];
    if (n != sz || c->ngot + 2 + n > sizeof c->got)
        fail("frame size");
    c->got[c->ngot++] = (uint8_t)(n >> 8);
    c->got[c->ngot++] = (uint8_t)n;
    memcpy(c->got + c->ngot, s, n);
    c->ngot += n;
    if (c->ngot > c->nsent || memcmp(c->got, c->sent, c->ngot) != 0)
        fail("frames are not what was sent");
    lua_settop(L, base - 1);
}

static void event(int type, int fd, const uint8_t *data, size_t size)
{
    struct reactor_event ev = {type, fd, 0, (int)size, (char *)data};
    lua_getfield(L, LUA_REGISTRYINDEX, "np_filter");
    lua_getfield(L, LUA_REGISTRYINDEX, "np_queue");
    lua_pushlightuserdata(L, &ev);
    lua_pushinteger(L, (lua_Integer)sizeof ev);
    lua_call(L, 3, LUA_MULTRET);
    lua_pushvalue(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "np_queue");
    const char *kind = lua_tostring(L, 2);
    if (kind && strcmp(kind, "data") == 0) {
        take_frame(3);
    } else if (kind && strcmp(kind, "more") == 0) {
        for (;;) {
            lua_settop(L, 1);
            lua_getfield(L, LUA_REGISTRYINDEX, "np_pop");
            lua_pushvalue(L, 1);
            lua_call(L, 1, 3);
            if (lua_isnil(L, 2))
                break;
            take_frame(2);
        }
    }
    lua_settop(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_pushcfunction(L, luaopen_netpack);
        lua_call(L, 0, 1);
        static const char *names[] = {"filter", "pop", "tostring", "clear"};
        for (int i = 0; i < 4; i++) {
            lua_getfield(L, -1, names[i]);
            char key[32];
            snprintf(key, sizeof key, "np_%s", names[i]);
            lua_setfield(L, LUA_REGISTRYINDEX, key);
        }
        lua_settop(L, 0);
    }
    memset(conns, 0, sizeof conns);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "np_queue");
    size_t i = 0;
    while (i < size) {
        uint8_t ctl = data[i++];
        int fd = ctl & 3;
        if (ctl & 4) {
            event(REACTOR_CLOSE, fd, NULL, 0);
            conns[fd].nsent = conns[fd].ngot = 0;
            continue;
        }
        size_t n = ctl >> 3;
        n = n < size - i ? n : size - i;
        struct conn *c = &conns[fd];
        if (c->nsent + n > sizeof c->sent)
            break;
        memcpy(c->sent + c->nsent, data + i, n);
        c->nsent += n;
        event(REACTOR_DATA, fd, data + i, n);
        i += n;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "np_clear");
    lua_getfield(L, LUA_REGISTRYINDEX, "np_queue");
    if (!lua_isnil(L, -1))
        lua_call(L, 1, 0);
    lua_settop(L, 0);
    return 0;
}
