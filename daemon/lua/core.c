/* core: the "skynet.core" module, what a Lua service sees of the C runtime: sending, the
 * dispatcher hook, timers, names, launch/kill, env, log, and Skynet's text `command` entry
 * points for services that use them directly. Runs on the calling service's worker thread;
 * everything it touches below is thread-safe. Message data handed to send/redirect (a string is
 * copied; a lightuserdata is taken over) belongs to the runtime from then on. */
#include "clock.h"
#include "env.h"
#include "handle.h"
#include "host.h"
#include "log.h"
#include "scheduler.h"
#include "seri.h"
#include "service.h"
#include "startup.h"

#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint32_t self_handle(lua_State *L) { return service_handle(host_service(L)); }

/* Destination at idx: a handle number or ":hex"/".name"/"name". Returns the handle (0 when it
 * names no service), or -1 with *why set for values that are not addresses at all. */
static int64_t dest_of(lua_State *L, int idx, const char **why)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, idx);
        uint32_t h = (uint32_t)n;
        if (h == 0 || (lua_Number)h != n) {
            *why = "Invalid service address %s";
            return -1;
        }
        return h;
    }
    if (t == LUA_TSTRING)
        return service_resolve(lua_tostring(L, idx));
    *why = "dest address type (%s) must be a string or number.";
    return -1;
}

static uint32_t get_dest(lua_State *L, int idx)
{
    const char *why = NULL;
    int64_t h = dest_of(L, idx, &why);
    if (h < 0)
        luaL_error(L, why,
                   lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx));
    return (uint32_t)h;
}

/* Message at idx (string, lightuserdata + size at idx+1, or nil). The returned buffer is
 * malloc'd (or taken over); *size set. Returns -1 if too large (lightuserdata freed). */
static int get_message(lua_State *L, int idx, void **data, size_t *size)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len >= SERVICE_MAX_MESSAGE)
            return -1;
        *data = len ? malloc(len) : NULL;
        if (len)
            memcpy(*data, s, len);
        *size = len;
        return 0;
    }
    case LUA_TLIGHTUSERDATA: {
        *data = lua_touserdata(L, idx);
        lua_Number n = luaL_checknumber(L, idx + 1);
        if (n < 0 || n >= SERVICE_MAX_MESSAGE) {
            free(*data);
            return -1;
        }
        *size = (size_t)n;
        return 0;
    }
    case LUA_TNONE:
    case LUA_TNIL:
        *data = NULL;
        *size = 0;
        return 0;
    default:
        return luaL_error(L, "invalid message type %s", luaL_typename(L, idx));
    }
}

static int send_message(lua_State *L, uint32_t source, int idx_type)
{
    int type = (int)luaL_checkinteger(L, idx_type);
    struct service *s = host_service(L);
    int session;
    if (lua_isnil(L, idx_type + 1))
        session = service_newsession(s);
    else
        session = (int)luaL_checkinteger(L, idx_type + 1);
    void *data;
    size_t size;
    if (get_message(L, idx_type + 2, &data, &size) < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    /* The message is ours now: free it before raising for a bad address. */
    const char *why = NULL;
    int64_t dest = dest_of(L, 1, &why);
    if (dest < 0) {
        free(data);
        return luaL_error(L, why,
                          lua_type(L, 1) == LUA_TNUMBER ? lua_tostring(L, 1) : luaL_typename(L, 1));
    }
    if (dest == 0) {
        free(data);
        return 0;
    }
    if (service_send(source, (uint32_t)dest, type, session, data, size) != 0)
        return 0;
    lua_pushinteger(L, session);
    return 1;
}

/* send(addr, type, session|nil, msg[, sz]) -> session | nil (no such service) | false (too
 * large) */
static int l_send(lua_State *L) { return send_message(L, self_handle(L), 2); }

/* redirect(addr, source, type, session|nil, msg[, sz]) */
static int l_redirect(lua_State *L)
{
    uint32_t source = (uint32_t)luaL_checknumber(L, 2);
    return send_message(L, source, 3);
}

static int l_genid(lua_State *L)
{
    lua_pushinteger(L, service_newsession(host_service(L)));
    return 1;
}

static int l_callback(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    host_set_dispatcher(L, 1, lua_toboolean(L, 2));
    return 0;
}

static int l_self(lua_State *L)
{
    lua_pushnumber(L, self_handle(L));
    return 1;
}

/* timeout(ticks, session) -> timer id (0 when queued at once); raises if ticks is fractional */
static int l_timeout(lua_State *L)
{
    lua_Number ti = luaL_checknumber(L, 1);
    if (ti != (lua_Number)(long long)ti)
        return luaL_error(L, "number has no integer representation");
    int session = (int)luaL_checkinteger(L, 2);
    int ticks = ti > 0x7fffffff ? 0x7fffffff : (int)ti;
    int64_t id = clock_timeout(self_handle(L), ticks, session);
    lua_pushnumber(L, (lua_Number)id);
    return 1;
}

static int l_canceltimer(lua_State *L)
{
    lua_pushboolean(L, clock_cancel((int64_t)luaL_checknumber(L, 1)) == 0);
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)clock_now());
    return 1;
}

