/* host: the "snlua" service module: one LuaJIT state per service, its loader, the chunk cache
 * and the C side of message dispatch into Lua. A service's state is only ever touched by the
 * worker running it (and, once, by whoever releases it). */
#ifndef SKYJET_HOST_H
#define SKYJET_HOST_H

#include <lua.h>
#include <stddef.h>

struct service;

struct host_paths {
    const char *root;         /* folder with lualib/ and service/ */
    const char *service_path; /* ';'-separated patterns */
    const char *lib_path;
    const char *cpath;
    const char *preload;
    const char *jit; /* "auto" (default), "on" or "off" */
};

/* Set once at start-up, before the first Lua service. The strings must outlive the node. */
void host_configure(const struct host_paths *paths);
void host_shutdown(void); /* free the chunk cache */
extern const struct service_module host_module;

/* Load a Lua file through the process-wide bytecode cache (parsed once per file per node).
 * Pushes the chunk and returns 0, or pushes an error message and returns non-zero, like
 * luaL_loadfile. */
int host_loadfile(lua_State *L, const char *path);
/* require(name) as a state's main chunk sees it (package.loaded, then package.loaders, loader
 * called with name and extra); it cannot wait for a module another coroutine is loading, so
 * loader.lua hands coroutines skynet.require. skynet.core.require is this function. */
int host_require(lua_State *L);
/* The service a state belongs to. */
struct service *host_service(lua_State *L);
/* Lua heap bytes of the state. */
size_t host_memory(lua_State *L);
/* Lua heap bytes of all states, to within 64 KiB per state (any thread). */
size_t host_total_memory(void);
/* Cap the state's heap (skynet.memlimit); 0 = no cap. */
void host_memlimit(lua_State *L, size_t bytes);

/* skynet.core.callback(f [, forward]) lands here: the Lua function at `index` becomes the
 * state's dispatcher; with forward set, the runtime keeps each message (skynet.forward_type). */
void host_set_dispatcher(lua_State *L, int index, int forward);

/* The modules compiled into the binary, for package.preload. */
int luaopen_skynet_core(lua_State *L);

#endif
