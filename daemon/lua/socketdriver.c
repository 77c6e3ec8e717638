/* socketdriver: the Lua binding of the reactor ("skynet.socketdriver"), plus the socket buffer
 * that skynet.socket reads from. Runs on the calling service's worker; the reactor calls are
 * thread-safe. Ownership: bytes handed to send belong to the reactor; a DATA event's buffer is
 * taken over by unpack (which clears ev->data so the runtime does not free it) and then by a
 * socket buffer, which frees it once consumed or when the buffer is collected. */
#include "socketdriver.h"

#include "host.h"
#include "reactor.h"
#include "service.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static struct reactor *reactor;

void socketdriver_init(struct reactor *r) { reactor = r; }

struct reactor *socketdriver_reactor(void) { return reactor; }

static struct reactor *get_reactor(lua_State *L)
{
    if (!reactor)
        luaL_error(L, "the socket layer is not running");
    return reactor;
}

static uint32_t self_handle(lua_State *L) { return service_handle(host_service(L)); }

/* listen(host, port [, backlog]) -> id, port | nil, err */
static int l_listen(lua_State *L)
{
    const char *host = luaL_optstring(L, 1, "0.0.0.0");
    int port = (int)luaL_checkinteger(L, 2);
    int backlog = (int)luaL_optinteger(L, 3, 1024);
    char err[128];
    int bound = 0;
    int id = reactor_listen(get_reactor(L), self_handle(L), host, port, backlog, &bound, err,
                            sizeof err);
    if (id < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushinteger(L, id);
    lua_pushinteger(L, bound);
    return 2;
}

/* connect(host, port) -> id | nil, err */
static int l_connect(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    int port = (int)luaL_checkinteger(L, 2);
    int id = reactor_connect(get_reactor(L), self_handle(L), host, port);
    if (id < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "too many sockets");
        return 2;
    }
    lua_pushinteger(L, id);
    return 1;
}

