/* cluster_core: the C codec of the cluster protocol (wire-format.md Part B), exposed to Lua as
 * package "skynet.cluster.core" (alias "cluster.core"). Pure functions; any thread.
 * Decoders never trust the peer: every length is checked against the bytes present and
 * against the message-size cap (cluster_core_set_max_message). */
#ifndef SKYJET_CLUSTER_CORE_H
#define SKYJET_CLUSTER_CORE_H

#include <lua.h>
#include <stddef.h>

#define CLUSTER_CHUNK 32768             /* part size of split messages */
#define CLUSTER_DEFAULT_MAX (64u << 20) /* default cap on one assembled message */

/* Process-wide cap on the declared total of a large request/response (bytes). */
void cluster_core_set_max_message(size_t bytes);
size_t cluster_core_max_message(void);

int luaopen_cluster_core(lua_State *L);

#endif
