/* cluster_core: packs and unpacks cluster packets (wire-format.md Part B) for the Lua services.
 * Stateless except the process-wide max_message cap, the node-wide budget of bytes held by
 * unfinished multi-part requests (both atomics) and the node name (computed once), so any thread
 * may call it. Ownership: packrequest/packpush/packresponse/append take a
 * lightuserdata msg and free() it on every path, errors included; the buffers returned by
 * unpackrequest and concat are malloc'd and belong to the caller (NULL when empty: free() it). */
#include "cluster_core.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLUSTER_MAX_HEAD (1 + 1 + CLUSTER_MAX_NAME + 4 + 4)

static atomic_size_t max_message = CLUSTER_DEFAULT_MAX;

void cluster_core_set_max_message(size_t bytes)
{
    atomic_store_explicit(&max_message, bytes, memory_order_relaxed);
}

size_t cluster_core_max_message(void)
{
    return atomic_load_explicit(&max_message, memory_order_relaxed);
}

/* Bytes held by every inbound link's unfinished multi-part requests, against a node-wide cap
 * ([cluster] max_assembly_total). Agents reserve before they keep a part and release what they
 * held when an assembly completes, is dropped or the link closes. */
static atomic_size_t assembly_held, assembly_cap = SIZE_MAX;

/* Reserve n bytes; 0, or -1 (nothing reserved) when that would pass the cap. */
static int cluster_core_assembly_reserve(size_t n)
{
    size_t cap = atomic_load_explicit(&assembly_cap, memory_order_relaxed);
    size_t old = atomic_fetch_add_explicit(&assembly_held, n, memory_order_relaxed);
    if (old + n > cap || old + n < old) {
        atomic_fetch_sub_explicit(&assembly_held, n, memory_order_relaxed);
        return -1;
    }
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

struct bytes {
    const uint8_t *p;
    size_t n;
};

/* A request address: a numeric handle, or a name when name != NULL. */
struct address {
    uint32_t id;
    const char *name;
    size_t namelen;
};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = v >> 24;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Argument i as an integral number in [lo, hi] (both within +-2^53). Returns 0, or -1 when it
 * is not a number, not integral or out of range. Never raises. */
static int get_int(lua_State *L, int i, double lo, double hi, int64_t *out)
{
    double d;
    if (lua_type(L, i) != LUA_TNUMBER)
        return -1;
    d = lua_tonumber(L, i);
    if (!(d >= lo && d <= hi) || (double)(int64_t)d != d) /* NaN fails the first test */
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* Raise a Lua error with exactly this text. Unlike luaL_error under LuaJIT, no "chunk:line: "
 * of the Lua caller is prepended, so the texts match Skynet's (vectors) on every call path. */
static int core_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

/* Raise "<what> <value>" for a bad numeric argument (the vectors' "Invalid request session 0"). */
static int error_value(lua_State *L, const char *what, int i)
{
    if (lua_type(L, i) == LUA_TNUMBER)
        return core_error(L, "%s %f", what, lua_tonumber(L, i));
    return core_error(L, "%s (%s)", what, luaL_typename(L, i));
}

/* The message at argument i: a string (a size argument after it is ignored), a lightuserdata
 * followed by its size, or nil (empty). Raises on anything else. */
static struct bytes check_bytes(lua_State *L, int i, const char *fn)
{
    struct bytes b = {NULL, 0};
    int64_t n = 0;
    switch (lua_type(L, i)) {
    case LUA_TSTRING:
        b.p = (const uint8_t *)lua_tolstring(L, i, &b.n);
        break;
    case LUA_TLIGHTUSERDATA:
        b.p = lua_touserdata(L, i);
        if (get_int(L, i + 1, 0, 9007199254740992.0, &n) != 0 || (b.p == NULL && n > 0))
            core_error(L, "%s: invalid message size", fn);
        b.n = (size_t)n;
        break;
    case LUA_TNIL:
        break;
    default:
        core_error(L, "%s: message must be a string or lightuserdata, got %s", fn,
                   luaL_typename(L, i));
    }
    return b;
}

static struct address check_address(lua_State *L, int i)
{
    struct address a = {0, NULL, 0};
    int64_t id = 0;
    if (lua_type(L, i) == LUA_TSTRING) {
        a.name = lua_tolstring(L, i, &a.namelen);
        if (a.namelen < 1 || a.namelen > CLUSTER_MAX_NAME) {
            lua_pushliteral(L, "name length is invalid, must be between 1 and 255 characters: ");
            lua_pushvalue(L, i);
            lua_concat(L, 2);
            lua_error(L);
        }
    } else if (get_int(L, i, 0, UINT32_MAX, &id) == 0) {
        a.id = (uint32_t)id;
    } else {
        error_value(L, "Invalid request address", i);
    }
    return a;
}

/* Write one frame, u16 BE body length + head + chunk, to out (2 + hlen + clen bytes). */
static void put_frame(uint8_t *out, const uint8_t *head, size_t hlen, const uint8_t *chunk,
                      size_t clen)
{
    size_t body = hlen + clen;
    out[0] = (uint8_t)(body >> 8);
    out[1] = (uint8_t)(body & 0xff);
    memcpy(out + 2, head, hlen);
    if (clen > 0)
        memcpy(out + 2 + hlen, chunk, clen);
}

void *cluster_core_frame(const uint8_t *head, size_t hlen, const uint8_t *chunk, size_t clen,
                         size_t *size)
{
    uint8_t *frame = malloc(2 + hlen + clen);
    if (frame) {
        put_frame(frame, head, hlen, chunk, clen);
        *size = 2 + hlen + clen;
    }
    return frame;
}

/* Push one frame as a Lua string. Callers keep the body within CLUSTER_MAX_BODY; the copy goes
 * through the stack so Lua makes a single string. */
static void push_frame(lua_State *L, const uint8_t *head, size_t hlen, const uint8_t *chunk,
                       size_t clen)
{
    uint8_t frame[2 + CLUSTER_MAX_BODY];
    put_frame(frame, head, hlen, chunk, clen);
    lua_pushlstring(L, (const char *)frame, 2 + hlen + clen);
}

/* Hand the continuation frames of msg to fn: chunks of CLUSTER_CHUNK bytes, kind `more` for
 * all but the last, `last` for the last. Requests put the kind before the session (B.3),
 * responses after it (B.5). Returns 0, or -1 when fn stopped. */
static int each_part(struct bytes msg, uint32_t session, int response, uint8_t more, uint8_t last,
                     cluster_core_frame_fn fn, void *ud)
{
    size_t off, n;
    uint8_t head[5];
    for (off = 0; off < msg.n; off += n) {
        n = msg.n - off < CLUSTER_CHUNK ? msg.n - off : CLUSTER_CHUNK;
        head[response ? 4 : 0] = off + n < msg.n ? more : last;
        put_u32(head + (response ? 0 : 1), session);
        if (fn(ud, head, 5, msg.p + off, n) != 0)
            return -1;
    }
    return 0;
}

/* Frames into Lua: a string pushed, or stored at t[at++] of the table on top when `table`. */
struct lua_frames {
    lua_State *L;
    int table, at;
};

static int lua_frame(void *ud, const uint8_t *head, size_t hlen, const uint8_t *chunk, size_t clen)
{
    struct lua_frames *f = ud;
    push_frame(f->L, head, hlen, chunk, clen);
    if (f->table)
        lua_rawseti(f->L, -2, f->at++);
    return 0;
}

static int count_parts(size_t n) { return (int)((n + CLUSTER_CHUNK - 1) / CLUSTER_CHUNK); }

/* Push a malloc'd copy of n bytes as a lightuserdata (NULL when n == 0). Nothing may raise
 * between this and the return to Lua, or the copy would leak. */
static void push_buffer(lua_State *L, const uint8_t *p, size_t n)
{
    void *copy = NULL;
    if (n > 0) {
        copy = malloc(n);
        if (copy == NULL)
            core_error(L, "cluster.core: out of memory (%f bytes)", (double)n);
        memcpy(copy, p, n);
    }
    lua_pushlightuserdata(L, copy);
}

/* ---- ownership guard -------------------------------------------------------------------- */

/* Run the body (upvalue 1) with all the arguments under lua_pcall, then free the lightuserdata
 * at argument `own`, then return the body's results or re-raise its error. So an owned buffer
 * is freed exactly once, whatever the body raises (out of memory included). */
static int run_owning(lua_State *L, int own)
{
    void *owned = lua_type(L, own) == LUA_TLIGHTUSERDATA ? lua_touserdata(L, own) : NULL;
    int status;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    free(owned);
    if (status != 0)
        return lua_error(L);
    return lua_gettop(L);
}

static int own_arg2(lua_State *L) { return run_owning(L, 2); }

static int own_arg3(lua_State *L) { return run_owning(L, 3); }

/* ---- packing ---------------------------------------------------------------------------- */

/* Write kind, address and session (B.2); return the head length. */
static size_t put_request_head(uint8_t *h, uint8_t kind, const struct address *a, uint32_t session)
{
    size_t n;
    if (a->name) {
        h[0] = kind | 0x80;
        h[1] = (uint8_t)a->namelen;
        memcpy(h + 2, a->name, a->namelen);
        n = 2 + a->namelen;
    } else {
        h[0] = kind;
        put_u32(h + 1, a->id);
        n = 5;
    }
    put_u32(h + n, session);
    return n + 4;
}

size_t cluster_core_frame_single(uint8_t *out, uint32_t id, const char *name, size_t namelen,
                                 uint32_t session, const uint8_t *msg, size_t n)
{
    struct address a = {id, name, namelen};
    size_t h, body;
    if (n >= CLUSTER_CHUNK || (name && (namelen < 1 || namelen > CLUSTER_MAX_NAME)))
        return 0;
    h = put_request_head(out + 2, 0x00, &a, session);
    body = h + n;
    out[0] = (uint8_t)(body >> 8);
    out[1] = (uint8_t)(body & 0xff);
    if (n > 0)
        memcpy(out + 2 + h, msg, n);
    return 2 + body;
}

/* (addr, session, msg [, sz]) -> frame, next_session, padding|nil  (B.2-B.4) */
static int pack_request(lua_State *L, int push)
{
    struct address a = check_address(L, 1);
    int64_t s = 0;
    struct bytes msg;
    uint32_t session, next;
    uint8_t head[CLUSTER_MAX_HEAD];
    size_t h;

    if (get_int(L, 2, 1, CLUSTER_MAX_SESSION, &s) != 0)
        error_value(L, "Invalid request session", 2);
    session = (uint32_t)s;
    next = session == CLUSTER_MAX_SESSION ? 1 : session + 1;
    msg = check_bytes(L, 3, push ? "packpush" : "packrequest");
    if (msg.n > CLUSTER_MAX_PAYLOAD)
        return core_error(L, "Invalid request size %f", (double)msg.n);

    if (msg.n < CLUSTER_CHUNK) {
        /* A single push carries session 0 and leaves the counter alone (B.4). */
        h = put_request_head(head, 0x00, &a, push ? 0 : session);
        push_frame(L, head, h, msg.p, msg.n);
        lua_pushinteger(L, push ? session : next);
        lua_pushnil(L);
        return 3;
    }
    h = put_request_head(head, push ? 0x41 : 0x01, &a, session);
    put_u32(head + h, (uint32_t)msg.n);
    push_frame(L, head, h + 4, NULL, 0);
    lua_pushinteger(L, next);
    lua_createtable(L, count_parts(msg.n), 0);
    struct lua_frames f = {L, 1, 1};
    each_part(msg, session, 0, 0x02, 0x03, lua_frame, &f);
    return 3;
}

static int l_packrequest(lua_State *L) { return pack_request(L, 0); }

static int l_packpush(lua_State *L) { return pack_request(L, 1); }

int cluster_core_response(uint32_t session, int ok, const void *msg, size_t n,
                          cluster_core_frame_fn fn, void *ud)
{
    struct bytes b = {msg, n};
    uint8_t head[9];
    put_u32(head, session);
    if (!ok || n <= CLUSTER_CHUNK) {
        /* Error texts are truncated, never split. */
        head[4] = ok ? 0x01 : 0x00;
        return fn(ud, head, 5, b.p, n < CLUSTER_CHUNK ? n : CLUSTER_CHUNK) == 0 ? 1 : -1;
    }
    if (n > CLUSTER_MAX_PAYLOAD)
        return -1;
    head[4] = 0x02;
    put_u32(head + 5, (uint32_t)n);
    if (fn(ud, head, 9, NULL, 0) != 0 || each_part(b, session, 1, 0x03, 0x04, fn, ud) != 0)
        return -1;
    return 1 + count_parts(n);
}

/* (session, ok, msg [, sz]) -> frame | {frames...}  (B.5) */
static int l_packresponse(lua_State *L)
{
    int64_t session = 0;
    int ok = lua_toboolean(L, 2);
    struct bytes msg;
    struct lua_frames f = {L, 0, 1};

    if (get_int(L, 1, 0, UINT32_MAX, &session) != 0)
        error_value(L, "Invalid response session", 1);
    msg = check_bytes(L, 3, "packresponse");
    if (ok && msg.n > CLUSTER_CHUNK) {
        if (msg.n > CLUSTER_MAX_PAYLOAD)
            return core_error(L, "Invalid response size %f", (double)msg.n);
        lua_createtable(L, 1 + count_parts(msg.n), 0);
        f.table = 1;
    }
    cluster_core_response((uint32_t)session, ok, msg.p, msg.n, lua_frame, &f);
    return 1;
}

/* (tag) -> frame */
static int l_packtrace(lua_State *L)
{
    size_t n;
    const char *tag = luaL_checklstring(L, 1, &n);
    uint8_t kind = 0x04;
    if (n > CLUSTER_CHUNK)
        return core_error(L, "trace tag is too long : %f", (double)n);
    push_frame(L, &kind, 1, (const uint8_t *)tag, n);
    return 1;
}

/* ---- unpacking -------------------------------------------------------------------------- */

/* Push the address of a request body (u32 at offset 1, or n u8 + name when bit 7 of the kind
 * is set) if the body also holds `tail` bytes after it. Returns the offset after the address,
 * or 0 (nothing pushed) when the body is too short. */
static size_t push_address(lua_State *L, struct bytes b, size_t tail)
{
    if (b.p[0] & 0x80) {
        if (b.n < 2 || b.n - 2 < (size_t)b.p[1] + tail)
            return 0;
        lua_pushlstring(L, (const char *)b.p + 2, b.p[1]);
        return 2 + (size_t)b.p[1];
    }
    if (b.n < 5 + tail)
        return 0;
    lua_pushinteger(L, get_u32(b.p + 1));
    return 5;
}

int cluster_core_single(const uint8_t *p, size_t n, struct cluster_core_single *r)
{
    size_t off;
    if (n < 1 || (p[0] & 0x7f) != 0x00)
        return -1;
    if (p[0] & 0x80) {
        if (n < 2 || n - 2 < (size_t)p[1] + 4)
            return -1;
        r->name = p + 2;
        r->namelen = p[1];
        r->id = 0;
        off = 2 + (size_t)p[1];
    } else {
        if (n < 9)
            return -1;
        r->name = NULL;
        r->namelen = 0;
        r->id = get_u32(p + 1);
        off = 5;
    }
    r->session = get_u32(p + off);
    r->payload = p + off + 4;
    r->size = n - off - 4;
    return 0;
}

/* 00/80 -> addr, session, buf, sz [, nil, true when session == 0 (push)] */
static int unpack_single(lua_State *L, struct bytes b)
{
    struct cluster_core_single r;
    if (cluster_core_single(b.p, b.n, &r) != 0)
        return core_error(L, "Invalid cluster message (size=%f)", (double)b.n);
    if (r.name)
        lua_pushlstring(L, (const char *)r.name, r.namelen);
    else
        lua_pushinteger(L, r.id);
    lua_pushinteger(L, r.session);
    push_buffer(L, r.payload, r.size);
    lua_pushinteger(L, (lua_Integer)r.size);
    if (r.session != 0)
        return 4;
    lua_pushnil(L);
    lua_pushboolean(L, 1);
    return 6;
}

/* 01/41/81/c1 -> addr, session, nil, total, true, is_push */
static int unpack_header(lua_State *L, struct bytes b)
{
    size_t off, max = cluster_core_max_message();
    uint32_t total;
    if (!(b.p[0] & 0x80) && b.n != 13)
        return core_error(L, "Invalid cluster message size %f (multi req must be 13)", (double)b.n);
    off = push_address(L, b, 8);
    if (off == 0)
        return core_error(L, "Invalid cluster message (size=%f)", (double)b.n);
    total = get_u32(b.p + off + 4);
    /* skyjet: the total sizes an assembly buffer later, so it is bounded here (B.10). */
    if (total == 0)
        return core_error(L, "Invalid cluster message: declared total 0");
    if (total > max)
        return core_error(L, "Invalid cluster message: declared total %f exceeds max_message %f",
                          (double)total, (double)max);
    lua_pushinteger(L, get_u32(b.p + off));
    lua_pushnil(L);
    lua_pushinteger(L, total);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, (b.p[0] & 0x40) != 0);
    return 6;
}

/* 02/03 -> false, session, buf, sz, more (true for 02) */
static int unpack_part(lua_State *L, struct bytes b)
{
    if (b.n < 5)
        return core_error(L, "Invalid cluster multi part message");
    lua_pushboolean(L, 0);
    lua_pushinteger(L, get_u32(b.p + 1));
    push_buffer(L, b.p + 5, b.n - 5);
    lua_pushinteger(L, (lua_Integer)(b.n - 5));
    lua_pushboolean(L, b.p[0] == 0x02);
    return 5;
}

/* (body [, sz]) -> see unpack_single/unpack_header/unpack_part; 04 -> tag. Raises on bad input. */
static int l_unpackrequest(lua_State *L)
{
    struct bytes b = check_bytes(L, 1, "unpackrequest");
    if (b.n == 0)
        return core_error(L, "Invalid req package. size == 0");
    switch (b.p[0]) {
    case 0x00:
    case 0x80:
        return unpack_single(L, b);
    case 0x01:
    case 0x41:
    case 0x81:
    case 0xc1:
        return unpack_header(L, b);
    case 0x02:
    case 0x03:
        return unpack_part(L, b);
    case 0x04:
        lua_pushlstring(L, (const char *)b.p + 1, b.n - 1);
        return 1;
    default:
        return core_error(L, "Invalid req package type %d", (int)b.p[0]);
    }
}

/* (body [, sz]) -> session, ok, data | session, true, total, true (02) | session, true, data,
 * true (03) | session, true, data (04). Malformed bodies, and a 02 whose total is 0 or above
 * max_message, return nothing: the caller treats that as a protocol failure (B.8). */
static int l_unpackresponse(lua_State *L)
{
    struct bytes b = check_bytes(L, 1, "unpackresponse");
    uint32_t total;
    if (b.n < 5)
        return 0;
    switch (b.p[4]) {
    case 0x00:
    case 0x01:
    case 0x03:
    case 0x04:
        lua_pushinteger(L, get_u32(b.p));
        lua_pushboolean(L, b.p[4] != 0x00);
        lua_pushlstring(L, (const char *)b.p + 5, b.n - 5);
        if (b.p[4] != 0x03)
            return 3;
        lua_pushboolean(L, 1);
        return 4;
    case 0x02:
        if (b.n != 9)
            return 0;
        total = get_u32(b.p + 5);
        if (total == 0 || total > cluster_core_max_message())
            return 0;
        lua_pushinteger(L, get_u32(b.p));
        lua_pushboolean(L, 1);
        lua_pushinteger(L, total);
        lua_pushboolean(L, 1);
        return 4;
    default:
        return 0;
    }
}

/* ---- assembly --------------------------------------------------------------------------- */

/* (t, msg [, sz]) appends msg to array t as a string. */
static int l_append(lua_State *L)
{
    struct bytes msg;
    if (lua_type(L, 1) != LUA_TTABLE)
        return core_error(L, "append: table expected, got %s", luaL_typename(L, 1));
    msg = check_bytes(L, 2, "append");
    lua_pushlstring(L, (const char *)msg.p, msg.n);
    lua_rawseti(L, 1, (int)lua_objlen(L, 1) + 1);
    return 0;
}

/* (t) -> buf, sz: malloc'd concatenation of the strings t[1..#t] (NULL, 0 when empty), or
 * nil, reason when t.size is set and differs from their sum or the sum exceeds max_message. */
static int l_concat(lua_State *L)
{
    size_t max = cluster_core_max_message(), total = 0, len, off = 0;
    int i, n;
    uint8_t *buf = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = (int)lua_objlen(L, 1);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            return core_error(L, "concat: part %d is a %s, not a string", i, luaL_typename(L, -1));
        lua_tolstring(L, -1, &len);
        lua_pop(L, 1);
        total = len > SIZE_MAX - total ? SIZE_MAX : total + len;
    }
    lua_pushliteral(L, "size");
    lua_rawget(L, 1);
    if (!lua_isnil(L, -1) && !(lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == total)) {
        lua_pushnil(L);
        lua_pushfstring(L, "concat: the parts hold %f bytes, not the declared size", (double)total);
        return 2;
    }
    if (total > max) {
        lua_pushnil(L);
        lua_pushfstring(L, "concat: %f bytes exceed max_message %f", (double)total, (double)max);
        return 2;
    }
    if (total > 0 && (buf = malloc(total)) == NULL)
        return core_error(L, "concat: out of memory (%f bytes)", (double)total);
    for (i = 1; i <= n; i++) { /* from here to the return nothing allocates or raises */
        const char *s;
        lua_rawgeti(L, 1, i);
        s = lua_tolstring(L, -1, &len);
        if (len > 0)
            memcpy(buf + off, s, len);
        off += len;
        lua_pop(L, 1);
    }
    lua_pushlightuserdata(L, buf);
    lua_pushinteger(L, (lua_Integer)total);
    return 2;
}

