/* fuzz_frames: libFuzzer harness for the socket buffer of daemon/lua/socketdriver.c, the frame
 * reader behind the gate and the cluster agents (buffer(), push, popframe, readline, pop, readall,
 * size, clear) and header(). Driven through Lua: luaopen_socketdriver in a lua_State, every
 * method called with lua_pcall, exactly as a service calls it; no reactor is needed.
 * Input: [mode][seed lo][seed hi] then the byte stream. The stream is pushed in pieces whose sizes
 * a PRNG (seeded from the input) picks, as strings or as malloc'd blocks the buffer takes over;
 * after each push the reader named by `mode` pops what it can. Oracle: the input itself. The
 * bytes handed over minus the bytes popped must equal size() after every step, and each result
 * must equal what the same read gives on the flat stream (a frame is exactly its 2-byte
 * big-endian declared length, a line ends at the first separator, pop(n) gives n bytes or nil).
 *   mode & 3:     0 popframe only (the gate), 1 readline only, 2 pop/readall, 3 all mixed
 *   mode >> 4 & 3: separator: "\n", "\r\n", one byte (seed lo), the 3 header bytes
 * One lua_State is reused; each input's buffer is collected (its __gc frees what is left). */
#include "socketdriver.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;
static int driver_ref;

struct run {
    const uint8_t *s; /* the stream */
    size_t n;         /* its length */
    size_t pushed;    /* bytes handed to the buffer */
    size_t cons;      /* bytes taken out of it */
    uint32_t rng;
    char sep[3];
    size_t seplen;
};

static void fail(const char *what, const struct run *r)
{
    fprintf(stderr, "fuzz_frames: %s (pushed %zu, consumed %zu, stream %zu)\n", what, r->pushed,
            r->cons, r->n);
    abort();
}

static uint32_t next(struct run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    return r->rng;
}

/* Calls buf:<method>(args...) with the buffer at stack index 1; leaves `nres` results. */
static void call(struct run *r, const char *method, int nargs, int nres)
{
    lua_getfield(L, 1, method);
    lua_insert(L, -1 - nargs);
    lua_pushvalue(L, 1);
    lua_insert(L, -1 - nargs);
    if (lua_pcall(L, nargs + 1, nres, 0) != 0) {
        fprintf(stderr, "fuzz_frames: buf:%s raised %s\n", method, lua_tostring(L, -1));
        fail("unexpected error", r);
    }
}

static void check_size(struct run *r)
{
    call(r, "size", 0, 1);
    if ((size_t)lua_tointeger(L, -1) != r->pushed - r->cons)
        fail("size() is not pushed - consumed", r);
    lua_pop(L, 1);
}

/* The result on top must be nil (want == NULL) or exactly want[0..len); pops it. */
static void expect(struct run *r, const char *what, const uint8_t *want, size_t len)
{
    if (!want) {
        if (!lua_isnil(L, -1))
            fail(what, r);
    } else {
        size_t got;
        const char *s = lua_tolstring(L, -1, &got);
        if (!s || lua_type(L, -1) != LUA_TSTRING || got != len || memcmp(s, want, len) != 0)
            fail(what, r);
    }
    lua_pop(L, 1);
}

static void push(struct run *r, size_t k)
{
    const uint8_t *p = r->s + r->pushed;
    if (next(r) & 1) {
        lua_pushlstring(L, (const char *)p, k);
        call(r, "push", 1, 1);
    } else { /* an exact-size block the buffer takes over (ASan sees any over-read) */
        char *block = malloc(k ? k : 1);
        if (!block)
            abort();
        memcpy(block, p, k);
        lua_pushlightuserdata(L, block);
        lua_pushinteger(L, (lua_Integer)k);
        call(r, "push", 2, 1);
    }
    r->pushed += k;
    if ((size_t)lua_tointeger(L, -1) != r->pushed - r->cons)
        fail("push did not return the new size", r);
    lua_pop(L, 1);
}

static int popframe(struct run *r)
{
    const uint8_t *at = r->s + r->cons;
    size_t avail = r->pushed - r->cons;
    size_t len = avail >= 2 ? (size_t)at[0] << 8 | at[1] : 0;
    call(r, "popframe", 0, 1);
    if (avail < 2 || avail < 2 + len) {
        expect(r, "popframe returned a frame that is not complete", NULL, 0);
        return 0;
    }
    expect(r, "popframe: not the declared length or not the bytes sent", at + 2, len);
    r->cons += 2 + len;
    return 1;
}

static int readline(struct run *r)
{
    const uint8_t *at = r->s + r->cons;
    size_t avail = r->pushed - r->cons;
    lua_pushlstring(L, r->sep, r->seplen);
    call(r, "readline", 1, 1);
    const uint8_t *hit = avail >= r->seplen ? memmem(at, avail, r->sep, r->seplen) : NULL;
    if (!hit) {
        expect(r, "readline found a separator that is not there", NULL, 0);
        return 0;
    }
    expect(r, "readline: not the bytes before the first separator", at, (size_t)(hit - at));
    r->cons += (size_t)(hit - at) + r->seplen;
    return 1;
}

