/* cluster_reply: one inbound link's table of requests handed to local services (see
 * cluster_reply.h). Written by the agent's worker (add, cancel, watch, close) and by whichever
 * worker sends a service's answer (offer, through the agent's reply hook), under the table's
 * mutex; the answer's frames are written under it too, so a close (which takes it before the
 * socket is closed) never races a write to a socket id that may be reused. The table lives as
 * long as the agent's service: the hook's release frees it. */
#include "cluster_reply.h"

#include "cluster_core.h"
#include "host.h"
#include "reactor.h"
#include "service.h"
#include "socketdriver.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MIN_BITS 4 /* 16 slots at first; the table doubles when half full */

struct slot {
    int session; /* 0: free (sessions are never 0) */
    uint32_t remote, target;
};

struct cluster_reply {
    struct service_reply_hook hook; /* first: the hook's pointer is the table's */
    pthread_mutex_t lock;
    const struct cluster_reply_io *io;
    void *ud;
    uint32_t agent;
    int fd;
    int closed;
    int watch; /* wake the agent when count reaches 0 */
    size_t count, mask;
    int bits;           /* mask = 2^bits - 1 */
    struct slot *slots; /* open addressing, linear probing from the home slot */
    char *failed_with, *failed;
    size_t with_len, failed_len;
};

/* ---- the session table (lock held) --------------------------------------------------------- */

/* Fibonacci hashing: sequential sessions and sessions sharing low bits spread alike. */
static size_t slot_home(int session, int bits)
{
    return (size_t)(((uint32_t)session * 2654435769u) >> (32 - bits));
}

static long slot_find(const struct cluster_reply *t, int session)
{
    size_t i = slot_home(session, t->bits);
    while (t->slots[i].session != 0) {
        if (t->slots[i].session == session)
            return (long)i;
        i = (i + 1) & t->mask;
    }
    return -1;
}

static void slot_put(struct slot *slots, int bits, struct slot e)
{
    size_t mask = ((size_t)1 << bits) - 1, i = slot_home(e.session, bits);
    while (slots[i].session != 0)
        i = (i + 1) & mask;
    slots[i] = e;
}

/* Empty slot i, moving later entries of its probe run back so every lookup still finds them. */
static void slot_remove(struct cluster_reply *t, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].session == 0)
            break;
        size_t home = slot_home(t->slots[j].session, t->bits);
        /* the entry at j may fill the hole at i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].session = 0;
    t->count--;
}

static int slots_grow(struct cluster_reply *t)
{
    if (t->bits >= 30)
        return -1;
    size_t cap = (t->mask + 1) * 2;
    struct slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].session != 0)
            slot_put(slots, t->bits + 1, t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->mask = cap - 1;
    t->bits++;
    return 0;
}

/* ---- writing an answer (lock held) ---------------------------------------------------------- */

struct frames {
    struct cluster_reply *t;
    int low;
};

static int write_frame(void *ud, const uint8_t *head, size_t hlen, const uint8_t *chunk,
                       size_t clen)
{
    struct frames *f = ud;
    size_t size;
    void *frame = cluster_core_frame(head, hlen, chunk, clen, &size);
    if (!frame)
        return -1;
    f->t->io->write(f->t->ud, f->t->fd, frame, size, f->low);
    return 0;
}

/* The error reply for an ERROR carrying `text` (size bytes): the text the agent's Lua call
 * would have raised, as today's Lua path sends it. */
static void answer_error(struct cluster_reply *t, uint32_t remote, const void *text, size_t size)
{
    struct frames f = {t, 0};
    if (size == 0) {
        cluster_core_response(remote, 0, t->failed, t->failed_len, write_frame, &f);
        return;
    }
    size_t n = t->with_len + size;
    char *msg = malloc(n);
    if (!msg)
        return; /* the caller's own deadline covers an answer lost to memory exhaustion */
    memcpy(msg, t->failed_with, t->with_len);
    memcpy(msg + t->with_len, text, size);
    cluster_core_response(remote, 0, msg, n, write_frame, &f);
    free(msg);
}

