/* test_cluster_link: the fast path's frame cutter (link_cut in daemon/lua/cluster_link.c) and the
 * request framer it relies on (cluster_core_frame_single). The cutter is checked against a model
 * that cuts the whole stream at once: whatever way the stream is split into reads, every whole
 * frame is offered exactly once, in order, and the frames not taken come out whole, in order,
 * byte for byte; a partial frame waits for its rest. The framer must give packrequest's bytes. */
#include "cluster_core.h"
#include "cluster_link.h"

#include <check.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a stream of frames and the model's answer ---- */

struct stream {
    uint8_t *p;
    size_t n, cap;
    size_t frames; /* whole frames in it */
};

static void put(struct stream *s, const void *p, size_t n)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->p = realloc(s->p, s->cap);
        ck_assert_ptr_nonnull(s->p);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
}

/* A frame of `body` bytes whose bytes are a function of (tag, position); body[0] = tag, so the
 * take policy below can decide on it. */
static void add_frame(struct stream *s, size_t body, uint8_t tag)
{
    uint8_t head[2] = {(uint8_t)(body >> 8), (uint8_t)(body & 0xff)};
    put(s, head, 2);
    for (size_t i = 0; i < body; i++) {
        uint8_t b = i == 0 ? tag : (uint8_t)(tag * 31 + i * 7);
        put(s, &b, 1);
    }
    s->frames++;
}

/* The take policy: frames with an odd first body byte are consumed; empty frames pass. */
struct taker {
    struct stream taken; /* the frames offered and taken, concatenated */
    size_t offered;
};

static int take_odd(void *ud, const uint8_t *frame, size_t size)
{
    struct taker *t = ud;
    ck_assert_uint_ge(size, 2);
    ck_assert_uint_eq(size, 2 + ((size_t)frame[0] << 8 | frame[1]));
    t->offered++;
    if (size > 2 && (frame[2] & 1)) {
        put(&t->taken, frame, size);
        return 1;
    }
    return 0;
}

static int take_none(void *ud, const uint8_t *frame, size_t size)
{
    (void)frame;
    (void)size;
    ((struct taker *)ud)->offered++;
    return 0;
}

/* The model: taken and passed bytes of the whole stream cut at once. */
static void model(const struct stream *s, struct stream *taken, struct stream *passed)
{
    size_t off = 0;
    while (s->n - off >= 2) {
        size_t fl = 2 + ((size_t)s->p[off] << 8 | s->p[off + 1]);
        if (s->n - off < fl)
            break;
        put(fl > 2 && (s->p[off + 2] & 1) ? taken : passed, s->p + off, fl);
        off += fl;
    }
}

/* Feeds the stream in reads of the given sizes (the last read takes the rest) and checks the
 * result against the model. */
static void feed_and_check(const struct stream *s, const size_t *cuts, size_t ncuts)
{
    struct link_cutter c = {0};
    struct taker t = {0};
    struct stream passed = {0}, want_taken = {0}, want_passed = {0};
    size_t off = 0;
    for (size_t i = 0; i <= ncuts && off < s->n; i++) {
        size_t n = i < ncuts ? cuts[i] : s->n - off;
        if (n > s->n - off)
            n = s->n - off;
        if (n == 0)
            continue;
        uint8_t *data = malloc(n), *out = NULL;
        ck_assert_ptr_nonnull(data);
        memcpy(data, s->p + off, n);
        size_t got = link_cut(&c, data, n, take_odd, &t, &out);
        ck_assert_uint_ne(got, (size_t)-1);
        if (got) {
            ck_assert_ptr_nonnull(out);
            put(&passed, out, got);
            free(out);
        } else {
            ck_assert_ptr_null(out);
        }
        off += n;
    }
    model(s, &want_taken, &want_passed);
    ck_assert_uint_eq(t.offered, s->frames);
    ck_assert_uint_eq(t.taken.n, want_taken.n);
    ck_assert_uint_eq(passed.n, want_passed.n);
    if (passed.n)
        ck_assert_int_eq(memcmp(passed.p, want_passed.p, passed.n), 0);
    if (t.taken.n)
        ck_assert_int_eq(memcmp(t.taken.p, want_taken.p, t.taken.n), 0);
    ck_assert_uint_eq(c.len, 0); /* every stream here ends on a frame boundary */
    link_cutter_free(&c);
    free(t.taken.p);
    free(passed.p);
    free(want_taken.p);
    free(want_passed.p);
}

static struct stream mixed_stream(void)
{
    struct stream s = {0};
    static const size_t sizes[] = {5, 0, 12, 1, 300, 7, 256, 255, 2, 5, 40, 0, 9};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        add_frame(&s, sizes[i], (uint8_t)(i + 1));
    return s;
}

START_TEST(test_frames_split_across_two_reads_at_every_byte)
{
    struct stream s = mixed_stream();
    for (size_t cut = 1; cut < s.n; cut++)
        feed_and_check(&s, &cut, 1);
    free(s.p);
}
END_TEST

START_TEST(test_frames_fed_one_byte_at_a_time)
{
    struct stream s = mixed_stream();
    size_t *ones = malloc(s.n * sizeof *ones);
    for (size_t i = 0; i < s.n; i++)
        ones[i] = 1;
    feed_and_check(&s, ones, s.n);
    free(ones);
    free(s.p);
}
END_TEST

