/* cluster_link: the fast path of a cluster call (issue 14). One link per clustersender, under its
 * own mutex: the sender's session counter, the table remote session -> waiting caller of calls
 * that callers framed and wrote on their own worker (link.call), and the link's statistics.
 * Threads: callers' workers (call, push), the reactor thread (the read filter, which answers a
 * single-part reply straight into its caller's queue and hands every other frame to the sender,
 * whole and in order), the sender's worker (everything else). References: the registry (until
 * the sender's userdata is collected), an installed filter, a caller inside call/push. */
#include "cluster_link.h"

#include "clock.h"
#include "cluster_core.h"
#include "host.h"
#include "log.h"
#include "reactor.h"
#include "service.h"
#include "socketdriver.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINK_MAX_BOUNDS 32         /* latency bucket bounds the sender may give */
#define LINK_FRAME_MAX (2 + 65535) /* a u16 length and its body (B.1) */
#define LINK_META "skynet.cluster.link"

/* ---- the frame cutter (pure) ---------------------------------------------------------------- */

static int cutter_add(struct link_cutter *c, const uint8_t *p, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n)
            cap *= 2;
        if (cap > LINK_FRAME_MAX)
            cap = LINK_FRAME_MAX;
        uint8_t *part = realloc(c->part, cap);
        if (!part)
            return -1;
        c->part = part;
        c->cap = cap;
    }
    memcpy(c->part + c->len, p, n);
    c->len += n;
    return 0;
}

static size_t frame_size(const uint8_t *p) { return 2 + ((size_t)p[0] << 8 | p[1]); }

/* Completes the carried frame from data[*off..n). Returns 1 when it is whole, 0 when data ran
 * out first (everything carried), -1 when out of memory. */
static int cutter_complete(struct link_cutter *c, const uint8_t *data, size_t n, size_t *off)
{
    while (*off < n) {
        size_t want = c->len < 2 ? 2 : frame_size(c->part);
        if (c->len == want)
            return 1;
        size_t k = want - c->len < n - *off ? want - c->len : n - *off;
        if (cutter_add(c, data + *off, k) < 0)
            return -1;
        *off += k;
    }
    return c->len >= 2 && c->len == frame_size(c->part);
}

size_t link_cut(struct link_cutter *c, uint8_t *data, size_t n, link_take_fn take, void *ud,
                uint8_t **out)
{
    uint8_t *dst = NULL; /* a new buffer, when a carried frame is passed ahead of data's */
    size_t off = 0, w = 0;
    *out = NULL;
    if (c->len > 0) {
        int whole = cutter_complete(c, data, n, &off);
        if (whole <= 0) {
            free(data);
            return whole < 0 ? (size_t)-1 : 0;
        }
        if (!take(ud, c->part, c->len)) {
            if (!(dst = malloc(c->len + (n - off)))) {
                free(data);
                return (size_t)-1;
            }
            memcpy(dst, c->part, c->len);
            w = c->len;
        }
        c->len = 0;
    }
    uint8_t *base = dst ? dst : data; /* passed frames are packed here; in data, w <= off */
    while (n - off >= 2 && n - off >= frame_size(data + off)) {
        size_t fl = frame_size(data + off);
        if (!take(ud, data + off, fl)) {
            if (base + w != data + off)
                memmove(base + w, data + off, fl);
            w += fl;
        }
        off += fl;
    }
    if (off < n && cutter_add(c, data + off, n - off) < 0)
        w = (size_t)-1;
    if (dst)
        free(data);
    if (w == 0 || w == (size_t)-1) {
        free(base);
        return w;
    }
    *out = base;
    return w;
}

void link_cutter_free(struct link_cutter *c)
{
    free(c->part);
    c->part = NULL;
    c->len = c->cap = 0;
}

/* ---- links ---------------------------------------------------------------------------------- */

struct link_entry {
    struct link_entry *next;
    uint32_t session, caller, addr_id;
    int csession;
    int timeout_ms;
    char handed;       /* a frame of its reply went to the sender, which finishes it */
    uint8_t namelen;   /* 0: the address is addr_id */
    uint64_t t0;       /* clock_hpc() when it was written */
    uint64_t deadline; /* clock_hpc() after which it times out; 0 = none */
    char name[];
};

