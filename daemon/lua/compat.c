/* compat: the Lua 5.3/5.4 library functions Skynet code calls, for LuaJIT services:
 * string.pack/unpack/packsize, math.type/tointeger/maxinteger/mininteger/ult, and utf8 (Debian's
 * lua-compat53 C module); table.move is LuaJIT 2.1's own. Integers follow skyjet's int64 policy
 * (seri.h), so string.pack/unpack and skynet.pack agree on every 64-bit value. Pure functions
 * over one lua_State; any thread. */
#include "compat.h"

#include "seri.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- string.pack / string.unpack / string.packsize ------------------------------------ */

#define PACK_MAXINT 16  /* widest integer option (i16) */
#define PACK_MAXALIGN 8 /* the default and largest "!" alignment */

enum pack_kind {
    PK_INT,    /* signed integer of `size` bytes */
    PK_UINT,   /* unsigned integer */
    PK_FLOAT,  /* f */
    PK_DOUBLE, /* d, n */
    PK_FIXED,  /* c[n]: a string of exactly size bytes */
    PK_LENSTR, /* s[n]: length prefix of size bytes, then the bytes */
    PK_ZSTR,   /* z */
    PK_PAD,    /* x: one zero byte */
    PK_ALIGN,  /* X: align to the next option's size */
    PK_NOP     /* a setting (< > = !) or a space */
};

struct pack_state {
    lua_State *L;
    const char *fmt;
    int little;   /* byte order: 1 little-endian (native here), 0 big */
    int maxalign; /* "!" setting */
};

static int pack_digit(char c) { return c >= '0' && c <= '9'; }

/* An optional decimal size after an option; dflt when none is written. */
static int pack_size(struct pack_state *st, int dflt)
{
    if (!pack_digit(*st->fmt))
        return dflt;
    long n = 0;
    while (pack_digit(*st->fmt) && n < 100000)
        n = n * 10 + (*st->fmt++ - '0');
    return (int)n;
}

static int pack_intsize(struct pack_state *st, int dflt)
{
    int n = pack_size(st, dflt);
    if (n < 1 || n > PACK_MAXINT)
        luaL_error(st->L, "integral size (%d) out of limits [1,%d]", n, PACK_MAXINT);
    return n;
}

/* Read one option; *size gets its data size (the prefix size for s). */
static enum pack_kind pack_option(struct pack_state *st, int *size)
{
    char c = *st->fmt++;
    *size = 0;
    switch (c) {
    case 'b':
        *size = 1;
        return PK_INT;
    case 'B':
        *size = 1;
        return PK_UINT;
    case 'h':
        *size = 2;
        return PK_INT;
    case 'H':
        *size = 2;
        return PK_UINT;
    case 'l':
    case 'j':
        *size = 8;
        return PK_INT;
    case 'L':
    case 'J':
    case 'T':
        *size = 8;
        return PK_UINT;
    case 'i':
        *size = pack_intsize(st, 4);
        return PK_INT;
    case 'I':
        *size = pack_intsize(st, 4);
        return PK_UINT;
    case 'f':
        *size = 4;
        return PK_FLOAT;
    case 'd':
    case 'n':
        *size = 8;
        return PK_DOUBLE;
    case 's':
        *size = pack_intsize(st, 8);
        return PK_LENSTR;
    case 'z':
        return PK_ZSTR;
    case 'x':
        *size = 1;
        return PK_PAD;
    case 'X':
        return PK_ALIGN;
    case 'c':
        *size = pack_size(st, -1);
        if (*size < 0)
            luaL_error(st->L, "missing size for format option 'c'");
        return PK_FIXED;
    case ' ':
        return PK_NOP;
    case '<':
    case '=':
        st->little = 1;
        return PK_NOP;
    case '>':
        st->little = 0;
        return PK_NOP;
    case '!':
        st->maxalign = pack_intsize(st, PACK_MAXALIGN);
        return PK_NOP;
    default:
        luaL_error(st->L, "invalid format option '%c'", c);
        return PK_NOP;
    }
}

/* The next option and the padding that must precede it at position pos. */
static enum pack_kind pack_next(struct pack_state *st, size_t pos, int *size, int *pad)
{
    enum pack_kind k = pack_option(st, size);
    int align = *size;
    if (k == PK_ALIGN) {
        if (*st->fmt == '\0' || pack_option(st, &align) == PK_FIXED || align == 0)
            luaL_error(st->L, "invalid next option for option 'X'");
    }
    *pad = 0;
    if (align > 1 && k != PK_FIXED) {
        if (align > st->maxalign)
            align = st->maxalign;
        if (align & (align - 1))
            luaL_error(st->L, "format asks for alignment not power of 2");
        *pad = (int)((size_t)align - (pos & (size_t)(align - 1))) & (align - 1);
    }
    return k;
}

