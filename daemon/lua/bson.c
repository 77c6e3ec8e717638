/* bson: Skynet's "bson" module (encode, encode_order, decode, the type constructors, bson.type,
 * makeindex and in-place replacement) giving the same bytes as Skynet's. Special BSON values are
 * Lua strings "\0" <type byte> <payload>, as in Skynet, so they pass through skynet.pack. One
 * reader (bson_read_doc) decodes and validates at once: hostile input gives a Lua error, never a
 * read out of bounds. Numbers follow the int64 policy of seri.h. Any thread; the only shared
 * state is the objectid process prefix and counter (set once, then atomic). */
#include "bson.h"

#include "seri.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    BSON_REAL = 1,
    BSON_STRING = 2,
    BSON_DOCUMENT = 3,
    BSON_ARRAY = 4,
    BSON_BINARY = 5,
    BSON_OBJECTID = 7,
    BSON_BOOLEAN = 8,
    BSON_DATE = 9,
    BSON_NULL = 10,
    BSON_REGEX = 11,
    BSON_DBPOINTER = 12,
    BSON_JSCODE = 13,
    BSON_SYMBOL = 14,
    BSON_CODEWS = 15,
    BSON_INT32 = 16,
    BSON_TIMESTAMP = 17,
    BSON_INT64 = 18,
    BSON_MAXKEY = 127,
    BSON_MINKEY = 255,
};

#define BSON_MAX_DEPTH 128 /* nesting bound, encoding and decoding (Skynet's encoder bound) */
#define BSON_META "bson"   /* metatable of encoded documents (userdata holding the bytes) */
#define BSON_INDEX_SHIFT 5 /* makeindex packs type | offset << 5 */

/* ---- output buffer: malloc'd, owned by a userdata box so a Lua error cannot leak it ---- */

struct bson_buf {
    unsigned char *p;
    size_t n, cap;
};

static int bson_buf_gc(lua_State *L)
{
    struct bson_buf *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    return 0;
}

static struct bson_buf *bson_buf_new(lua_State *L)
{
    struct bson_buf *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, bson_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    return b;
}

static unsigned char *bson_grow(lua_State *L, struct bson_buf *b, size_t more)
{
    if (more > INT32_MAX - b->n)
        luaL_error(L, "bson document too large");
    if (b->n + more > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + more)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            luaL_error(L, "bson: out of memory");
        b->p = p;
        b->cap = cap;
    }
    unsigned char *at = b->p + b->n;
    b->n += more;
    return at;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void bson_put(lua_State *L, struct bson_buf *b, const void *s, size_t n)
{
    memcpy(bson_grow(L, b, n), s, n);
}

static void bson_put_int(lua_State *L, struct bson_buf *b, uint64_t v, int n)
{
    put_le(bson_grow(L, b, (size_t)n), v, n);
}

static void bson_put_key(lua_State *L, struct bson_buf *b, int type, const char *key, size_t n)
{
    if (memchr(key, 0, n))
        luaL_error(L, "Invalid key: contains a zero byte");
    bson_put_int(L, b, (uint64_t)type, 1);
    bson_put(L, b, key, n);
    bson_put_int(L, b, 0, 1);
}

/* ---- encoder --------------------------------------------------------------------------- */

static void bson_write_table(lua_State *L, struct bson_buf *b, const char *key, size_t klen,
                             int depth);

static void bson_write_number(lua_State *L, struct bson_buf *b, const char *key, size_t klen)
{
    int64_t v;
    int kind = seri_integer_value(L, -1, &v);
    if (kind == SERI_INT_UINT64_HIGH)
        luaL_error(L, "integer overflow: uint64 value does not fit int64");
    int negzero =
        lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == 0 && 1 / lua_tonumber(L, -1) < 0;
    if (kind == SERI_INT_NONE || negzero) {
        double d = lua_tonumber(L, -1);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        bson_put_key(L, b, BSON_REAL, key, klen);
        bson_put_int(L, b, bits, 8);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        bson_put_key(L, b, BSON_INT32, key, klen);
        bson_put_int(L, b, (uint64_t)v, 4);
    } else {
        bson_put_key(L, b, BSON_INT64, key, klen);
        bson_put_int(L, b, (uint64_t)v, 8);
    }
}

/* A special value: "\0" <type> <payload> (see the constructors below). */
static void bson_check_raw(lua_State *L, int type, const unsigned char *p, size_t n);

