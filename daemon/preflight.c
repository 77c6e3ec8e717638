/* preflight: see preflight.h. Every check appends its own line, so one run lists every problem.
 * The cluster file and operator-address rules are the node's own Lua (skynet.cluster.nodetable,
 * skynet.opaddress), run here in a short-lived Lua state with an instruction budget for the
 * file, so a file that loops forever is reported instead of hanging --test. */
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

/* A Lua error about the cluster file, naming the file once. */
static void lua_problem(struct problems *p, const char *file, const char *msg)
{
    int named = msg && strncmp(msg, file, strlen(file)) == 0;
    problem(p, "[cluster] file %s%s%s", named ? "" : file, named ? "" : ": ", msg ? msg : "?");
}

/* A Lua state for the checks that run the node's own Lua rules, found along [lua] lib_path as
 * the node finds them. */
static lua_State *rules_state(const char *lib_path)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF); /* compiled loops skip hooks */
    lua_getglobal(L, "package");
    lua_pushstring(L, lib_path ? lib_path : "");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

/* The cluster file, read and checked by skynet.cluster.nodetable as clusterd does it. */
static void check_cluster_file(struct problems *p, lua_State *L, const char *file)
{
    static const char chunk[] = "local nodetable = require 'skynet.cluster.nodetable'\n"
                                "return nodetable.problems(nodetable.read(...))";
    if (luaL_loadstring(L, chunk) != 0) {
        lua_problem(p, file, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_pushstring(L, file);
    lua_sethook(L, out_of_budget, LUA_MASKCOUNT, CLUSTER_FILE_BUDGET);
    int rc = lua_pcall(L, 1, 1, 0);
    lua_sethook(L, NULL, 0, 0);
    if (rc != 0) {
        lua_problem(p, file, lua_tostring(L, -1));
    } else {
        for (int i = 1;; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_isnil(L, -1))
                break;
            problem(p, "[cluster] file %s: %s", file, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* The loopback-only rule of skynet.opaddress, as oplisten applies it when the service listens. */
static void check_remote(struct problems *p, lua_State *L, const char *key, const char *addr,
                         int allow_remote)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "skynet.opaddress");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        problem(p, "[node] %s: %s", key, lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_getfield(L, -1, "refusal");
    lua_pushfstring(L, "[node] %s", key);
    lua_pushstring(L, addr);
    lua_pushboolean(L, allow_remote);
    if (lua_pcall(L, 3, 1, 0) != 0 || !lua_isnil(L, -1))
        problem(p, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
}

/* host:port with a port in 1..65535 (host may be [v6]). */
static void check_address(struct problems *p, lua_State *L, const char *key, const char *addr,
                          int allow_remote)
{
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == addr || !end || *end || end == colon + 1 || port < 1 || port > 65535)
        problem(p, "[node] %s = '%s': expected host:port (port 1..65535)", key, addr);
    else if (L)
        check_remote(p, L, key, addr, allow_remote);
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
    lua_State *L = rules_state(cfg->lib_path);
    if (!L)
        problem(&p, "out of memory for the Lua checks");
    if (cfg->cluster_file && L)
        check_cluster_file(&p, L, cfg->cluster_file);
    if (cfg->console)
        check_address(&p, L, "console", cfg->console, cfg->console_allow_remote);
    if (cfg->metrics)
        check_address(&p, L, "metrics", cfg->metrics, cfg->console_allow_remote);
    if (L)
        lua_close(L);
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
