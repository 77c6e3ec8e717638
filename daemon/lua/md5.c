/* md5: Skynet's "md5" module (md5.sum, md5.sumhexa, md5.hmacmd5, md5.exor) on OpenSSL's
 * libcrypto, which skyjet links already; Skynet's keplerproject md5.core plus its md5.lua helpers
 * in one C module, so nothing depends on a C module search path. Pure functions; any thread. */
#include "md5.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MD5_LEN 16

static void md5_digest(lua_State *L, const char *s, size_t n, unsigned char out[MD5_LEN])
{
    unsigned int len = 0;
    if (!EVP_Digest(s, n, out, &len, EVP_md5(), NULL) || len != MD5_LEN)
        luaL_error(L, "md5: digest failed");
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char out[2 * EVP_MAX_MD_SIZE];
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    lua_pushlstring(L, out, 2 * n);
}

/* sum(message) -> 16 raw bytes */
static int l_sum(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char h[MD5_LEN];
    md5_digest(L, s, n, h);
    lua_pushlstring(L, (const char *)h, MD5_LEN);
    return 1;
}

/* sumhexa(message) -> 32 lower-case hex digits */
static int l_sumhexa(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char h[MD5_LEN];
    md5_digest(L, s, n, h);
    push_hex(L, h, MD5_LEN);
    return 1;
}

/* hmacmd5(data, key) -> HMAC-MD5 in hex (Skynet's argument order: data first) */
static int l_hmacmd5(lua_State *L)
{
    size_t n, kn;
    const char *data = luaL_checklstring(L, 1, &n);
    const char *key = luaL_checklstring(L, 2, &kn);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hn = 0;
    if (!HMAC(EVP_md5(), key, (int)kn, (const unsigned char *)data, n, h, &hn))
        return luaL_error(L, "md5: hmac failed");
    push_hex(L, h, hn);
    return 1;
}

/* exor(a, b) -> a XOR b, both of the same length (md5.core's helper) */
static int l_exor(lua_State *L)
{
    size_t n, bn;
    const char *a = luaL_checklstring(L, 1, &n);
    const char *b = luaL_checklstring(L, 2, &bn);
    luaL_argcheck(L, n == bn, 2, "lengths must be equal");
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    for (size_t i = 0; i < n; i++)
        luaL_addchar(&buf, (char)(a[i] ^ b[i]));
    luaL_pushresult(&buf);
    return 1;
}

int luaopen_md5(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"sum", l_sum},   {"sumhexa", l_sumhexa}, {"hmacmd5", l_hmacmd5},
        {"exor", l_exor}, {NULL, NULL},
    };
    lua_createtable(L, 0, 4);
    luaL_register(L, NULL, funcs);
    return 1;
}
