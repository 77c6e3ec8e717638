/* config: INI loading and validation (see config.h). One table lists every known key with its
 * kind, the node_config field it fills (offsetof), default, Skynet name and help text:
 * validation, defaults, the struct, env publishing (skynet.getenv), config_free and --help all
 * come from it, so a new key is one line of the table (plus a struct field if C reads it).
 * Start-up only, single-threaded. */
#include "config.h"

#include "env.h"
#include "log.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum kind { K_STR, K_INT, K_BOOL, K_PATH, K_PATHS, K_LEVEL, K_SIZE, K_ENUM };

struct key_def {
    const char *section, *key;
    enum kind kind;
    size_t field;      /* offsetof(struct node_config, ...), or NOFIELD */
    const char *def;   /* NULL = unset */
    const char *alias; /* Skynet's name for it, or NULL */
    long min, max;     /* K_INT, K_SIZE */
    const char *extra; /* K_ENUM: "a|b|c"; K_PATHS: built-in patterns, '@' = the root folder */
    const char *help;
};

#define F(member) offsetof(struct node_config, member)
#define NOFIELD ((size_t)-1)

static const struct key_def keys[] = {
    {"node", "name", K_STR, F(name), "skyjet", "nodename", 0, 0, NULL,
     "node name (cluster name of this node)"},
    {"node", "threads", K_INT, F(threads), "4", "thread", 1, 1024, NULL, "worker threads"},
    {"node", "start", K_STR, F(start), "main", "start", 0, 0, NULL,
     "start service: \"name arg arg...\""},
    {"node", "bootstrap", K_STR, F(bootstrap), "snlua bootstrap", "bootstrap", 0, 0, NULL,
     "first service"},
    {"node", "logfile", K_PATH, F(logfile), NULL, "logger", 0, 0, NULL,
     "log file (default: stderr)"},
    {"node", "loglevel", K_LEVEL, F(loglevel), "info", NULL, 0, 0, NULL,
     "debug, info, warn or error"},
    {"node", "logtime", K_ENUM, F(logtime), "utc", NULL, 0, 0, "utc|local",
     "log timestamps (ISO-8601, milliseconds, zone offset) in utc or local time"},
    {"node", "daemon", K_PATH, F(pidfile), NULL, "daemon", 0, 0, NULL,
     "pidfile: run in the background"},
    {"node", "shutdown_timeout", K_INT, F(shutdown_timeout_ms), "5000", NULL, 0, 3600000, NULL,
     "ms that in-flight work may take after SIGTERM"},
    {"node", "stuck_warning", K_INT, F(stuck_seconds), "5", NULL, 1, 3600, NULL,
     "seconds in one message before a service is reported stuck"},
    {"node", "socket_high_water", K_SIZE, F(socket_high_water), "1M", NULL, 1024, 1L << 40, NULL,
     "pending output per socket that triggers a warning"},
    {"node", "socket_output_limit", K_SIZE, F(socket_output_limit), "256M", NULL, 0, 1L << 40, NULL,
     "unsent output per socket past which it is closed and logged (0 = no limit)"},
    {"node", "profile", K_BOOL, F(profile), "false", "profile", 0, 0, NULL,
     "account the time each service spends per message (skynet.stat \"cpu\")"},
    {"node", "console", K_STR, F(console), NULL, NULL, 0, 0, NULL,
     "debug console address host:port (loopback only unless console_allow_remote)"},
    {"node", "console_allow_remote", K_BOOL, F(console_allow_remote), "false", NULL, 0, 0, NULL,
     "let the debug console listen on a non-loopback address"},
    {"node", "metrics", K_STR, F(metrics), NULL, NULL, 0, 0, NULL,
     "Prometheus /metrics address host:port (loopback only unless console_allow_remote)"},
    {"node", "console_maxconn", K_INT, NOFIELD, "16", NULL, 0, 1000000, NULL,
     "debug console connections at once; more are closed at once (0 = no cap)"},
    {"node", "console_idle_timeout", K_INT, NOFIELD, "600", NULL, 0, 86400, NULL,
     "seconds a console connection may stay silent before it is closed (0 = never)"},
    {"node", "metrics_maxconn", K_INT, NOFIELD, "16", NULL, 0, 1000000, NULL,
     "/metrics connections at once; more are closed at once (0 = no cap)"},
    {"lua", "service_path", K_PATHS, F(service_path), NULL, "luaservice", 0, 0, "@/service/?.lua",
     "service search patterns (';'-separated, '?' = name), before the built-in ones"},
    {"lua", "lib_path", K_PATHS, F(lib_path), NULL, "lua_path", 0, 0,
     "@/lualib/?.lua;@/lualib/?/init.lua", "module search patterns, before the built-in lualib"},
    {"lua", "cpath", K_PATHS, F(cpath), NULL, "lua_cpath", 0, 0, NULL,
     "Lua C module search patterns"},
    {"lua", "preload", K_PATH, F(preload), NULL, "preload", 0, 0, NULL,
     "script run before every service's main chunk"},
    {"lua", "snax", K_PATHS, NOFIELD, NULL, "snax", 0, 0, NULL,
     "snax service search patterns (unset: service_path's)"},
    {"lua", "jit", K_ENUM, F(jit), "auto", NULL, 0, 0, "auto|on|off",
     "LuaJIT compiler per service: auto (after 1000 messages or require \"jit\"), on, off"},
    {"cluster", "file", K_PATH, F(cluster_file), NULL, "cluster", 0, 0, NULL,
     "cluster node table (clustername.lua)"},
    {"cluster", "max_message", K_SIZE, NOFIELD, "64M", NULL, 1024, 1L << 31, NULL,
     "largest assembled cluster message"},
    {"cluster", "call_timeout", K_INT, NOFIELD, "0", NULL, 0, 86400000, NULL,
     "ms a cluster.call may take before it fails (0 = wait forever, as Skynet)"},
    {"cluster", "connect_timeout", K_INT, NOFIELD, "5000", NULL, 0, 3600000, NULL,
     "ms a connect to another node may take (0 = the kernel's limit)"},
    {"cluster", "heartbeat", K_INT, NOFIELD, "1000", NULL, 0, 3600000, NULL,
     "ms without traffic from a node before its link is probed (0 = no heartbeat)"},
    {"cluster", "heartbeat_timeout", K_INT, NOFIELD, "2000", NULL, 1, 3600000, NULL,
     "ms a probe may take before the node is declared down"},
    {"cluster", "secret_file", K_PATH, F(secret_file), NULL, NULL, 0, 0, NULL,
     "shared secret: links between skyjet nodes authenticate both ends (HMAC-SHA256)"},
    {"cluster", "plain_peers", K_STR, NOFIELD, NULL, NULL, 0, 0, NULL,
     "comma-separated node names allowed without authentication (stock Skynet nodes)"},
    {"cluster", "expose", K_ENUM, NOFIELD, "services", NULL, 0, 0, "services|registered|names|all",
     "what remote nodes may call: services, registered, names or all"},
    {"cluster", "max_assemblies", K_INT, NOFIELD, "64", NULL, 1, 100000, NULL,
     "multi-part requests being assembled at once per inbound link"},
    {"cluster", "assembly_timeout", K_INT, NOFIELD, "30000", NULL, 100, 3600000, NULL,
     "ms an unfinished multi-part request may take from its header to its last part"},
    {"cluster", "max_assembly_bytes", K_SIZE, NOFIELD, "128M", NULL, 1024, 1L << 40, NULL,
     "bytes unfinished multi-part requests may hold per inbound link"},
    {"cluster", "max_assembly_total", K_SIZE, NOFIELD, "512M", NULL, 1024, 1L << 40, NULL,
     "bytes unfinished multi-part requests may hold on the whole node"},
    {"cluster", "first_frame_timeout", K_INT, NOFIELD, "3000", NULL, 10, 3600000, NULL,
     "ms an inbound cluster connection may take to send its first frame"},
    {"cluster", "max_pending", K_INT, NOFIELD, "10000", NULL, 1, 10000000, NULL,
     "requests in flight per inbound link"},
    {"cluster", "maxclient", K_INT, NOFIELD, "1024", NULL, 1, 1000000, NULL,
     "inbound cluster connections per listener"},
};
#define NKEYS (sizeof keys / sizeof *keys)