static void bson_write_special(lua_State *L, struct bson_buf *b, const char *key, size_t klen,
                               const unsigned char *s, size_t n)
{
    int type = s[1];
    const unsigned char *p = s + 2;
    n -= 2;
    switch (type) {
    case BSON_BINARY: /* payload: subtype, data */
        if (n < 1)
            luaL_error(L, "Invalid binary");
        bson_put_key(L, b, type, key, klen);
        bson_put_int(L, b, n - 1, 4);
        bson_put(L, b, p, n);
        return;
    case BSON_OBJECTID:
        if (n != 12)
            luaL_error(L, "Invalid object id");
        break;
    case BSON_DATE: /* payload: seconds as uint32; BSON wants milliseconds */
        if (n != 4)
            luaL_error(L, "Invalid date");
        bson_put_key(L, b, type, key, klen);
        bson_put_int(L, b, get_le(p, 4) * 1000, 8);
        return;
    case BSON_TIMESTAMP: /* payload: increment, seconds */
    case BSON_INT64:
        if (n != 8)
            luaL_error(L, type == BSON_INT64 ? "Invalid int64" : "Invalid timestamp");
        break;
    case BSON_REGEX: /* payload: pattern \0 options \0 */
        bson_check_raw(L, type, p, n);
        break;
    case BSON_MINKEY:
    case BSON_MAXKEY:
    case BSON_NULL:
        if (n != 0)
            luaL_error(L, "Invalid subtype %d", type);
        break;
    case BSON_JSCODE:
    case BSON_SYMBOL:
    case BSON_CODEWS:
    case BSON_DBPOINTER: /* raw element bytes as the decoder kept them: check them with it */
        bson_check_raw(L, type, p, n);
        break;
    default:
        luaL_error(L, "Invalid subtype %d", type);
    }
    bson_put_key(L, b, type, key, klen);
    bson_put(L, b, p, n);
}

/* The value on top of the stack as element `key`. */
static void bson_write_value(lua_State *L, struct bson_buf *b, const char *key, size_t klen,
                             int depth)
{
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER || t == 10 /* LuaJIT cdata: int64_t/uint64_t, else an error */) {
        int64_t v;
        if (t != LUA_TNUMBER && seri_integer_value(L, -1, &v) == SERI_INT_NONE)
            luaL_error(L, "Invalid value type : cdata");
        bson_write_number(L, b, key, klen);
    } else if (t == LUA_TBOOLEAN) {
        bson_put_key(L, b, BSON_BOOLEAN, key, klen);
        bson_put_int(L, b, (uint64_t)lua_toboolean(L, -1), 1);
    } else if (t == LUA_TSTRING) {
        size_t n;
        const unsigned char *s = (const unsigned char *)lua_tolstring(L, -1, &n);
        if (n > 1 && s[0] == 0) {
            bson_write_special(L, b, key, klen, s, n);
        } else {
            bson_put_key(L, b, BSON_STRING, key, klen);
            bson_put_int(L, b, n + 1, 4);
            bson_put(L, b, s, n);
            bson_put_int(L, b, 0, 1);
        }
    } else if (t == LUA_TTABLE) {
        bson_write_table(L, b, key, klen, depth + 1);
    } else if (t == LUA_TUSERDATA && lua_getmetatable(L, -1)) {
        luaL_getmetatable(L, BSON_META);
        int is_doc = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (!is_doc)
            luaL_error(L, "Invalid value type : userdata");
        bson_put_key(L, b, BSON_DOCUMENT, key, klen);
        bson_put(L, b, lua_touserdata(L, -1), lua_objlen(L, -1));
    } else {
        luaL_error(L, "Invalid value type : %s", lua_typename(L, t));
    }
}

/* Document body for the (key, value) pair on top of the stack; pops the value. Number keys are
 * written as their decimal text (converted on a copy, so `next` still sees the number). */
static void bson_write_pair(lua_State *L, struct bson_buf *b, int depth)
{
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
        luaL_error(L, "Invalid key type : %s", lua_typename(L, kt));
    lua_pushvalue(L, -2);
    size_t klen;
    const char *key = lua_tolstring(L, -1, &klen);
    lua_pushvalue(L, -2);
    bson_write_value(L, b, key, klen, depth);
    lua_pop(L, 3);
}

