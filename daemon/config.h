/* config: the node's INI file (read with inih). Validates every key of the known sections,
 * fills struct node_config, and publishes every key to env (skynet.getenv) under its bare name,
 * as "section.key", and under Skynet's names (thread, nodename, luaservice, lua_path, cluster,
 * logger, ...). Errors name the file, line and key. Called once at start-up, single-threaded. */
#ifndef SKYJET_CONFIG_H
#define SKYJET_CONFIG_H

#include <stddef.h>

/* The keys C reads; keys only Lua reads (through skynet.getenv) have no field. */
struct node_config {
    char *path;                 /* the INI file, absolute */
    char *name;                 /* [node] name */
    int threads;                /* [node] threads */
    int profile;                /* [node] profile */
    char *start;                /* [node] start: "service arg arg..." */
    char *bootstrap;            /* [node] bootstrap: "snlua bootstrap" */
    char *logfile;              /* [node] logfile (NULL = stderr) */
    int loglevel;               /* [node] loglevel */
    char *logtime;              /* [node] logtime: utc or local */
    char *pidfile;              /* [node] daemon */
    int shutdown_timeout_ms;    /* [node] shutdown_timeout */
    int stuck_seconds;          /* [node] stuck_warning */
    size_t socket_high_water;   /* [node] socket_high_water */
    size_t socket_output_limit; /* [node] socket_output_limit (0 = none) */
    char *console;              /* [node] console */
    char *metrics;              /* [node] metrics */
    int console_allow_remote;   /* [node] console_allow_remote */
    char *service_path;         /* [lua] service_path, resolved, with the built-in path appended */
    char *lib_path;             /* [lua] lib_path, resolved, with the built-in path appended */
    char *cpath;                /* [lua] cpath, resolved */
    char *preload;              /* [lua] preload */
    char *jit;                  /* [lua] jit: auto, on, off */
    char *cluster_file;         /* [cluster] file, resolved */
    char *secret_file;          /* [cluster] secret_file, resolved */
};

/* Load and validate. `root` is the folder holding lualib/ and service/ (built-in paths).
 * Returns 0, or -1 with every error found, one per line, each like
 * "node.ini:12: [node] threads = '0': must be an integer in range 1..1024". */
int config_load(const char *path, const char *root, struct node_config *out, char *err,
                size_t errlen);
void config_free(struct node_config *c);
/* A config text for --help: every key with its default and meaning. */
const char *config_help(void);

#endif
