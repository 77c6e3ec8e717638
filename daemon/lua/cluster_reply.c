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
#include "seri.h"
#include "service.h"
#include "socketdriver.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MIN_BITS 4 /* 16 slots at first; the table doubles when half full */
/* Sessions the table hands out: the upper half of the positive range, far from the agent's own
 * Lua sessions (skynet.lua counts those up from 1 and uses them only for its own calls). */
#define REPLY_FIRST_SESSION 0x40000000u
#define REPLY_LAST_SESSION 0x7fffffffu
#define REPLY_MAX_NAMES 32 /* @names the request filter knows per link */

struct slot {
    int session; /* 0: free (sessions are never 0) */
    uint32_t remote, target;
};

struct cached_name {
    char *name; /* as on the wire, "@name" */
    size_t len;
    uint32_t handle;
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
    uint32_t session; /* the last one handed out */
    /* the request filter (cluster_reply_offer of the link's DATA events, reactor thread) */
    int filtering;              /* the agent allows it (authenticated, not stopping) */
    uint64_t handed, caught_up; /* DATA events passed on to the agent / consumed by it */
    size_t lua_inflight, max_pending;
    struct cached_name names[REPLY_MAX_NAMES];
    int nnames;
};

static char *copy_text(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

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

/* The next free session of the table's range. */
static int session_next(struct cluster_reply *t)
{
    do {
        t->session = t->session >= REPLY_FIRST_SESSION && t->session < REPLY_LAST_SESSION
                         ? t->session + 1
                         : REPLY_FIRST_SESSION;
    } while (slot_find(t, (int)t->session) >= 0);
    return (int)t->session;
}

static int add_locked(struct cluster_reply *t, int session, uint32_t remote, uint32_t target)
{
    if (t->closed || ((t->count + 1) * 2 > t->mask + 1 && slots_grow(t) != 0))
        return -1;
    if (session == 0)
        session = session_next(t);
    else if (slot_find(t, session) >= 0)
        return -1;
    slot_put(t->slots, t->bits, (struct slot){session, remote, target});
    t->count++;
    return session;
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

/* ---- the request filter (reactor thread, lock held) -------------------------------------- */

static struct cached_name *name_find(struct cluster_reply *t, const uint8_t *name, size_t len)
{
    for (int i = 0; i < t->nnames; i++)
        if (t->names[i].len == len && memcmp(t->names[i].name, name, len) == 0)
            return &t->names[i];
    return NULL;
}

static void name_forget(struct cluster_reply *t, struct cached_name *c)
{
    free(c->name);
    t->nnames--;
    *c = t->names[t->nnames];
    t->names[t->nnames] = (struct cached_name){NULL, 0, 0};
}

/* A frame the filter serves: a named call (80) to a cached @name, its payload well-formed,
 * under max_pending. 1 when it went to the service; 0 when the agent must have it (and every
 * frame after it), as it would any frame: its Lua decides and words every refusal. The lock is
 * held for the table only, not while the request is queued: the callee's answer may come back
 * on another worker at once. */
static int filter_frame(struct cluster_reply *t, const uint8_t *body, size_t n)
{
    struct cluster_core_single r;
    char why[64];
    if (cluster_core_single(body, n, &r) != 0 || !r.name || r.session == 0 ||
        seri_check(r.payload, r.size, 0, why, sizeof why) != 0)
        return 0;
    void *msg = r.size ? malloc(r.size) : NULL;
    if (r.size && !msg)
        return 0;
    if (r.size)
        memcpy(msg, r.payload, r.size);
    int session = -1;
    uint32_t target = 0;
    pthread_mutex_lock(&t->lock);
    struct cached_name *c = name_find(t, r.name, r.namelen);
    if (c && !t->closed && t->count + t->lua_inflight < t->max_pending) {
        target = c->handle;
        session = add_locked(t, 0, r.session, target);
    }
    pthread_mutex_unlock(&t->lock);
    if (session < 0) {
        free(msg);
        return 0;
    }
    if (service_send(t->agent, target, PTYPE_LUA, session, msg, r.size) == 0)
        return 1;
    pthread_mutex_lock(&t->lock); /* gone: the agent resolves the name again */
    long i = slot_find(t, session);
    if (i >= 0)
        slot_remove(t, (size_t)i);
    if ((c = name_find(t, r.name, r.namelen)) != NULL && c->handle == target)
        name_forget(t, c);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

/* A socket event for the agent: the leading frames of a DATA chunk that filter_frame serves go
 * to their services from here, the rest (if any) stays in the event for the agent. Only while
 * the agent holds nothing earlier (every chunk it was handed is consumed: caught_up), so no
 * frame overtakes an earlier one; only the reactor thread hands chunks on, so that holds from
 * the test to the end. Returns 1 when the whole event was taken (and freed). */
static int filter_event(struct cluster_reply *t, struct reactor_event *ev, size_t size)
{
    if (size < sizeof *ev || ev->type != REACTOR_DATA || ev->id != t->fd || ev->size <= 0)
        return 0;
    const uint8_t *d = (const uint8_t *)ev->data;
    size_t n = (size_t)ev->size, off = 0;
    pthread_mutex_lock(&t->lock);
    int open = t->filtering > 0 && !t->closed && t->handed == t->caught_up;
    pthread_mutex_unlock(&t->lock);
    while (open && n - off >= 2) { /* a frame: 2-byte big-endian body length, body (B.1) */
        size_t len = (size_t)d[off] << 8 | d[off + 1];
        if (n - off - 2 < len || !filter_frame(t, d + off + 2, len))
            break;
        off += 2 + len;
    }
    if (off == n) {
        free(ev->data);
        free(ev);
        return 1;
    }
    if (off > 0) {
        memmove(ev->data, ev->data + off, n - off);
        ev->size = ev->ud = (int)(n - off);
    }
    pthread_mutex_lock(&t->lock);
    t->handed++;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void cluster_reply_caught_up(struct cluster_reply *t, uint64_t received, size_t lua_inflight)
{
    pthread_mutex_lock(&t->lock);
    if (t->filtering >= 0)
        t->filtering = 1;
    t->caught_up = received;
    t->lua_inflight = lua_inflight;
    pthread_mutex_unlock(&t->lock);
}

void cluster_reply_stop_filter(struct cluster_reply *t)
{
    pthread_mutex_lock(&t->lock);
    t->filtering = -1;
    pthread_mutex_unlock(&t->lock);
}

void cluster_reply_name(struct cluster_reply *t, const char *name, size_t len, uint32_t handle)
{
    pthread_mutex_lock(&t->lock);
    struct cached_name *c = name_find(t, (const uint8_t *)name, len);
    if (c)
        c->handle = handle;
    else if (t->nnames < REPLY_MAX_NAMES && (c = &t->names[t->nnames]) &&
             (c->name = copy_text(name, len)) != NULL) {
        c->len = len;
        c->handle = handle;
        t->nnames++;
    }
    pthread_mutex_unlock(&t->lock);
}

void cluster_reply_flush_names(struct cluster_reply *t)
{
    pthread_mutex_lock(&t->lock);
    while (t->nnames > 0)
        name_forget(t, &t->names[t->nnames - 1]);
    pthread_mutex_unlock(&t->lock);
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

struct cluster_reply *cluster_reply_new(uint32_t agent, int fd, size_t max_pending,
                                        const struct cluster_reply_io *io, void *ud,
                                        const char *failed_with, size_t with_len,
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
    t->max_pending = max_pending;
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
    for (int i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    free(t->slots);
    free(t->failed_with);
    free(t->failed);
    free(t);
}

int cluster_reply_add(struct cluster_reply *t, int session, uint32_t remote, uint32_t target)
{
    pthread_mutex_lock(&t->lock);
    int rc = session < 0 ? -1 : add_locked(t, session, remote, target);
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
    if (type == PTYPE_SOCKET)
        return filter_event(t, data, size);
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

/* new(fd, max_pending, failed_with, failed) -> the table of the calling service (the agent of
 * link fd), installed as its reply hook; raises if the service has one already. */
static int l_new(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    size_t max_pending = (size_t)luaL_checknumber(L, 2);
    size_t wlen, flen;
    const char *with = luaL_checklstring(L, 3, &wlen);
    const char *failed = luaL_checklstring(L, 4, &flen);
    struct reactor *r = socketdriver_reactor();
    struct service *s = host_service(L);
    struct cluster_reply **box = lua_newuserdata(L, sizeof *box);
    if (!r)
        return luaL_error(L, "cluster.reply: no reactor");
    *box = cluster_reply_new(service_handle(s), fd, max_pending, &node_io, r, with, wlen, failed,
                             flen);
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

/* t:call(target, msg, sz, remote) sends the request msg (a lightuserdata, taken) to service
 * `target` under a session of the table, its answer to go to the peer's `remote` session.
 * Returns true; nil when there is no such service (msg freed); false when the table would not
 * take it (closed, too large; msg still the caller's). */
static int l_call(lua_State *L)
{
    struct cluster_reply *t = check_table(L);
    uint32_t target = (uint32_t)luaL_checknumber(L, 2);
    void *msg = lua_touserdata(L, 3);
    lua_Number sz = luaL_checknumber(L, 4);
    uint32_t remote = (uint32_t)luaL_checknumber(L, 5);
    int session =
        sz < 0 || sz >= SERVICE_MAX_MESSAGE ? -1 : cluster_reply_add(t, 0, remote, target);
    if (session < 0) {
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

/* t:caught_up(received, lua_inflight), t:stop_filter(), t:name(name, handle), t:flush_names():
 * the request filter's view of the agent (cluster_reply.h) */
static int l_caught_up(lua_State *L)
{
    cluster_reply_caught_up(check_table(L), (uint64_t)luaL_checknumber(L, 2),
                            (size_t)luaL_checknumber(L, 3));
    return 0;
}

static int l_stop_filter(lua_State *L)
{
    cluster_reply_stop_filter(check_table(L));
    return 0;
}

static int l_name(lua_State *L)
{
    size_t len;
    struct cluster_reply *t = check_table(L);
    const char *name = luaL_checklstring(L, 2, &len);
    cluster_reply_name(t, name, len, (uint32_t)luaL_checknumber(L, 3));
    return 0;
}

static int l_flush_names(lua_State *L)
{
    cluster_reply_flush_names(check_table(L));
    return 0;
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
        {"call", l_call},
        {"count", l_count},
        {"watch", l_watch},
        {"close", l_close},
        {"caught_up", l_caught_up},
        {"stop_filter", l_stop_filter},
        {"name", l_name},
        {"flush_names", l_flush_names},
        {NULL, NULL},
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