/* Sections besides the keys' own: [env] holds free-form keys for skynet.getenv. */
static const char *const sections[] = {"node", "lua", "cluster", "env"};
#define NSECTIONS (sizeof sections / sizeof *sections)

struct parse_ctx {
    const char *file;    /* as given, for messages */
    char *values[NKEYS]; /* owned copies */
    int seen[NKEYS];     /* line each key was given on, 0 = not given */
    int line;            /* the line inih is on (counted by read_line) */
    int at_line_start;   /* the last read ended a line */
    int lua_line;        /* first line with a key outside any section (Skynet Lua config) */
    int nerr;
    char err[4096];
};

static void add_error(struct parse_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_error(struct parse_ctx *ctx, const char *fmt, ...)
{
    size_t used = strlen(ctx->err);
    if (used + 2 >= sizeof ctx->err)
        return;
    int n = snprintf(ctx->err + used, sizeof ctx->err - used, "%s%s:%d: ", used ? "\n" : "",
                     ctx->file, ctx->line);
    if (n < 0 || (size_t)n >= sizeof ctx->err - used)
        return;
    used += (size_t)n;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + used, sizeof ctx->err - used, fmt, ap);
    va_end(ap);
    ctx->nerr++;
}

static int find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

static int known_section(const char *section)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strcmp(sections[i], section) == 0)
            return 1;
    return 0;
}

