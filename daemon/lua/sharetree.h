/* sharetree: read-only Lua tables shared by every service of a node ("skynet.sharetree", the core
 * of skynet.sharedata, skynet.sharetable and skynet.datasheet). A table is converted once into an
 * immutable C tree; each service reads it through small proxy tables. Named trees live in a
 * node-wide registry; replacing one marks the old tree stale so readers move to the new one. */
#ifndef SKYJET_SHARETREE_H
#define SKYJET_SHARETREE_H

#include <lua.h>

int luaopen_skynet_sharetree(lua_State *L);

#endif
