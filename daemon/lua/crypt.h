/* crypt: Skynet's "skynet.crypt" (alias "crypt") module: DES, hashkey, hmac64, DH, hex/base64,
 * SHA-1 and HMAC-SHA1 with Skynet's exact byte results. */
#ifndef SKYJET_CRYPT_H
#define SKYJET_CRYPT_H

#include <lua.h>

int luaopen_skynet_crypt(lua_State *L);
int luaopen_crypt_alias(lua_State *L);

#endif