static void answer(struct cluster_reply *t, int type, uint32_t remote, const void *data,
                   size_t size)
{
    if (type == PTYPE_ERROR) {
        answer_error(t, remote, data, size);
        return;
    }
    /* a split reply's frames go at low priority (Skynet's lwrite) */
    struct frames f = {t, size > CLUSTER_CHUNK};
    cluster_core_response(remote, 1, data, size, write_frame, &f);
}

/* ---- the C API --------------------------------------------------------------------------------
 */

static int hook_offer(struct service_reply_hook *h, int type, int session, void *data, size_t size)
{
    return cluster_reply_offer((struct cluster_reply *)h, type, session, data, size);
}

static void hook_release(struct service_reply_hook *h)
{
    cluster_reply_free((struct cluster_reply *)h);
}

static char *copy_text(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

struct cluster_reply *cluster_reply_new(uint32_t agent, int fd, const struct cluster_reply_io *io,
                                        void *ud, const char *failed_with, size_t with_len,
                                        const char *failed, size_t failed_len)
{
    struct cluster_reply *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->hook.offer = hook_offer;
    t->hook.release = hook_release;
    t->io = io;
    t->ud = ud;
    t->agent = agent;
    t->fd = fd;
    t->bits = REPLY_MIN_BITS;
    t->mask = ((size_t)1 << REPLY_MIN_BITS) - 1;
    t->slots = calloc(t->mask + 1, sizeof *t->slots);
    t->failed_with = copy_text(failed_with, with_len);
    t->failed = copy_text(failed, failed_len);
    t->with_len = with_len;
    t->failed_len = failed_len;
    pthread_mutex_init(&t->lock, NULL);
    if (!t->slots || !t->failed_with || !t->failed) {
        cluster_reply_free(t);
        return NULL;
    }
    return t;
}

void cluster_reply_free(struct cluster_reply *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->failed_with);
    free(t->failed);
    free(t);
}

int cluster_reply_add(struct cluster_reply *t, int session, uint32_t remote, uint32_t target)
{
    int rc = -1;
    pthread_mutex_lock(&t->lock);
    if (!t->closed && session != 0 && slot_find(t, session) < 0 &&
        ((t->count + 1) * 2 <= t->mask + 1 || slots_grow(t) == 0)) {
        slot_put(t->slots, t->bits, (struct slot){session, remote, target});
        t->count++;
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int cluster_reply_cancel(struct cluster_reply *t, int session)
{
    pthread_mutex_lock(&t->lock);
    long i = slot_find(t, session);
    if (i >= 0)
        slot_remove(t, (size_t)i);
    pthread_mutex_unlock(&t->lock);
    return i >= 0 ? 0 : -1;
}

int cluster_reply_offer(struct cluster_reply *t, int type, int session, void *data, size_t size)
{
    pthread_mutex_lock(&t->lock);
    long i = slot_find(t, session);
    if (i < 0) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    uint32_t remote = t->slots[i].remote;
    slot_remove(t, (size_t)i);
    int wake = t->count == 0 && t->watch && !t->closed;
    if (wake)
        t->watch = 0;
    if (!t->closed)
        answer(t, type, remote, data, size);
    pthread_mutex_unlock(&t->lock);
    free(data);
    if (wake)
        t->io->send(t->ud, t->agent, t->agent, CLUSTER_REPLY_PTYPE, 0);
    return 1;
}

size_t cluster_reply_count(struct cluster_reply *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t cluster_reply_watch(struct cluster_reply *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    t->watch = n > 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

static int by_handle(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The distinct services of the entries, in `out` (room for t->count). */
static size_t pending_targets(const struct cluster_reply *t, uint32_t *out)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].session != 0)
            out[n++] = t->slots[i].target;
    qsort(out, n, sizeof *out, by_handle);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || out[k - 1] != out[i])
            out[k++] = out[i];
    return k;
}

void cluster_reply_close(struct cluster_reply *t)
{
    pthread_mutex_lock(&t->lock);
    int first = !t->closed;
    t->closed = 1;
    uint32_t *targets = first && t->count ? malloc(t->count * sizeof *targets) : NULL;
    size_t n = targets ? pending_targets(t, targets) : 0;
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; i < n; i++)
        t->io->send(t->ud, t->agent, targets[i], PTYPE_ERROR, 0);
    free(targets);
}

