/* socketdriver: the Lua binding of the reactor ("skynet.socketdriver"/"socketdriver") and the
 * socket buffer skynet.socket reads from. main.c hands it the reactor once at start-up. */
#ifndef SKYJET_SOCKETDRIVER_H
#define SKYJET_SOCKETDRIVER_H

#include <lua.h>

struct reactor;

void socketdriver_init(struct reactor *r);
/* The reactor given to socketdriver_init (NULL before, and in tools without one). */
struct reactor *socketdriver_reactor(void);
int luaopen_socketdriver(lua_State *L);

#endif