static void pack_put_int(luaL_Buffer *b, uint64_t v, int size, int little, int negative)
{
    unsigned char out[PACK_MAXINT];
    for (int i = 0; i < size; i++) {
        unsigned char byte = i < 8 ? (unsigned char)(v >> (8 * i)) : (negative ? 0xff : 0);
        out[little ? i : size - 1 - i] = byte;
    }
    luaL_addlstring(b, (const char *)out, (size_t)size);
}

static int64_t pack_check_integer(lua_State *L, int arg)
{
    int64_t v;
    if (seri_integer_value(L, arg, &v) == SERI_INT_NONE) {
        if (lua_type(L, arg) == LUA_TNUMBER || lua_type(L, arg) == 10 /* cdata */)
            luaL_argerror(L, arg, "number has no integer representation");
        luaL_typerror(L, arg, "number");
    }
    return v;
}

static void pack_integer(struct pack_state *st, luaL_Buffer *b, int arg, enum pack_kind k, int size)
{
    int64_t v = pack_check_integer(st->L, arg);
    if (size < 8) {
        int64_t lim = (int64_t)1 << (size * 8 - 1);
        if (k == PK_INT)
            luaL_argcheck(st->L, -lim <= v && v < lim, arg, "integer overflow");
        else
            luaL_argcheck(st->L, (uint64_t)v < (uint64_t)lim * 2, arg, "unsigned overflow");
    }
    pack_put_int(b, (uint64_t)v, size, st->little, v < 0);
}

static void pack_string(struct pack_state *st, luaL_Buffer *b, int arg, enum pack_kind k, int size)
{
    size_t len;
    const char *s = luaL_checklstring(st->L, arg, &len);
    if (k == PK_FIXED) {
        luaL_argcheck(st->L, len <= (size_t)size, arg, "string longer than given size");
        luaL_addlstring(b, s, len);
        for (size_t i = len; i < (size_t)size; i++)
            luaL_addchar(b, '\0');
    } else if (k == PK_LENSTR) {
        luaL_argcheck(st->L, size >= 8 || len < (size_t)1 << (size * 8), arg,
                      "string length does not fit in given size");
        pack_put_int(b, (uint64_t)len, size, st->little, 0);
        luaL_addlstring(b, s, len);
    } else {
        luaL_argcheck(st->L, strlen(s) == len, arg, "string contains zeros");
        luaL_addlstring(b, s, len);
        luaL_addchar(b, '\0');
    }
}

static void pack_float(struct pack_state *st, luaL_Buffer *b, int arg, int size)
{
    double d = luaL_checknumber(st->L, arg);
    uint64_t bits;
    if (size == 4) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
    } else {
        memcpy(&bits, &d, 8);
    }
    pack_put_int(b, bits, size, st->little, 0);
}