/* ---- Lua: skynet.cluster.reply ------------------------------------------------------------ */

#define REPLY_META "skynet.cluster.reply"

static void node_write(void *ud, int fd, void *data, size_t size, int low)
{
    if (low)
        reactor_send_low(ud, fd, data, size);
    else
        reactor_send(ud, fd, data, size);
}

static void node_send(void *ud, uint32_t source, uint32_t dest, int type, int session)
{
    (void)ud;
    service_send(source, dest, type, session, NULL, 0);
}

static const struct cluster_reply_io node_io = {node_write, node_send};

static struct cluster_reply *check_table(lua_State *L)
{
    return *(struct cluster_reply **)luaL_checkudata(L, 1, REPLY_META);
}

/* new(fd, failed_with, failed) -> the table of the calling service (the agent of link fd),
 * installed as its reply hook; raises if the service has one already. */
static int l_new(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t wlen, flen;
    const char *with = luaL_checklstring(L, 2, &wlen);
    const char *failed = luaL_checklstring(L, 3, &flen);
    struct reactor *r = socketdriver_reactor();
    struct service *s = host_service(L);
    struct cluster_reply **box = lua_newuserdata(L, sizeof *box);
    if (!r)
        return luaL_error(L, "cluster.reply: no reactor");
    *box = cluster_reply_new(service_handle(s), fd, &node_io, r, with, wlen, failed, flen);
    if (!*box)
        return luaL_error(L, "cluster.reply: out of memory");
    if (service_set_reply_hook(s, &(*box)->hook) != 0) {
        cluster_reply_free(*box);
        return luaL_error(L, "cluster.reply: this service has a reply table already");
    }
    luaL_getmetatable(L, REPLY_META);
    lua_setmetatable(L, -2);
    return 1;
}

/* t:call(target, msg, sz, remote, session) sends the request msg (a lightuserdata, taken)
 * to service `target` under `session`, its answer to go to the peer's `remote` session.
 * Returns true; nil when there is no such service (msg freed); false when the table would not
 * take it (closed, session in use, too large; msg still the caller's). */
static int l_call(lua_State *L)
{
    struct cluster_reply *t = check_table(L);
    uint32_t target = (uint32_t)luaL_checknumber(L, 2);
    void *msg = lua_touserdata(L, 3);
    lua_Number sz = luaL_checknumber(L, 4);
    uint32_t remote = (uint32_t)luaL_checknumber(L, 5);
    int session = (int)luaL_checkinteger(L, 6);
    if (sz < 0 || sz >= SERVICE_MAX_MESSAGE || cluster_reply_add(t, session, remote, target) != 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (service_send(t->agent, target, PTYPE_LUA, session, msg, (size_t)sz) != 0) {
        cluster_reply_cancel(t, session);
        lua_pushnil(L);
        return 1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_count(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)cluster_reply_count(check_table(L)));
    return 1;
}

/* t:watch() -> count; when not 0, a CLUSTER_REPLY_PTYPE message comes once it reaches 0 */
static int l_watch(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)cluster_reply_watch(check_table(L)));
    return 1;
}

static int l_close(lua_State *L)
{
    cluster_reply_close(check_table(L));
    return 0;
}

int luaopen_cluster_reply(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"call", l_call}, {"count", l_count}, {"watch", l_watch}, {"close", l_close}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, REPLY_META)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    lua_pushinteger(L, CLUSTER_REPLY_PTYPE);
    lua_setfield(L, -2, "PTYPE");
    return 1;
}
