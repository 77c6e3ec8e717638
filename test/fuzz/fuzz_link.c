/* fuzz_link: libFuzzer harness for the cluster fast path's frame cutter (link_cut in
 * daemon/lua/cluster_link.c), which the reactor runs on every read of a cluster sender's
 * connection. Input: [take mask][seed lo][seed hi] then the byte stream. The stream is fed in
 * reads whose sizes a PRNG (seeded from the input) picks; a frame is taken when bit
 * (first body byte & 7) of the mask is set. Oracle: the stream cut at once. Every whole frame
 * must be offered exactly once, in order; the taken ones and the passed ones must equal the
 * model's byte for byte, and what is left in the cutter must be the stream's unfinished tail. */
#include "cluster_link.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    uint8_t *p;
    size_t n;
};

struct run {
    uint8_t mask;
    struct sink taken, passed;
    size_t offered;
};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_link: %s\n", what);
    abort();
}

static void sink_put(struct sink *s, const uint8_t *p, size_t n)
{
    uint8_t *q = realloc(s->p, s->n + n + 1);
    if (!q)
        fail("out of memory");
    s->p = q;
    memcpy(s->p + s->n, p, n);
    s->n += n;
}

static int wants(uint8_t mask, const uint8_t *frame, size_t size)
{
    return size > 2 && (mask >> (frame[2] & 7) & 1);
}

static int take(void *ud, const uint8_t *frame, size_t size)
{
    struct run *r = ud;
    if (size < 2 || size != 2 + ((size_t)frame[0] << 8 | frame[1]))
        fail("offered something that is not one whole frame");
    r->offered++;
    if (!wants(r->mask, frame, size))
        return 0;
    sink_put(&r->taken, frame, size);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct run r = {.mask = data[0]};
    uint32_t rng = (uint32_t)data[1] | (uint32_t)data[2] << 8 | 1u << 16;
    const uint8_t *s = data + 3;
    size_t n = size - 3, off = 0;
    struct link_cutter c = {0};
    while (off < n) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        size_t k = 1 + rng % (rng & 0x100 ? 8 : 70000);
        if (k > n - off)
            k = n - off;
        uint8_t *buf = malloc(k), *out = NULL;
        if (!buf)
            fail("out of memory");
        memcpy(buf, s + off, k);
        size_t got = link_cut(&c, buf, k, take, &r, &out);
        if (got == (size_t)-1)
            fail("cutter out of memory");
        if ((got == 0) != (out == NULL))
            fail("size and buffer disagree");
        if (got)
            sink_put(&r.passed, out, got);
        free(out);
        off += k;
    }
    /* the model */
    struct sink want_taken = {0}, want_passed = {0};
    size_t frames = 0, at = 0;
    while (n - at >= 2 && n - at >= 2 + ((size_t)s[at] << 8 | s[at + 1])) {
        size_t fl = 2 + ((size_t)s[at] << 8 | s[at + 1]);
        sink_put(wants(r.mask, s + at, fl) ? &want_taken : &want_passed, s + at, fl);
        frames++;
        at += fl;
    }
    if (r.offered != frames)
        fail("frames offered != whole frames in the stream");
    if (r.taken.n != want_taken.n || (r.taken.n && memcmp(r.taken.p, want_taken.p, r.taken.n)))
        fail("taken frames differ from the model");
    if (r.passed.n != want_passed.n ||
        (r.passed.n && memcmp(r.passed.p, want_passed.p, r.passed.n)))
        fail("passed frames differ from the model");
    if (c.len != n - at || (c.len && memcmp(c.part, s + at, c.len)))
        fail("the kept partial frame is not the stream's tail");
    link_cutter_free(&c);
    free(r.taken.p);
    free(r.passed.p);
    free(want_taken.p);
    free(want_passed.p);
    return 0;
}
