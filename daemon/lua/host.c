/* host: the "snlua" module (see host.h). A service's lua_State is created on launch and
 * initialised by its first message (on a worker, so `newservice` never blocks the launcher);
 * every later message goes through the Lua dispatcher registered with skynet.core.callback.
 * The chunk cache is process-wide (rwlock): each Lua file is parsed once and later services load
 * its bytecode, which is what makes spawning cheap. */
#include "host.h"

#include "bson.h"
#include "cluster_core.h"
#include "cluster_link.h"
#include "cluster_reply.h"
#include "compat.h"
#include "crypt.h"
#include "crypto.h"
#include "log.h"
#include "md5.h"
#include "netpack.h"
#include "salloc.h"
#include "seri.h"
#include "service.h"
#include "sharetree.h"
#include "socketdriver.h"
#include "sproto.h"
#include "stm.h"

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MEMORY_WARNING (32u << 20)
#define MEMORY_PUBLISH_STEP (64u << 10) /* a state's heap reaches host_total_memory in steps */

struct host {
    lua_State *L;
    struct service *s;
    size_t mem, mem_limit, mem_report;
    size_t mem_published; /* the part of mem counted in total_memory */
    int cb_ref;           /* registry ref of the Lua dispatcher */
    int forward;          /* dispatcher keeps messages (skynet.forward_type) */
    atomic_int trap;      /* signal 0 asked to break the running code */
    int jit_countdown;    /* messages left before the JIT is switched on (0 = on or never) */
};

static struct host_paths paths;
static void enable_jit(struct host *h);
/* Lua heap bytes of every state, each published when it moved by MEMORY_PUBLISH_STEP (so an
 * allocation rarely touches the shared counter). */
static atomic_llong total_memory;

/* ---- chunk cache ---------------------------------------------------------------------- */

struct chunk {
    char *path;
    struct timespec mtime;
    off_t size;
    char *bc;
    size_t bclen;
    struct chunk *next;
};

static struct {
    pthread_rwlock_t lock;
    struct chunk *buckets[256];
} cache = {PTHREAD_RWLOCK_INITIALIZER, {0}};

static unsigned path_hash(const char *s)
{
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h & 255;
}

struct dump_buf {
    char *data;
    size_t len, cap;
};

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    struct dump_buf *b = ud;
    if (b->len + sz > b->cap) {
        size_t cap = (b->len + sz) * 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, sz);
    b->len += sz;
    return 0;
}

int host_loadfile(lua_State *L, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        lua_pushfstring(L, "cannot open %s", path);
        return LUA_ERRFILE;
    }
    unsigned b = path_hash(path);
    pthread_rwlock_rdlock(&cache.lock);
    for (struct chunk *c = cache.buckets[b]; c; c = c->next) {
        if (strcmp(c->path, path) == 0 && c->mtime.tv_sec == st.st_mtim.tv_sec &&
            c->mtime.tv_nsec == st.st_mtim.tv_nsec && c->size == st.st_size) {
            int rc = luaL_loadbuffer(L, c->bc, c->bclen, path);
            pthread_rwlock_unlock(&cache.lock);
            return rc;
        }
    }
    pthread_rwlock_unlock(&cache.lock);

    char chunkname[4096];
    snprintf(chunkname, sizeof chunkname, "@%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushfstring(L, "cannot open %s", path);
        return LUA_ERRFILE;
    }
    char *src = malloc((size_t)st.st_size + 1);
    size_t n = src ? fread(src, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!src) {
        lua_pushstring(L, "out of memory");
        return LUA_ERRMEM;
    }
    /* A leading "#!" line is allowed, as luaL_loadfile allows it. */
    const char *text = src;
    if (n > 0 && src[0] == '#') {
        src[0] = '-';
        if (n > 1)
            src[1] = '-';
    }
    int rc = luaL_loadbuffer(L, text, n, chunkname);
    free(src);
    if (rc != 0)
        return rc;
    struct dump_buf d = {0};
    if (lua_dump(L, dump_writer, &d) != 0 || !d.data) {
        free(d.data);
        return 0; /* uncached, but loaded */
    }
    struct chunk *c = calloc(1, sizeof *c);
    if (!c) {
        free(d.data);
        return 0;
    }
    c->path = strdup(path);
    c->mtime = st.st_mtim;
    c->size = st.st_size;
    c->bc = d.data;
    c->bclen = d.len;
    pthread_rwlock_wrlock(&cache.lock);
    struct chunk **pp = &cache.buckets[b];
    while (*pp && strcmp((*pp)->path, path) != 0)
        pp = &(*pp)->next;
    if (*pp) { /* replace a stale entry */
        struct chunk *old = *pp;
        c->next = old->next;
        *pp = c;
        free(old->path);
        free(old->bc);
        free(old);
    } else {
        c->next = cache.buckets[b];
        cache.buckets[b] = c;
    }
    pthread_rwlock_unlock(&cache.lock);
    return 0;
}