static int pop(struct run *r)
{
    size_t avail = r->pushed - r->cons;
    lua_Integer n;
    switch (next(r) % 6) {
    case 0:
        n = -1 - (lua_Integer)(next(r) % 3);
        break;
    case 1:
        n = (lua_Integer)avail;
        break;
    case 2:
        n = (lua_Integer)avail + 1 + (lua_Integer)(next(r) % 4);
        break;
    case 3:
        n = 0;
        break;
    default:
        n = (lua_Integer)(next(r) % (avail + 8));
        break;
    }
    lua_pushinteger(L, n);
    call(r, "pop", 1, 1);
    if (n < 0 || (size_t)n > avail) {
        expect(r, "pop(n) with n out of range did not give nil", NULL, 0);
        return 0;
    }
    expect(r, "pop(n): not the next n bytes", r->s + r->cons, (size_t)n);
    r->cons += (size_t)n;
    return n > 0;
}

static void readall(struct run *r)
{
    call(r, "readall", 0, 1);
    expect(r, "readall: not everything buffered", r->s + r->cons, r->pushed - r->cons);
    r->cons = r->pushed;
}

/* header(s) on the next 1..4 bytes of the stream, whether buffered or not */
static void header(struct run *r)
{
    size_t k = 1 + next(r) % 4;
    if (r->n - r->cons < k)
        return;
    const uint8_t *at = r->s + r->cons;
    double want = 0;
    for (size_t i = 0; i < k; i++)
        want = want * 256 + at[i];
    lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
    lua_getfield(L, -1, "header");
    lua_pushlstring(L, (const char *)at, k);
    if (lua_pcall(L, 1, 1, 0) != 0 || lua_tonumber(L, -1) != want)
        fail("header() is not the big-endian value", r);
    lua_pop(L, 2);
}

/* The reads after one push: as many as the mode's reader gives, in the mixed mode a random few. */
static void read_some(struct run *r, int mode)
{
    switch (mode) {
    case 0:
        while (popframe(r))
            check_size(r);
        break;
    case 1:
        while (readline(r))
            check_size(r);
        break;
    case 2:
        if (next(r) % 8 == 0)
            readall(r);
        else
            while (pop(r) && next(r) % 4)
                check_size(r);
        break;
    default:
        for (int i = next(r) % 5; i > 0; i--) {
            uint32_t op = next(r) % 32;
            if (op < 12)
                popframe(r);
            else if (op < 20)
                readline(r);
            else if (op < 28)
                pop(r);
            else if (op < 30)
                header(r);
            else if (op < 31)
                readall(r);
            else {
                call(r, "clear", 0, 0);
                r->cons = r->pushed;
            }
        }
    }
    check_size(r);
}

/* How much to push next: often a byte or a few, sometimes a frame's worth, sometimes all. */
static size_t piece(struct run *r)
{
    size_t left = r->n - r->pushed;
    uint32_t x = next(r);
    size_t k;
    switch (x % 8) {
    case 0:
        k = 0;
        break;
    case 1:
    case 2:
        k = 1 + (x >> 3) % 3;
        break;
    case 3:
    case 4:
        k = 1 + (x >> 3) % 64;
        break;
    case 5:
    case 6:
        k = 1 + (x >> 3) % 4096;
        break;
    default:
        k = left;
        break;
    }
    return k < left ? k : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_pushcfunction(L, luaopen_socketdriver);
        lua_call(L, 0, 1);
        driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (size < 3)
        return 0;
    struct run r = {.s = data + 3, .n = size - 3};
    int mode = data[0] & 3;
    r.rng = (uint32_t)data[1] << 8 | data[2];
    r.rng = r.rng * 2654435761u + 1; /* never 0: xorshift stays at 0 */
    static const char *const seps[] = {"\n", "\r\n"};
    int sep = data[0] >> 4 & 3;
    if (sep < 2) {
        r.seplen = strlen(seps[sep]);
        memcpy(r.sep, seps[sep], r.seplen);
    } else {
        r.seplen = sep == 2 ? 1 : 3; /* seed lo, or the three header bytes */
        memcpy(r.sep, sep == 2 ? data + 1 : data, r.seplen);
    }

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
    lua_getfield(L, -1, "buffer");
    lua_remove(L, -2);
    lua_call(L, 0, 1); /* the buffer, at index 1 from here on */
    while (r.pushed < r.n) {
        push(&r, piece(&r));
        read_some(&r, mode);
    }
    read_some(&r, mode);
    if (next(&r) % 2) /* else: the buffer's __gc frees what is left */
        readall(&r);
    check_size(&r);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