static int l_hpc(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)clock_hpc());
    return 1;
}

static int l_starttime(lua_State *L)
{
    lua_pushnumber(L, clock_starttime());
    return 1;
}

/* launch(module, args) -> handle | nil */
static int l_launch(lua_State *L)
{
    const char *mod = luaL_checkstring(L, 1);
    const char *args = luaL_optstring(L, 2, "");
    uint32_t h = service_launch(mod, args);
    if (h)
        lua_pushnumber(L, h);
    else
        lua_pushnil(L);
    return 1;
}

/* kill(addr) -> true if a service was retired */
static int l_kill(lua_State *L)
{
    uint32_t h = get_dest(L, 1);
    lua_pushboolean(L, h && service_kill(h) == 0);
    return 1;
}

/* name(".name", handle) -> true, or false if the name is taken / invalid */
static int l_name(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    uint32_t h = (uint32_t)luaL_checknumber(L, 2);
    if (name[0] == '.')
        name++;
    lua_pushboolean(L, handle_name(h, name) == 0);
    return 1;
}

/* query(".name" | ":hex") -> handle | nil */
static int l_query(lua_State *L)
{
    uint32_t h = service_resolve(luaL_checkstring(L, 1));
    if (h)
        lua_pushnumber(L, h);
    else
        lua_pushnil(L);
    return 1;
}

static int l_exit(lua_State *L)
{
    service_kill(self_handle(L));
    return 0;
}

static int l_abort(lua_State *L)
{
    (void)L;
    service_abort();
    return 0;
}

static int l_getenv(lua_State *L)
{
    const char *v = env_get(luaL_checkstring(L, 1));
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static int l_setenv(lua_State *L)
{
    lua_pushboolean(L, env_set(luaL_checkstring(L, 1), luaL_checkstring(L, 2)) == 0);
    return 1;
}

/* error(text): one log line from this service */
static int l_error(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    log_text(self_handle(L), LOG_INFO, text, len);
    return 0;
}

/* log(level, text) with level "debug"/"info"/"warn"/"error" */
static int l_log(lua_State *L)
{
    int level = log_level_parse(luaL_checkstring(L, 1));
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    log_text(self_handle(L), level < 0 ? LOG_INFO : (enum log_level)level, text, len);
    return 0;
}

static int l_loglevel(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        int level = log_level_parse(luaL_checkstring(L, 1));
        if (level < 0)
            return luaL_error(L, "unknown log level %s", lua_tostring(L, 1));
        log_set_level((enum log_level)level);
    }
    lua_pushstring(L, log_level_name(log_get_level()));
    return 1;
}

static int l_tostring(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        return 0;
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_settop(L, 1);
        return 1;
    }
    const char *p = lua_touserdata(L, 1);
    size_t sz = (size_t)luaL_checkinteger(L, 2);
    lua_pushlstring(L, p, sz);
    return 1;
}

static int l_trash(lua_State *L)
{
    int t = lua_type(L, 1);
    if (t == LUA_TLIGHTUSERDATA)
        free(lua_touserdata(L, 1));
    else if (t != LUA_TSTRING && t != LUA_TNIL && t != LUA_TNONE)
        return luaL_error(L, "skynet.trash invalid param %s", lua_typename(L, t));
    return 0;
}