void host_shutdown(void)
{
    pthread_rwlock_wrlock(&cache.lock);
    for (int i = 0; i < 256; i++) {
        struct chunk *c = cache.buckets[i];
        while (c) {
            struct chunk *next = c->next;
            free(c->path);
            free(c->bc);
            free(c);
            c = next;
        }
        cache.buckets[i] = NULL;
    }
    pthread_rwlock_unlock(&cache.lock);
}

/* package.loaders[2] replacement: search package.path, load through the cache. */
static int searcher_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    if (!path)
        return luaL_error(L, "package.path must be a string");
    char modpath[1024];
    snprintf(modpath, sizeof modpath, "%s", name);
    for (char *p = modpath; *p; p++)
        if (*p == '.')
            *p = '/';
    luaL_Buffer tried;
    luaL_buffinit(L, &tried);
    const char *p = path;
    char file[4096];
    while (*p) {
        size_t len = strcspn(p, ";");
        size_t k = 0;
        for (size_t i = 0; i < len && k + 1 < sizeof file; i++) {
            if (p[i] == '?') {
                size_t ml = strlen(modpath);
                if (k + ml + 1 >= sizeof file)
                    break;
                memcpy(file + k, modpath, ml);
                k += ml;
            } else {
                file[k++] = p[i];
            }
        }
        file[k] = '\0';
        p += len;
        if (*p == ';')
            p++;
        if (k == 0)
            continue;
        struct stat st;
        if (stat(file, &st) != 0) {
            lua_pushfstring(L, "\n\tno file '%s'", file);
            luaL_addvalue(&tried);
            continue;
        }
        if (host_loadfile(L, file) != 0)
            return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                              lua_tostring(L, -1));
        lua_pushstring(L, file);
        return 2;
    }
    luaL_pushresult(&tried);
    return 1;
}

/* ---- allocator ------------------------------------------------------------------------ */

/* States allocate through salloc (no per-block header on their many small blocks); under
 * AddressSanitizer through malloc, so that every Lua block is checked. */
#if defined(__SANITIZE_ADDRESS__)
static void *state_realloc(void *ptr, size_t osize, size_t nsize)
{
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}
#else
#define state_realloc salloc_realloc
#endif

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct host *h = ud;
    size_t mem = h->mem;
    if (ptr)
        mem -= osize;
    if (nsize == 0) {
        state_realloc(ptr, osize, 0);
        h->mem = mem;
        return NULL;
    }
    if (h->mem_limit && mem + nsize > h->mem_limit && nsize > (ptr ? osize : 0))
        return NULL;
    void *p = state_realloc(ptr, ptr ? osize : 0, nsize);
    if (!p)
        return NULL;
    h->mem = mem + nsize;
    if (h->mem > h->mem_published + MEMORY_PUBLISH_STEP ||
        h->mem + MEMORY_PUBLISH_STEP < h->mem_published) {
        atomic_fetch_add(&total_memory, (long long)h->mem - (long long)h->mem_published);
        h->mem_published = h->mem;
    }
    if (h->mem > h->mem_report) {
        h->mem_report *= 2;
        log_write(h->s ? service_handle(h->s) : 0, LOG_WARN, "Memory warning %.2f M",
                  (double)h->mem / (1024 * 1024));
    }
    return p;
}

static struct host *host_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

struct service *host_service(lua_State *L) { return host_of(L)->s; }
size_t host_memory(lua_State *L) { return host_of(L)->mem; }
size_t host_total_memory(void)
{
    long long total = atomic_load(&total_memory);
    return total > 0 ? (size_t)total : 0;
}
void host_memlimit(lua_State *L, size_t bytes) { host_of(L)->mem_limit = bytes; }

/* ---- dispatch ------------------------------------------------------------------------- */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg)
        luaL_traceback(L, L, msg, 1);
    else if (!lua_isnoneornil(L, 1)) {
        if (!luaL_callmeta(L, 1, "__tostring"))
            lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    } else
        lua_pushliteral(L, "(no error message)");
    return 1;
}