static int l_start(lua_State *L)
{
    reactor_resume(get_reactor(L), self_handle(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_pause(lua_State *L)
{
    reactor_pause(get_reactor(L), self_handle(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_close(lua_State *L)
{
    reactor_close(get_reactor(L), self_handle(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_shutdown(lua_State *L)
{
    reactor_shutdown(get_reactor(L), self_handle(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_nodelay(lua_State *L)
{
    reactor_nodelay(get_reactor(L), (int)luaL_checkinteger(L, 1));
    return 0;
}

/* accept_limit(listen_id, n): at most n live accepted sockets (0 = no cap) */
static int l_accept_limit(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 2, "must be 0..2^31-1");
    reactor_accept_limit(get_reactor(L), (int)luaL_checkinteger(L, 1), (int)n);
    return 0;
}

/* The bytes to send at idx: a string, an array of strings, or lightuserdata + size (taken). */
static void *get_bytes(lua_State *L, int idx, size_t *size)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, size);
        void *p = malloc(*size ? *size : 1);
        if (!p)
            luaL_error(L, "out of memory");
        memcpy(p, s, *size);
        return p;
    }
    case LUA_TLIGHTUSERDATA: {
        *size = (size_t)luaL_checkinteger(L, idx + 1);
        return lua_touserdata(L, idx);
    }
    case LUA_TTABLE: {
        size_t total = 0, n = lua_objlen(L, idx);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "socket write: element %d is a %s, not a string", (int)i,
                           luaL_typename(L, -1));
            total += lua_objlen(L, -1);
            lua_pop(L, 1);
        }
        char *p = malloc(total ? total : 1);
        if (!p)
            luaL_error(L, "out of memory");
        size_t at = 0;
        for (size_t i = 1; i <= n; i++) {
            size_t len;
            lua_rawgeti(L, idx, (int)i);
            const char *s = lua_tolstring(L, -1, &len);
            memcpy(p + at, s, len);
            at += len;
            lua_pop(L, 1);
        }
        *size = total;
        return p;
    }
    default:
        luaL_error(L, "socket write: invalid data type %s", luaL_typename(L, idx));
        return NULL;
    }
}

static int send_with(lua_State *L, int low)
{
    int id = (int)luaL_checkinteger(L, 1);
    size_t size;
    void *data = get_bytes(L, 2, &size);
    struct reactor *r = get_reactor(L);
    int rc = low ? reactor_send_low(r, id, data, size) : reactor_send(r, id, data, size);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int l_send(lua_State *L) { return send_with(L, 0); }
static int l_lsend(lua_State *L) { return send_with(L, 1); }

/* ---- UDP ---- */

static int udp_open(lua_State *L, int dial)
{
    const char *host = luaL_optstring(L, 1, NULL);
    int port = (int)luaL_optinteger(L, 2, 0);
    char err[128];
    int id = reactor_udp(get_reactor(L), self_handle(L), host, port, dial, err, sizeof err);
    if (id < 0)
        return luaL_error(L, "udp %s failed: %s", dial ? "dial" : "init", err);
    lua_pushinteger(L, id);
    return 1;
}

/* udp([host, port]) / udp_listen(host, port) -> id: a socket, bound when an address is given */
static int l_udp(lua_State *L) { return udp_open(L, 0); }
/* udp_dial(host, port) -> id: a socket connected to host:port */
static int l_udp_dial(lua_State *L) { return udp_open(L, 1); }

/* udp_connect(id, host, port): the default peer of write(id, ...) */
static int l_udp_connect(lua_State *L)
{
    char err[128];
    if (reactor_udp_connect(get_reactor(L), (int)luaL_checkinteger(L, 1), luaL_checkstring(L, 2),
                            (int)luaL_checkinteger(L, 3), err, sizeof err) < 0)
        return luaL_error(L, "udp connect failed: %s", err);
    return 0;
}

/* udp_send(id, from, data) -> boolean: a datagram to an address a callback was given */
static int l_udp_send(lua_State *L)
{
    int id = (int)luaL_checkinteger(L, 1);
    size_t alen;
    const char *from = luaL_checklstring(L, 2, &alen);
    size_t size;
    void *data = get_bytes(L, 3, &size);
    lua_pushboolean(L, reactor_sendto(get_reactor(L), id, from, alen, data, size) == 0);
    return 1;
}

/* udp_address(from) -> ip, port */
static int l_udp_address(lua_State *L)
{
    size_t len;
    const char *from = luaL_checklstring(L, 1, &len);
    struct sockaddr_storage ss;
    socklen_t sl;
    char ip[INET6_ADDRSTRLEN];
    if (reactor_udp_unpack(from, len, &ss, &sl) < 0)
        return luaL_error(L, "Invalid udp address");
    int port;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    }
    lua_pushstring(L, ip);
    lua_pushinteger(L, port);
    return 2;
}

/* unpack(msg, sz) -> type, id, ud, data | text, size
 * For DATA, data is a lightuserdata whose ownership passes to the caller (push it into a socket
 * buffer or free it with skynet.trash). */
static int l_unpack(lua_State *L)
{
    struct reactor_event *ev = lua_touserdata(L, 1);
    size_t sz = (size_t)luaL_checkinteger(L, 2);
    if (!ev || sz < sizeof *ev)
        return luaL_error(L, "invalid socket message");
    lua_pushinteger(L, ev->type);
    lua_pushinteger(L, ev->id);
    lua_pushinteger(L, ev->ud);
    if (ev->type == REACTOR_DATA) {
        lua_pushlightuserdata(L, ev->data);
        lua_pushinteger(L, ev->size);
        ev->data = NULL;
        return 5;
    }
    if (ev->type == REACTOR_UDP) { /* type, id, size, data, from */
        lua_pop(L, 1);
        lua_pushinteger(L, ev->size);
        lua_pushlightuserdata(L, ev->data);
        lua_pushlstring(L, ev->data + ev->size, (size_t)ev->ud);
        ev->data = NULL;
        return 5;
    }
    if (sz > sizeof *ev)
        lua_pushstring(L, ev->text);
    else
        lua_pushnil(L);
    return 4;
}

/* ---- socket buffer ------------------------------------------------------------------ */

struct chunk {
    char *data;
    size_t size, offset;
    struct chunk *next;
};

struct sbuf {
    struct chunk *head, *tail;
    size_t size;
    size_t scanned; /* bytes from the front already searched for last_sep (readline) */
    char last_sep[16];
    size_t last_seplen;
};

#define SBUF "skyjet.socketbuffer"

static struct sbuf *check_buf(lua_State *L) { return luaL_checkudata(L, 1, SBUF); }

static void sbuf_append(struct sbuf *b, char *data, size_t size)
{
    struct chunk *c = malloc(sizeof *c);
    if (!c) {
        free(data);
        return;
    }
    c->data = data;
    c->size = size;
    c->offset = 0;
    c->next = NULL;
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    b->size += size;
}

static void sbuf_drop_head(struct sbuf *b)
{
    struct chunk *c = b->head;
    b->head = c->next;
    if (!b->head)
        b->tail = NULL;
    free(c->data);
    free(c);
}

/* Copy n bytes (n <= b->size) from the front into dst and consume them. */
static void sbuf_take(struct sbuf *b, char *dst, size_t n)
{
    b->scanned = b->scanned > n ? b->scanned - n : 0;
    while (n > 0) {
        struct chunk *c = b->head;
        size_t avail = c->size - c->offset;
        size_t k = n < avail ? n : avail;
        if (dst) {
            memcpy(dst, c->data + c->offset, k);
            dst += k;
        }
        c->offset += k;
        b->size -= k;
        n -= k;
        if (c->offset == c->size)
            sbuf_drop_head(b);
    }
}

/* Push n bytes from the front as a Lua string, consuming them. */
static void sbuf_pushstring(lua_State *L, struct sbuf *b, size_t n)
{
    if (n == 0) {
        lua_pushliteral(L, "");
        return;
    }
    struct chunk *c = b->head;
    if (c->size - c->offset >= n) {
        lua_pushlstring(L, c->data + c->offset, n);
        sbuf_take(b, NULL, n);
        return;
    }
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    while (n > 0) {
        c = b->head;
        size_t avail = c->size - c->offset;
        size_t k = n < avail ? n : avail;
        luaL_addlstring(&lb, c->data + c->offset, k);
        sbuf_take(b, NULL, k);
        n -= k;
    }
    luaL_pushresult(&lb);
}

static int l_buffer(lua_State *L)
{
    struct sbuf *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, SBUF);
    lua_setmetatable(L, -2);
    return 1;
}

/* buf:push(lightuserdata, size) takes the block; buf:push(string) copies it. */
static int l_buf_push(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 2, &len);
        if (len) {
            char *p = malloc(len);
            if (!p)
                return luaL_error(L, "out of memory");
            memcpy(p, s, len);
            sbuf_append(b, p, len);
        }
    } else {
        char *p = lua_touserdata(L, 2);
        size_t len = (size_t)luaL_checkinteger(L, 3);
        if (p && len)
            sbuf_append(b, p, len);
        else
            free(p);
    }
    lua_pushinteger(L, (lua_Integer)b->size);
    return 1;
}

static int l_buf_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_buf(L)->size);
    return 1;
}