static int l_mqlen(lua_State *L)
{
    struct service_stat st;
    service_stat(self_handle(L), &st);
    lua_pushinteger(L, (lua_Integer)st.mqlen);
    return 1;
}

/* stat(what [, handle]): "mqlen", "message", "cpu", "time", "endless" */
static int l_stat(lua_State *L)
{
    const char *what = luaL_checkstring(L, 1);
    uint32_t h = lua_isnoneornil(L, 2) ? self_handle(L) : (uint32_t)luaL_checknumber(L, 2);
    struct service_stat st = {0};
    if (service_stat(h, &st) != 0)
        return 0;
    if (strcmp(what, "mqlen") == 0)
        lua_pushinteger(L, (lua_Integer)st.mqlen);
    else if (strcmp(what, "message") == 0)
        lua_pushnumber(L, (lua_Number)st.messages);
    else if (strcmp(what, "cpu") == 0)
        lua_pushnumber(L, (lua_Number)st.cpu_ns / 1e9);
    else if (strcmp(what, "endless") == 0)
        lua_pushinteger(L, h == self_handle(L) ? service_endless(host_service(L)) : st.endless);
    else
        lua_pushinteger(L, 0);
    return 1;
}

static int l_memory(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)host_memory(L));
    return 1;
}

static int l_memlimit(lua_State *L)
{
    host_memlimit(L, (size_t)luaL_checknumber(L, 1));
    return 0;
}

static int l_signal(lua_State *L)
{
    uint32_t h = get_dest(L, 1);
    lua_pushboolean(L, h && service_signal(h, (int)luaL_optinteger(L, 2, 0)) == 0);
    return 1;
}

