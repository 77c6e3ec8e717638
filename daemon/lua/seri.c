/* seri: the value serialization of skynet.pack/skynet.unpack (wire-format.md Part A) for LuaJIT.
 * Owns the encoder (Lua values -> bytes), the decoder (bytes -> Lua values) and seri_check, which
 * walks the grammar with the very same reader as the decoder, only without building values.
 * Pure functions over the calling lua_State: any thread, no locks, no globals but registry keys.
 * seri_pack's buffer is malloc'd and belongs to the caller; while encoding, a heap block is owned
 * by a GC'd userdata so that a Lua error (a longjmp) in the middle cannot leak it. */
#include "seri.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* int64 policy (A.9). Encoding: a number is an integer when it is finite, integral, not -0.0 and
 * in [-2^63, 2^63); cdata of ctype int64_t is an integer read exactly; uint64_t cdata is one when
 * <= INT64_MAX, else "integer overflow: uint64 value does not fit int64"; any other cdata is
 * "Unsupport type cdata to serialize". Decoding: an integer becomes a plain number when the double
 * holds it exactly, otherwise an int64_t cdata with the exact value. Such cdata compare by
 * identity when used as table keys, so a key beyond 2^53 decodes to a key nobody can index by
 * value. Light userdata is written as 8 bytes LE of the pointer (never leaves the process). */

#define LUA_TCDATA 10          /* LuaJIT's type tag of FFI cdata; lua.h does not name it */
#define SERI_PACK_DEPTH 32     /* encoder: Skynet refuses a value deeper than this (A.8) */
#define SERI_INLINE 256        /* encoder: the first bytes of a message stay on the C stack */
#define SERI_PRESIZE (1 << 20) /* decoder: cap on the array slots allocated before reading */
#define SERI_POINTER_BITS 47   /* LuaJIT refuses light userdata beyond 47 bits */

enum {
    SERI_NIL,
    SERI_BOOLEAN,
    SERI_NUMBER,
    SERI_USERDATA,
    SERI_SHORT_STRING,
    SERI_LONG_STRING,
    SERI_TABLE
};
enum {
    SERI_NUM_ZERO = 0,
    SERI_NUM_BYTE = 1,
    SERI_NUM_WORD = 2,
    SERI_NUM_DWORD = 4,
    SERI_NUM_QWORD = 6,
    SERI_NUM_REAL = 8
};
#define SERI_TYPE(type, cookie) ((unsigned char)((type) | (cookie) << 3))

/* ---- LuaJIT FFI helpers, cached per lua_State in the registry ---- */

static char seri_classify_key; /* function(v) -> 1 int64_t, 2 uint64_t, 0 other */
static char seri_int64_key;    /* function() -> a fresh int64_t cdata */

static const char seri_ffi_chunk[] =
    "local ffi = ...\n"
    "local istype, int64 = ffi.istype, ffi.typeof('int64_t')\n"
    "return function(v)\n"
    "  local kind = istype('int64_t', v) and 1 or istype('uint64_t', v) and 2 or 0\n"
    "  if kind ~= 0 and tostring(v):byte() == 99 then return 0 end -- the ctype<int64_t> itself\n"
    "  return kind\n"
    "end, function() return int64() end\n";

/* Push the helper stored under key, building both helpers on first use. Needs 5 stack slots. */
static void seri_push_helper(lua_State *L, char *key)
{
    lua_pushlightuserdata(L, key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (!lua_isnil(L, -1))
        return;
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, seri_ffi_chunk, sizeof seri_ffi_chunk - 1, "=seri") != 0)
        lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED"); /* package.loaded.ffi, else require'ffi' */
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "ffi");
    else
        lua_pushnil(L);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "ffi");
        lua_call(L, 1, 1);
    }
    lua_call(L, 1, 2);
    lua_pushlightuserdata(L, &seri_int64_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &seri_classify_key);
    lua_pushvalue(L, -3);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pop(L, 2);
    lua_pushlightuserdata(L, key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

int seri_integer_value(lua_State *L, int idx, int64_t *v)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double d = lua_tonumber(L, idx);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != (double)(int64_t)d)
            return SERI_INT_NONE;
        *v = (int64_t)d;
        return SERI_INT_EXACT;
    }
    if (lua_type(L, idx) != LUA_TCDATA)
        return SERI_INT_NONE;
    idx = idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx;
    luaL_checkstack(L, 6, "int64");
    seri_push_helper(L, &seri_classify_key);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    int kind = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (kind == 0)
        return SERI_INT_NONE;
    memcpy(v, lua_topointer(L, idx), sizeof *v);
    return kind == 2 && *v < 0 ? SERI_INT_UINT64_HIGH : SERI_INT_EXACT;
}

