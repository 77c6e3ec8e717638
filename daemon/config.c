/* config: INI loading and validation (see config.h). One table lists every known key with its
 * kind, default, Skynet alias and help text: validation, defaults, env publishing and --help
 * all come from it, so a new knob is one line here. Start-up only, single-threaded. */
#include "config.h"

#include "env.h"
#include "log.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { K_STR, K_INT, K_BOOL, K_PATH, K_PATHS, K_LEVEL, K_SIZE };

struct key_def {
    const char *section, *key;
    enum kind kind;
    const char *def;   /* NULL = unset */
    const char *alias; /* Skynet's name, or NULL */
    long min, max;
    const char *help;
};

static const struct key_def keys[] = {
    {"node", "name", K_STR, "skyjet", "nodename", 0, 0, "node name (cluster name of this node)"},
    {"node", "threads", K_INT, "4", "thread", 1, 1024, "worker threads"},
    {"node", "start", K_STR, "main", NULL, 0, 0, "start service: \"name arg arg...\""},
    {"node", "bootstrap", K_STR, "snlua bootstrap", NULL, 0, 0, "first service"},
    {"node", "logfile", K_PATH, NULL, "logger", 0, 0, "log file (default: stderr)"},
    {"node", "loglevel", K_LEVEL, "info", NULL, 0, 0, "debug, info, warn or error"},
    {"node", "daemon", K_PATH, NULL, NULL, 0, 0, "pidfile: run in the background"},
    {"node", "shutdown_timeout", K_INT, "5000", NULL, 0, 3600000,
     "ms that in-flight work may take after SIGTERM"},
    {"node", "stuck_warning", K_INT, "5", NULL, 1, 3600,
     "seconds in one message before a service is reported stuck"},
    {"node", "socket_high_water", K_SIZE, "1M", NULL, 1024, 1L << 40,
     "pending output per socket that triggers a warning"},
    {"node", "profile", K_BOOL, "false", NULL, 0, 0,
     "account the time each service spends per message (skynet.stat \"cpu\")"},
    {"node", "console", K_STR, NULL, NULL, 0, 0,
     "debug console address host:port (loopback only unless console_allow_remote)"},
    {"node", "console_allow_remote", K_BOOL, "false", NULL, 0, 0,
     "let the debug console listen on a non-loopback address"},
    {"node", "metrics", K_STR, NULL, NULL, 0, 0,
     "Prometheus /metrics address host:port (loopback only unless console_allow_remote)"},
    {"lua", "service_path", K_PATHS, NULL, "luaservice", 0, 0,
     "service search patterns (';'-separated, '?' = name), before the built-in ones"},
    {"lua", "lib_path", K_PATHS, NULL, "lua_path", 0, 0,
     "module search patterns, before the built-in lualib"},
    {"lua", "cpath", K_PATHS, NULL, "lua_cpath", 0, 0, "Lua C module search patterns"},
    {"lua", "preload", K_PATH, NULL, NULL, 0, 0, "script run before every service's main chunk"},
    {"lua", "jit", K_STR, "auto", NULL, 0, 0,
     "LuaJIT compiler per service: auto (after 1000 messages or require \"jit\"), on, off"},
    {"cluster", "file", K_PATH, NULL, "cluster", 0, 0, "cluster node table (clustername.lua)"},
    {"cluster", "max_message", K_SIZE, "64M", NULL, 1024, 1L << 31,
     "largest assembled cluster message"},
    {"cluster", "call_timeout", K_INT, "0", NULL, 0, 86400000,
     "ms a cluster.call may take before it fails (0 = wait forever, as Skynet)"},
    {"cluster", "connect_timeout", K_INT, "5000", NULL, 0, 3600000,
     "ms a connect to another node may take (0 = the kernel's limit)"},
    {"cluster", "heartbeat", K_INT, "1000", NULL, 0, 3600000,
     "ms without traffic from a node before its link is probed (0 = no heartbeat)"},
    {"cluster", "heartbeat_timeout", K_INT, "2000", NULL, 1, 3600000,
     "ms a probe may take before the node is declared down"},
    {"cluster", "secret_file", K_PATH, NULL, NULL, 0, 0,
     "shared secret: links between skyjet nodes authenticate both ends (HMAC-SHA256)"},
    {"cluster", "plain_peers", K_STR, NULL, NULL, 0, 0,
     "comma-separated node names allowed without authentication (stock Skynet nodes)"},
    {"cluster", "expose", K_STR, "services", NULL, 0, 0,
     "what remote nodes may call: services, registered, names or all"},
    {"cluster", "max_assemblies", K_INT, "64", NULL, 1, 100000,
     "multi-part requests being assembled at once per inbound link"},
    {"cluster", "assembly_timeout", K_INT, "30000", NULL, 100, 3600000,
     "ms an unfinished multi-part request may take from its header to its last part"},
    {"cluster", "max_assembly_bytes", K_SIZE, "128M", NULL, 1024, 1L << 40,
     "bytes unfinished multi-part requests may hold per inbound link"},
    {"cluster", "max_assembly_total", K_SIZE, "512M", NULL, 1024, 1L << 40,
     "bytes unfinished multi-part requests may hold on the whole node"},
    {"cluster", "first_frame_timeout", K_INT, "3000", NULL, 10, 3600000,
     "ms an inbound cluster connection may take to send its first frame"},
    {"cluster", "max_pending", K_INT, "10000", NULL, 1, 10000000,
     "requests in flight per inbound link"},
    {"cluster", "maxclient", K_INT, "1024", NULL, 1, 1000000,
     "inbound cluster connections per listener"},
};
#define NKEYS (sizeof keys / sizeof *keys)

