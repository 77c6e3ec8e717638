/* netpack: frames of a 2-byte big-endian length plus body, cut out of skyjet's socket messages
 * (struct reactor_event) for Skynet's `netpack` API. A queue (a GC'd userdata) keeps, per
 * connection, the frame being assembled, and the complete frames not yet popped. Frames handed
 * to Lua are malloc'd light userdata: whoever takes one frees it (skynet.redirect, tostring,
 * skynet.trash). The event's own bytes stay with the runtime: they are copied, never taken. */
#include "netpack.h"

#include "reactor.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NP_QUEUE "skyjet.netpack.queue"
#define NP_BUCKETS 64
#define NP_MAXFRAME 0xffff

struct np_frame {
    int fd;
    uint32_t size;
    uint8_t *data;
};

struct np_partial { /* a frame still arriving on fd */
    int fd;
    int hdrlen; /* length bytes seen (0..2) */
    uint8_t hdr[2];
    uint32_t size, have;
    uint8_t *data;
    struct np_partial *next;
};

struct np_queue {
    struct np_frame *frames; /* frames[head..count) are waiting */
    size_t head, count, cap;
    struct np_partial *bucket[NP_BUCKETS];
};

static struct np_partial **np_find(struct np_queue *q, int fd)
{
    struct np_partial **p = &q->bucket[(unsigned)fd % NP_BUCKETS];
    while (*p && (*p)->fd != fd)
        p = &(*p)->next;
    return p;
}

static void np_drop_partial(struct np_queue *q, int fd)
{
    struct np_partial **p = np_find(q, fd), *c = *p;
    if (c) {
        *p = c->next;
        free(c->data);
        free(c);
    }
}

static int np_add_frame(lua_State *L, struct np_queue *q, int fd, uint8_t *data, uint32_t size)
{
    if (q->head > 0 && q->head == q->count)
        q->head = q->count = 0;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct np_frame *f = realloc(q->frames, cap * sizeof *f);
        if (!f) {
            free(data);
            return luaL_error(L, "netpack: out of memory");
        }
        q->frames = f;
        q->cap = cap;
    }
    q->frames[q->count++] = (struct np_frame){fd, size, data};
    return 0;
}

/* Feed n bytes of fd: complete frames go to the queue; returns how many completed. */
static int np_feed(lua_State *L, struct np_queue *q, int fd, const uint8_t *p, size_t n)
{
    int done = 0;
    struct np_partial **slot = np_find(q, fd), *c = *slot;
    while (n > 0) {
        if (!c) {
            c = calloc(1, sizeof *c);
            if (!c)
                return luaL_error(L, "netpack: out of memory");
            c->fd = fd;
            c->next = *slot;
            *slot = c;
        }
        while (c->hdrlen < 2 && n > 0) {
            c->hdr[c->hdrlen++] = *p++;
            n--;
        }
        if (c->hdrlen < 2)
            break;
        if (!c->data) {
            c->size = (uint32_t)c->hdr[0] << 8 | c->hdr[1];
            if (!(c->data = malloc(c->size ? c->size : 1)))
                return luaL_error(L, "netpack: out of memory");
        }
        size_t take = c->size - c->have < n ? c->size - c->have : n;
        memcpy(c->data + c->have, p, take);
        c->have += (uint32_t)take;
        p += take;
        n -= take;
        if (c->have < c->size)
            break;
        uint8_t *data = c->data;
        uint32_t size = c->size;
        *slot = c->next;
        free(c);
        c = NULL;
        slot = np_find(q, fd);
        np_add_frame(L, q, fd, data, size);
        done++;
    }
    return done;
}

static struct np_queue *np_queue_arg(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        struct np_queue *q = lua_newuserdata(L, sizeof *q);
        memset(q, 0, sizeof *q);
        luaL_getmetatable(L, NP_QUEUE);
        lua_setmetatable(L, -2);
        lua_replace(L, 1);
        return q;
    }
    return luaL_checkudata(L, 1, NP_QUEUE);
}

/* filter(queue, msg, sz) -> queue [, "data", fd, frame, size | "more" | "open", fd, addr |
 * "close", fd | "error", fd, reason | "warning", fd, kbytes] */