/* ---- encoder ---- */

struct seri_box { /* a full userdata whose __gc frees p: the owner of the heap block */
    unsigned char *p;
};

struct seri_writer {
    lua_State *L;
    unsigned char *buf; /* inline_buf, or owner->p once the message outgrew it */
    size_t len, cap;
    int box;                /* stack slot reserved for the owner userdata */
    struct seri_box *owner; /* NULL while buf is inline_buf */
    unsigned char inline_buf[SERI_INLINE];
};

static int seri_box_gc(lua_State *L)
{
    struct seri_box *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    return 0;
}

/* Raise an encoder error, freeing the heap block first rather than leaving it to the GC.
 * (Errors raised by Lua itself, from __pairs or out of memory, still rely on the GC.) */
static void seri_pack_fail(struct seri_writer *w, const char *fmt, ...)
{
    if (w->owner) {
        free(w->owner->p);
        w->owner->p = NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(w->L, fmt, ap); /* like luaL_error, which adds no position for C */
    va_end(ap);
    lua_error(w->L);
}

static void seri_grow(struct seri_writer *w, size_t need)
{
    lua_State *L = w->L;
    if (need > SIZE_MAX / 2 - w->len)
        seri_pack_fail(w, "serialize: message too large");
    size_t cap = w->cap * 2 > w->len + need ? w->cap * 2 : w->len + need;
    if (!w->owner) { /* the owner exists before the block does: nothing to leak */
        luaL_checkstack(L, 3, "serialize");
        struct seri_box *b = lua_newuserdata(L, sizeof *b);
        b->p = NULL;
        if (luaL_newmetatable(L, "skyjet.seri.buffer")) {
            lua_pushcfunction(L, seri_box_gc);
            lua_setfield(L, -2, "__gc");
        }
        lua_setmetatable(L, -2);
        lua_replace(L, w->box);
        w->owner = b;
    }
    unsigned char *p = realloc(w->owner->p, cap);
    if (!p)
        seri_pack_fail(w, "serialize: out of memory");
    if (!w->owner->p)
        memcpy(p, w->buf, w->len);
    w->owner->p = w->buf = p;
    w->cap = cap;
}

/* Claim n bytes at the end of the message; the caller fills them. */
static inline unsigned char *seri_reserve(struct seri_writer *w, size_t n)
{
    if (w->cap - w->len < n)
        seri_grow(w, n);
    unsigned char *p = w->buf + w->len;
    w->len += n;
    return p;
}

static inline void seri_put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The exact width selection of A.4 (the 4-byte form is signed, so 2^31.. needs 8 bytes). */
static void seri_write_integer(struct seri_writer *w, int64_t v)
{
    unsigned char *p;
    if (v == 0) {
        *seri_reserve(w, 1) = SERI_TYPE(SERI_NUMBER, SERI_NUM_ZERO);
    } else if (v < INT32_MIN || v > INT32_MAX) {
        p = seri_reserve(w, 9);
        p[0] = SERI_TYPE(SERI_NUMBER, SERI_NUM_QWORD);
        seri_put_le(p + 1, (uint64_t)v, 8);
    } else if (v < 0 || v >= 65536) {
        p = seri_reserve(w, 5);
        p[0] = SERI_TYPE(SERI_NUMBER, SERI_NUM_DWORD);
        seri_put_le(p + 1, (uint32_t)v, 4);
    } else if (v < 256) {
        p = seri_reserve(w, 2);
        p[0] = SERI_TYPE(SERI_NUMBER, SERI_NUM_BYTE);
        p[1] = (unsigned char)v;
    } else {
        p = seri_reserve(w, 3);
        p[0] = SERI_TYPE(SERI_NUMBER, SERI_NUM_WORD);
        seri_put_le(p + 1, (uint64_t)v, 2);
    }
}

/* A.9: integral finite doubles in [-2^63, 2^63), except -0.0, go out as integers. */
static void seri_write_number(struct seri_writer *w, double d)
{
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        int64_t i = (int64_t)d;
        if ((double)i == d && (i != 0 || !signbit(d))) {
            seri_write_integer(w, i);
            return;
        }
    }
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    unsigned char *p = seri_reserve(w, 9);
    p[0] = SERI_TYPE(SERI_NUMBER, SERI_NUM_REAL);
    seri_put_le(p + 1, bits, 8);
}

