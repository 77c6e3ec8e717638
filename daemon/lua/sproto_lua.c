/* sproto_lua: the `sproto.core` Lua module over the C core in sproto.c: encode (Lua table ->
 * message), decode (message -> Lua table, validating with the core's reader as it goes), pack and
 * unpack, schema objects and their queries, `default`, and sprotoloader's node-wide slots, which
 * publish an immutable schema with a release store so any service's thread can read it. Encode,
 * decode and pack run on the calling service's thread; their scratch buffer is a GC'd userdata,
 * so a Lua error in the middle of a message cannot leak it. */
#include "sproto.h"

#include "seri.h"

#include <lauxlib.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LUA_TCDATA 10        /* LuaJIT's type tag of FFI cdata (seri.c's int64 policy reads it) */
#define SP_MAXDEPTH 64       /* nesting bound of encode and decode, as Skynet's "too deep" */
#define SP_INLINE_MAX 0x7ffe /* integers 0..this travel in the field slot itself */
#define SP_MAXSLOTS 16       /* sprotoloader slots, as Skynet's MAX_GLOBALSPROTO */

/* ---- Lua: scratch buffer and arguments -------------------------------------------------- */

/* The scratch buffer: its block is a Lua userdata kept in the scratch's environment table, so
 * the GC owns every byte (a Lua error mid-message leaks nothing, and no malloc'd block hides in
 * LuaJIT's own heap). */
struct sp_scratch {
    uint8_t *p;
    size_t cap;
    int busy; /* an encode is using it */
};

/* Grow s (the scratch userdata at stack index idx) to hold need bytes, keeping the content. */
static uint8_t *sp_scratch_need(lua_State *L, int idx, size_t need)
{
    struct sp_scratch *b = lua_touserdata(L, idx);
    if (need > (size_t)SPROTO_MAXSIZE + 64)
        luaL_error(L, "object is too large (>%d)", SPROTO_MAXSIZE);
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        uint8_t *p = lua_newuserdata(L, cap);
        if (b->cap)
            memcpy(p, b->p, b->cap);
        lua_getfenv(L, idx);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_pop(L, 1);
        b->p = p;
        b->cap = cap;
    }
    return b->p;
}

static void sp_scratch_new(lua_State *L)
{
    struct sp_scratch *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    lua_createtable(L, 1, 0);
    lua_setfenv(L, -2);
}

/* A message argument: a string, or (userdata, size) as Skynet's messages arrive. */
static const uint8_t *sp_checkbuffer(lua_State *L, int idx, size_t *sz)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING)
        return (const uint8_t *)lua_tolstring(L, idx, sz);
    if (t != LUA_TUSERDATA && t != LUA_TLIGHTUSERDATA)
        luaL_argerror(L, idx, "Need a string or userdata");
    lua_Integer n = luaL_checkinteger(L, idx + 1);
    if (n < 0)
        luaL_argerror(L, idx + 1, "negative size");
    *sz = (size_t)n;
    const uint8_t *p = lua_touserdata(L, idx);
    if (!p && n > 0)
        luaL_argerror(L, idx, "NULL buffer");
    return p;
}

static struct sproto *sp_checkproto(lua_State *L, int idx)
{
    struct sproto *sp = lua_touserdata(L, idx);
    if (!sp)
        luaL_argerror(L, idx, "Need a sproto object");
    return sp;
}

/* ---- Lua: encoder ----------------------------------------------------------------------- */

struct sp_enc {
    lua_State *L;
    struct sp_scratch *b;
    int slot; /* stack index of the scratch userdata b */
    size_t len;
};

/* Make room for n more bytes and return the offset where they start. The block may move:
 * callers address it through e->b->p after taking. */
static size_t sp_enc_take(struct sp_enc *e, size_t n)
{
    sp_scratch_need(e->L, e->slot, e->len + n);
    size_t at = e->len;
    e->len += n;
    return at;
}