static size_t bson_open_doc(lua_State *L, struct bson_buf *b)
{
    size_t at = b->n;
    bson_grow(L, b, 4);
    return at;
}

static void bson_close_doc(lua_State *L, struct bson_buf *b, size_t at)
{
    bson_put_int(L, b, 0, 1);
    put_le(b->p + at, b->n - at, 4);
}

/* The document body of the table on top of the stack, through its __pairs when it has one. */
static void bson_write_dict(lua_State *L, struct bson_buf *b, int depth)
{
    size_t at = bson_open_doc(L, b);
    if (luaL_getmetafield(L, -1, "__pairs")) {
        lua_pushvalue(L, -2);
        lua_call(L, 1, 3); /* table, next, state, key */
        for (;;) {
            lua_pushvalue(L, -3);
            lua_pushvalue(L, -3);
            lua_pushvalue(L, -3);
            lua_call(L, 2, 2); /* table, next, state, key, k, v */
            if (lua_isnil(L, -2)) {
                lua_pop(L, 5);
                break;
            }
            lua_pushvalue(L, -2);
            lua_replace(L, -4); /* k is the next control value */
            bson_write_pair(L, b, depth);
            lua_pop(L, 1);
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, -2))
            bson_write_pair(L, b, depth);
    }
    bson_close_doc(L, b, at);
}

static void bson_write_array(lua_State *L, struct bson_buf *b, size_t len, int depth)
{
    size_t at = bson_open_doc(L, b);
    for (size_t i = 1; i <= len; i++) {
        char key[24];
        int klen = snprintf(key, sizeof key, "%zu", i - 1);
        lua_pushinteger(L, (lua_Integer)i);
        lua_gettable(L, -2);
        bson_write_value(L, b, key, (size_t)klen, depth);
        lua_pop(L, 1);
    }
    bson_close_doc(L, b, at);
}

/* A table is an array when __len says so, or when it has a border n > 0 and no key after n. */
static int bson_array_length(lua_State *L, size_t *len)
{
    if (luaL_getmetafield(L, -1, "__len")) {
        lua_pushvalue(L, -2);
        lua_call(L, 1, 1);
        int64_t v;
        if (seri_integer_value(L, -1, &v) != SERI_INT_EXACT || v < 0)
            luaL_error(L, "__len should return integer");
        lua_pop(L, 1);
        *len = (size_t)v;
        return 1;
    }
    if (luaL_getmetafield(L, -1, "__pairs")) {
        lua_pop(L, 1);
        return 0;
    }
    size_t n = lua_objlen(L, -1);
    if (n == 0)
        return 0;
    lua_pushinteger(L, (lua_Integer)n);
    if (lua_next(L, -2)) {
        lua_pop(L, 2);
        return 0;
    }
    *len = n;
    return 1;
}

static void bson_write_table(lua_State *L, struct bson_buf *b, const char *key, size_t klen,
                             int depth)
{
    if (depth > BSON_MAX_DEPTH)
        luaL_error(L, "Too depth while encoding bson");
    luaL_checkstack(L, 16, "bson encode");
    size_t len;
    if (bson_array_length(L, &len)) {
        bson_put_key(L, b, BSON_ARRAY, key, klen);
        bson_write_array(L, b, len, depth);
    } else {
        bson_put_key(L, b, BSON_DOCUMENT, key, klen);
        bson_write_dict(L, b, depth);
    }
}

/* Turn the finished buffer into a bson document userdata (replacing the box on the stack). */
static int bson_finish(lua_State *L, struct bson_buf *b)
{
    void *ud = lua_newuserdata(L, b->n);
    memcpy(ud, b->p, b->n);
    free(b->p); /* now, rather than when the GC finds the box */
    b->p = NULL;
    luaL_getmetatable(L, BSON_META);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    struct bson_buf *b = bson_buf_new(L);
    lua_pushvalue(L, 1);
    bson_write_dict(L, b, 0);
    lua_pop(L, 1);
    return bson_finish(L, b);
}