static int dispatch_cb(struct service *s, void *ud, int type, int session, uint32_t source,
                       void *msg, size_t sz)
{
    struct host *h = ud;
    lua_State *L = h->L;
    if (h->jit_countdown && --h->jit_countdown == 0)
        enable_jit(h);
    int top = lua_gettop(L);
    lua_pushcfunction(L, traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->cb_ref);
    lua_pushinteger(L, type);
    lua_pushlightuserdata(L, msg);
    lua_pushinteger(L, (lua_Integer)sz);
    lua_pushinteger(L, session);
    lua_pushnumber(L, source);
    int rc = lua_pcall(L, 5, 0, top + 1);
    if (rc != 0) {
        const char *err = lua_tostring(L, -1);
        log_write(service_handle(s), LOG_ERROR, "lua call [%x to :%x : %d msgsz = %zu] error : %s",
                  source, service_handle(s), session, sz, err ? err : "?");
    }
    lua_settop(L, top);
    return h->forward;
}

void host_set_dispatcher(lua_State *L, int index, int forward)
{
    struct host *h = host_of(L);
    lua_pushvalue(L, index);
    if (h->cb_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, h->cb_ref);
    h->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    h->forward = forward;
    service_callback(h->s, dispatch_cb, h);
}

/* ---- launch --------------------------------------------------------------------------- */

/* The global require of a state until loader.lua wraps it (the wrapper hands a coroutine's
 * require to skynet.require, which lets a module body yield): package.loaded[name] when set, else
 * the first searcher of package.loaders that finds the module, run as loader(name, extra) as Lua
 * 5.2+ and Skynet call it; the result (true when nil) goes to package.loaded[name]. In C so that
 * an idle service holds no Lua code for it. */
int host_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED"); /* 2: package.loaded */
    lua_getfield(L, 2, name);
    if (!lua_isnil(L, -1))
        return 1;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaders"); /* 5 */
    if (!lua_istable(L, 5))
        return luaL_error(L, "package.loaders must be a table");
    lua_pushliteral(L, ""); /* 6: what the searchers said */
    for (int i = 1;; i++) {
        lua_rawgeti(L, 5, i);
        if (lua_isnil(L, -1))
            return luaL_error(L, "module '%s' not found:%s", name, lua_tostring(L, 6));
        lua_pushvalue(L, 1);
        lua_call(L, 1, 2); /* 7, 8: loader, extra */
        if (lua_isfunction(L, 7)) {
            lua_pushvalue(L, 1);
            lua_insert(L, 8);
            lua_call(L, 2, 1);
            if (!lua_isnil(L, -1))
                lua_setfield(L, 2, name);
            lua_getfield(L, 2, name);
            if (lua_isnil(L, -1)) {
                lua_pushboolean(L, 1);
                lua_setfield(L, 2, name);
                lua_pushboolean(L, 1);
            }
            return 1;
        }
        if (lua_type(L, 7) == LUA_TSTRING) {
            lua_pop(L, 1);
            lua_concat(L, 2);
        } else {
            lua_pop(L, 2);
        }
    }
}

/* C modules linked into the binary (add new ones here, not with preload()): package.loaders[1]
 * looks them up here after package.preload, so they cost an idle service nothing (an entry each
 * in every state's package.preload costs a closure, a string and a hash slot per state: the 12
 * modules below were 1.3 KiB of an idle service). */
static const luaL_Reg builtin_modules[] = {
    {"skynet.core", luaopen_skynet_core},
    {"skynet.seri", luaopen_skynet_seri},
    {"skynet.socketdriver", luaopen_socketdriver},
    {"socketdriver", luaopen_socketdriver},
    {"skynet.cluster.core", luaopen_cluster_core},
    {"skynet.crypto", luaopen_skynet_crypto},
    {"cluster.core", luaopen_cluster_core},
    {"skynet.cluster.reply", luaopen_cluster_reply},
    {"skynet.cluster.link", luaopen_cluster_link},
    {"skynet.sharetree", luaopen_skynet_sharetree},
    {"skynet.stm", luaopen_skynet_stm},
    {"sproto.core", luaopen_sproto_core},
    {"skynet.netpack", luaopen_netpack},
    {"netpack", luaopen_netpack},
    {"skynet.crypt", luaopen_skynet_crypt},
    {"crypt", luaopen_crypt_alias},
    {"md5", luaopen_md5},
    {"bson", luaopen_bson},
    {NULL, NULL},
};

static lua_CFunction lazy_lib_opener(const char *name);

/* package.loaders[1] replacement: package.preload[name], then builtin_modules, then the
 * standard libraries opened on first use (lazy_libs). */