START_TEST(test_many_frames_in_one_read)
{
    struct stream s = {0};
    for (int i = 0; i < 2000; i++)
        add_frame(&s, (size_t)(i % 23), (uint8_t)i);
    feed_and_check(&s, NULL, 0);
    size_t cuts[] = {3, 1000, 1, 5000, 7};
    feed_and_check(&s, cuts, 5);
    free(s.p);
}
END_TEST

START_TEST(test_largest_frame_split_in_random_reads)
{
    struct stream s = {0};
    add_frame(&s, 3, 1);
    add_frame(&s, 65535, 3); /* the largest body a u16 length allows, taken */
    add_frame(&s, 65535, 2); /* and one passed */
    add_frame(&s, 4, 5);
    uint32_t rng = 12345;
    size_t cuts[64];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 64; i++) {
            rng = rng * 1103515245u + 12345u;
            cuts[i] = 1 + (rng >> 16) % 9000;
        }
        feed_and_check(&s, cuts, 64);
    }
    free(s.p);
}
END_TEST

START_TEST(test_a_partial_frame_waits_and_nothing_is_delivered)
{
    struct link_cutter c = {0};
    struct taker t = {0};
    uint8_t *out = (uint8_t *)1;
    uint8_t *data = malloc(1);
    data[0] = 0x01; /* half a length */
    ck_assert_uint_eq(link_cut(&c, data, 1, take_odd, &t, &out), 0);
    ck_assert_ptr_null(out);
    data = malloc(200);
    memset(data, 2, 200); /* length 0x0102 = 258: still 58 bytes short */
    ck_assert_uint_eq(link_cut(&c, data, 200, take_odd, &t, &out), 0);
    ck_assert_uint_eq(t.offered, 0);
    ck_assert_uint_eq(c.len, 201);
    link_cutter_free(&c);
    free(t.taken.p);
}
END_TEST

START_TEST(test_nothing_taken_passes_the_read_itself)
{
    struct stream s = mixed_stream();
    struct link_cutter c = {0};
    struct taker t = {0};
    uint8_t *data = malloc(s.n), *out = NULL;
    memcpy(data, s.p, s.n);
    ck_assert_uint_eq(link_cut(&c, data, s.n, take_none, &t, &out), s.n);
    ck_assert_ptr_eq(out, data); /* no copy when the read holds whole frames only */
    ck_assert_int_eq(memcmp(out, s.p, s.n), 0);
    ck_assert_uint_eq(t.offered, s.frames);
    free(out);
    link_cutter_free(&c);
    free(s.p);
}
END_TEST

/* ---- the request framer against packrequest / packpush ---- */

static void check_framer(lua_State *L, const char *name, uint32_t id, uint32_t session, size_t n)
{
    uint8_t *msg = malloc(n ? n : 1), *frame = malloc(CLUSTER_FRAME_SINGLE_MAX);
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)(i * 13 + 1);
    size_t len =
        cluster_core_frame_single(frame, id, name, name ? strlen(name) : 0, session, msg, n);
    lua_getglobal(L, "core");
    lua_getfield(L, -1, session ? "packrequest" : "packpush");
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushnumber(L, id);
    lua_pushnumber(L, session ? session : 7); /* a single push writes 0 whatever it is given */
    lua_pushlstring(L, (const char *)msg, n);
    ck_assert_int_eq(lua_pcall(L, 3, 1, 0), 0);
    size_t want_len;
    const char *want = lua_tolstring(L, -1, &want_len);
    ck_assert_uint_eq(len, want_len);
    ck_assert_int_eq(memcmp(frame, want, len), 0);
    lua_pop(L, 2);
    free(msg);
    free(frame);
}

START_TEST(test_framer_gives_packrequest_bytes)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaopen_cluster_core(L);
    lua_setglobal(L, "core");
    char longname[CLUSTER_MAX_NAME + 1];
    memset(longname, 'n', CLUSTER_MAX_NAME);
    longname[CLUSTER_MAX_NAME] = '\0';
    static const size_t sizes[] = {0, 1, 100, CLUSTER_CHUNK - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        check_framer(L, NULL, 0x12345678, 1, sizes[i]);
        check_framer(L, NULL, 0, CLUSTER_MAX_SESSION, sizes[i]);
        check_framer(L, "probe", 0, 42, sizes[i]);
        check_framer(L, longname, 0, 9, sizes[i]);
        check_framer(L, NULL, 7, 0, sizes[i]);   /* push */
        check_framer(L, "echo", 0, 0, sizes[i]); /* named push */
    }
    uint8_t frame[8];
    ck_assert_uint_eq(cluster_core_frame_single(NULL, 1, NULL, 0, 1, NULL, CLUSTER_CHUNK), 0);
    ck_assert_uint_eq(cluster_core_frame_single(frame, 1, "", 0, 1, NULL, 0), 0);
    lua_close(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_link");
    TCase *tc = tcase_create("cutter");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_frames_split_across_two_reads_at_every_byte);
    tcase_add_test(tc, test_frames_fed_one_byte_at_a_time);
    tcase_add_test(tc, test_many_frames_in_one_read);
    tcase_add_test(tc, test_largest_frame_split_in_random_reads);
    tcase_add_test(tc, test_a_partial_frame_waits_and_nothing_is_delivered);
    tcase_add_test(tc, test_nothing_taken_passes_the_read_itself);
    tcase_add_test(tc, test_framer_gives_packrequest_bytes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