static int l_filter(lua_State *L)
{
    if (lua_gettop(L) < 3)
        lua_settop(L, 3);
    struct np_queue *q = np_queue_arg(L);
    const struct reactor_event *ev = lua_touserdata(L, 2);
    size_t sz = (size_t)luaL_checkinteger(L, 3);
    lua_settop(L, 1);
    if (!ev || sz < sizeof *ev)
        return luaL_error(L, "netpack.filter: not a socket message");
    const char *text = sz > sizeof *ev ? ev->text : "";
    switch (ev->type) {
    case REACTOR_DATA: {
        size_t before = q->count - q->head;
        int n = np_feed(L, q, ev->id, (const uint8_t *)ev->data, (size_t)ev->size);
        if (n == 0)
            return 1;
        if (n > 1 || before > 0) {
            lua_pushliteral(L, "more");
            return 2;
        }
        struct np_frame f = q->frames[q->head++];
        lua_pushliteral(L, "data");
        lua_pushinteger(L, f.fd);
        lua_pushlightuserdata(L, f.data);
        lua_pushinteger(L, f.size);
        return 5;
    }
    case REACTOR_ACCEPT:
        lua_pushliteral(L, "open");
        lua_pushinteger(L, ev->ud);
        lua_pushstring(L, text);
        return 4;
    case REACTOR_CLOSE:
        np_drop_partial(q, ev->id);
        lua_pushliteral(L, "close");
        lua_pushinteger(L, ev->id);
        return 3;
    case REACTOR_ERROR:
        np_drop_partial(q, ev->id);
        lua_pushliteral(L, "error");
        lua_pushinteger(L, ev->id);
        lua_pushstring(L, text);
        return 4;
    case REACTOR_WARNING:
        lua_pushliteral(L, "warning");
        lua_pushinteger(L, ev->id);
        lua_pushinteger(L, ev->ud);
        return 4;
    default:
        return 1;
    }
}

/* pop(queue) -> fd, frame, size | nothing */
static int l_pop(lua_State *L)
{
    struct np_queue *q = luaL_checkudata(L, 1, NP_QUEUE);
    if (q->head == q->count)
        return 0;
    struct np_frame f = q->frames[q->head++];
    lua_pushinteger(L, f.fd);
    lua_pushlightuserdata(L, f.data);
    lua_pushinteger(L, f.size);
    return 3;
}

/* pack(string | lightuserdata, size) -> frame (malloc'd, length-prefixed), size */
static int l_pack(lua_State *L)
{
    size_t len;
    const char *p;
    if (lua_type(L, 1) == LUA_TLIGHTUSERDATA || lua_type(L, 1) == LUA_TUSERDATA) {
        p = lua_touserdata(L, 1);
        len = (size_t)luaL_checkinteger(L, 2);
    } else {
        p = luaL_checklstring(L, 1, &len);
    }
    if (len > NP_MAXFRAME)
        return luaL_error(L, "Invalid size (too long) of data : %d", (int)len);
    uint8_t *out = malloc(len + 2);
    if (!out)
        return luaL_error(L, "netpack: out of memory");
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    if (len)
        memcpy(out + 2, p, len);
    lua_pushlightuserdata(L, out);
    lua_pushinteger(L, (lua_Integer)len + 2);
    return 2;
}

/* tostring(frame, size) -> string; frees the frame */
static int l_tostring(lua_State *L)
{
    void *p = lua_touserdata(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (!p || n <= 0) {
        lua_pushliteral(L, "");
    } else {
        lua_pushlstring(L, p, (size_t)n);
    }
    free(p);
    return 1;
}

static int l_clear(lua_State *L)
{
    struct np_queue *q = luaL_checkudata(L, 1, NP_QUEUE);
    for (size_t i = q->head; i < q->count; i++)
        free(q->frames[i].data);
    free(q->frames);
    q->frames = NULL;
    q->head = q->count = q->cap = 0;
    for (int b = 0; b < NP_BUCKETS; b++)
        while (q->bucket[b])
            np_drop_partial(q, q->bucket[b]->fd);
    return 0;
}

int luaopen_netpack(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"filter", l_filter},     {"pop", l_pop},     {"pack", l_pack},
        {"tostring", l_tostring}, {"clear", l_clear}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, NP_QUEUE)) {
        lua_pushcfunction(L, l_clear);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