/* buf:pop(n) -> exactly n bytes, or nil if fewer are buffered */
static int l_buf_pop(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0 || (size_t)n > b->size)
        return 0;
    sbuf_pushstring(L, b, (size_t)n);
    return 1;
}

/* buf:readall() -> everything buffered ("" when empty) */
static int l_buf_readall(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    sbuf_pushstring(L, b, b->size);
    return 1;
}

/* Does sep start at byte `off` of chunk c's unread data (continuing into the next chunks)? */
static int sbuf_match(const struct chunk *c, size_t off, const char *sep, size_t seplen)
{
    size_t k = 0;
    while (c && k < seplen) {
        size_t len = c->size - c->offset;
        while (off < len && k < seplen) {
            if (c->data[c->offset + off] != sep[k])
                return 0;
            off++;
            k++;
        }
        c = c->next;
        off = 0;
    }
    return k == seplen;
}

/* Offset of the first sep at or after `from`, or -1. Walks the chunks in place (no copy), so a
 * long line arriving in many pieces costs linear time overall: the caller resumes from where
 * the last search stopped (b->scanned). */
static long sbuf_find(const struct sbuf *b, const char *sep, size_t seplen, size_t from)
{
    size_t base = 0;
    for (const struct chunk *c = b->head; c; c = c->next) {
        size_t len = c->size - c->offset;
        const char *start = c->data + c->offset;
        size_t i = from > base ? from - base : 0;
        while (i < len) {
            const char *hit = memchr(start + i, sep[0], len - i);
            if (!hit)
                break;
            size_t at = (size_t)(hit - start);
            if (sbuf_match(c, at, sep, seplen))
                return (long)(base + at);
            i = at + 1;
        }
        base += len;
    }
    return -1;
}

