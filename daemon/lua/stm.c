/* stm: a shared object holds the newest version of a message (a malloc'd buffer, as skynet.pack
 * makes); the writer swaps in new versions, readers keep a reference to the version they last
 * read. Threads: any worker. obj->cur is guarded by obj->lock; versions and objects are reference
 * counted with atomics. Every live object is on a node-wide list (list_lock) so that a pointer
 * handed to newcopy is checked before use: a bad or reused pointer is an error, not a crash. */
#include "stm.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STM_WRITER "skynet.stm.writer"
#define STM_READER "skynet.stm.reader"

struct stm_version {
    atomic_int refs;
    size_t sz;
    void *msg;
};

struct stm_object {
    struct stm_object *prev, *next; /* the live list; guarded by list_lock */
    int copies;                     /* copy() pointers not yet taken by newcopy; list_lock */
    atomic_int refs;                /* the writer, each reader, each pending copy */
    pthread_mutex_t lock;
    struct stm_version *cur; /* NULL once the writer is gone */
};

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stm_object *live;

static void version_release(struct stm_version *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
        free(v->msg);
        free(v);
    }
}

static void object_release(struct stm_object *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_lock(&list_lock);
    if (o->prev)
        o->prev->next = o->next;
    else
        live = o->next;
    if (o->next)
        o->next->prev = o->prev;
    pthread_mutex_unlock(&list_lock);
    version_release(o->cur);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* The message at (idx, idx+1): a pointer and size (ownership moves here) or a string (copied). */
static struct stm_version *version_new(lua_State *L, int idx)
{
    void *msg;
    size_t sz;
    if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) {
        msg = lua_touserdata(L, idx);
        lua_Number n = luaL_checknumber(L, idx + 1);
        luaL_argcheck(L, n >= 0 && n <= UINT32_MAX, idx + 1, "bad message size");
        sz = (size_t)n;
    } else {
        const char *s = luaL_checklstring(L, idx, &sz);
        msg = malloc(sz ? sz : 1);
        if (!msg)
            luaL_error(L, "not enough memory");
        memcpy(msg, s, sz);
    }
    struct stm_version *v = malloc(sizeof *v);
    if (!v) {
        free(msg);
        luaL_error(L, "not enough memory");
    }
    atomic_init(&v->refs, 1);
    v->sz = sz;
    v->msg = msg;
    return v;
}

struct stm_writer {
    struct stm_object *obj;
};
struct stm_reader {
    struct stm_object *obj;
    struct stm_version *last;
};

/* new(msg, sz) or new(string): a writer; call it as writer(msg, sz) to publish a new version. */
static int l_new(lua_State *L)
{
    struct stm_writer *w = lua_newuserdata(L, sizeof *w);
    w->obj = NULL;
    luaL_getmetatable(L, STM_WRITER);
    lua_setmetatable(L, -2);
    struct stm_version *v = version_new(L, 1); /* may raise: before anything else is made */
    struct stm_object *o = calloc(1, sizeof *o);
    if (!o) {
        version_release(v);
        return luaL_error(L, "not enough memory");
    }
    o->cur = v;
    atomic_init(&o->refs, 1);
    pthread_mutex_init(&o->lock, NULL);
    pthread_mutex_lock(&list_lock);
    o->next = live;
    if (live)
        live->prev = o;
    live = o;
    pthread_mutex_unlock(&list_lock);
    w->obj = o;
    return 1;
}

static struct stm_writer *check_writer(lua_State *L)
{
    struct stm_writer *w = luaL_checkudata(L, 1, STM_WRITER);
    if (!w->obj)
        luaL_error(L, "stm object is released");
    return w;
}

static int writer_update(lua_State *L)
{
    struct stm_writer *w = check_writer(L);
    struct stm_version *v = version_new(L, 2);
    pthread_mutex_lock(&w->obj->lock);
    struct stm_version *old = w->obj->cur;
    w->obj->cur = v;
    pthread_mutex_unlock(&w->obj->lock);
    version_release(old);
    return 0;
}

static int writer_gc(lua_State *L)
{
    struct stm_writer *w = luaL_checkudata(L, 1, STM_WRITER);
    if (!w->obj)
        return 0;
    pthread_mutex_lock(&w->obj->lock);
    struct stm_version *old = w->obj->cur;
    w->obj->cur = NULL;
    pthread_mutex_unlock(&w->obj->lock);
    version_release(old);
    object_release(w->obj);
    w->obj = NULL;
    return 0;
}

/* copy(writer): a pointer another service of this node turns into a reader with newcopy. */
static int l_copy(lua_State *L)
{
    struct stm_writer *w = check_writer(L);
    atomic_fetch_add_explicit(&w->obj->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&list_lock);
    w->obj->copies++;
    pthread_mutex_unlock(&list_lock);
    lua_pushlightuserdata(L, w->obj);
    return 1;
}

static int l_newcopy(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    struct stm_object *o = lua_touserdata(L, 1), *it;
    struct stm_reader *r = lua_newuserdata(L, sizeof *r);
    r->obj = NULL;
    r->last = NULL;
    pthread_mutex_lock(&list_lock);
    for (it = live; it && it != o; it = it->next)
        ;
    int ok = it && it->copies > 0;
    if (ok)
        it->copies--;
    pthread_mutex_unlock(&list_lock);
    if (!ok)
        return luaL_error(L, "stm.newcopy: not a pointer from stm.copy (or already used)");
    r->obj = o; /* takes over the copy's reference */
    luaL_getmetatable(L, STM_READER);
    lua_setmetatable(L, -2);
    return 1;
}

/* reader(f [, ud]) or read(reader, f [, ud]): false when nothing changed since the last read (or
 * the writer is gone); else true followed by what f(msg, sz, ud) returns. */
static int l_read(lua_State *L)
{
    struct stm_reader *r = luaL_checkudata(L, 1, STM_READER);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    pthread_mutex_lock(&r->obj->lock);
    struct stm_version *v = r->obj->cur;
    if (v)
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&r->obj->lock);
    if (v == r->last || !v) {
        version_release(v);
        lua_pushboolean(L, 0);
        return 1;
    }
    version_release(r->last);
    r->last = v;
    lua_settop(L, 3);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, v->msg);
    lua_pushnumber(L, (lua_Number)v->sz);
    lua_pushvalue(L, 3);
    lua_call(L, 3, LUA_MULTRET);
    return lua_gettop(L) - 3;
}

static int reader_gc(lua_State *L)
{
    struct stm_reader *r = luaL_checkudata(L, 1, STM_READER);
    if (r->obj) {
        version_release(r->last);
        object_release(r->obj);
        r->obj = NULL;
        r->last = NULL;
    }
    return 0;
}

int luaopen_skynet_stm(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"new", l_new}, {"copy", l_copy}, {"newcopy", l_newcopy}, {"read", l_read}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, STM_WRITER)) {
        lua_pushcfunction(L, writer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, writer_update);
        lua_setfield(L, -2, "__call");
    }
    if (luaL_newmetatable(L, STM_READER)) {
        lua_pushcfunction(L, reader_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_read);
        lua_setfield(L, -2, "__call");
    }
    lua_pop(L, 2);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
