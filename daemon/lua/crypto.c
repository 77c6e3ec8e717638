/* crypto: the few primitives cluster authentication needs, from OpenSSL's libcrypto (we do not
 * write our own): HMAC-SHA256, random bytes from the OS generator, constant-time comparison.
 * Lua module "skynet.crypto". Pure functions; any thread. */
#include "crypto.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* hmac_sha256(key, data) -> 32 raw bytes */
static int l_hmac_sha256(lua_State *L)
{
    size_t klen, dlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen, out, &outlen))
        return luaL_error(L, "hmac_sha256 failed");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* randombytes(n) -> n bytes from the OS's cryptographic generator */
static int l_randombytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n <= 0 || n > 4096)
        return luaL_error(L, "randombytes: size must be 1..4096");
    unsigned char buf[4096];
    if (RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "randombytes: no randomness available");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* equal(a, b) -> same bytes? in time independent of where they differ */
static int l_equal(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
    return 1;
}

int luaopen_skynet_crypto(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"hmac_sha256", l_hmac_sha256},
        {"randombytes", l_randombytes},
        {"equal", l_equal},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