struct parse_ctx {
    const char *values[NKEYS]; /* owned copies */
    int seen[NKEYS];
    char err[256];
    int env_count;
};

static const struct key_def *find_key(const char *section, const char *key, size_t *index)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) {
            *index = i;
            return &keys[i];
        }
    return NULL;
}

static int parse_size(const char *v, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || errno)
        return -1;
    long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024L * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || n < 0 || n > LONG_MAX / mul)
        return -1;
    *out = n * mul;
    return 0;
}

static const char *check_value(const struct key_def *k, const char *v)
{
    long n;
    char *end;
    switch (k->kind) {
    case K_INT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (end == v || *end || errno || n < k->min || n > k->max)
            return "must be an integer in range";
        return NULL;
    case K_SIZE:
        if (parse_size(v, &n) < 0 || n < k->min || n > k->max)
            return "must be a size in bytes (suffix K, M or G allowed) in range";
        return NULL;
    case K_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false"))
            return "must be true or false";
        return NULL;
    case K_LEVEL:
        return log_level_parse(v) < 0 ? "must be debug, info, warn or error" : NULL;
    case K_PATH:
    case K_STR:
        if (strcmp(k->key, "expose") == 0 && strcmp(v, "registered") && strcmp(v, "names") &&
            strcmp(v, "all"))
            return "must be registered, names or all";
        if (strcmp(k->key, "jit") == 0 && strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off"))
            return "must be auto, on or off";
        return *v ? NULL : "must not be empty";
    case K_PATHS:
        return NULL;
    }
    return NULL;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    if (ctx->err[0])
        return 0;
    if (strcmp(section, "env") == 0) {
        for (size_t i = 0; i < NKEYS; i++) {
            if (strcmp(name, keys[i].key) == 0 || (keys[i].alias && !strcmp(name, keys[i].alias))) {
                snprintf(ctx->err, sizeof ctx->err, "[env] %s: clashes with [%s] %s", name,
                         keys[i].section, keys[i].key);
                return 0;
            }
        }
        if (env_set(name, value) < 0) {
            snprintf(ctx->err, sizeof ctx->err, "[env] %s: set twice or clashes with another key",
                     name);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "node") && strcmp(section, "lua") && strcmp(section, "cluster")) {
        snprintf(ctx->err, sizeof ctx->err, "unknown section [%s] (key %s)", section, name);
        return 0;
    }
    size_t i;
    const struct key_def *k = find_key(section, name, &i);
    if (!k) {
        snprintf(ctx->err, sizeof ctx->err, "[%s] %s: unknown key", section, name);
        return 0;
    }
    if (ctx->seen[i]) {
        snprintf(ctx->err, sizeof ctx->err, "[%s] %s: given twice", section, name);
        return 0;
    }
    const char *why = check_value(k, value);
    if (why) {
        if (k->kind == K_INT || k->kind == K_SIZE)
            snprintf(ctx->err, sizeof ctx->err, "[%s] %s = '%s': %s %ld..%ld", section, name,
                     value, why, k->min, k->max);
        else
            snprintf(ctx->err, sizeof ctx->err, "[%s] %s = '%s': %s", section, name, value, why);
        return 0;
    }
    ctx->seen[i] = 1;
    ctx->values[i] = strdup(value);
    return 1;
}

/* Make `p` absolute against dir (unless it already is). */
static char *resolve(const char *dir, const char *p, size_t len)
{
    char *out;
    if (len >= 2 && p[0] == '.' && p[1] == '/') {
        p += 2;
        len -= 2;
    }
    if (p[0] == '/') {
        out = strndup(p, len);
    } else {
        size_t n = strlen(dir) + 1 + len + 1;
        out = malloc(n);
        if (out)
            snprintf(out, n, "%s/%.*s", dir, (int)len, p);
    }
    return out;
}

/* Resolve each ';'-separated pattern of `v` against dir, then append `builtin`. */
static char *resolve_paths(const char *dir, const char *v, const char *builtin)
{
    size_t cap = (v ? strlen(v) * 2 + strlen(dir) * 8 : 0) + (builtin ? strlen(builtin) : 0) + 64;
    char *out = calloc(1, cap);
    size_t used = 0;
    for (const char *p = v; p && *p;) {
        size_t len = strcspn(p, ";");
        if (len > 0) {
            char *r = resolve(dir, p, len);
            size_t rl = strlen(r);
            if (used + rl + 2 >= cap) {
                cap = (used + rl + 2) * 2;
                out = realloc(out, cap);
            }
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? ";" : "", r);
            free(r);
        }
        p += len;
        if (*p == ';')
            p++;
    }
    if (builtin && *builtin) {
        size_t bl = strlen(builtin);
        if (used + bl + 2 >= cap) {
            cap = used + bl + 2;
            out = realloc(out, cap);
        }
        snprintf(out + used, cap - used, "%s%s", used ? ";" : "", builtin);
    }
    return out;
}