static void seri_write_string(struct seri_writer *w, const char *s, size_t n)
{
    unsigned char *p;
    if (n < 32) {
        p = seri_reserve(w, 1 + n);
        *p++ = SERI_TYPE(SERI_SHORT_STRING, n);
    } else if (n < 65536) {
        p = seri_reserve(w, 3 + n);
        p[0] = SERI_TYPE(SERI_LONG_STRING, 2);
        seri_put_le(p + 1, n, 2);
        p += 3;
    } else {
        if (n > INT32_MAX) /* the decoder (ours and Skynet's) cannot take bit 31 */
            seri_pack_fail(w, "serialize: string too long");
        p = seri_reserve(w, 5 + n);
        p[0] = SERI_TYPE(SERI_LONG_STRING, 4);
        seri_put_le(p + 1, n, 4);
        p += 5;
    }
    memcpy(p, s, n);
}

/* The exact value of an int64_t/uint64_t cdata, or a Lua error for any other cdata. */
static int64_t seri_cdata_integer(struct seri_writer *w, int idx)
{
    int64_t v;
    int kind = seri_integer_value(w->L, idx, &v);
    if (kind == SERI_INT_NONE)
        seri_pack_fail(w, "Unsupport type cdata to serialize");
    if (kind == SERI_INT_UINT64_HIGH)
        seri_pack_fail(w, "integer overflow: uint64 value does not fit int64");
    return v;
}

static void seri_pack_value(struct seri_writer *w, int idx, int depth);

/* A.6 __pairs layout: header 06, every pair the metamethod yields as a hash pair, then 00.
 * The metamethod is on the stack top. */
static void seri_pack_pairs(struct seri_writer *w, int idx, int depth)
{
    lua_State *L = w->L;
    *seri_reserve(w, 1) = SERI_TYPE(SERI_TABLE, 0);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 3); /* iterator, state, control */
    int base = lua_gettop(L);
    for (;;) {
        lua_pushvalue(L, base - 2);
        lua_pushvalue(L, base - 1);
        lua_pushvalue(L, base);
        lua_call(L, 2, 2);
        if (lua_isnil(L, base + 1))
            break;
        seri_pack_value(w, base + 1, depth + 1);
        seri_pack_value(w, base + 2, depth + 1);
        lua_pop(L, 1);
        lua_replace(L, base);
    }
    lua_pop(L, 5);
    *seri_reserve(w, 1) = SERI_TYPE(SERI_NIL, 0);
}