struct cluster_link {
    pthread_mutex_t lock;
    atomic_int refs;
    uint32_t sender;
    int sock;         /* the connection callers may write to, or -1 (down) */
    uint32_t session; /* the sender's next session (B.4) */
    struct link_entry **slots;
    size_t nslots, count, ndeadline;
    int armed; /* the sender's deadline sweeper runs, or has been asked to */
    char node[64];
    struct link_stats {
        uint64_t requests, pushes, bytes_out, bytes_in, frames_in, pending;
        uint64_t lat_count, lat_buckets[LINK_MAX_BOUNDS + 1];
        double lat_sum_us, last_rtt_us;
        int nbounds;
    } st;
    double bounds[LINK_MAX_BOUNDS];
    struct cluster_link *reg_next;
};

/* The filter on one connection (reactor thread only), holding a reference to its link. */
struct link_filter {
    struct cluster_link *link;
    struct link_cutter cut;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cluster_link *registry; /* every live link, by sender handle */

static void link_unref(struct cluster_link *l)
{
    if (atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (size_t i = 0; i < l->nslots; i++) {
        struct link_entry *e = l->slots[i];
        while (e) {
            struct link_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(l->slots);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static struct cluster_link *registry_find(uint32_t sender)
{
    pthread_mutex_lock(&registry_lock);
    struct cluster_link *l = registry;
    while (l && l->sender != sender)
        l = l->reg_next;
    if (l)
        atomic_fetch_add(&l->refs, 1);
    pthread_mutex_unlock(&registry_lock);
    return l;
}

static void registry_remove(struct cluster_link *l)
{
    pthread_mutex_lock(&registry_lock);
    for (struct cluster_link **p = &registry; *p; p = &(*p)->reg_next) {
        if (*p == l) {
            *p = l->reg_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- the session table (link locked) ---- */

static struct link_entry **slot_of(struct cluster_link *l, uint32_t session)
{
    struct link_entry **p = &l->slots[session & (l->nslots - 1)];
    while (*p && (*p)->session != session)
        p = &(*p)->next;
    return p;
}

static int table_insert(struct cluster_link *l, struct link_entry *e)
{
    if (l->count >= l->nslots) {
        size_t n = l->nslots ? l->nslots * 2 : 64;
        struct link_entry **slots = calloc(n, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < l->nslots; i++) {
            for (struct link_entry *x = l->slots[i], *next; x; x = next) {
                next = x->next;
                x->next = slots[x->session & (n - 1)];
                slots[x->session & (n - 1)] = x;
            }
        }
        free(l->slots);
        l->slots = slots;
        l->nslots = n;
    }
    struct link_entry **p = &l->slots[e->session & (l->nslots - 1)];
    e->next = *p;
    *p = e;
    l->count++;
    l->ndeadline += e->deadline != 0;
    return 0;
}

static struct link_entry *table_find(struct cluster_link *l, uint32_t session)
{
    return l->nslots ? *slot_of(l, session) : NULL;
}

static void table_unlink(struct cluster_link *l, struct link_entry *e)
{
    *slot_of(l, e->session) = e->next;
    e->next = NULL;
    l->count--;
    l->ndeadline -= e->deadline != 0;
}

static uint32_t next_session(struct cluster_link *l)
{
    uint32_t s = l->session;
    l->session = s >= CLUSTER_MAX_SESSION ? 1 : s + 1;
    return s;
}

static void record_latency(struct cluster_link *l, double us)
{
    int i = 0;
    while (i < l->st.nbounds && us > l->bounds[i])
        i++;
    l->st.lat_buckets[i]++;
    l->st.lat_count++;
    l->st.lat_sum_us += us;
    l->st.last_rtt_us = us;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the read filter (reactor thread) ---- */

/* A whole frame: a single-part ok reply (B.5 kind 01) to a call in the table answers its caller
 * here; any other frame of such a call marks it handed (the sender finishes it); the rest pass. */
static int filter_take(void *ud, const uint8_t *frame, size_t size)
{
    struct cluster_link *l = ud;
    const uint8_t *b = frame + 2;
    if (size < 2 + 5 || b[4] > 4)
        return 0; /* malformed: the sender's reader fails the connection */
    pthread_mutex_lock(&l->lock);
    struct link_entry *e = table_find(l, get_u32(b));
    if (!e || b[4] != 0x01 || e->handed) {
        if (e)
            e->handed = 1;
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    table_unlink(l, e);
    l->st.bytes_in += size;
    l->st.frames_in++;
    record_latency(l, (double)(clock_hpc() - e->t0) / 1000.0);
    pthread_mutex_unlock(&l->lock);
    size_t n = size - 7;
    void *payload = n ? malloc(n) : NULL;
    if (n && !payload) {
        service_send(l->sender, e->caller, PTYPE_ERROR, e->csession, NULL, 0);
    } else {
        if (n)
            memcpy(payload, b + 5, n);
        service_send(l->sender, e->caller, PTYPE_RESPONSE, e->csession, payload, n);
    }
    free(e);
    return 1;
}

static size_t filter_read(void *ud, int id, char *data, size_t size, char **out)
{
    struct link_filter *f = ud;
    struct cluster_link *l = f->link;
    if (!data) { /* the socket is going away: callers must not write to its id any more */
        pthread_mutex_lock(&l->lock);
        if (l->sock == id)
            l->sock = -1;
        pthread_mutex_unlock(&l->lock);
        link_cutter_free(&f->cut);
        link_unref(l);
        free(f);
        return 0;
    }
    size_t n = link_cut(&f->cut, (uint8_t *)data, size, filter_take, l, (uint8_t **)out);
    if (n == (size_t)-1) {
        log_write(l->sender, LOG_ERROR, "cluster link: out of memory, input of socket %d lost", id);
        return 0;
    }
    return n;
}

/* ---- Lua: the caller's side ---- */

/* The address at i: numeric (0 .. 2^32-1) or a name of 1..255 bytes; 0 when it is neither. */
static int get_address(lua_State *L, int i, uint32_t *id, const char **name, size_t *namelen)
{
    *name = NULL;
    *namelen = 0;
    if (lua_type(L, i) == LUA_TSTRING) {
        *name = lua_tolstring(L, i, namelen);
        return *namelen >= 1 && *namelen <= CLUSTER_MAX_NAME;
    }
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
    double d = lua_tonumber(L, i);
    if (!(d >= 0 && d <= 4294967295.0) || (double)(uint32_t)d != d)
        return 0;
    *id = (uint32_t)d;
    return 1;
}

/* The message at i: a lightuserdata and its size at i + 1 (skynet.pack's), or nil and 0. */
static const void *check_message(lua_State *L, int i, size_t *n)
{
    double sz = luaL_optnumber(L, i + 1, 0);
    const void *msg = lua_touserdata(L, i);
    if (!(sz >= 0 && sz <= CLUSTER_MAX_PAYLOAD) ||
        (lua_type(L, i) != LUA_TLIGHTUSERDATA && !(lua_isnil(L, i) && sz == 0)) || (!msg && sz > 0))
        luaL_error(L, "cluster link: message must be a lightuserdata and its size");
    *n = (size_t)sz;
    return msg;
}

/* Frames the message and writes it to the link's connection, registering `e` first (when given)
 * under its session. The link is locked and up. Returns 0, or -1 (nothing sent or kept). */
static int link_write(struct cluster_link *l, struct link_entry *e, uint32_t id, const char *name,
                      size_t namelen, const void *msg, size_t n)
{
    uint8_t *frame = malloc(2 + 6 + namelen + 4 + n);
    if (!frame)
        return -1;
    uint32_t session = e ? next_session(l) : 0;
    size_t len = cluster_core_frame_single(frame, id, name, namelen, session, msg, n);
    if (len == 0 || (e && (e->session = session, table_insert(l, e) < 0))) {
        free(frame);
        return -1;
    }
    if (reactor_send(socketdriver_reactor(), l->sock, frame, len) < 0) {
        if (e)
            table_unlink(l, e);
        return -1;
    }
    l->st.bytes_out += len;
    if (e)
        l->st.requests++;
    else
        l->st.pushes++;
    return 0;
}

/* call(sender, csession, caller, addr, msg, sz [, timeout_ms]) -> true, arm | false
 * Writes the request on this worker when the sender's link is up and the message is a single
 * request; the reply comes to `caller` as a RESPONSE (or ERROR) from `sender` with `csession`.
 * On true msg is freed, and arm says the sender's deadline sweeper must be woken. On false
 * nothing was sent and msg is still the caller's. */
static int l_call(lua_State *L)
{
    uint32_t sender = (uint32_t)luaL_checknumber(L, 1), id = 0;
    int csession = (int)luaL_checkinteger(L, 2);
    uint32_t caller = (uint32_t)luaL_checknumber(L, 3);
    const char *name;
    size_t namelen, n;
    void *msg = (void *)check_message(L, 5, &n);
    double timeout = luaL_optnumber(L, 7, 0);
    struct cluster_link *l;
    if (!get_address(L, 4, &id, &name, &namelen) || n >= CLUSTER_CHUNK || !socketdriver_reactor() ||
        !(l = registry_find(sender))) {
        lua_pushboolean(L, 0);
        return 1;
    }
    struct link_entry *e = malloc(sizeof *e + namelen);
    int ok = 0, arm = 0;
    if (e) {
        *e = (struct link_entry){.caller = caller,
                                 .csession = csession,
                                 .addr_id = id,
                                 .namelen = (uint8_t)namelen,
                                 .timeout_ms = (int)timeout};
        memcpy(e->name, name ? name : "", namelen);
        e->t0 = clock_hpc();
        e->deadline = timeout > 0 ? e->t0 + (uint64_t)(timeout * 1e6) : 0;
        pthread_mutex_lock(&l->lock);
        ok = l->sock >= 0 && link_write(l, e, id, name, namelen, msg, n) == 0;
        if (ok && e->deadline && !l->armed)
            arm = l->armed = 1;
        pthread_mutex_unlock(&l->lock);
    }
    link_unref(l);
    if (!ok) {
        free(e);
        lua_pushboolean(L, 0);
        return 1;
    }
    free(msg);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, arm);
    return 2;
}

/* push(sender, addr, msg, sz) -> true (written, msg freed) | false (nothing sent, msg kept) */
static int l_push(lua_State *L)
{
    uint32_t sender = (uint32_t)luaL_checknumber(L, 1), id = 0;
    const char *name;
    size_t namelen, n;
    void *msg = (void *)check_message(L, 3, &n);
    struct cluster_link *l;
    int ok = 0;
    if (get_address(L, 2, &id, &name, &namelen) && n < CLUSTER_CHUNK && socketdriver_reactor() &&
        (l = registry_find(sender))) {
        pthread_mutex_lock(&l->lock);
        ok = l->sock >= 0 && link_write(l, NULL, id, name, namelen, msg, n) == 0;
        pthread_mutex_unlock(&l->lock);
        link_unref(l);
    }
    if (ok)
        free(msg);
    lua_pushboolean(L, ok);
    return 1;
}

/* valid(addr, sz) -> whether packrequest/packpush accept this address and size (B.2) */
static int l_valid(lua_State *L)
{
    uint32_t id;
    const char *name;
    size_t namelen;
    double n = luaL_optnumber(L, 2, 0);
    lua_pushboolean(L,
                    get_address(L, 1, &id, &name, &namelen) && n >= 0 && n <= CLUSTER_MAX_PAYLOAD);
    return 1;
}

/* ---- Lua: the sender's side (methods of the userdata link.new returns) ---- */

static struct cluster_link *check_link(lua_State *L)
{
    struct cluster_link **p = luaL_checkudata(L, 1, LINK_META);
    if (!*p)
        luaL_error(L, "cluster link is closed");
    return *p;
}

/* {session=, caller=, csession=, addr=, timeout=} for e, on the stack. */
static void push_entry(lua_State *L, const struct link_entry *e)
{
    lua_createtable(L, 0, 6);
    lua_pushnumber(L, e->session);
    lua_setfield(L, -2, "session");
    lua_pushnumber(L, e->caller);
    lua_setfield(L, -2, "caller");
    lua_pushinteger(L, e->csession);
    lua_setfield(L, -2, "csession");
    if (e->namelen)
        lua_pushlstring(L, e->name, e->namelen);
    else
        lua_pushnumber(L, e->addr_id);
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, e->timeout_ms);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (double)e->t0);
    lua_setfield(L, -2, "t0");
}

/* Takes the entries `pick` selects out of the table (link locked) into a list. */
static struct link_entry *take_entries(struct cluster_link *l,
                                       int (*pick)(struct link_entry *, uint64_t), uint64_t now)
{
    struct link_entry *list = NULL;
    for (size_t i = 0; i < l->nslots; i++) {
        struct link_entry **p = &l->slots[i];
        while (*p) {
            struct link_entry *e = *p;
            if (pick(e, now)) {
                *p = e->next;
                l->count--;
                l->ndeadline -= e->deadline != 0;
                e->next = list;
                list = e;
            } else {
                p = &e->next;
            }
        }
    }
    return list;
}

static int pick_all(struct link_entry *e, uint64_t now)
{
    (void)e;
    (void)now;
    return 1;
}

static int pick_expired(struct link_entry *e, uint64_t now)
{
    return e->deadline && now >= e->deadline;
}

/* Pushes the list as an array of entry tables and frees it. */
static void push_list(lua_State *L, struct link_entry *list)
{
    int i = 0;
    lua_newtable(L);
    while (list) {
        struct link_entry *next = list->next;
        push_entry(L, list);
        lua_rawseti(L, -2, ++i);
        free(list);
        list = next;
    }
}

/* link:down() -> entries: the link goes down and every call waiting on it is taken out (the
 * sender answers them). Later frames of theirs pass to the sender as unknown sessions. */
static int l_down(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    pthread_mutex_lock(&l->lock);
    l->sock = -1;
    struct link_entry *list = take_entries(l, pick_all, 0);
    pthread_mutex_unlock(&l->lock);
    push_list(L, list);
    return 1;
}

static int l_up(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    int id = (int)luaL_checkinteger(L, 2);
    struct reactor *r = socketdriver_reactor();
    struct link_filter *f = calloc(1, sizeof *f);
    int ok = 0;
    if (r && f) {
        f->link = l;
        atomic_fetch_add(&l->refs, 1);
        pthread_mutex_lock(&l->lock); /* a close right after still finds sock == id */
        ok = reactor_set_filter(r, id, filter_read, f) == 0;
        if (ok)
            l->sock = id;
        pthread_mutex_unlock(&l->lock);
        if (!ok)
            atomic_fetch_sub(&l->refs, 1); /* never the last: the registry holds one */
    }
    if (!ok)
        free(f);
    lua_pushboolean(L, ok);
    return 1;
}

/* link:expired() -> entries past their deadline (taken out), more: whether any deadline is
 * left; when none is, the sweeper is disarmed (the next call with a deadline re-arms it). */
static int l_expired(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    pthread_mutex_lock(&l->lock);
    struct link_entry *list = take_entries(l, pick_expired, clock_hpc());
    int more = l->ndeadline > 0;
    if (!more)
        l->armed = 0;
    pthread_mutex_unlock(&l->lock);
    push_list(L, list);
    lua_pushboolean(L, more);
    return 2;
}

/* link:claim(session, final) -> entry | nil: the call a frame the sender got belongs to; with
 * final it is taken out. */
static int l_claim(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    uint32_t session = (uint32_t)luaL_checknumber(L, 2);
    int final = lua_toboolean(L, 3);
    union {
        struct link_entry e;
        char room[sizeof(struct link_entry) + CLUSTER_MAX_NAME];
    } copy;
    pthread_mutex_lock(&l->lock);
    struct link_entry *e = table_find(l, session);
    if (e && final)
        table_unlink(l, e);
    if (e)
        memcpy(&copy, e, sizeof *e + e->namelen);
    pthread_mutex_unlock(&l->lock);
    if (!e)
        return 0;
    if (final)
        free(e);
    push_entry(L, &copy.e); /* with the lock released: Lua may raise */
    return 1;
}

static int l_session(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    pthread_mutex_lock(&l->lock);
    uint32_t s = lua_toboolean(L, 2) ? l->session : next_session(l);
    pthread_mutex_unlock(&l->lock);
    lua_pushnumber(L, s);
    return 1;
}

/* link:latency(us) records a call the sender answered; link:rtt(us) a heartbeat's round trip */
static int l_latency(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    double us = luaL_checknumber(L, 2);
    pthread_mutex_lock(&l->lock);
    record_latency(l, us);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static int l_rtt(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    double us = luaL_checknumber(L, 2);
    pthread_mutex_lock(&l->lock);
    l->st.last_rtt_us = us;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static void set_number(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* link:stats() -> {requests, pushes, bytes_out, bytes_in, frames_in, pending, rtt_us,
 * latency = {count, sum_us, buckets}} of what went through the link */
static int l_stats(lua_State *L)
{
    struct cluster_link *l = check_link(L);
    struct link_stats c;
    pthread_mutex_lock(&l->lock);
    l->st.pending = l->count;
    c = l->st;
    pthread_mutex_unlock(&l->lock);
    lua_createtable(L, 0, 8);
    set_number(L, "requests", (double)c.requests);
    set_number(L, "pushes", (double)c.pushes);
    set_number(L, "bytes_out", (double)c.bytes_out);
    set_number(L, "bytes_in", (double)c.bytes_in);
    set_number(L, "frames_in", (double)c.frames_in);
    set_number(L, "pending", (double)c.pending);
    if (c.last_rtt_us > 0)
        set_number(L, "rtt_us", c.last_rtt_us);
    lua_createtable(L, 0, 3);
    set_number(L, "count", (double)c.lat_count);
    set_number(L, "sum_us", c.lat_sum_us);
    lua_createtable(L, c.nbounds + 1, 0);
    for (int i = 0; i <= c.nbounds; i++) {
        lua_pushnumber(L, (double)c.lat_buckets[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "buckets");
    lua_setfield(L, -2, "latency");
    return 1;
}

/* Answers every call still waiting with an error (the sender is gone), then drops the link. */
static int l_gc(lua_State *L)
{
    struct cluster_link **p = luaL_checkudata(L, 1, LINK_META);
    struct cluster_link *l = *p;
    if (!l)
        return 0;
    *p = NULL;
    registry_remove(l);
    pthread_mutex_lock(&l->lock);
    l->sock = -1;
    struct link_entry *list = take_entries(l, pick_all, 0);
    pthread_mutex_unlock(&l->lock);
    while (list) {
        struct link_entry *next = list->next;
        char text[128];
        int k = snprintf(text, sizeof text, "cluster %s: the cluster sender exited", l->node);
        char *copy = malloc((size_t)k);
        if (copy)
            memcpy(copy, text, (size_t)k);
        service_send(l->sender, list->caller, PTYPE_ERROR, list->csession, copy, copy ? k : 0);
        free(list);
        list = next;
    }
    link_unref(l);
    return 0;
}

/* new(node, bounds) -> link: the calling service's (its sender's) link, found by callers through
 * its handle. bounds: the latency buckets' upper bounds in µs, ascending. */
static int l_new(lua_State *L)
{
    const char *node = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int nb = (int)lua_objlen(L, 2);
    if (nb > LINK_MAX_BOUNDS)
        return luaL_error(L, "cluster link: at most %d latency bounds", LINK_MAX_BOUNDS);
    uint32_t self = service_handle(host_service(L));
    struct cluster_link *old = registry_find(self);
    if (old) {
        link_unref(old);
        return luaL_error(L, "cluster link: this service has one already");
    }
    struct cluster_link **p = lua_newuserdata(L, sizeof *p);
    *p = NULL;
    struct cluster_link *l = calloc(1, sizeof *l);
    if (!l)
        return luaL_error(L, "cluster link: out of memory");
    pthread_mutex_init(&l->lock, NULL);
    atomic_init(&l->refs, 1);
    l->sender = self;
    l->sock = -1;
    l->session = 1;
    snprintf(l->node, sizeof l->node, "%s", node);
    for (int i = 0; i < nb; i++) {
        lua_rawgeti(L, 2, i + 1);
        l->bounds[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    l->st.nbounds = nb;
    *p = l;
    luaL_getmetatable(L, LINK_META);
    lua_setmetatable(L, -2);
    pthread_mutex_lock(&registry_lock);
    l->reg_next = registry;
    registry = l;
    pthread_mutex_unlock(&registry_lock);
    return 1;
}

int luaopen_cluster_link(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"up", l_up},           {"down", l_down},       {"expired", l_expired}, {"claim", l_claim},
        {"session", l_session}, {"latency", l_latency}, {"rtt", l_rtt},         {"stats", l_stats},
        {"close", l_gc},        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"new", l_new}, {"call", l_call}, {"push", l_push}, {"valid", l_valid}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, LINK_META)) {
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_createtable(L, 0, 9);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 5);
    luaL_setfuncs(L, funcs, 0);
    lua_pushinteger(L, CLUSTER_CHUNK);
    lua_setfield(L, -2, "CHUNK");
    return 1;
}