static void publish(const struct key_def *k, const char *value)
{
    char qualified[128];
    snprintf(qualified, sizeof qualified, "%s.%s", k->section, k->key);
    env_set(qualified, value);
    if (strcmp(k->section, "cluster") != 0)
        env_set(k->key, value);
    if (k->alias)
        env_set(k->alias, value);
}

int config_load(const char *path, const char *root, struct node_config *out, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct parse_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char abspath[PATH_MAX];
    if (!realpath(path, abspath)) {
        snprintf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        return -1;
    }
    int line = ini_parse(abspath, on_entry, &ctx);
    if (line != 0) {
        if (line == -1)
            snprintf(err, errlen, "%s: cannot open config file: %s", path, strerror(errno));
        else if (line == -2)
            snprintf(err, errlen, "%s: out of memory", path);
        else
            snprintf(err, errlen, "%s:%d: %s", path, line,
                     ctx.err[0] ? ctx.err : "syntax error (expected [section] or key = value)");
        for (size_t i = 0; i < NKEYS; i++)
            free((char *)ctx.values[i]);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", abspath);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';

    char builtin_service[PATH_MAX + 32], builtin_lib[2 * PATH_MAX + 64];
    snprintf(builtin_service, sizeof builtin_service, "%s/service/?.lua", root);
    snprintf(builtin_lib, sizeof builtin_lib, "%s/lualib/?.lua;%s/lualib/?/init.lua", root, root);

    out->path = strdup(abspath);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_def *k = &keys[i];
        const char *v = ctx.values[i] ? ctx.values[i] : k->def;
        long n = 0;
        char *resolved = NULL;
        if (k->kind == K_PATH && v)
            resolved = resolve(dir, v, strlen(v));
        else if (k->kind == K_PATHS)
            resolved = resolve_paths(dir, v,
                                     strcmp(k->key, "service_path") == 0 ? builtin_service
                                     : strcmp(k->key, "lib_path") == 0   ? builtin_lib
                                                                         : NULL);
        const char *final = resolved ? resolved : v;
        char bytes[32]; /* sizes are published in bytes: no second size parser in Lua */
        if (k->kind == K_SIZE && v && parse_size(v, &n) == 0)
            snprintf(bytes, sizeof bytes, "%ld", n), final = bytes;
        if (final)
            publish(k, final);
        char **slot = NULL;
        if (strcmp(k->key, "name") == 0)
            slot = &out->name;
        else if (strcmp(k->key, "start") == 0)
            slot = &out->start;
        else if (strcmp(k->key, "bootstrap") == 0)
            slot = &out->bootstrap;
        else if (strcmp(k->key, "logfile") == 0)
            slot = &out->logfile;
        else if (strcmp(k->key, "daemon") == 0)
            slot = &out->pidfile;
        else if (strcmp(k->key, "service_path") == 0)
            slot = &out->service_path;
        else if (strcmp(k->key, "lib_path") == 0)
            slot = &out->lib_path;
        else if (strcmp(k->key, "cpath") == 0)
            slot = &out->cpath;
        else if (strcmp(k->key, "preload") == 0)
            slot = &out->preload;
        else if (strcmp(k->key, "jit") == 0)
            slot = &out->jit;
        else if (strcmp(k->key, "file") == 0)
            slot = &out->cluster_file;
        else if (strcmp(k->key, "threads") == 0)
            out->threads = atoi(v);
        else if (strcmp(k->key, "profile") == 0)
            out->profile = strcmp(v, "true") == 0;
        else if (strcmp(k->key, "loglevel") == 0)
            out->loglevel = log_level_parse(v);
        else if (strcmp(k->key, "shutdown_timeout") == 0)
            out->shutdown_timeout_ms = atoi(v);
        else if (strcmp(k->key, "stuck_warning") == 0)
            out->stuck_seconds = atoi(v);
        else if (strcmp(k->key, "socket_high_water") == 0 && parse_size(v, &n) == 0)
            out->socket_high_water = (size_t)n;
        if (slot && final)
            *slot = strdup(final);
        free(resolved);
        free((char *)ctx.values[i]);
    }
    env_set("harbor", "0");
    env_set("standalone", "true");
    env_set("root", root);
    return 0;
}

void config_free(struct node_config *c)
{
    char **strs[] = {&c->path,    &c->name,         &c->start,    &c->bootstrap, &c->logfile,
                     &c->pidfile, &c->service_path, &c->lib_path, &c->cpath,     &c->preload,
                     &c->cluster_file, &c->jit};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

const char *config_help(void)
{
    static char text[8192];
    if (text[0])
        return text;
    size_t used = 0;
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_def *k = &keys[i];
        if (strcmp(section, k->section) != 0) {
            used += (size_t)snprintf(text + used, sizeof text - used, "[%s]\n", k->section);
            section = k->section;
        }
        used += (size_t)snprintf(text + used, sizeof text - used, "  %-18s %s%s%s%s%s%s\n",
                                 k->key, k->help, k->def ? " (default " : "",
                                 k->def ? k->def : "", k->def ? ")" : "",
                                 k->alias ? "; Skynet name: " : "", k->alias ? k->alias : "");
    }
    snprintf(text + used, sizeof text - used,
             "[env]\n  any key = value, readable with skynet.getenv(key)\n");
    return text;
}