/* ---- misc ------------------------------------------------------------------------------- */

static int l_isname(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING);
    return 1;
}

static pthread_once_t nodename_once = PTHREAD_ONCE_INIT;
static char nodename[300]; /* hostname (at most 255 bytes) followed by the pid */

static void nodename_init(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(nodename, sizeof nodename, "%s%ld", host, (long)getpid());
}

/* () -> hostname .. pid, e.g. "vm11491" (the <nodename> of trace tags, B.11) */
static int l_nodename(lua_State *L)
{
    pthread_once(&nodename_once, nodename_init);
    lua_pushstring(L, nodename);
    return 1;
}

static int l_setmaxmessage(lua_State *L)
{
    int64_t bytes = 0;
    if (get_int(L, 1, 1, 9007199254740992.0, &bytes) != 0)
        return error_value(L, "setmaxmessage: invalid size", 1);
    cluster_core_set_max_message((size_t)bytes);
    return 0;
}

static int l_getmaxmessage(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)cluster_core_max_message());
    return 1;
}

/* assembly_reserve(n) -> true | false, held: take n bytes of the node-wide assembly budget */
static int l_assembly_reserve(lua_State *L)
{
    int64_t n = 0;
    if (get_int(L, 1, 0, 9007199254740992.0, &n) != 0)
        return error_value(L, "assembly_reserve: invalid size", 1);
    lua_pushboolean(L, cluster_core_assembly_reserve((size_t)n) == 0);
    lua_pushnumber(L, (lua_Number)atomic_load_explicit(&assembly_held, memory_order_relaxed));
    return 2;
}