/* Edit distance, for "did you mean" (names are short). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The key `name` most likely meant: Skynet's name for a key, the same key in another section,
 * or a near spelling. Returns an index into keys, or -1. */
static int suggest_key(const char *name)
{
    int best = -1;
    size_t best_d = 3;
    for (size_t i = 0; i < NKEYS; i++) {
        if ((keys[i].alias && strcmp(keys[i].alias, name) == 0) || strcmp(keys[i].key, name) == 0)
            return (int)i;
        size_t d = distance(name, keys[i].key);
        if (d < best_d && d * 3 <= strlen(name)) {
            best_d = d;
            best = (int)i;
        }
    }
    return best;
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

static int enum_has(const char *choices, const char *v)
{
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && strncmp(p, v, n) == 0)
            return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

/* Why `v` is not a valid value for k (into why), or 0 when it is. */
static int check_value(const struct key_def *k, const char *v, char *why, size_t n)
{
    long num;
    char *end;
    switch (k->kind) {
    case K_INT:
        errno = 0;
        num = strtol(v, &end, 10);
        if (end == v || *end || errno || num < k->min || num > k->max)
            return snprintf(why, n, "must be an integer in range %ld..%ld", k->min, k->max);
        return 0;
    case K_SIZE:
        if (parse_size(v, &num) < 0 || num < k->min || num > k->max)
            return snprintf(why, n,
                            "must be a size in bytes (suffix K, M or G allowed) in range %ld..%ld",
                            k->min, k->max);
        return 0;
    case K_BOOL:
        return strcmp(v, "true") && strcmp(v, "false") ? snprintf(why, n, "must be true or false")
                                                       : 0;
    case K_LEVEL:
        return log_level_parse(v) < 0 ? snprintf(why, n, "must be debug, info, warn or error") : 0;
    case K_ENUM:
        return enum_has(k->extra, v) ? 0 : snprintf(why, n, "must be one of %s", k->extra);
    case K_PATH:
    case K_STR:
        return *v ? 0 : snprintf(why, n, "must not be empty");
    case K_PATHS:
        return 0;
    }
    return 0;
}

static void env_entry(struct parse_ctx *ctx, const char *name, const char *value)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(name, keys[i].key) == 0 || (keys[i].alias && !strcmp(name, keys[i].alias))) {
            add_error(ctx, "[env] %s: clashes with [%s] %s", name, keys[i].section, keys[i].key);
            return;
        }
    }
    if (env_set(name, value) < 0)
        add_error(ctx, "[env] %s: set twice or clashes with another key", name);
}