/* buf:readline(sep) -> the bytes before sep (sep consumed), or nil if no sep yet */
static int l_buf_readline(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    size_t seplen;
    const char *sep = luaL_optlstring(L, 2, "\n", &seplen);
    if (seplen == 0 || b->size < seplen)
        return 0;
    /* resume an earlier search only if it looked for the same separator */
    if (seplen != b->last_seplen || seplen > sizeof b->last_sep ||
        memcmp(sep, b->last_sep, seplen) != 0) {
        b->scanned = 0;
        b->last_seplen = seplen <= sizeof b->last_sep ? seplen : 0;
        if (b->last_seplen)
            memcpy(b->last_sep, sep, seplen);
    }
    long at = sbuf_find(b, sep, seplen, b->scanned);
    if (at < 0) {
        b->scanned = b->last_seplen ? b->size - (seplen - 1) : 0;
        return 0;
    }
    sbuf_pushstring(L, b, (size_t)at);
    sbuf_take(b, NULL, seplen);
    return 1;
}

/* buf:popframe() -> the body of the next frame with a 2-byte big-endian length, or nil */
static int l_buf_popframe(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    if (b->size < 2)
        return 0;
    unsigned char hdr[2];
    struct chunk *c = b->head;
    if (c->size - c->offset >= 2) {
        memcpy(hdr, c->data + c->offset, 2);
    } else {
        hdr[0] = (unsigned char)c->data[c->offset];
        hdr[1] = (unsigned char)c->next->data[c->next->offset];
    }
    size_t len = ((size_t)hdr[0] << 8) | hdr[1];
    if (b->size < 2 + len)
        return 0;
    sbuf_take(b, NULL, 2);
    sbuf_pushstring(L, b, len);
    return 1;
}

static int l_buf_clear(lua_State *L)
{
    struct sbuf *b = check_buf(L);
    while (b->head)
        sbuf_drop_head(b);
    b->size = 0;
    b->scanned = 0;
    return 0;
}

/* header(s) -> big-endian unsigned integer of a 1..4 byte string */
static int l_header(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len < 1 || len > 4)
        return luaL_error(L, "Invalid read %s", (const char *)s);
    lua_Number v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 256 + s[i];
    lua_pushnumber(L, v);
    return 1;
}

/* stats() -> { sockets, bytes_in, bytes_out, reads, writes } */
static int l_stats(lua_State *L)
{
    struct reactor_stats st;
    reactor_get_stats(get_reactor(L), &st);
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, st.sockets);
    lua_setfield(L, -2, "sockets");
    lua_pushnumber(L, (lua_Number)st.bytes_in);
    lua_setfield(L, -2, "bytes_in");
    lua_pushnumber(L, (lua_Number)st.bytes_out);
    lua_setfield(L, -2, "bytes_out");
    lua_pushnumber(L, (lua_Number)st.reads);
    lua_setfield(L, -2, "reads");
    lua_pushnumber(L, (lua_Number)st.writes);
    lua_setfield(L, -2, "writes");
    return 1;
}

int luaopen_socketdriver(lua_State *L)
{
    static const luaL_Reg buf_methods[] = {
        {"push", l_buf_push},         {"size", l_buf_size},
        {"pop", l_buf_pop},           {"readall", l_buf_readall},
        {"readline", l_buf_readline}, {"popframe", l_buf_popframe},
        {"clear", l_buf_clear},       {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"listen", l_listen},
        {"connect", l_connect},
        {"start", l_start},
        {"pause", l_pause},
        {"close", l_close},
        {"shutdown", l_shutdown},
        {"nodelay", l_nodelay},
        {"send", l_send},
        {"lsend", l_lsend},
        {"unpack", l_unpack},
        {"buffer", l_buffer},
        {"header", l_header},
        {"stats", l_stats},
        {"accept_limit", l_accept_limit},
        {"udp", l_udp},
        {"udp_listen", l_udp},
        {"udp_dial", l_udp_dial},
        {"udp_connect", l_udp_connect},
        {"udp_send", l_udp_send},
        {"udp_address", l_udp_address},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, SBUF)) {
        lua_newtable(L);
        luaL_register(L, NULL, buf_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_buf_clear);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    /* the event types of unpack's first result, from reactor.h (never restated in Lua) */
    static const struct {
        const char *name;
        int type;
    } events[] = {{"DATA", REACTOR_DATA},      {"OPEN", REACTOR_OPEN},   {"CLOSE", REACTOR_CLOSE},
                  {"ACCEPT", REACTOR_ACCEPT},  {"ERROR", REACTOR_ERROR}, {"UDP", REACTOR_UDP},
                  {"WARNING", REACTOR_WARNING}};
    lua_createtable(L, 0, (int)(sizeof events / sizeof *events));
    for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
        lua_pushinteger(L, events[i].type);
        lua_setfield(L, -2, events[i].name);
    }
    lua_setfield(L, -2, "event");
    return 1;
}