/* assembly_release(n): give n reserved bytes back */
static int l_assembly_release(lua_State *L)
{
    int64_t n = 0;
    if (get_int(L, 1, 0, 9007199254740992.0, &n) != 0)
        return error_value(L, "assembly_release: invalid size", 1);
    atomic_fetch_sub_explicit(&assembly_held, (size_t)n, memory_order_relaxed);
    return 0;
}

/* setassemblytotal(bytes): the node-wide cap (clusterd sets it once at start) */
static int l_setassemblytotal(lua_State *L)
{
    int64_t bytes = 0;
    if (get_int(L, 1, 1, 9007199254740992.0, &bytes) != 0)
        return error_value(L, "setassemblytotal: invalid size", 1);
    atomic_store_explicit(&assembly_cap, (size_t)bytes, memory_order_relaxed);
    return 0;
}

int luaopen_cluster_core(lua_State *L)
{
    static const luaL_Reg plain[] = {
        {"packtrace", l_packtrace},
        {"unpackrequest", l_unpackrequest},
        {"unpackresponse", l_unpackresponse},
        {"concat", l_concat},
        {"isname", l_isname},
        {"nodename", l_nodename},
        {"setmaxmessage", l_setmaxmessage},
        {"getmaxmessage", l_getmaxmessage},
        {"assembly_reserve", l_assembly_reserve},
        {"assembly_release", l_assembly_release},
        {"setassemblytotal", l_setassemblytotal},
        /* packresponse for a reply the caller does not own (a skynet.rawcall result, which the
         * runtime frees): no copy into a Lua string first, and nothing freed here */
        {"packresponse_borrowed", l_packresponse},
        {NULL, NULL},
    };
    /* Functions that own their msg argument: a guard closure around the body (run_owning). */
    static const struct {
        const char *name;
        lua_CFunction guard, body;
    } owning[] = {
        {"packrequest", own_arg3, l_packrequest},
        {"packpush", own_arg3, l_packpush},
        {"packresponse", own_arg3, l_packresponse},
        {"append", own_arg2, l_append},
    };
    size_t i;
    lua_createtable(L, 0, 12);
    luaL_setfuncs(L, plain, 0);
    for (i = 0; i < sizeof owning / sizeof owning[0]; i++) {
        lua_pushcfunction(L, owning[i].body);
        lua_pushcclosure(L, owning[i].guard, 1);
        lua_setfield(L, -2, owning[i].name);
    }
    return 1;
}
