/* netpack: Skynet's `netpack` / `skynet.netpack` module: cuts a socket's byte stream into
 * frames with a 2-byte big-endian length (filter/pop), frames outgoing data (pack), and turns a
 * frame into a string (tostring) -- what Skynet's gateserver builds on. Pure functions over the
 * calling service's lua_State; a queue belongs to the service that created it. */
#ifndef SKYJET_NETPACK_H
#define SKYJET_NETPACK_H

#include <lua.h>

int luaopen_netpack(lua_State *L);

#endif