static void seri_pack_table(struct seri_writer *w, int idx, int depth)
{
    lua_State *L = w->L;
    luaL_checkstack(L, LUA_MINSTACK, "serialize");
    if (luaL_getmetafield(L, idx, "__pairs")) {
        seri_pack_pairs(w, idx, depth);
        return;
    }
    size_t n = lua_objlen(L, idx);
    if (n < 31) {
        *seri_reserve(w, 1) = SERI_TYPE(SERI_TABLE, n);
    } else {
        *seri_reserve(w, 1) = SERI_TYPE(SERI_TABLE, 31);
        seri_write_integer(w, (int64_t)n);
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        seri_pack_value(w, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (n > 0 && lua_type(L, -2) == LUA_TNUMBER) { /* keys 1..n went in the array part */
            double k = lua_tonumber(L, -2);
            if (k >= 1 && k <= (double)n && k == (double)(int64_t)k) {
                lua_pop(L, 1);
                continue;
            }
        }
        int top = lua_gettop(L);
        seri_pack_value(w, top - 1, depth + 1);
        seri_pack_value(w, top, depth + 1);
        lua_pop(L, 1);
    }
    *seri_reserve(w, 1) = SERI_TYPE(SERI_NIL, 0);
}

/* idx must be absolute. */
static void seri_pack_value(struct seri_writer *w, int idx, int depth)
{
    lua_State *L = w->L;
    if (depth > SERI_PACK_DEPTH)
        seri_pack_fail(w, "serialize can't pack too depth table");
    int type = lua_type(L, idx);
    switch (type) {
    case LUA_TNIL:
        *seri_reserve(w, 1) = SERI_TYPE(SERI_NIL, 0);
        break;
    case LUA_TBOOLEAN:
        *seri_reserve(w, 1) = SERI_TYPE(SERI_BOOLEAN, lua_toboolean(L, idx) ? 1 : 0);
        break;
    case LUA_TNUMBER:
        seri_write_number(w, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        seri_write_string(w, s, n);
        break;
    }
    case LUA_TLIGHTUSERDATA: {
        unsigned char *p = seri_reserve(w, 9);
        p[0] = SERI_TYPE(SERI_USERDATA, 0);
        seri_put_le(p + 1, (uintptr_t)lua_touserdata(L, idx), 8);
        break;
    }
    case LUA_TTABLE:
        seri_pack_table(w, idx, depth);
        break;
    case LUA_TCDATA:
        seri_write_integer(w, seri_cdata_integer(w, idx));
        break;
    default:
        seri_pack_fail(w, "Unsupport type %s to serialize", lua_typename(L, type));
    }
}

/* Encode stack slots from..to into w. Leaves one slot pushed (w->box): pop it when done. */
static void seri_pack_into(struct seri_writer *w, lua_State *L, int from, int to)
{
    w->L = L;
    w->buf = w->inline_buf;
    w->len = 0;
    w->cap = sizeof w->inline_buf;
    w->owner = NULL;
    luaL_checkstack(L, LUA_MINSTACK, "serialize");
    lua_pushnil(L);
    w->box = lua_gettop(L);
    for (int i = from; i <= to; i++)
        seri_pack_value(w, i, 0);
}

void *seri_pack_range(lua_State *L, int from, int to, size_t *size)
{
    struct seri_writer w;
    int top = lua_gettop(L);
    if (from < 0)
        from += top + 1;
    if (to < 0)
        to += top + 1;
    seri_pack_into(&w, L, from, to);
    void *out = NULL;
    if (w.owner) { /* take the block from its owner, trimmed to size */
        out = w.owner->p;
        w.owner->p = NULL;
        void *trimmed = realloc(out, w.len);
        if (trimmed)
            out = trimmed;
    } else if (w.len > 0) {
        out = malloc(w.len);
        if (!out)
            luaL_error(L, "serialize: out of memory");
        memcpy(out, w.buf, w.len);
    }
    lua_pop(L, 1);
    *size = w.len;
    return out;
}

int seri_pack(lua_State *L)
{
    size_t size;
    void *buf = seri_pack_range(L, 1, lua_gettop(L), &size);
    lua_pushlightuserdata(L, buf);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

int seri_packstring(lua_State *L)
{
    struct seri_writer w;
    seri_pack_into(&w, L, 1, lua_gettop(L));
    lua_pushlstring(L, (const char *)w.buf, w.len);
    if (w.owner) { /* free now rather than at the next GC cycle */
        free(w.owner->p);
        w.owner->p = NULL;
    }
    return 1;
}

/* ---- decoder and validator: one reader; L == NULL only validates ---- */

struct seri_reader {
    const unsigned char *p, *end, *start;
    lua_State *L;
    int allow_pointer;
    char err[160];
};

static int seri_fail(struct seri_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record why the stream is bad; returns -1 for the caller to pass up. */
static int seri_fail(struct seri_reader *r, const char *fmt, ...)
{
    int n = snprintf(r->err, sizeof r->err, "Invalid serialize stream: ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof r->err)
        snprintf(r->err + n, sizeof r->err - (size_t)n, " at offset %zu",
                 (size_t)(r->p - r->start));
    return -1;
}

static const unsigned char *seri_take(struct seri_reader *r, size_t n, const char *what)
{
    size_t left = (size_t)(r->end - r->p);
    if (left < n) {
        seri_fail(r, "truncated %s (need %zu bytes, %zu left)", what, n, left);
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

static inline uint64_t seri_get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline double seri_get_double(const unsigned char *p)
{
    uint64_t bits = seri_get_le(p, 8);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static int seri_read_integer(struct seri_reader *r, int cookie, int64_t *v)
{
    const unsigned char *p;
    int width;
    switch (cookie) {
    case SERI_NUM_ZERO:
        *v = 0;
        return 0;
    case SERI_NUM_BYTE:
        width = 1;
        break;
    case SERI_NUM_WORD:
        width = 2;
        break;
    case SERI_NUM_DWORD:
        width = 4;
        break;
    case SERI_NUM_QWORD:
        width = 8;
        break;
    default:
        return seri_fail(r, "bad number cookie %d", cookie);
    }
    if (!(p = seri_take(r, (size_t)width, "number")))
        return -1;
    uint64_t u = seri_get_le(p, width);
    *v = width == 4 ? (int32_t)(uint32_t)u : (int64_t)u; /* only the 4-byte form is signed */
    return 0;
}

void seri_push_integer(lua_State *L, int64_t v)
{
    double d = (double)v;
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (int64_t)d == v) {
        lua_pushnumber(L, d);
        return;
    }
    seri_push_helper(L, &seri_int64_key);
    lua_call(L, 0, 1);
    memcpy((void *)lua_topointer(L, -1), &v, sizeof v);
}

static int seri_read_value(struct seri_reader *r, int depth);

/* Each Lua-building step below needs at most this many free stack slots. */
#define SERI_SLOTS 8

static int seri_read_table(struct seri_reader *r, int cookie, int depth)
{
    lua_State *L = r->L;
    int64_t n = cookie;
    if (depth >= SERI_MAX_DEPTH)
        return seri_fail(r, "tables nested deeper than %d", SERI_MAX_DEPTH);
    if (cookie == 31) { /* the array length follows as an integer value */
        const unsigned char *t = seri_take(r, 1, "table count");
        if (!t)
            return -1;
        if ((*t & 7) != SERI_NUMBER || *t >> 3 == SERI_NUM_REAL)
            return seri_fail(r, "table count is not an integer (type byte 0x%02x)", *t);
        if (seri_read_integer(r, *t >> 3, &n) < 0)
            return -1;
        if (n < 0)
            n = 0;
        size_t left = (size_t)(r->end - r->p); /* each element and the end take >= 1 byte */
        if (n > 0 && ((uint64_t)n >= left || n > INT_MAX))
            return seri_fail(r, "table count %lld exceeds the %zu bytes left", (long long)n, left);
    }
    if (L) {
        if (!lua_checkstack(L, SERI_SLOTS))
            return seri_fail(r, "Lua stack exhausted");
        lua_createtable(L, (int)(n < SERI_PRESIZE ? n : SERI_PRESIZE), 0);
    }
    for (int64_t i = 1; i <= n; i++) {
        if (seri_read_value(r, depth + 1) < 0)
            return -1;
        if (L)
            lua_rawseti(L, -2, (int)i);
    }
    for (;;) {
        if (r->p == r->end)
            return seri_fail(r, "table without its end marker");
        if ((*r->p & 7) == SERI_NIL) {
            r->p++;
            return 0;
        }
        const unsigned char *key = r->p;
        if (seri_read_value(r, depth + 1) < 0)
            return -1;
        if (*key == SERI_TYPE(SERI_NUMBER, SERI_NUM_REAL) && isnan(seri_get_double(key + 1))) {
            snprintf(r->err, sizeof r->err, "table index is NaN");
            return -1;
        }
        if (seri_read_value(r, depth + 1) < 0)
            return -1;
        if (!L)
            continue;
        if (lua_isnil(L, -1)) /* A.8: nil-valued hash entries are skipped */
            lua_pop(L, 2);
        else
            lua_rawset(L, -3);
    }
}

static int seri_read_string(struct seri_reader *r, size_t n)
{
    const unsigned char *s = seri_take(r, n, "string");
    if (!s)
        return -1;
    if (r->L)
        lua_pushlstring(r->L, (const char *)s, n);
    return 0;
}

static int seri_read_value(struct seri_reader *r, int depth)
{
    lua_State *L = r->L;
    const unsigned char *t = seri_take(r, 1, "value");
    if (!t)
        return -1;
    int cookie = *t >> 3;
    switch (*t & 7) {
    case SERI_NIL:
        if (L)
            lua_pushnil(L);
        return 0;
    case SERI_BOOLEAN:
        if (L)
            lua_pushboolean(L, cookie != 0);
        return 0;
    case SERI_NUMBER:
        if (cookie == SERI_NUM_REAL) {
            const unsigned char *p = seri_take(r, 8, "number");
            if (!p)
                return -1;
            if (L)
                lua_pushnumber(L, seri_get_double(p));
        } else {
            int64_t v;
            if (seri_read_integer(r, cookie, &v) < 0)
                return -1;
            if (L)
                seri_push_integer(L, v);
        }
        return 0;
    case SERI_USERDATA: {
        if (!r->allow_pointer)
            return seri_fail(r, "light userdata not allowed here");
        const unsigned char *p = seri_take(r, 8, "pointer");
        if (!p)
            return -1;
        uint64_t ptr = seri_get_le(p, 8);
        if (ptr >> SERI_POINTER_BITS)
            return seri_fail(r, "light userdata 0x%llx out of range", (unsigned long long)ptr);
        if (L)
            lua_pushlightuserdata(L, (void *)(uintptr_t)ptr);
        return 0;
    }
    case SERI_SHORT_STRING:
        return seri_read_string(r, (size_t)cookie);
    case SERI_LONG_STRING: {
        if (cookie != 2 && cookie != 4)
            return seri_fail(r, "bad long string cookie %d", cookie);
        const unsigned char *p = seri_take(r, (size_t)cookie, "string length");
        if (!p)
            return -1;
        uint64_t n = seri_get_le(p, cookie);
        if (n > INT32_MAX)
            return seri_fail(r, "string length %llu has bit 31 set", (unsigned long long)n);
        return seri_read_string(r, (size_t)n);
    }
    case SERI_TABLE:
        return seri_read_table(r, cookie, depth);
    default:
        return seri_fail(r, "bad type byte 0x%02x", *t);
    }
}

/* Walk (and with r->L, push) every top-level value; the count, or -1 with r->err set. */
static int seri_read_all(struct seri_reader *r)
{
    int n = 0;
    while (r->p < r->end) {
        if (n == SERI_MAX_VALUES)
            return seri_fail(r, "more than %d values", SERI_MAX_VALUES);
        if (r->L && !lua_checkstack(r->L, SERI_SLOTS))
            return seri_fail(r, "Lua stack exhausted");
        if (seri_read_value(r, 0) < 0)
            return -1;
        n++;
    }
    return n;
}

static void seri_reader_init(struct seri_reader *r, lua_State *L, const void *buf, size_t size,
                             int allow_pointer)
{
    r->start = r->p = buf;
    r->end = r->p + size;
    r->L = L;
    r->allow_pointer = allow_pointer;
    r->err[0] = '\0';
}

int seri_check(const void *buf, size_t size, int allow_pointer, char *err, size_t errlen)
{
    struct seri_reader r;
    if (!buf && size > 0) {
        if (err && errlen)
            snprintf(err, errlen, "Invalid serialize stream: NULL buffer");
        return -1;
    }
    seri_reader_init(&r, NULL, buf, buf ? size : 0, allow_pointer);
    if (seri_read_all(&r) >= 0)
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "%s", r.err);
    return -1;
}

int seri_unpack(lua_State *L)
{
    const void *buf;
    size_t size;
    switch (lua_type(L, 1)) {
    case LUA_TNONE:
    case LUA_TNIL:
        return 0;
    case LUA_TSTRING:
        buf = lua_tolstring(L, 1, &size);
        break;
    case LUA_TLIGHTUSERDATA: {
        lua_Integer n = luaL_checkinteger(L, 2);
        buf = lua_touserdata(L, 1);
        if (n < 0)
            return luaL_argerror(L, 2, "negative size");
        if (!buf && n > 0)
            return luaL_argerror(L, 1, "NULL buffer");
        size = (size_t)n;
        break;
    }
    default:
        return luaL_typerror(L, 1, "string or lightuserdata");
    }
    struct seri_reader r;
    seri_reader_init(&r, L, buf, size, 1);
    int n = seri_read_all(&r);
    if (n < 0)
        return luaL_error(L, "%s", r.err);
    return n;
}

int luaopen_skynet_seri(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"pack", seri_pack},
                                     {"packstring", seri_packstring},
                                     {"unpack", seri_unpack},
                                     {NULL, NULL}};
    lua_createtable(L, 0, 3);
    luaL_register(L, NULL, funcs);
    return 1;
}