static void unknown_key(struct parse_ctx *ctx, const char *section, const char *name)
{
    if (!known_section(section)) {
        const char *near = NULL;
        for (size_t i = 0; i < NSECTIONS; i++)
            if (distance(section, sections[i]) <= 2)
                near = sections[i];
        add_error(ctx, "unknown section [%s] (key %s)%s%s%s", section, name,
                  near ? "; did you mean [" : "", near ? near : "", near ? "]?" : "");
        return;
    }
    int s = suggest_key(name);
    if (s < 0) {
        add_error(ctx, "[%s] %s: unknown key (see skyjet --help)", section, name);
        return;
    }
    const struct key_def *k = &keys[s];
    int skynet = k->alias && strcmp(k->alias, name) == 0 && strcmp(k->key, name) != 0;
    add_error(ctx, "[%s] %s: unknown key; did you mean [%s] %s?%s", section, name, k->section,
              k->key, skynet ? " (Skynet's name for it)" : "");
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    if (section[0] == '\0') {
        if (!ctx->lua_line)
            ctx->lua_line = ctx->line;
        return 1;
    }
    if (strcmp(section, "env") == 0) {
        env_entry(ctx, name, value);
        return 1;
    }
    int i = find_key(section, name);
    if (i < 0) {
        unknown_key(ctx, section, name);
        return 1;
    }
    const struct key_def *k = &keys[i];
    char why[160];
    if (ctx->seen[i]) {
        add_error(ctx, "[%s] %s: given twice (first on line %d)", section, name, ctx->seen[i]);
    } else if (check_value(k, value, why, sizeof why)) {
        add_error(ctx, "[%s] %s = '%s': %s", section, name, value, why);
    } else {
        ctx->seen[i] = ctx->line;
        ctx->values[i] = strdup(value);
    }
    return 1;
}

/* inih's line reader, counting lines so every error names its own line, and reporting the lines
 * inih would reject as a whole (no '=' or ':', an unclosed '['). */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = ((void **)stream)[1];
    char *s = fgets(str, num, ((void **)stream)[0]);
    if (!s)
        return NULL;
    int starts = ctx->at_line_start;
    if (starts)
        ctx->line++;
    size_t len = strlen(s);
    ctx->at_line_start = len > 0 && s[len - 1] == '\n';
    if (!starts)
        return s;
    const char *p = s + strspn(s, " \t\r\n");
    if (p == s && *p && *p != ';' && *p != '#') {
        if (*p == '[' ? !strchr(p, ']') : !strpbrk(p, "=:"))
            add_error(ctx, "syntax error (expected [section] or key = value)");
    }
    return s;
}

/* A file written for Skynet (Lua: key = value outside any section) gets the INI keys that
 * take its settings, instead of an error per line. */
static void lua_config_hint(struct parse_ctx *ctx)
{
    ctx->err[0] = '\0';
    ctx->nerr = 0;
    ctx->line = ctx->lua_line;
    char map[1536];
    size_t used = 0;
    for (size_t i = 0; i < NKEYS && used < sizeof map; i++)
        if (keys[i].alias)
            used += (size_t)snprintf(map + used, sizeof map - used, "%s%s -> [%s] %s",
                                     used ? ", " : "", keys[i].alias, keys[i].section, keys[i].key);
    add_error(ctx,
              "this looks like a Skynet Lua config (keys outside any [section]); skyjet reads "
              "an INI file. Skynet's keys go to: %s; harbor, address, master and standalone are "
              "not used (nodes talk through [cluster]); other keys go under [env]",
              map);
}