static int l_pack(lua_State *L)
{
    struct pack_state st = {L, luaL_checkstring(L, 1), 1, 1};
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int arg = 1;
    size_t pos = 0;
    while (*st.fmt) {
        int size, pad;
        enum pack_kind k = pack_next(&st, pos, &size, &pad);
        for (int i = 0; i < pad; i++)
            luaL_addchar(&b, '\0');
        pos += (size_t)pad;
        if (k == PK_INT || k == PK_UINT) {
            pack_integer(&st, &b, ++arg, k, size);
        } else if (k == PK_FLOAT || k == PK_DOUBLE) {
            pack_float(&st, &b, ++arg, size);
        } else if (k == PK_FIXED || k == PK_LENSTR || k == PK_ZSTR) {
            size_t before = pos;
            pack_string(&st, &b, ++arg, k, size);
            size_t len = lua_objlen(L, arg);
            pos = before + (k == PK_FIXED ? (size_t)size : len + (k == PK_ZSTR ? 1 : (size_t)size));
            continue;
        } else if (k == PK_PAD) {
            luaL_addchar(&b, '\0');
        }
        pos += k == PK_ALIGN ? 0 : (size_t)size;
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_packsize(lua_State *L)
{
    struct pack_state st = {L, luaL_checkstring(L, 1), 1, 1};
    size_t total = 0;
    while (*st.fmt) {
        int size, pad;
        enum pack_kind k = pack_next(&st, total, &size, &pad);
        luaL_argcheck(L, k != PK_LENSTR && k != PK_ZSTR, 1, "variable-length format");
        size = k == PK_ALIGN ? 0 : size;
        luaL_argcheck(L, total <= 0x7fffffff - (size_t)pad - (size_t)size, 1,
                      "format result too large");
        total += (size_t)pad + (size_t)size;
    }
    lua_pushinteger(L, (lua_Integer)total);
    return 1;
}

/* A signed or unsigned integer of size bytes at p, under the int64 policy. */
static void unpack_integer(lua_State *L, const unsigned char *p, int size, int little, int sign)
{
    uint64_t v = 0;
    int limit = size < 8 ? size : 8;
    for (int i = limit - 1; i >= 0; i--)
        v = v << 8 | p[little ? i : size - 1 - i];
    if (size < 8 && sign) {
        uint64_t m = (uint64_t)1 << (size * 8 - 1);
        v = (v ^ m) - m;
    }
    for (int i = 8; i < size; i++) {
        unsigned char want = sign && (int64_t)v < 0 ? 0xff : 0;
        if (p[little ? i : size - 1 - i] != want)
            luaL_error(L, "%d-byte integer does not fit into Lua Integer", size);
    }
    seri_push_integer(L, (int64_t)v);
}

static size_t unpack_start(lua_State *L, size_t len)
{
    lua_Integer pos = luaL_optinteger(L, 3, 1);
    if (pos < 0)
        pos = (lua_Integer)len + pos + 1 > 0 ? (lua_Integer)len + pos + 1 : 1;
    luaL_argcheck(L, pos >= 1 && (size_t)pos - 1 <= len, 3, "initial position out of string");
    return (size_t)pos - 1;
}

/* Push the value of one option read at data + pos; returns the bytes it took. */
static size_t unpack_one(struct pack_state *st, enum pack_kind k, int size, const char *data,
                         size_t len, size_t pos)
{
    lua_State *L = st->L;
    const unsigned char *p = (const unsigned char *)data + pos;
    size_t need = k == PK_ZSTR ? 0 : (size_t)size;
    luaL_argcheck(L, need <= len - pos, 2, "data string too short");
    switch (k) {
    case PK_INT:
    case PK_UINT:
        unpack_integer(L, p, size, st->little, k == PK_INT);
        return need;
    case PK_FLOAT:
    case PK_DOUBLE: {
        uint64_t bits = 0;
        for (int i = size - 1; i >= 0; i--)
            bits = bits << 8 | p[st->little ? i : size - 1 - i];
        double d;
        if (size == 4) {
            uint32_t u = (uint32_t)bits;
            float f;
            memcpy(&f, &u, 4);
            d = f;
        } else {
            memcpy(&d, &bits, 8);
        }
        lua_pushnumber(L, d);
        return need;
    }
    case PK_FIXED:
        lua_pushlstring(L, (const char *)p, need);
        return need;
    case PK_LENSTR: {
        uint64_t n = 0;
        for (int i = size - 1; i >= 0; i--)
            n = n << 8 | (i < 8 ? p[st->little ? i : size - 1 - i] : 0);
        luaL_argcheck(L, n <= len - pos - need, 2, "data string too short");
        lua_pushlstring(L, (const char *)p + need, (size_t)n);
        return need + (size_t)n;
    }
    case PK_ZSTR: {
        const void *nul = memchr(p, 0, len - pos);
        luaL_argcheck(L, nul != NULL, 2, "unfinished string for format 'z'");
        size_t n = (size_t)((const unsigned char *)nul - p);
        lua_pushlstring(L, (const char *)p, n);
        return n + 1;
    }
    default:
        return k == PK_PAD ? 1 : 0;
    }
}

static int l_unpack(lua_State *L)
{
    struct pack_state st = {L, luaL_checkstring(L, 1), 1, 1};
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    size_t pos = unpack_start(L, len);
    int n = 0;
    while (*st.fmt) {
        int size, pad;
        enum pack_kind k = pack_next(&st, pos, &size, &pad);
        luaL_argcheck(L, (size_t)pad <= len - pos, 2, "data string too short");
        pos += (size_t)pad;
        luaL_checkstack(L, 2, "too many results");
        size_t took = unpack_one(&st, k, size, data, len, pos);
        pos += took;
        n += k == PK_PAD || k == PK_ALIGN || k == PK_NOP ? 0 : 1;
    }
    lua_pushinteger(L, (lua_Integer)pos + 1);
    return n + 1;
}

/* ---- math ------------------------------------------------------------------------------ */

/* math.type(x): "integer" for what skynet.pack sends as an integer (A.9: integral, in range, not
 * -0.0; int64/uint64 cdata), "float" for other numbers, nil otherwise. */
static int l_math_type(lua_State *L)
{
    int64_t v;
    luaL_checkany(L, 1);
    int kind = seri_integer_value(L, 1, &v);
    int number = lua_type(L, 1) == LUA_TNUMBER;
    double d = number ? lua_tonumber(L, 1) : 1;
    if (kind != SERI_INT_NONE && !(d == 0 && signbit(d)))
        lua_pushliteral(L, "integer");
    else if (number)
        lua_pushliteral(L, "float");
    else
        lua_pushnil(L);
    return 1;
}

/* math.tointeger(x): x as an integer value (number or int64_t cdata, int64 policy) or nil. */
static int l_math_tointeger(lua_State *L)
{
    int64_t v;
    luaL_checkany(L, 1);
    if (seri_integer_value(L, 1, &v) == SERI_INT_NONE)
        lua_pushnil(L);
    else
        seri_push_integer(L, v);
    return 1;
}

static int l_math_ult(lua_State *L)
{
    uint64_t a = (uint64_t)pack_check_integer(L, 1), b = (uint64_t)pack_check_integer(L, 2);
    lua_pushboolean(L, a < b);
    return 1;
}

/* math's __index: maxinteger and mininteger, made on first access. maxinteger is an int64
 * cdata (seri.h), which loads the ffi library: a service that only calls math.floor or
 * math.random does not pay for it (~15 KiB per service). */
static int math_lazy_field(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    int max = key && strcmp(key, "maxinteger") == 0;
    if (!max && !(key && strcmp(key, "mininteger") == 0))
        return 0;
    seri_push_integer(L, max ? INT64_MAX : INT64_MIN);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

int compat_open_math(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"type", l_math_type},
        {"tointeger", l_math_tointeger},
        {"ult", l_math_ult},
        {NULL, NULL},
    };
    lua_pushcfunction(L, luaopen_math);
    lua_call(L, 0, 1);
    luaL_register(L, NULL, funcs);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, math_lazy_field);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- utf8 and installation ------------------------------------------------------------- */

#ifndef COMPAT_UTF8_SO
#define COMPAT_UTF8_SO "/usr/lib/x86_64-linux-gnu/lua/5.1/compat53/utf8.so"
#endif

int compat_open_utf8(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loadlib");
    lua_pushliteral(L, COMPAT_UTF8_SO);
    lua_pushliteral(L, "luaopen_compat53_utf8");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return luaL_error(L, "utf8: cannot load Debian's lua-compat53 (%s): %s", COMPAT_UTF8_SO,
                          lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_call(L, 0, 1);
    /* compat53's pattern has a literal NUL, which Lua 5.1 patterns cannot hold: use %z */
    lua_pushliteral(L, "[%z\x01-\x7F\xC2-\xF4][\x80-\xBF]*");
    lua_setfield(L, -2, "charpattern");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "utf8");
    return 1;
}

/* Lazy fields: string.pack/unpack/packsize are put in the string table the first time a service
 * reads one, so an idle service's string table stays small (it would rehash to 32 slots). */
static const luaL_Reg compat_string_funcs[] = {
    {"pack", l_pack},
    {"unpack", l_unpack},
    {"packsize", l_packsize},
    {NULL, NULL},
};

/* Is the table at index 1 package.loaded[lib]? */
static int compat_is_lib(lua_State *L, const char *lib)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, lib);
    int same = lua_rawequal(L, -1, 1);
    lua_pop(L, 2);
    return same;
}

int compat_lazy_field(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    const luaL_Reg *funcs = compat_is_lib(L, LUA_STRLIBNAME) ? compat_string_funcs : NULL;
    for (const luaL_Reg *f = funcs; key && f && f->name; f++) {
        if (strcmp(key, f->name) == 0) {
            for (const luaL_Reg *g = funcs; g->name; g++) {
                lua_pushcfunction(L, g->func);
                lua_setfield(L, 1, g->name);
            }
            lua_rawget(L, 1);
            return 1;
        }
    }
    return 0;
}

void compat_install(lua_State *L)
{
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}
