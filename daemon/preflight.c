/* preflight: see preflight.h. Every check appends its own line, so one run lists every problem.
 * The cluster file runs in its own short-lived Lua state with an instruction budget, so a file
 * that loops forever is reported instead of hanging --test. */
#include "preflight.h"

#include "config.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLUSTER_FILE_BUDGET 10000000 /* Lua instructions a cluster file may take */

struct problems {
    char *buf;
    size_t len, cap;
    int count;
};

static void problem(struct problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct problems *p, const char *fmt, ...)
{
    p->count++;
    if (p->len + 2 >= p->cap)
        return;
    if (p->len)
        p->buf[p->len++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->len = p->len + (size_t)n < p->cap ? p->len + (size_t)n : p->cap - 1;
}

static void out_of_budget(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "still running after %d instructions", CLUSTER_FILE_BUDGET);
}

/* The node table's entries, checked as clusterd checks them (skipping "__option" keys). */
static void check_nodes(struct problems *p, lua_State *L, const char *file)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            problem(p, "[cluster] file %s: node names must be strings", file);
        } else {
            const char *name = lua_tostring(L, -2);
            int ok = lua_type(L, -1) == LUA_TBOOLEAN ? !lua_toboolean(L, -1) : 0;
            if (lua_type(L, -1) == LUA_TSTRING) {
                const char *colon = strrchr(lua_tostring(L, -1), ':');
                ok = colon && colon != lua_tostring(L, -1) && colon[1] &&
                     strspn(colon + 1, "0123456789") == strlen(colon + 1);
            }
            if (strncmp(name, "__", 2) != 0 && !ok)
                problem(
                    p, "[cluster] file %s: node %s has address %s; expected \"host:port\" or false",
                    file, name, luaL_typename(L, -1));
            if (strncmp(name, "__", 2) != 0 && strpbrk(name, ".@"))
                problem(p, "[cluster] file %s: node name %s may not contain '.' or '@'", file,
                        name);
        }
        lua_pop(L, 1);
    }
}

/* A Lua error about the cluster file, naming the file once. */
static void lua_problem(struct problems *p, const char *file, const char *msg)
{
    int named = msg && strncmp(msg, file, strlen(file)) == 0;
    problem(p, "[cluster] file %s%s%s", named ? "" : file, named ? "" : ": ", msg ? msg : "?");
}

static void check_cluster_file(struct problems *p, const char *file)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        problem(p, "[cluster] file %s: out of memory", file);
        return;
    }
    luaL_openlibs(L);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF); /* compiled loops skip hooks */
    if (luaL_loadfile(L, file) != 0) {
        lua_problem(p, file, lua_tostring(L, -1));
    } else {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfenv(L, -3);
        lua_insert(L, -2); /* env, chunk */
        lua_sethook(L, out_of_budget, LUA_MASKCOUNT, CLUSTER_FILE_BUDGET);
        if (lua_pcall(L, 0, 0, 0) != 0)
            lua_problem(p, file, lua_tostring(L, -1));
        else
            check_nodes(p, L, file);
    }
    lua_close(L);
}

/* host:port with a port in 1..65535 (host may be [v6]). */
static void check_address(struct problems *p, const char *key, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == addr || !end || *end || end == colon + 1 || port < 1 || port > 65535)
        problem(p, "[node] %s = '%s': expected host:port (port 1..65535)", key, addr);
}

static void check_readable(struct problems *p, const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        problem(p, "%s %s: cannot read: %s", what, path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        problem(p, "%s %s: not a regular file", what, path);
}

/* A file the node will create or append to: it must be writable, or its folder must be. */
static void check_writable(struct problems *p, const char *what, const char *path)
{
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) != 0)
            problem(p, "%s %s: not writable: %s", what, path, strerror(errno));
        return;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (access(slash ? dir : ".", W_OK) != 0)
        problem(p, "%s %s: cannot create it in %s: %s", what, path, slash ? dir : ".",
                strerror(errno));
}

/* `cmdline` is "name args..." (for snlua services the name follows "snlua"): the service file
 * must be found along the service path as the loader searches it. */
static void check_service(struct problems *p, const char *what, const char *cmdline,
                          const char *service_path)
{
    char name[256];
    if (sscanf(cmdline, "%255s", name) != 1)
        return;
    if (strcmp(name, "snlua") == 0 && sscanf(cmdline, "%*s %255s", name) != 1)
        return;
    if (strcmp(name, "logger") == 0)
        return;
    for (const char *pat = service_path; pat && *pat;) {
        size_t len = strcspn(pat, ";");
        char file[PATH_MAX];
        size_t used = 0;
        for (size_t i = 0; i < len && used + 1 < sizeof file; i++) {
            if (pat[i] == '?')
                used += (size_t)snprintf(file + used, sizeof file - used, "%s", name);
            else
                file[used++] = pat[i];
            file[used < sizeof file ? used : sizeof file - 1] = '\0';
        }
        file[used < sizeof file ? used : sizeof file - 1] = '\0';
        if (len && access(file, R_OK) == 0)
            return;
        pat += len + (pat[len] == ';');
    }
    problem(p, "%s '%s': no %s.lua along [lua] service_path (%s)", what, cmdline, name,
            service_path);
}

int preflight_check(const struct node_config *cfg, char *err, size_t errlen)
{
    struct problems p = {err, 0, errlen, 0};
    if (errlen)
        err[0] = '\0';
    if (cfg->cluster_file)
        check_cluster_file(&p, cfg->cluster_file);
    if (cfg->console)
        check_address(&p, "console", cfg->console);
    if (cfg->metrics)
        check_address(&p, "metrics", cfg->metrics);
    if (cfg->secret_file)
        check_readable(&p, "[cluster] secret_file", cfg->secret_file);
    if (cfg->preload)
        check_readable(&p, "[lua] preload", cfg->preload);
    if (cfg->logfile)
        check_writable(&p, "[node] logfile", cfg->logfile);
    if (cfg->pidfile)
        check_writable(&p, "[node] daemon (pidfile)", cfg->pidfile);
    check_service(&p, "[node] bootstrap", cfg->bootstrap, cfg->service_path);
    check_service(&p, "[node] start", cfg->start, cfg->service_path);
    return p.count;
}
