/* fuzz_sproto: libFuzzer harness for daemon/lua/sproto.c. The first input byte picks the target:
 *   0: decode the rest against a type of the vector schema (second byte picks the type) inside
 *      lua_pcall; whatever decodes must encode again and that encoding must decode;
 *   1: unpack the rest; what unpacks must pack within sproto_pack_bound and unpack to the same;
 *   2: build a schema from the rest (sproto_create); a schema that loads has every protocol's
 *      types decode the input, encode and default, then is released (ASan checks the frees).
 * The vector schema is test/vectors/sproto-schema.txt compiled by lualib/sprotoparser.lua at
 * start-up, so the harness runs from the repository root (scripts/fuzz does). */
#include "sproto.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;
static void
    *fuzz_schema_keep; /* the vector schema, visible to LeakSanitizer (LuaJIT's heap is not) */

static const char fuzz_setup[] =
    "package.path = 'lualib/?.lua'\n"
    "local core = require 'sproto.core'\n"
    "local parser = require 'sprotoparser'\n"
    "local f = assert(io.open('test/vectors/sproto-schema.txt'))\n"
    "local text = '.package { type 0 : integer session 1 : integer }\\n' .. f:read('*a')\n"
    "f:close()\n"
    "local sp = assert(core.newproto(parser.parse(text)))\n"
    "local types = {}\n"
    "for _, n in ipairs { 'Phone', 'Person', 'AddressBook', 'package', 'get.request',\n"
    "                     'handshake.response' } do\n"
    "  types[#types + 1] = assert(core.querytype(sp, n))\n"
    "end\n"
    "return sp, function(which, msg)\n"
    "  local st = types[which % #types + 1]\n"
    "  local t = core.decode(st, msg)\n"
    "  local ok, bin = pcall(core.encode, st, t)\n"
    "  if ok then core.decode(st, bin) elseif not bin:find('is not an integer') then\n"
    "    error('FUZZ: decoded value does not encode: ' .. bin) end\n"
    "end\n";

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_sproto: %s\n", what);
    abort();
}

static void fuzz_init(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_sproto_core);
    lua_setfield(L, -2, "sproto.core");
    lua_settop(L, 0);
    if (luaL_loadstring(L, fuzz_setup) != 0 || lua_pcall(L, 0, 2, 0) != 0)
        fuzz_fail(lua_tostring(L, -1));
    fuzz_schema_keep = lua_touserdata(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_sproto_decode");
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_sproto_decode");
    lua_pushinteger(L, data[0]);
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    if (lua_pcall(L, 2, 0, 0) != 0 && strstr(lua_tostring(L, -1), "FUZZ:"))
        fuzz_fail(lua_tostring(L, -1));
    lua_settop(L, 0);
}

static void fuzz_unpack(const uint8_t *data, size_t size)
{
    long n = sproto_unpack(data, size, NULL, 0);
    if (n < 0 || n > (1 << 24))
        return;
    uint8_t *plain = malloc((size_t)n + 1);
    uint8_t *packed = malloc(sproto_pack_bound((size_t)n));
    if (sproto_unpack(data, size, plain, (size_t)n) != n)
        fuzz_fail("unpack sizes differ between passes");
    size_t m = sproto_pack(plain, (size_t)n, packed);
    if (m > sproto_pack_bound((size_t)n))
        fuzz_fail("pack overran its bound");
    uint8_t *again = malloc((size_t)n + 8);
    if (sproto_unpack(packed, m, again, (size_t)n + 8) != n || memcmp(again, plain, (size_t)n))
        fuzz_fail("unpack(pack(x)) != x");
    free(plain);
    free(packed);
    free(again);
}

static const char fuzz_schema_use[] =
    "local core = require 'sproto.core'\n"
    "local sp, msg = ...\n"
    "for tag = 0, 63 do\n"
    "  local _, req, resp = core.protocol(sp, tag)\n"
    "  for _, st in ipairs { req or false, resp or false } do\n"
    "    if st then\n"
    "      pcall(core.decode, st, msg)\n"
    "      pcall(core.encode, st, { a = 1 })\n"
    "      pcall(core.default, st) -- a `response nil` is a NULL type\n"
    "    end\n"
    "  end\n"
    "end\n";

static void fuzz_schema(const uint8_t *data, size_t size)
{
    struct sproto *sp = sproto_create(data, size);
    if (!sp)
        return;
    lua_settop(L, 0);
    if (luaL_loadstring(L, fuzz_schema_use) != 0)
        fuzz_fail(lua_tostring(L, -1));
    lua_pushlightuserdata(L, sp);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 2, 0, 0) != 0)
        fuzz_fail(lua_tostring(L, -1));
    lua_settop(L, 0);
    sproto_release(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        fuzz_init();
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_decode(data + 1, size - 1);
        break;
    case 1:
        fuzz_unpack(data + 1, size - 1);
        break;
    default:
        fuzz_schema(data + 1, size - 1);
        break;
    }
    return 0;
}
