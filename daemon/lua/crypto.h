/* crypto: HMAC-SHA256, random bytes and constant-time comparison from libcrypto, for cluster
 * authentication ("skynet.crypto"). */
#ifndef SKYJET_CRYPTO_H
#define SKYJET_CRYPTO_H

#include <lua.h>

int luaopen_skynet_crypto(lua_State *L);

#endif