static int searcher_preload(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "preload");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, name);
            if (!lua_isnil(L, -1))
                return 1;
        }
    }
    for (const luaL_Reg *m = builtin_modules; m->name; m++) {
        if (strcmp(m->name, name) == 0) {
            lua_pushcfunction(L, m->func);
            return 1;
        }
    }
    lua_CFunction open = lazy_lib_opener(name);
    if (open) {
        lua_pushcfunction(L, open);
        return 1;
    }
    lua_pushfstring(L, "\n\tno field package.preload['%s']", name);
    return 1;
}

/* Standard libraries a service rarely needs at once are opened on first use: each costs time and
 * memory in every one of possibly thousands of services. `jit` in particular detects the CPU
 * (cpuid traps to the hypervisor in a VM: ~25 us per service), so it is opened when a service
 * requires it or has handled JIT_AFTER messages (host_paths.jit = "auto"). */
/* The jit library: opening it switches the compiler on, unless [lua] jit = off. */
static int open_jit_lib(lua_State *L)
{
    int n = luaopen_jit(L);
    if (paths.jit && strcmp(paths.jit, "off") == 0)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    return n;
}

static const struct {
    const char *name;
    lua_CFunction open;
} lazy_libs[] = {
    {LUA_IOLIBNAME, luaopen_io},    {LUA_OSLIBNAME, luaopen_os},
    {LUA_DBLIBNAME, luaopen_debug}, {LUA_MATHLIBNAME, compat_open_math},
    {LUA_BITLIBNAME, luaopen_bit},  {LUA_JITLIBNAME, open_jit_lib},
    {LUA_FFILIBNAME, luaopen_ffi},  {"utf8", compat_open_utf8},
};
#define JIT_AFTER 1000

static lua_CFunction lazy_lib_opener(const char *name)
{
    for (size_t i = 0; i < sizeof lazy_libs / sizeof *lazy_libs; i++)
        if (strcmp(name, lazy_libs[i].name) == 0)
            return lazy_libs[i].open;
    return NULL;
}

/* _G's __index: a global named like a lazy library opens it (through require, so package.loaded
 * stays right, but the host's: skynet.require is not loaded for it) and returns it; any other
 * missing global is nil as usual. */
static int lazy_global(lua_State *L)
{
    if (!lua_rawequal(L, 1, LUA_GLOBALSINDEX)) /* the string library shares it (compat.h) */
        return compat_lazy_field(L);
    const char *name = lua_tostring(L, 2);
    if (!name || !lazy_lib_opener(name))
        return 0;
    lua_pushcfunction(L, host_require); /* opening a library never yields */
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (strcmp(name, LUA_FFILIBNAME) == 0) /* ffi is not a global by default */
        return 1;
    lua_pushvalue(L, 2);
    lua_rawget(L, 1);
    return 1;
}

/* print(...): Lua's print, written to the log (INFO, from this service) instead of stdout, so
 * nothing waits in a stdio buffer and every line carries the time and the service. */
static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "'tostring' must return a string to 'print'");
        if (i < n)
            lua_pushliteral(L, "\t");
    }
    lua_concat(L, n > 0 ? 2 * n - 1 : 0);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    log_text(service_handle(host_service(L)), LOG_INFO, text ? text : "", text ? len : 0);
    return 0;
}

static void open_libs(lua_State *L)
{
    static const luaL_Reg eager[] = {
        {"", luaopen_base},
        {LUA_LOADLIBNAME, luaopen_package},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = eager; lib->func; lib++) {
        lua_pushcfunction(L, lib->func);
        lua_pushstring(L, lib->name);
        lua_call(L, 1, 0);
    }
    lua_register(L, "print", l_print);
    lua_register(L, "require", host_require);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lazy_global);
    lua_setfield(L, -2, "__index");
    compat_install(L); /* the string library gets the same metatable */
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

static int open_jit(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, LUA_JITLIBNAME);
    lua_call(L, 1, 0);
    return 0;
}

static void enable_jit(struct host *h)
{
    h->jit_countdown = 0;
    lua_pushcfunction(h->L, open_jit);
    if (lua_pcall(h->L, 0, 0, 0) != 0)
        lua_pop(h->L, 1);
}

/* Run loader.lua with the launch arguments. On failure the cause goes to the log and, as
 * "ERROR <cause>", to the launcher (which answers the newservice caller). */
