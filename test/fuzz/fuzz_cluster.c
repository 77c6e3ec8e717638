/* fuzz_cluster: libFuzzer harness for the decoders of cluster.core (daemon/lua/cluster_core.c).
 * Each input is decoded (1) whole, as one packet body, and (2) as a TCP byte stream of frames
 * (u16 BE length + body), every complete frame's body in turn; each body goes to unpackrequest
 * and unpackresponse as a lightuserdata over an exact-size copy, so ASan sees any over-read.
 * Oracle: a decoded single request, trace or ok/error reply must encode back to the same body.
 * One lua_State, reused; every buffer a decoder returns is freed (or handed to a pack call). */
#include "cluster_core.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

/* release(lightuserdata): free a buffer returned by unpackrequest. */
static int lrelease(lua_State *L)
{
    free(lua_touserdata(L, 1));
    return 0;
}

/* check(ud, n, body): ud/n is the body for the decoders, `body` the same bytes as a string for
 * the oracle. Raises when an outcome breaks the decoders' contract. */
static const char *const checker =
    "local core = ...\n"
    "local function packn(...) return {n = select('#', ...), ...} end\n"
    "local function request(ud, n, body)\n"
    "  local r = packn(pcall(core.unpackrequest, ud, n))\n"
    "  if not r[1] then\n"
    "    assert(type(r[2]) == 'string' and r[2]:find('^Invalid '), tostring(r[2]))\n"
    "    return\n"
    "  end\n"
    "  local kind, addr, session, buf, sz = body:byte(1), r[2], r[3], r[4], r[5]\n"
    "  if kind == 0x04 then\n"
    "    assert(r.n == 2 and addr == body:sub(2), 'trace tag')\n"
    "    if #addr <= 32768 then assert(core.packtrace(addr):sub(3) == body, 'trace') end\n"
    "  elseif kind == 0x00 or kind == 0x80 then\n"
    "    assert(r.n == (session == 0 and 7 or 5) and sz == n - (body:find('^\\128') and\n"
    "           6 + body:byte(2) or 9), 'single request shape')\n"
    "    local named_ok = type(addr) ~= 'string' or (#addr >= 1 and #addr <= 255)\n"
    "    if not named_ok or session > 0x7fffffff or sz >= 32768 then release(buf) return end\n"
    "    local f = session == 0 and core.packpush(addr, 1, buf, sz)\n"
    "              or core.packrequest(addr, session, buf, sz)\n"
    "    assert(f:sub(3) == body, 'request does not encode back')\n"
    "  elseif kind == 0x02 or kind == 0x03 then\n"
    "    assert(r.n == 6 and addr == false and sz == n - 5 and r[6] == (kind == 2), 'part')\n"
    "    release(buf)\n"
    "  else\n"
    "    assert(r.n == 7 and buf == nil and sz >= 1 and sz <= core.getmaxmessage(), 'header')\n"
    "  end\n"
    "end\n"
    "local function response(ud, n, body)\n"
    "  local r = packn(core.unpackresponse(ud, n))\n"
    "  if r.n == 0 then return end\n"
    "  local kind = body:byte(5)\n"
    "  assert(n >= 5 and (r.n == 3 or r.n == 4) and r[1] == body:byte(1) + body:byte(2) * 256\n"
    "         + body:byte(3) * 65536 + body:byte(4) * 16777216, 'response shape')\n"
    "  if (kind == 0 or kind == 1) and #r[3] <= 32768 then\n"
    "    assert(core.packresponse(r[1], r[2], r[3]):sub(3) == body, 'reply does not encode back')\n"
    "  end\n"
    "end\n"
    "function check(ud, n, body)\n"
    "  request(ud, n, body)\n"
    "  response(ud, n, body)\n"
    "end\n";

static void init(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_register(L, "release", lrelease);
    if (luaL_loadstring(L, checker) != 0) {
        fprintf(stderr, "fuzz_cluster: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pushcfunction(L, luaopen_cluster_core);
    lua_call(L, 0, 1);
    lua_call(L, 1, 0);
}

static void check_body(const uint8_t *p, size_t n)
{
    uint8_t *copy = n > 0 ? malloc(n) : NULL;
    if (n > 0)
        memcpy(copy, p, n);
    lua_getglobal(L, "check");
    lua_pushlightuserdata(L, copy);
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushlstring(L, (const char *)p, n);
    if (lua_pcall(L, 3, 0, 0) != 0) {
        fprintf(stderr, "fuzz_cluster: %s\n", lua_tostring(L, -1));
        abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    if (L == NULL)
        init();
    check_body(data, size);
    while (size - off >= 2) { /* the receive path: frames back to back, the last maybe cut */
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        if (len > size - off - 2)
            break;
        check_body(data + off + 2, len);
        off += 2 + len;
    }
    return 0;
}