/* list() -> array of live handles */
static int l_list(lua_State *L)
{
    size_t n = handle_count() + 64;
    uint32_t *buf = malloc(n * sizeof *buf);
    if (!buf)
        return luaL_error(L, "out of memory");
    size_t k = handle_list(buf, n);
    if (k > n)
        k = n;
    lua_createtable(L, (int)k, 0);
    for (size_t i = 0; i < k; i++) {
        lua_pushnumber(L, buf[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    free(buf);
    return 1;
}

/* localname(handle) -> first local name (with '.') or nil */
static int l_localname(lua_State *L)
{
    char buf[HANDLE_NAME_MAX + 1];
    buf[0] = '.';
    if (handle_namefor((uint32_t)luaL_checknumber(L, 1), buf + 1, sizeof buf - 1) != 0)
        lua_pushnil(L);
    else
        lua_pushstring(L, buf);
    return 1;
}

static int l_monitor(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        service_set_monitor((uint32_t)luaL_checknumber(L, 1));
    uint32_t m = service_get_monitor();
    if (m)
        lua_pushnumber(L, m);
    else
        lua_pushnil(L);
    return 1;
}

/* checkpayload(msg, sz) -> true | false, reason: is this a well-formed serialized message that
 * came from the network (no light userdata allowed)? */
static int l_checkpayload(lua_State *L)
{
    const void *p = lua_touserdata(L, 1);
    size_t sz = (size_t)luaL_checkinteger(L, 2);
    char err[128];
    if (seri_check(p, sz, 0, err, sizeof err) == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
}

/* The process as Prometheus' process_* metrics describe it, from /proc and getrlimit. */
static void push_process(lua_State *L)
{
    lua_createtable(L, 0, 6);
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        /* fields 14, 15 (utime, stime in clock ticks), 23 (vsize), 24 (rss in pages); the
         * command name (field 2) may hold spaces, so start after its closing parenthesis */
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        if (p)
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                   "%*d %*d %*u %lu %ld",
                   &utime, &stime, &vsize, &rss);
        fclose(f);
    }
    double tick = (double)sysconf(_SC_CLK_TCK);
    lua_pushnumber(L, tick > 0 ? (double)(utime + stime) / tick : 0);
    lua_setfield(L, -2, "cpu_seconds");
    lua_pushnumber(L, (lua_Number)rss * (lua_Number)sysconf(_SC_PAGESIZE));
    lua_setfield(L, -2, "resident_bytes");
    lua_pushnumber(L, (lua_Number)vsize);
    lua_setfield(L, -2, "virtual_bytes");
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        fds += e->d_name[0] != '.';
    if (d)
        closedir(d);
    lua_pushnumber(L, fds > 0 ? fds - 1 : 0); /* not the one opendir holds */
    lua_setfield(L, -2, "open_fds");
    struct rlimit rl;
    lua_pushnumber(L, getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (lua_Number)rl.rlim_cur : 0);
    lua_setfield(L, -2, "max_fds");
    lua_pushnumber(L, clock_starttime());
    lua_setfield(L, -2, "start_time_seconds");
    lua_setfield(L, -2, "process");
}

/* stats() -> the runtime's counters, for metrics and the debug console */
static int l_stats(lua_State *L)
{
    lua_createtable(L, 0, 12);
    lua_pushnumber(L, (lua_Number)service_count());
    lua_setfield(L, -2, "services");
    lua_pushnumber(L, (lua_Number)service_launched_total());
    lua_setfield(L, -2, "launched");
    lua_pushnumber(L, (lua_Number)service_released_total());
    lua_setfield(L, -2, "released");
    lua_pushnumber(L, clock_pending());
    lua_setfield(L, -2, "timers");
    lua_pushnumber(L, (lua_Number)clock_hpc());
    lua_setfield(L, -2, "hpc");
    int n = scheduler_threads();
    uint64_t messages = 0;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        uint64_t m = scheduler_messages(i);
        messages += m;
        lua_pushnumber(L, (lua_Number)m);
        lua_setfield(L, -2, "messages");
        lua_pushnumber(L, (lua_Number)scheduler_busy_ns(i));
        lua_setfield(L, -2, "busy_ns");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "workers");
    lua_pushnumber(L, (lua_Number)messages);
    lua_setfield(L, -2, "messages");
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    lua_createtable(L, 0, 4);
    for (int i = 0; i < 4; i++) {
        lua_pushnumber(L, (lua_Number)log_count((enum log_level)i));
        lua_setfield(L, -2, levels[i]);
    }
    lua_setfield(L, -2, "log");
    /* the longest queue, and how many are waiting in all */
    size_t cap = handle_count() + 64;
    uint32_t *handles = malloc(cap * sizeof *handles);
    size_t k = handles ? handle_list(handles, cap) : 0;
    if (k > cap)
        k = cap;
    size_t longest = 0, waiting = 0;
    for (size_t i = 0; i < k; i++) {
        struct service_stat st;
        if (service_stat(handles[i], &st) == 0) {
            waiting += st.mqlen;
            if (st.mqlen > longest)
                longest = st.mqlen;
        }
    }
    free(handles);
    lua_pushnumber(L, (lua_Number)longest);
    lua_setfield(L, -2, "mq_max");
    lua_pushnumber(L, (lua_Number)waiting);
    lua_setfield(L, -2, "mq_total");
    lua_pushnumber(L, (lua_Number)host_total_memory());
    lua_setfield(L, -2, "lua_memory");
    lua_pushstring(L, SKYJET_VERSION);
    lua_setfield(L, -2, "version");
    push_process(L);
    return 1;
}

/* serviceinfo(handle) -> { messages, mqlen, cpu, endless, name } | nil */
static int l_serviceinfo(lua_State *L)
{
    uint32_t h = (uint32_t)luaL_checknumber(L, 1);
    struct service_stat st;
    if (service_stat(h, &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, (lua_Number)st.messages);
    lua_setfield(L, -2, "messages");
    lua_pushnumber(L, (lua_Number)st.mqlen);
    lua_setfield(L, -2, "mqlen");
    lua_pushnumber(L, (lua_Number)st.cpu_ns / 1e9);
    lua_setfield(L, -2, "cpu");
    lua_pushboolean(L, st.endless);
    lua_setfield(L, -2, "endless");
    char buf[HANDLE_NAME_MAX + 1];
    buf[0] = '.';
    if (handle_namefor(h, buf + 1, sizeof buf - 1) == 0) {
        lua_pushstring(L, buf);
        lua_setfield(L, -2, "name");
    }
    return 1;
}

/* hold(delta): keep the node from finishing its SIGTERM shutdown while in-flight work remains */
static int l_hold(lua_State *L)
{
    service_hold((int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_stopping(lua_State *L)
{
    lua_pushboolean(L, service_stopping());
    return 1;
}

/* internal([handle]): mark a service (default: self) node-internal; isinternal(handle) */
static int l_internal(lua_State *L)
{
    service_set_internal(lua_isnoneornil(L, 1) ? self_handle(L) : (uint32_t)luaL_checknumber(L, 1));
    return 0;
}

static int l_isinternal(lua_State *L)
{
    lua_pushboolean(L, service_is_internal((uint32_t)luaL_checknumber(L, 1)));
    return 1;
}

/* onrelease(f): f runs when the service is released without having exited by itself (killed),
 * so it can still answer the requests it owes. */
static int l_onrelease(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "skyjet.release");
    return 0;
}

/* loadfile(path) -> chunk | nil, err  (through the node's bytecode cache) */
static int l_loadfile(lua_State *L)
{
    if (host_loadfile(L, luaL_checkstring(L, 1)) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static int l_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)service_count());
    return 1;
}

/* startup(ok [, reason]): bootstrap's verdict on the start service and its listeners; main
 * then reports readiness (ok) or stops the node with exit status 1. */
static int l_startup(lua_State *L)
{
    startup_report(lua_toboolean(L, 1), luaL_optstring(L, 2, ""));
    return 0;
}

/* reloaded(): clusterd has finished a SIGHUP reload (applied or refused); systemd hears READY=1
 * only now, so `systemctl reload` returns once the new node table is in effect. */
static int l_reloaded(lua_State *L)
{
    (void)L;
    startup_notify("READY=1");
    return 0;
}

/* Every service requires skynet.core, so its table holds only the functions skynet.lua and
 * loader.lua use in every service; the others are looked up here on first access (one C closure
 * and one table slot each: ~100 bytes per function per state, 3 KiB for all of them). */
static const luaL_Reg core_eager[] = {
    {"send", l_send},
    {"callback", l_callback},
    {"self", l_self},
    {"timeout", l_timeout},
    {"canceltimer", l_canceltimer},
    {"now", l_now},
    {"hpc", l_hpc},
    {"exit", l_exit},
    {"getenv", l_getenv},
    {"error", l_error},
    {"log", l_log},
    {"tostring", l_tostring},
    {"trash", l_trash},
    {"pack", seri_pack},
    {"packstring", seri_packstring},
    {"unpack", seri_unpack},
    {"loadfile", l_loadfile},
    {"onrelease", l_onrelease},
    {NULL, NULL},
};

static const luaL_Reg core_lazy[] = {
    {"require", host_require},
    {"redirect", l_redirect},
    {"genid", l_genid},
    {"starttime", l_starttime},
    {"launch", l_launch},
    {"kill", l_kill},
    {"name", l_name},
    {"query", l_query},
    {"abort", l_abort},
    {"setenv", l_setenv},
    {"loglevel", l_loglevel},
    {"mqlen", l_mqlen},
    {"stat", l_stat},
    {"memory", l_memory},
    {"memlimit", l_memlimit},
    {"signal", l_signal},
    {"list", l_list},
    {"localname", l_localname},
    {"monitor", l_monitor},
    {"count", l_count},
    {"checkpayload", l_checkpayload},
    {"stats", l_stats},
    {"hold", l_hold},
    {"stopping", l_stopping},
    {"internal", l_internal},
    {"isinternal", l_isinternal},
    {"serviceinfo", l_serviceinfo},
    {"startup", l_startup},
    {"reloaded", l_reloaded},
    {NULL, NULL},
};

/* core's __index: a function of core_lazy, created and cached in the table on first access */
static int core_index(lua_State *L)
{
    const char *name = lua_tostring(L, 2);
    for (const luaL_Reg *f = core_lazy; name && f->name; f++) {
        if (strcmp(f->name, name) == 0) {
            lua_pushcfunction(L, f->func);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1);
            return 1;
        }
    }
    return 0;
}

int luaopen_skynet_core(lua_State *L)
{
    lua_newtable(L);
    luaL_register(L, NULL, core_eager);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, core_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
