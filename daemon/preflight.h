/* preflight: what `skyjet --test` checks beyond the INI itself, without starting a node: the
 * cluster file (evaluated as clusterd does: a Lua chunk in an empty environment whose globals
 * are node = "host:port" or false), the console and metrics addresses, the secret file, the log
 * file's folder, the pidfile's folder, the preload script, and the bootstrap and start services
 * on the service path. Main thread only, before anything starts. */
#ifndef SKYJET_PREFLIGHT_H
#define SKYJET_PREFLIGHT_H

#include <stddef.h>

struct node_config;

/* Returns the number of problems; each is a line "what: why" appended to err. */
int preflight_check(const struct node_config *cfg, char *err, size_t errlen);

#endif