static int l_encode_order(lua_State *L)
{
    int n = lua_gettop(L);
    if (n % 2 != 0)
        return luaL_error(L, "Invalid ordered dict");
    struct bson_buf *b = bson_buf_new(L);
    size_t at = bson_open_doc(L, b);
    for (int i = 1; i <= n; i += 2) {
        if (lua_type(L, i) != LUA_TSTRING)
            return luaL_error(L, "Argument %d need a string", i);
        size_t klen;
        const char *key = lua_tolstring(L, i, &klen);
        lua_pushvalue(L, i + 1);
        bson_write_value(L, b, key, klen, 0);
        lua_pop(L, 1);
    }
    bson_close_doc(L, b, at);
    return bson_finish(L, b);
}

/* ---- decoder: one reader that validates as it builds ---------------------------------- */

struct bson_reader {
    lua_State *L;
    const unsigned char *p;
    size_t n;
};

static const unsigned char *bson_take(struct bson_reader *r, size_t n)
{
    if (n > r->n)
        luaL_error(r->L, "Invalid bson block (%d:%d)", (int)r->n, (int)n);
    const unsigned char *p = r->p;
    r->p += n;
    r->n -= n;
    return p;
}

static int32_t bson_take_i32(struct bson_reader *r)
{
    return (int32_t)(uint32_t)get_le(bson_take(r, 4), 4);
}

static const char *bson_take_cstring(struct bson_reader *r, size_t *len)
{
    const unsigned char *end = memchr(r->p, 0, r->n);
    if (!end)
        luaL_error(r->L, "Invalid bson block : cstring");
    *len = (size_t)(end - r->p);
    return (const char *)bson_take(r, *len + 1);
}

/* Push "\0" <type> <payload> (payload a then b). */
static void bson_push_special(lua_State *L, int type, const void *a, size_t an, const void *b,
                              size_t bn)
{
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    luaL_addchar(&buf, '\0');
    luaL_addchar(&buf, (char)type);
    luaL_addlstring(&buf, a, an);
    luaL_addlstring(&buf, b, bn);
    luaL_pushresult(&buf);
}

/* A length-prefixed element (string, code, symbol): its int32 length must cover a final NUL. */
static const unsigned char *bson_take_lstring(struct bson_reader *r, int32_t *len)
{
    *len = bson_take_i32(r);
    if (*len <= 0)
        luaL_error(r->L, "Invalid bson string , length = %d", (int)*len);
    const unsigned char *s = bson_take(r, (size_t)*len);
    if (s[*len - 1] != 0)
        luaL_error(r->L, "Invalid bson string : no terminating zero");
    return s;
}

static void bson_read_doc(struct bson_reader *r, int array, int depth);

/* The kinds Lua sees as their raw bytes (a special value): DBPointer, JavaScript code, symbol,
 * code with scope (whose string and scope document are still checked); anything else is an
 * error. */
static void bson_read_opaque(struct bson_reader *r, int type, int depth)
{
    lua_State *L = r->L;
    const unsigned char *start = r->p;
    int32_t len;
    switch (type) {
    case BSON_DBPOINTER: /* string, then a 12-byte id */
        bson_take_lstring(r, &len);
        bson_take(r, 12);
        break;
    case BSON_JSCODE:
    case BSON_SYMBOL:
        bson_take_lstring(r, &len);
        break;
    case BSON_CODEWS: { /* int32 total, string, document */
        len = bson_take_i32(r);
        if (len < 4 + 5 + 5)
            luaL_error(L, "Invalid bson code_w_s , length = %d", (int)len);
        struct bson_reader inner = {L, bson_take(r, (size_t)len - 4), (size_t)len - 4};
        int32_t slen;
        bson_take_lstring(&inner, &slen);
        bson_read_doc(&inner, 0, depth + 1);
        lua_pop(L, 1);
        if (inner.n != 0)
            luaL_error(L, "Invalid bson code_w_s , length = %d", (int)len);
        break;
    }
    default:
        luaL_error(L, "Invalid bson type : %d", type);
    }
    bson_push_special(L, type, start, (size_t)(r->p - start), "", 0);
}