static void sp_enc_bytes(struct sp_enc *e, const void *p, size_t n)
{
    size_t at = sp_enc_take(e, n);
    memcpy(e->b->p + at, p, n);
}

static int sp_type_error(lua_State *L, const struct sproto_field *f, int index, const char *what,
                         int idx)
{
    return luaL_error(L, ".%s[%d] is not %s (Is a %s)", f->name, index, what,
                      luaL_typename(L, idx));
}

static int64_t sp_enc_integer(struct sp_enc *e, const struct sproto_field *f, int idx, int index)
{
    lua_State *L = e->L;
    int t = lua_type(L, idx);
    int64_t v;
    if (t == LUA_TNUMBER) {
        double d = lua_tonumber(L, idx);
        if (f->decimal)
            d = round(d * (double)f->decimal);
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return (int64_t)d;
    } else if (t == LUA_TCDATA && !f->decimal && seri_integer_value(L, idx, &v) == SERI_INT_EXACT) {
        return v;
    }
    sp_type_error(L, f, index, "an integer", idx);
    return 0;
}

static void sp_enc_struct(struct sp_enc *e, const struct sproto_type *t, int tbl, int depth);

/* A struct as a length-prefixed part, from the table at idx. */
static void sp_enc_struct_part(struct sp_enc *e, const struct sproto_field *f, int idx, int index,
                               int depth)
{
    if (!lua_istable(e->L, idx))
        sp_type_error(e->L, f, index, "a table", idx);
    size_t at = sp_enc_take(e, 4);
    sp_enc_struct(e, f->st, idx, depth + 1);
    sproto_put_le(e->b->p + at, e->len - at - 4, 4);
}

static void sp_enc_string_part(struct sp_enc *e, const struct sproto_field *f, int idx, int index)
{
    size_t n;
    if (lua_type(e->L, idx) != LUA_TSTRING)
        sp_type_error(e->L, f, index, "a string", idx);
    const char *s = lua_tolstring(e->L, idx, &n);
    if (n > SPROTO_MAXSIZE)
        luaL_error(e->L, "object is too large (>%d)", SPROTO_MAXSIZE);
    uint8_t h[4];
    sproto_put_le(h, n, 4);
    sp_enc_bytes(e, h, 4);
    sp_enc_bytes(e, s, n);
}

static double sp_enc_double(struct sp_enc *e, const struct sproto_field *f, int idx, int index)
{
    if (lua_type(e->L, idx) != LUA_TNUMBER)
        sp_type_error(e->L, f, index, "a number", idx);
    return lua_tonumber(e->L, idx);
}

static int sp_enc_boolean(struct sp_enc *e, const struct sproto_field *f, int idx, int index)
{
    if (lua_type(e->L, idx) != LUA_TBOOLEAN)
        sp_type_error(e->L, f, index, "a boolean", idx);
    return lua_toboolean(e->L, idx);
}

/* A data part of n little-endian bytes of v (integers and doubles). */
static void sp_enc_scalar_part(struct sp_enc *e, uint64_t v, int n)
{
    uint8_t tmp[12];
    sproto_put_le(tmp, (uint64_t)n, 4);
    sproto_put_le(tmp + 4, v, n);
    sp_enc_bytes(e, tmp, 4 + (size_t)n);
}

/* A non-array field from the value at idx: returns its slot (0: the value went to data). */
static unsigned sp_enc_single(struct sp_enc *e, const struct sproto_field *f, int idx, int depth)
{
    switch (f->type) {
    case SPROTO_INTEGER: {
        int64_t v = sp_enc_integer(e, f, idx, 0);
        if (v >= 0 && v <= SP_INLINE_MAX)
            return (unsigned)(v + 1) * 2;
        sp_enc_scalar_part(e, (uint64_t)v, v >= INT32_MIN && v <= INT32_MAX ? 4 : 8);
        return 0;
    }
    case SPROTO_BOOLEAN:
        return sp_enc_boolean(e, f, idx, 0) ? 4 : 2;
    case SPROTO_DOUBLE: {
        double d = sp_enc_double(e, f, idx, 0);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        sp_enc_scalar_part(e, bits, 8);
        return 0;
    }
    case SPROTO_STRING:
        sp_enc_string_part(e, f, idx, 0);
        return 0;
    default:
        sp_enc_struct_part(e, f, idx, 0, depth);
        return 0;
    }
}

