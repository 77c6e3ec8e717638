/* stm: one writer publishes a serialized message, readers in other services of the node read the
 * newest version without a copy ("skynet.stm", Skynet's API: new, copy, newcopy, read). */
#ifndef SKYJET_STM_H
#define SKYJET_STM_H

#include <lua.h>

int luaopen_skynet_stm(lua_State *L);

#endif