static void bson_read_value(struct bson_reader *r, int type, int depth)
{
    lua_State *L = r->L;
    const unsigned char *start = r->p, *p;
    int32_t len;
    switch (type) {
    case BSON_REAL: {
        uint64_t bits = get_le(bson_take(r, 8), 8);
        double d;
        memcpy(&d, &bits, 8);
        lua_pushnumber(L, d);
        return;
    }
    case BSON_BOOLEAN:
        lua_pushboolean(L, *bson_take(r, 1));
        return;
    case BSON_STRING:
        p = bson_take_lstring(r, &len);
        lua_pushlstring(L, (const char *)p, (size_t)len - 1);
        return;
    case BSON_DOCUMENT:
    case BSON_ARRAY:
        bson_read_doc(r, type == BSON_ARRAY, depth + 1);
        return;
    case BSON_BINARY:
        len = bson_take_i32(r);
        if (len < 0)
            luaL_error(L, "Invalid bson binary , length = %d", (int)len);
        p = bson_take(r, (size_t)len + 1); /* subtype, then the data */
        bson_push_special(L, BSON_BINARY, p, (size_t)len + 1, "", 0);
        return;
    case BSON_OBJECTID:
        bson_push_special(L, type, bson_take(r, 12), 12, "", 0);
        return;
    case BSON_DATE: {
        unsigned char secs[4];
        put_le(secs, (uint64_t)((int64_t)get_le(bson_take(r, 8), 8) / 1000), 4);
        bson_push_special(L, type, secs, 4, "", 0);
        return;
    }
    case BSON_TIMESTAMP:
        bson_push_special(L, type, bson_take(r, 8), 8, "", 0);
        return;
    case BSON_MINKEY:
    case BSON_MAXKEY:
    case BSON_NULL:
        bson_push_special(L, type, "", 0, "", 0);
        return;
    case BSON_REGEX: {
        size_t l1, l2;
        bson_take_cstring(r, &l1);
        bson_take_cstring(r, &l2);
        bson_push_special(L, type, start, l1 + l2 + 2, "", 0);
        return;
    }
    case BSON_INT32:
        lua_pushnumber(L, (double)bson_take_i32(r));
        return;
    case BSON_INT64:
        seri_push_integer(L, (int64_t)get_le(bson_take(r, 8), 8));
        return;
    default:
        bson_read_opaque(r, type, depth);
    }
}

/* A document at r: int32 length (>= 5), elements, 0. Pushes the table. */
static void bson_read_doc(struct bson_reader *r, int array, int depth)
{
    lua_State *L = r->L;
    if (depth > BSON_MAX_DEPTH)
        luaL_error(L, "Too depth while decoding bson");
    luaL_checkstack(L, 8, "bson decode");
    int32_t len = bson_take_i32(r);
    if (len < 5)
        luaL_error(L, "Invalid bson block (%d:%d)", (int)r->n + 4, (int)len);
    struct bson_reader body = {L, bson_take(r, (size_t)len - 4), (size_t)len - 5};
    if (body.p[len - 5] != 0)
        luaL_error(L, "Invalid document end");
    lua_newtable(L);
    while (body.n > 0) {
        int type = *bson_take(&body, 1);
        size_t klen;
        const char *key = bson_take_cstring(&body, &klen);
        if (array)
            lua_pushnumber(L, (double)strtol(key, NULL, 10) + 1);
        else
            lua_pushlstring(L, key, klen);
        bson_read_value(&body, type, depth);
        lua_rawset(L, -3);
    }
}

/* A raw element payload (code, symbol, db pointer) must be exactly one well-formed value. */
static void bson_check_raw(lua_State *L, int type, const unsigned char *p, size_t n)
{
    struct bson_reader r = {L, p, n};
    bson_read_value(&r, type, 0);
    lua_pop(L, 1);
    if (r.n != 0)
        luaL_error(L, "Invalid bson value for type %d", type);
}

/* The bytes of a document argument: a bson userdata, a string, or (as Skynet's mongo driver
 * passes) a light userdata whose own length header is trusted. */
static const unsigned char *bson_source(lua_State *L, int idx, size_t *n)
{
    switch (lua_type(L, idx)) {
    case LUA_TUSERDATA:
        *n = lua_objlen(L, idx);
        return lua_touserdata(L, idx);
    case LUA_TSTRING:
        return (const unsigned char *)lua_tolstring(L, idx, n);
    case LUA_TLIGHTUSERDATA: {
        const unsigned char *p = lua_touserdata(L, idx);
        *n = p ? (size_t)(uint32_t)get_le(p, 4) : 0;
        return p;
    }
    default:
        return NULL;
    }
}

static int l_decode(lua_State *L)
{
    size_t n;
    const unsigned char *p = bson_source(L, 1, &n);
    if (!p)
        return 0;
    struct bson_reader r = {L, p, n};
    bson_read_doc(&r, 0, 0);
    return 1;
}

