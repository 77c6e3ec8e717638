/* bson: Skynet's "bson" module (BSON documents for MongoDB) with Skynet's exact bytes. */
#ifndef SKYJET_BSON_H
#define SKYJET_BSON_H

#include <lua.h>

int luaopen_bson(lua_State *L);

#endif