/* Integer and double arrays: a width byte (4 or 8), then the values; empty: nothing. Integers
 * are written 8 wide, then closed up to 4 when every one fits 32 bits. */
static void sp_enc_number_array(struct sp_enc *e, const struct sproto_field *f, int tbl)
{
    lua_State *L = e->L;
    size_t width_at = sp_enc_take(e, 1), first = e->len;
    int wide = f->type == SPROTO_DOUBLE, i;
    for (i = 1;; i++) {
        lua_rawgeti(L, tbl, i);
        if (lua_isnil(L, -1))
            break;
        uint64_t bits;
        if (f->type == SPROTO_DOUBLE) {
            double d = sp_enc_double(e, f, -1, i);
            memcpy(&bits, &d, 8);
        } else {
            int64_t v = sp_enc_integer(e, f, lua_gettop(L), i);
            wide |= v < INT32_MIN || v > INT32_MAX;
            bits = (uint64_t)v;
        }
        size_t at = sp_enc_take(e, 8);
        sproto_put_le(e->b->p + at, bits, 8);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (i == 1) {
        e->len = width_at;
        return;
    }
    e->b->p[width_at] = wide ? 8 : 4;
    if (!wide) {
        for (int k = 0; k < i - 1; k++)
            memmove(e->b->p + first + 4 * (size_t)k, e->b->p + first + 8 * (size_t)k, 4);
        e->len = first + 4 * (size_t)(i - 1);
    }
}

/* Keyed arrays go in the order lua_next visits them; a map's entries become two-field structs. */
static void sp_enc_keyed_array(struct sp_enc *e, const struct sproto_field *f, int tbl, int depth)
{
    lua_State *L = e->L;
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        if (f->map) {
            lua_createtable(L, 0, 2);
            lua_pushvalue(L, -3);
            lua_setfield(L, -2, f->keyname);
            lua_pushvalue(L, -2);
            lua_setfield(L, -2, f->valname);
            lua_replace(L, -2);
        }
        sp_enc_struct_part(e, f, lua_gettop(L), 0, depth);
        lua_pop(L, 1);
    }
}