/* ---- makeindex and in-place replacement ------------------------------------------------ */

static char bson_index_marker; /* key in a document's index table (its userdata environment) */

static int field_size(int type)
{
    switch (type) {
    case BSON_REAL:
    case BSON_DATE:
    case BSON_TIMESTAMP:
    case BSON_INT64:
        return 8;
    case BSON_INT32:
        return 4;
    case BSON_BOOLEAN:
        return 1;
    case BSON_OBJECTID:
        return 12;
    default:
        return 0;
    }
}

/* doc:makeindex(): remember where each fixed-size top-level field lives, so doc.key = v can
 * rewrite it in place. */
static int l_makeindex(lua_State *L)
{
    size_t n;
    const unsigned char *start = luaL_checkudata(L, 1, BSON_META);
    n = lua_objlen(L, 1);
    struct bson_reader r = {L, start, n};
    int32_t len = bson_take_i32(&r);
    if (len < 5 || (size_t)len > n)
        return luaL_error(L, "Invalid bson block (%d:%d)", (int)n, (int)len);
    r.n = (size_t)len - 5;
    lua_newtable(L);
    while (r.n > 0) {
        int type = *bson_take(&r, 1);
        size_t klen;
        const char *key = bson_take_cstring(&r, &klen);
        size_t offset = (size_t)(r.p - start);
        bson_read_value(&r, type, 0);
        lua_pop(L, 1);
        if (field_size(type) > 0) {
            lua_pushlstring(L, key, klen);
            lua_pushinteger(L, (lua_Integer)(type | offset << BSON_INDEX_SHIFT));
            lua_rawset(L, -3);
        }
    }
    lua_pushlightuserdata(L, &bson_index_marker);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_setfenv(L, 1);
    lua_settop(L, 1);
    return 1;
}

static void replace_special(lua_State *L, int type, unsigned char *at)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 3, &n);
    if (n < 6 || s[0] != 0 || s[1] != type)
        luaL_error(L, "Type mismatch, need bson type %d", type);
    if (type == BSON_OBJECTID && n == 14)
        memcpy(at, s + 2, 12);
    else if (type == BSON_DATE && n == 6)
        put_le(at, get_le(s + 2, 4) * 1000, 8);
    else if (type == BSON_TIMESTAMP && n == 10)
        memcpy(at, s + 2, 8);
    else
        luaL_error(L, "Invalid value for bson type %d", type);
}

static int64_t replace_integer(lua_State *L, int bits)
{
    int64_t v;
    if (seri_integer_value(L, 3, &v) != SERI_INT_EXACT ||
        (bits == 32 && (v < INT32_MIN || v > INT32_MAX)))
        luaL_error(L, "%f must be a %dbit integer ", lua_tonumber(L, 3), bits);
    return v;
}