static int parse(const char *abspath, struct parse_ctx *ctx)
{
    FILE *f = fopen(abspath, "r");
    if (!f)
        return -1;
    void *stream[2] = {f, ctx};
    ctx->at_line_start = 1;
    int rc = ini_parse_stream(read_line, stream, on_entry, ctx);
    fclose(f);
    if (ctx->lua_line)
        lua_config_hint(ctx);
    return rc == -2 ? -2 : 0;
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

static void append(char **out, size_t *used, size_t *cap, const char *s, size_t len)
{
    if (*used + len + 2 >= *cap) {
        *cap = (*used + len + 2) * 2;
        *out = realloc(*out, *cap);
    }
    if (*used)
        (*out)[(*used)++] = ';';
    memcpy(*out + *used, s, len);
    *used += len;
    (*out)[*used] = '\0';
}

/* Resolve each ';'-separated pattern of `v` against dir, then append the built-in patterns
 * (`builtin`, with '@' standing for root). */
static char *resolve_paths(const char *dir, const char *v, const char *builtin, const char *root)
{
    size_t used = 0, cap = 64;
    char *out = calloc(1, cap);
    for (const char *p = v; p && *p;) {
        size_t len = strcspn(p, ";");
        if (len > 0) {
            char *r = resolve(dir, p, len);
            append(&out, &used, &cap, r, strlen(r));
            free(r);
        }
        p += len + (p[len] == ';');
    }
    for (const char *p = builtin; p && *p;) {
        size_t len = strcspn(p, ";");
        char one[PATH_MAX + 64];
        int n = snprintf(one, sizeof one, "%s%.*s", *p == '@' ? root : "", (int)len - (*p == '@'),
                         p + (*p == '@'));
        append(&out, &used, &cap, one, n > 0 ? (size_t)n : 0);
        p += len + (p[len] == ';');
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
    if (k->alias && strcmp(k->alias, k->key) != 0)
        env_set(k->alias, value);
}

/* The value's final form (paths resolved) into its field and env. `v` may be NULL (unset). */
static char *size_in_bytes(long n)
{
    char bytes[32];
    snprintf(bytes, sizeof bytes, "%ld", n);
    return strdup(bytes);
}

static void store(const struct key_def *k, const char *v, const char *dir, const char *root,
                  struct node_config *out)
{
    char *final = NULL;
    long n = 0;
    if (k->kind == K_PATH && v)
        final = resolve(dir, v, strlen(v));
    else if (k->kind == K_PATHS)
        final = resolve_paths(dir, v, k->extra, root);
    else if (k->kind == K_SIZE && v && parse_size(v, &n) == 0)
        final = size_in_bytes(n); /* sizes are published in bytes: no second size parser in Lua */
    else if (v)
        final = strdup(v);
    if (final)
        publish(k, final);
    void *slot = k->field == NOFIELD ? NULL : (char *)out + k->field;
    if (!slot || !final) {
        free(final);
        return;
    }
    switch (k->kind) {
    case K_INT:
        *(int *)slot = atoi(final);
        break;
    case K_BOOL:
        *(int *)slot = strcmp(final, "true") == 0;
        break;
    case K_LEVEL:
        *(int *)slot = log_level_parse(final);
        break;
    case K_SIZE:
        *(size_t *)slot = parse_size(final, &n) == 0 ? (size_t)n : 0;
        break;
    default:
        *(char **)slot = final;
        return;
    }
    free(final);
}

static int open_error(const char *path, const char *why, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: cannot open config file: %s", path, why);
    return -1;
}

int config_load(const char *path, const char *root, struct node_config *out, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    char abspath[PATH_MAX];
    struct stat st;
    if (!realpath(path, abspath) || stat(abspath, &st) != 0)
        return open_error(path, strerror(errno), err, errlen);
    if (!S_ISREG(st.st_mode))
        return open_error(path, "not a regular file", err, errlen);
    struct parse_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return open_error(path, "out of memory", err, errlen);
    ctx->file = path;
    int rc = parse(abspath, ctx);
    if (rc == -1)
        open_error(path, strerror(errno), err, errlen);
    else if (rc == -2)
        open_error(path, "out of memory", err, errlen);
    else if (ctx->nerr)
        snprintf(err, errlen, "%s", ctx->err);
    if (rc == 0 && ctx->nerr == 0) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", abspath);
        char *slash = strrchr(dir, '/');
        *(slash == dir ? slash + 1 : slash) = '\0';
        out->path = strdup(abspath);
        for (size_t i = 0; i < NKEYS; i++)
            store(&keys[i], ctx->values[i] ? ctx->values[i] : keys[i].def, dir, root, out);
        env_set("harbor", "0");
        env_set("standalone", "true");
        env_set("root", root);
    }
    for (size_t i = 0; i < NKEYS; i++)
        free(ctx->values[i]);
    int failed = rc != 0 || ctx->nerr != 0;
    free(ctx);
    return failed ? -1 : 0;
}

void config_free(struct node_config *c)
{
    free(c->path);
    c->path = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        enum kind k = keys[i].kind;
        if (keys[i].field != NOFIELD &&
            (k == K_STR || k == K_PATH || k == K_PATHS || k == K_ENUM)) {
            char **slot = (char **)((char *)c + keys[i].field);
            free(*slot);
            *slot = NULL;
        }
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
        int alias = k->alias && strcmp(k->alias, k->key) != 0;
        used += (size_t)snprintf(text + used, sizeof text - used, "  %-18s %s%s%s%s%s%s\n", k->key,
                                 k->help, k->def ? " (default " : "", k->def ? k->def : "",
                                 k->def ? ")" : "", alias ? "; Skynet name: " : "",
                                 alias ? k->alias : "");
    }
    snprintf(text + used, sizeof text - used,
             "[env]\n  any key = value, readable with skynet.getenv(key)\n");
    return text;
}