static int init_state(struct host *h, const char *args, size_t len, char *why, size_t whylen)
{
    lua_State *L = h->L;
    lua_gc(L, LUA_GCSTOP, 0);
    open_libs(L);
    if (paths.jit && strcmp(paths.jit, "on") == 0)
        enable_jit(h);
    else if (!paths.jit || strcmp(paths.jit, "auto") == 0)
        h->jit_countdown = JIT_AFTER;
    /* require() finds Lua modules through the chunk cache. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaders");
    lua_pushcfunction(L, searcher_preload);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, searcher_lua);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);

    lua_pushstring(L, paths.lib_path ? paths.lib_path : "");
    lua_setglobal(L, "LUA_PATH");
    lua_pushstring(L, paths.cpath ? paths.cpath : "");
    lua_setglobal(L, "LUA_CPATH");
    lua_pushstring(L, paths.service_path ? paths.service_path : "");
    lua_setglobal(L, "LUA_SERVICE");
    if (paths.preload) {
        lua_pushstring(L, paths.preload);
        lua_setglobal(L, "LUA_PRELOAD");
    }
    lua_pushcfunction(L, traceback);
    char loader[4096];
    snprintf(loader, sizeof loader, "%s/lualib/loader.lua", paths.root ? paths.root : ".");
    int rc = host_loadfile(L, loader);
    if (rc == 0) {
        lua_pushlstring(L, args, len);
        rc = lua_pcall(L, 1, 0, -3);
    }
    if (rc != 0) {
        const char *err = lua_tostring(L, -1);
        log_write(service_handle(h->s), LOG_ERROR, "lua loader error : %s", err ? err : "?");
        snprintf(why, whylen, "ERROR %s", err ? err : "?");
        lua_settop(L, 0);
        lua_gc(L, LUA_GCRESTART, 0);
        return -1;
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCRESTART, 0);
    return 0;
}

static int launch_cb(struct service *s, void *ud, int type, int session, uint32_t source, void *msg,
                     size_t sz)
{
    struct host *h = ud;
    service_callback(s, NULL, NULL); /* until the Lua code registers its dispatcher */
    char why[1024];
    if (init_state(h, msg, sz, why, sizeof why) != 0) {
        /* Tell the launcher (it replies to the newservice caller), then retire. */
        uint32_t launcher = service_resolve(".launcher");
        char *text = strdup(why);
        if (launcher && text)
            service_send(service_handle(s), launcher, PTYPE_TEXT, 0, text, strlen(text));
        else
            free(text);
        service_kill(service_handle(s));
    }
    return 0;
}

static void *host_create(void)
{
    struct host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->mem_report = MEMORY_WARNING;
    h->cb_ref = LUA_NOREF;
    h->L = lua_newstate(host_alloc, h);
    if (!h->L) {
        free(h);
        return NULL;
    }
    return h;
}

static int host_init(void *inst, struct service *s, const char *args)
{
    struct host *h = inst;
    if (!h)
        return -1;
    h->s = s;
    service_callback(s, launch_cb, h);
    size_t len = strcspn(args, "\r\n");
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, args, len);
    copy[len] = '\0';
    log_write(service_handle(s), LOG_INFO, "LAUNCH snlua %s", copy);
    return service_send(0, service_handle(s), PTYPE_TEXT, 0, copy, len);
}

static void host_release(void *inst, struct service *s)
{
    struct host *h = inst;
    if (!h)
        return;
    lua_State *L = h->L;
    /* A service killed from outside still owes answers: let its Lua side send them. */
    lua_getfield(L, LUA_REGISTRYINDEX, "skyjet.release");
    if (lua_isfunction(L, -1)) {
        if (lua_pcall(L, 0, 0, 0) != 0) {
            log_write(service_handle(s), LOG_ERROR, "release hook failed: %s", lua_tostring(L, -1));
        }
    }
    lua_settop(L, 0);
    lua_close(L);
    atomic_fetch_sub(&total_memory, (long long)h->mem_published);
    free(h);
}

static void trap_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct host *h = host_of(L);
    if (atomic_exchange(&h->trap, 0)) {
        lua_sethook(L, NULL, 0, 0);
        luaL_error(L, "signal 0");
    }
}

static void host_signal(void *inst, int sig)
{
    struct host *h = inst;
    if (!h)
        return;
    if (sig == 0) {
        atomic_store(&h->trap, 1);
        lua_sethook(h->L, trap_hook, LUA_MASKCOUNT, 1);
    } else if (sig == 1) {
        log_write(h->s ? service_handle(h->s) : 0, LOG_INFO, "Current Memory %.3fK",
                  (double)h->mem / 1024);
    }
}

const struct service_module host_module = {"snlua", host_create, host_init, host_release,
                                           host_signal};

void host_configure(const struct host_paths *p) { paths = *p; }