static void sp_enc_array(struct sp_enc *e, const struct sproto_field *f, int tbl, int depth)
{
    lua_State *L = e->L;
    if (!lua_istable(L, tbl))
        sp_type_error(L, f, 0, "a table", tbl);
    size_t at = sp_enc_take(e, 4);
    if (f->type == SPROTO_INTEGER || f->type == SPROTO_DOUBLE) {
        sp_enc_number_array(e, f, tbl);
    } else if (f->key >= 0) {
        sp_enc_keyed_array(e, f, tbl, depth);
    } else {
        for (int i = 1;; i++) {
            lua_rawgeti(L, tbl, i);
            int top = lua_gettop(L);
            if (lua_isnil(L, top))
                break;
            if (f->type == SPROTO_BOOLEAN) {
                uint8_t v = (uint8_t)sp_enc_boolean(e, f, top, i);
                sp_enc_bytes(e, &v, 1);
            } else if (f->type == SPROTO_STRING) {
                sp_enc_string_part(e, f, top, i);
            } else {
                sp_enc_struct_part(e, f, top, i, depth);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    sproto_put_le(e->b->p + at, e->len - at - 4, 4);
}

/* The header is sized for the worst case (a skip before every field), then closed up. */
static void sp_enc_struct(struct sp_enc *e, const struct sproto_type *t, int tbl, int depth)
{
    lua_State *L = e->L;
    if (depth >= SP_MAXDEPTH)
        luaL_error(L, "The table is too deep");
    luaL_checkstack(L, 12, "sproto encode");
    size_t start = sp_enc_take(e, 2 + 4 * (size_t)t->n), data = e->len;
    unsigned nslot = 0;
    int last = -1;
    for (int i = 0; i < t->n; i++) {
        const struct sproto_field *f = &t->f[i];
        lua_getfield(L, tbl, f->name);
        int top = lua_gettop(L);
        if (lua_isnil(L, top)) {
            lua_pop(L, 1);
            continue;
        }
        unsigned slot = 0;
        if (f->array)
            sp_enc_array(e, f, top, depth);
        else
            slot = sp_enc_single(e, f, top, depth);
        lua_settop(L, top - 1);
        if (f->tag - last > 1)
            sproto_put_le(e->b->p + start + 2 + 2 * nslot++, 2 * (unsigned)(f->tag - last - 1) - 1,
                          2);
        sproto_put_le(e->b->p + start + 2 + 2 * nslot++, slot, 2);
        last = f->tag;
    }
    size_t header = 2 + 2 * (size_t)nslot;
    sproto_put_le(e->b->p + start, nslot, 2);
    memmove(e->b->p + start + header, e->b->p + data, e->len - data);
    e->len -= data - (start + header);
}

static int sp_encode_body(lua_State *L)
{
    struct sp_enc *e = lua_touserdata(L, 1);
    const struct sproto_type *t = lua_touserdata(L, 2);
    e->L = L;
    e->slot = 4;
    sp_enc_struct(e, t, 3, 0);
    return 0;
}

/* encode(type, table) -> string; a NULL type (a `response nil`) encodes nil as "".
 * The scratch buffer is shared by the module's functions; an encode that starts while another
 * is running (a metamethod of the message encoding something) gets a buffer of its own. The
 * body runs under lua_pcall so that an error cannot leave the shared buffer marked busy. */
static int l_encode(lua_State *L)
{
    const struct sproto_type *t = lua_touserdata(L, 1);
    if (!t) {
        luaL_checktype(L, 2, LUA_TNIL);
        lua_pushliteral(L, "");
        return 1;
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    struct sp_enc e = {L, lua_touserdata(L, 3), 0, 0};
    if (e.b->busy) {
        lua_pop(L, 1);
        sp_scratch_new(L);
        e.b = lua_touserdata(L, 3);
    }
    e.b->busy = 1;
    lua_pushcfunction(L, sp_encode_body);
    lua_pushlightuserdata(L, &e);
    lua_pushlightuserdata(L, (void *)t);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    int rc = lua_pcall(L, 4, 0, 0);
    e.b->busy = 0;
    if (rc != 0)
        return lua_error(L);
    lua_pushlstring(L, (const char *)e.b->p, e.len);
    return 1;
}

/* ---- Lua: decoder ----------------------------------------------------------------------- */

static int sp_dec_fail(lua_State *L, const char *why)
{
    return luaL_error(L, "decode error: %s", why);
}

static size_t sp_dec_struct(lua_State *L, const struct sproto_type *t, const uint8_t *p,
                            size_t size, int out, int depth);

static void sp_dec_integer(lua_State *L, const struct sproto_field *f, int64_t v)
{
    if (f->decimal)
        lua_pushnumber(L, (double)v / (double)f->decimal);
    else
        seri_push_integer(L, v);
}

/* Push one struct decoded from a part (a fresh table). */
static void sp_dec_struct_part(lua_State *L, const struct sproto_field *f, const uint8_t *p,
                               uint32_t len, int depth)
{
    lua_newtable(L);
    sp_dec_struct(L, f->st, p, len, lua_gettop(L), depth + 1);
}

static void sp_dec_numbers(lua_State *L, const struct sproto_field *f, const uint8_t *p,
                           uint32_t len)
{
    if (len == 0)
        return;
    unsigned w = p[0];
    if ((w != 8 && (w != 4 || f->type == SPROTO_DOUBLE)) || (len - 1) % w != 0)
        sp_dec_fail(L, "bad number array");
    for (uint32_t i = 0; i < (len - 1) / w; i++) {
        const uint8_t *q = p + 1 + (size_t)i * w;
        if (f->type == SPROTO_DOUBLE) {
            uint64_t bits = sproto_le64(q);
            double d;
            memcpy(&d, &bits, 8);
            lua_pushnumber(L, d);
        } else {
            sp_dec_integer(L, f, w == 4 ? (int32_t)sproto_le32(q) : (int64_t)sproto_le64(q));
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* Put the element on top (a decoded struct) into the keyed array below it. */
static void sp_dec_keyed(lua_State *L, const struct sproto_field *f)
{
    lua_getfield(L, -1, f->keyname);
    if (lua_isnil(L, -1) && f->map)
        luaL_error(L, "Can't find key field in [%s]", f->name);
    if (lua_isnil(L, -1))
        luaL_error(L, "Can't find main index (tag=%d) in [%s]", f->key, f->name);
    if (f->map) {
        lua_getfield(L, -2, f->valname);
        if (lua_isnil(L, -1))
            luaL_error(L, "Can't find value field in [%s]", f->name);
        lua_rawset(L, -4);
        lua_pop(L, 1);
    } else {
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
}

/* Push the array of field f from its data part. */
static void sp_dec_array(lua_State *L, const struct sproto_field *f, const uint8_t *p, uint32_t len,
                         int depth)
{
    lua_newtable(L);
    if (f->type == SPROTO_INTEGER || f->type == SPROTO_DOUBLE) {
        sp_dec_numbers(L, f, p, len);
        return;
    }
    if (f->type == SPROTO_BOOLEAN) {
        for (uint32_t i = 0; i < len; i++) {
            lua_pushboolean(L, p[i] != 0);
            lua_rawseti(L, -2, (int)i + 1);
        }
        return;
    }
    const uint8_t *q = p, *d;
    uint32_t dl;
    int r, i = 1;
    while ((r = sproto_part_next(&q, p + len, &d, &dl)) == 1) {
        if (f->type == SPROTO_STRING) {
            lua_pushlstring(L, (const char *)d, dl);
        } else {
            sp_dec_struct_part(L, f, d, dl, depth);
            if (f->key >= 0) {
                sp_dec_keyed(L, f);
                continue;
            }
        }
        lua_rawseti(L, -2, i++);
    }
    if (r < 0)
        sp_dec_fail(L, "truncated array element");
}

/* Push the value of a non-array field. */
static void sp_dec_single(lua_State *L, const struct sproto_field *f, const struct sproto_item *it,
                          int depth)
{
    if (it->inl) {
        if (f->type == SPROTO_INTEGER)
            sp_dec_integer(L, f, it->value);
        else if (f->type == SPROTO_BOOLEAN)
            lua_pushboolean(L, it->value != 0);
        else
            sp_dec_fail(L, "inline value for a field that needs data");
        return;
    }
    int64_t v;
    switch (f->type) {
    case SPROTO_INTEGER:
        if (sproto_item_int(it, &v) < 0)
            sp_dec_fail(L, "integer of bad size");
        sp_dec_integer(L, f, v);
        break;
    case SPROTO_DOUBLE: {
        if (it->len != 8)
            sp_dec_fail(L, "double of bad size");
        uint64_t bits = sproto_le64(it->data);
        double d;
        memcpy(&d, &bits, 8);
        lua_pushnumber(L, d);
        break;
    }
    case SPROTO_STRING:
        lua_pushlstring(L, (const char *)it->data, it->len);
        break;
    case SPROTO_STRUCT:
        sp_dec_struct_part(L, f, it->data, it->len, depth);
        break;
    default:
        sp_dec_fail(L, "boolean in the data part");
    }
}

/* Fill the table at out from the struct at p; returns the bytes it spans. Unknown tags are
 * skipped (a newer peer's fields). */
static size_t sp_dec_struct(lua_State *L, const struct sproto_type *t, const uint8_t *p,
                            size_t size, int out, int depth)
{
    struct sproto_reader r = {0};
    struct sproto_item it;
    int rc;
    if (depth >= SP_MAXDEPTH)
        luaL_error(L, "The table is too deep");
    luaL_checkstack(L, 12, "sproto decode");
    if (sproto_reader_open(&r, p, size) < 0)
        sp_dec_fail(L, "truncated header");
    while ((rc = sproto_reader_next(&r, &it)) == 1) {
        const struct sproto_field *f = sproto_field_by_tag(t, it.tag);
        if (!f)
            continue;
        if (f->array) {
            if (it.inl)
                sp_dec_fail(L, "inline value for an array");
            sp_dec_array(L, f, it.data, it.len, depth);
        } else {
            sp_dec_single(L, f, &it, depth);
        }
        lua_setfield(L, out, f->name);
    }
    if (rc < 0)
        sp_dec_fail(L, "truncated data part");
    return (size_t)(r.data - r.start);
}

/* decode(type, string | userdata, size [, table]) -> table, bytes used */
static int l_decode(lua_State *L)
{
    const struct sproto_type *t = lua_touserdata(L, 1);
    size_t sz = 0;
    if (!t)
        return 0;
    const uint8_t *p = sp_checkbuffer(L, 2, &sz);
    if (!lua_istable(L, -1))
        lua_newtable(L);
    int out = lua_gettop(L);
    size_t used = sp_dec_struct(L, t, p, sz, out, 0);
    lua_settop(L, out);
    lua_pushinteger(L, (lua_Integer)used);
    return 2;
}

/* ---- Lua: pack, unpack -------------------------------------------------------------------- */

static int l_pack(lua_State *L)
{
    size_t sz;
    const uint8_t *src = sp_checkbuffer(L, 1, &sz);
    if (sz > SPROTO_MAXSIZE)
        return luaL_error(L, "object is too large (>%d)", SPROTO_MAXSIZE);
    uint8_t *out = sp_scratch_need(L, lua_upvalueindex(1), sproto_pack_bound(sz));
    lua_pushlstring(L, (const char *)out, sproto_pack(src, sz, out));
    return 1;
}

static int l_unpack(lua_State *L)
{
    size_t sz;
    const uint8_t *src = sp_checkbuffer(L, 1, &sz);
    long n = sproto_unpack(src, sz, NULL, 0);
    if (n < 0)
        return luaL_error(L, "Invalid unpack stream");
    uint8_t *out = sp_scratch_need(L, lua_upvalueindex(1), (size_t)n);
    sproto_unpack(src, sz, out, (size_t)n);
    lua_pushlstring(L, (const char *)out, (size_t)n);
    return 1;
}

/* ---- Lua: schema objects ------------------------------------------------------------------ */

static int l_newproto(lua_State *L)
{
    size_t sz;
    const char *bin = luaL_checklstring(L, 1, &sz);
    struct sproto *sp = sproto_create(bin, sz);
    if (!sp)
        return 0;
    lua_pushlightuserdata(L, sp);
    return 1;
}

static int l_deleteproto(lua_State *L)
{
    sproto_release(sp_checkproto(L, 1));
    return 0;
}

static int l_querytype(lua_State *L)
{
    struct sproto *sp = sp_checkproto(L, 1);
    const char *name = luaL_checkstring(L, 2);
    for (int i = 0; i < sp->ntype; i++)
        if (strcmp(sp->types[i].name, name) == 0) {
            lua_pushlightuserdata(L, &sp->types[i]);
            return 1;
        }
    return 0;
}

/* protocol(sp, name | tag) -> tag | name, request type | nil, response type | NULL (a
 * `response nil` protocol: a reply with no content) | nil */
static int l_protocol(lua_State *L)
{
    struct sproto *sp = sp_checkproto(L, 1);
    const struct sproto_proto *p = NULL;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        p = sproto_proto_by_tag(sp, (long)lua_tointeger(L, 2));
        if (!p)
            return 0;
        lua_pushstring(L, p->name);
    } else {
        const char *name = lua_tostring(L, 2);
        if (!name)
            return luaL_argerror(L, 2, "Should be number or string");
        for (int i = 0; i < sp->nproto && !p; i++)
            if (strcmp(sp->protos[i].name, name) == 0)
                p = &sp->protos[i];
        if (!p)
            return 0;
        lua_pushinteger(L, p->tag);
    }
    if (p->req)
        lua_pushlightuserdata(L, p->req);
    else
        lua_pushnil(L);
    if (p->resp || p->confirm)
        lua_pushlightuserdata(L, p->resp);
    else
        lua_pushnil(L);
    return 3;
}

/* Slots shared by every service of the node; a saved schema lives as long as the process. */
static _Atomic(struct sproto *) sp_slots[SP_MAXSLOTS];

static int sp_slot_index(lua_State *L, int idx)
{
    lua_Integer i = luaL_optinteger(L, idx, 0);
    if (i < 0 || i >= SP_MAXSLOTS)
        luaL_error(L, "Invalid global slot index %d", (int)i);
    return (int)i;
}

static int l_saveproto(lua_State *L)
{
    struct sproto *sp = sp_checkproto(L, 1);
    atomic_store_explicit(&sp_slots[sp_slot_index(L, 2)], sp, memory_order_release);
    return 0;
}

static int l_loadproto(lua_State *L)
{
    int i = sp_slot_index(L, 1);
    struct sproto *sp = atomic_load_explicit(&sp_slots[i], memory_order_acquire);
    if (!sp)
        return luaL_error(L, "nil sproto at index %d", i);
    lua_pushlightuserdata(L, sp);
    return 1;
}

static void sp_push_default(lua_State *L, const struct sproto_field *f, int element)
{
    switch (f->type) {
    case SPROTO_INTEGER:
    case SPROTO_DOUBLE:
        lua_pushnumber(L, 0);
        break;
    case SPROTO_BOOLEAN:
        lua_pushboolean(L, 0);
        break;
    case SPROTO_STRING:
        lua_pushliteral(L, "");
        break;
    default:
        if (element) {
            lua_pushstring(L, f->st->name);
        } else {
            lua_createtable(L, 0, 1);
            lua_pushstring(L, f->st->name);
            lua_setfield(L, -2, "__type");
        }
    }
}

/* default(type) -> a table with every field at its zero value; arrays as { __array = elem } */
static int l_default(lua_State *L)
{
    const struct sproto_type *t = lua_touserdata(L, 1);
    if (!t)
        return luaL_argerror(L, 1, "Need a sproto_type object");
    lua_createtable(L, 0, t->n);
    for (int i = 0; i < t->n; i++) {
        const struct sproto_field *f = &t->f[i];
        if (f->array) {
            lua_createtable(L, 0, 1);
            sp_push_default(L, f, 1);
            lua_setfield(L, -2, "__array");
        } else {
            sp_push_default(L, f, 0);
        }
        lua_setfield(L, -2, f->name);
    }
    return 1;
}

/* memsize(sp) -> bytes of heap the schema holds (skyjet's own; used by the memory figure) */
static int l_memsize(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sproto_memsize(sp_checkproto(L, 1)));
    return 1;
}

int luaopen_sproto_core(lua_State *L)
{
    static const luaL_Reg plain[] = {
        {"newproto", l_newproto},   {"deleteproto", l_deleteproto},
        {"querytype", l_querytype}, {"decode", l_decode},
        {"protocol", l_protocol},   {"saveproto", l_saveproto},
        {"loadproto", l_loadproto}, {"default", l_default},
        {"memsize", l_memsize},     {NULL, NULL},
    };
    static const luaL_Reg buffered[] = {
        {"encode", l_encode},
        {"pack", l_pack},
        {"unpack", l_unpack},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_register(L, NULL, plain);
    sp_scratch_new(L);
    for (const luaL_Reg *r = buffered; r->name; r++) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, -3, r->name);
    }
    lua_pop(L, 1);
    return 1;
}