/* doc.key = value (the document's __newindex), for a field makeindex found. */
static int l_replace(lua_State *L)
{
    unsigned char *start = luaL_checkudata(L, 1, BSON_META);
    lua_getfenv(L, 1);
    lua_pushlightuserdata(L, &bson_index_marker);
    lua_rawget(L, -2);
    if (!lua_toboolean(L, -1))
        return luaL_error(L, "call makeindex first");
    lua_pushvalue(L, 2);
    lua_rawget(L, -3);
    if (lua_type(L, 2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "Can't replace key : %s", lua_tostring(L, 2));
    int64_t id = (int64_t)lua_tonumber(L, -1);
    int type = (int)(id & ((1 << BSON_INDEX_SHIFT) - 1));
    unsigned char *at = start + (id >> BSON_INDEX_SHIFT);
    if (type == BSON_REAL) {
        double d = luaL_checknumber(L, 3);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        put_le(at, bits, 8);
    } else if (type == BSON_BOOLEAN) {
        *at = (unsigned char)lua_toboolean(L, 3);
    } else if (type == BSON_INT32) {
        put_le(at, (uint64_t)replace_integer(L, 32), 4);
    } else if (type == BSON_INT64) {
        put_le(at, (uint64_t)replace_integer(L, 64), 8);
    } else {
        replace_special(L, type, at);
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    const void *p = luaL_checkudata(L, 1, BSON_META);
    lua_pushlstring(L, p, lua_objlen(L, 1));
    return 1;
}

static int l_len(lua_State *L)
{
    luaL_checkudata(L, 1, BSON_META);
    lua_pushinteger(L, (lua_Integer)lua_objlen(L, 1));
    return 1;
}

/* ---- constructors of special values ----------------------------------------------------- */

static int l_date(lua_State *L)
{
    unsigned char secs[4];
    put_le(secs, (uint64_t)luaL_checkinteger(L, 1), 4);
    bson_push_special(L, BSON_DATE, secs, 4, "", 0);
    return 1;
}

static int l_timestamp(lua_State *L)
{
    static _Atomic uint32_t next_inc;
    unsigned char v[8];
    uint32_t inc =
        lua_isnoneornil(L, 2) ? atomic_fetch_add(&next_inc, 1) : (uint32_t)luaL_checkinteger(L, 2);
    put_le(v, inc, 4);
    put_le(v + 4, (uint64_t)luaL_checkinteger(L, 1), 4);
    bson_push_special(L, BSON_TIMESTAMP, v, 8, "", 0);
    return 1;
}

static int l_regex(lua_State *L)
{
    size_t pn, on = 0;
    const char *pat = luaL_checklstring(L, 1, &pn);
    const char *opt = luaL_optlstring(L, 2, "", &on);
    if (memchr(pat, 0, pn) || memchr(opt, 0, on))
        return luaL_error(L, "Invalid regex: contains a zero byte");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '\0');
    luaL_addchar(&b, BSON_REGEX);
    luaL_addlstring(&b, pat, pn);
    luaL_addchar(&b, '\0');
    luaL_addlstring(&b, opt, on);
    luaL_addchar(&b, '\0');
    luaL_pushresult(&b);
    return 1;
}

static int l_binary(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    bson_push_special(L, BSON_BINARY, "", 1, s, n); /* subtype 0: generic */
    return 1;
}

static int l_int64(lua_State *L)
{
    int64_t v;
    if (seri_integer_value(L, 1, &v) != SERI_INT_EXACT)
        return luaL_argerror(L, 1, "integer expected");
    unsigned char b[8];
    put_le(b, (uint64_t)v, 8);
    bson_push_special(L, BSON_INT64, b, 8, "", 0);
    return 1;
}

/* Object ids: 4-byte big-endian seconds, 5 random bytes per process, 3-byte counter (the layout
 * MongoDB's drivers use). */
static unsigned char oid_process[5];
static _Atomic uint32_t oid_counter;
static pthread_once_t oid_once = PTHREAD_ONCE_INIT;

static void oid_init(void)
{
    unsigned char seed[8];
    if (RAND_bytes(seed, sizeof seed) != 1) {
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seed;
        memcpy(seed, &t, sizeof seed);
    }
    memcpy(oid_process, seed, 5);
    atomic_store(&oid_counter, (uint32_t)get_le(seed + 5, 3));
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int l_objectid(lua_State *L)
{
    unsigned char id[12];
    if (lua_isstring(L, 1)) {
        size_t n;
        const char *s = lua_tolstring(L, 1, &n);
        for (size_t i = 0; n == 24 && i < 12; i++) {
            int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                n = 0;
            id[i] = (unsigned char)(hi << 4 | lo);
        }
        if (n != 24)
            return luaL_error(L, "Invalid objectid %s", s);
    } else {
        pthread_once(&oid_once, oid_init);
        uint32_t t = (uint32_t)time(NULL), c = atomic_fetch_add(&oid_counter, 1);
        for (int i = 0; i < 4; i++)
            id[i] = (unsigned char)(t >> (24 - 8 * i));
        memcpy(id + 4, oid_process, 5);
        for (int i = 0; i < 3; i++)
            id[9 + i] = (unsigned char)(c >> (16 - 8 * i));
    }
    bson_push_special(L, BSON_OBJECTID, id, 12, "", 0);
    return 1;
}

/* ---- bson.type ------------------------------------------------------------------------ */

/* bson.type(v) -> type name, then the value's parts (Skynet's answers). */
static int type_special(lua_State *L, int type, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char oid[24];
    switch (type) {
    case BSON_BINARY:
        if (n < 1)
            break;
        lua_pushliteral(L, "binary");
        lua_pushlstring(L, (const char *)p + 1, n - 1);
        lua_pushinteger(L, p[0]);
        return 3;
    case BSON_OBJECTID:
        if (n != 12)
            return luaL_error(L, "Invalid object id");
        for (int i = 0; i < 12; i++) {
            oid[2 * i] = hex[p[i] >> 4];
            oid[2 * i + 1] = hex[p[i] & 15];
        }
        lua_pushliteral(L, "objectid");
        lua_pushlstring(L, oid, 24);
        return 2;
    case BSON_DATE:
        if (n != 4)
            return luaL_error(L, "Invalid date");
        lua_pushliteral(L, "date");
        lua_pushinteger(L, (int32_t)(uint32_t)get_le(p, 4));
        return 2;
    case BSON_TIMESTAMP:
        if (n != 8)
            return luaL_error(L, "Invalid timestamp");
        lua_pushliteral(L, "timestamp");
        lua_pushnumber(L, (double)get_le(p + 4, 4));
        lua_pushnumber(L, (double)get_le(p, 4));
        return 3;
    case BSON_INT64:
        if (n != 8)
            return luaL_error(L, "Invalid int64");
        lua_pushliteral(L, "int64");
        seri_push_integer(L, (int64_t)get_le(p, 8));
        return 2;
    case BSON_REGEX: {
        const unsigned char *z = n >= 2 && p[n - 1] == 0 ? memchr(p, 0, n - 1) : NULL;
        if (!z)
            return luaL_error(L, "Invalid regex");
        lua_pushliteral(L, "regex");
        lua_pushlstring(L, (const char *)p, (size_t)(z - p));
        lua_pushlstring(L, (const char *)z + 1, n - 2 - (size_t)(z - p));
        return 3;
    }
    case BSON_MINKEY:
        lua_pushliteral(L, "minkey");
        return 1;
    case BSON_MAXKEY:
        lua_pushliteral(L, "maxkey");
        return 1;
    case BSON_NULL:
        lua_pushliteral(L, "nil");
        return 1;
    case BSON_JSCODE:
    case BSON_DBPOINTER:
    case BSON_SYMBOL:
    case BSON_CODEWS:
        lua_pushliteral(L, "unsupported");
        lua_pushlstring(L, (const char *)p, n);
        return 2;
    }
    return luaL_error(L, "Invalid subtype %d", type);
}

static int l_type(lua_State *L)
{
    int t = lua_type(L, 1);
    int64_t v;
    const char *name;
    if (t == LUA_TNUMBER || (t == 10 && seri_integer_value(L, 1, &v) != SERI_INT_NONE)) {
        name = "number";
    } else if (t == LUA_TBOOLEAN) {
        name = "boolean";
    } else if (t == LUA_TTABLE) {
        name = "table";
    } else if (t == LUA_TNIL) {
        lua_pushliteral(L, "nil");
        return 1;
    } else if (t == LUA_TSTRING) {
        size_t n;
        const unsigned char *s = (const unsigned char *)lua_tolstring(L, 1, &n);
        if (n >= 2 && s[0] == 0)
            return type_special(L, s[1], s + 2, n - 2);
        name = "string";
    } else {
        return luaL_error(L, "Invalid type %s", lua_typename(L, t));
    }
    lua_pushstring(L, name);
    lua_pushvalue(L, 1);
    return 2;
}

int luaopen_bson(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"encode", l_encode},
        {"encode_order", l_encode_order},
        {"decode", l_decode},
        {"date", l_date},
        {"timestamp", l_timestamp},
        {"regex", l_regex},
        {"binary", l_binary},
        {"objectid", l_objectid},
        {"int64", l_int64},
        {"type", l_type},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"decode", l_decode},
        {"makeindex", l_makeindex},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, BSON_META)) {
        lua_createtable(L, 0, 2);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, l_len);
        lua_setfield(L, -2, "__len");
        lua_pushcfunction(L, l_replace);
        lua_setfield(L, -2, "__newindex");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 13);
    luaL_register(L, NULL, funcs);
    static const struct {
        const char *name;
        char type;
    } consts[] = {
        {"null", (char)BSON_NULL},
        {"minkey", (char)BSON_MINKEY},
        {"maxkey", (char)BSON_MAXKEY},
    };
    for (size_t i = 0; i < sizeof consts / sizeof *consts; i++) {
        char v[2] = {0, consts[i].type};
        lua_pushlstring(L, v, 2);
        lua_setfield(L, -2, consts[i].name);
    }
    return 1;
}
