/* md5: Skynet's "md5" module (sum, sumhexa, hmacmd5, exor) on libcrypto. */
#ifndef SKYJET_MD5_H
#define SKYJET_MD5_H

#include <lua.h>

int luaopen_md5(lua_State *L);

#endif
