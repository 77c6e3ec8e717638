/* test_cluster_reply: the reply table of an inbound cluster link (daemon/lua/cluster_reply.c)
 * with a recording io in place of the reactor: the frames an answer becomes (wire-format.md
 * B.5), the in-flight count and its wake-up, close (answers dropped, callees told), growth,
 * offers racing a close from other threads, and the request filter (frames of a DATA event sent
 * to a real service of a bare runtime, only while the agent has caught up, in order). */
#include "cluster_core.h"
#include "cluster_reply.h"
#include "reactor.h"
#include "seri.h"
#include "service.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AGENT 0x42
#define FD 7

struct written {
    uint8_t *data;
    size_t size;
    int low;
};

struct sent {
    uint32_t source, dest;
    int type, session;
};

/* What the table did: frames written and messages sent. */
struct rec {
    pthread_mutex_t lock;
    struct written w[64];
    int nw, dropped_writes;
    struct sent s[16];
    int ns;
    atomic_int closed_returned; /* set by the test once cluster_reply_close returned */
    atomic_int late_writes;     /* writes that began after that: must stay 0 */
};

static void rec_write(void *ud, int fd, void *data, size_t size, int low)
{
    struct rec *r = ud;
    ck_assert_int_eq(fd, FD);
    if (atomic_load(&r->closed_returned))
        atomic_fetch_add(&r->late_writes, 1);
    pthread_mutex_lock(&r->lock);
    if (r->nw < 64)
        r->w[r->nw++] = (struct written){data, size, low};
    else {
        r->dropped_writes++;
        free(data);
    }
    pthread_mutex_unlock(&r->lock);
}

static void rec_send(void *ud, uint32_t source, uint32_t dest, int type, int session)
{
    struct rec *r = ud;
    pthread_mutex_lock(&r->lock);
    if (r->ns < 16)
        r->s[r->ns++] = (struct sent){source, dest, type, session};
    pthread_mutex_unlock(&r->lock);
}

static const struct cluster_reply_io rec_io = {rec_write, rec_send};

static const char WITH[] = "skynet.lua:1: call failed: ";
static const char WITHOUT[] = "skynet.lua:2: call failed";

static struct cluster_reply *table(struct rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    struct cluster_reply *t = cluster_reply_new(AGENT, FD, 1000, &rec_io, r, WITH, sizeof WITH - 1,
                                                WITHOUT, sizeof WITHOUT - 1);
    ck_assert_ptr_nonnull(t);
    return t;
}

static void rec_free(struct rec *r)
{
    for (int i = 0; i < r->nw; i++)
        free(r->w[i].data);
    pthread_mutex_destroy(&r->lock);
}

static void *copy(const char *s, size_t n)
{
    void *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    return p;
}

/* frame i of r: body length, session, kind */
static void check_frame(struct rec *r, int i, size_t body, uint32_t session, uint8_t kind)
{
    const uint8_t *f = r->w[i].data;
    ck_assert_uint_eq(r->w[i].size, 2 + body);
    ck_assert_uint_eq((size_t)f[0] << 8 | f[1], body);
    ck_assert_uint_eq(f[2] | f[3] << 8 | f[4] << 16 | (uint32_t)f[5] << 24, session);
    ck_assert_uint_eq(f[6], kind);
}

START_TEST(test_answer_is_framed_for_the_peer_session)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    ck_assert_int_eq(cluster_reply_add(t, 5, 0x01020304, 9), 5);
    ck_assert_int_eq(cluster_reply_add(t, 5, 1, 9), -1); /* the session is taken */
    ck_assert_uint_eq(cluster_reply_count(t), 1);
    char other[] = "x";
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_RESPONSE, 6, other, 1), 0); /* not ours */
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_RESPONSE, 5, copy("pong", 4), 4), 1);
    ck_assert_uint_eq(cluster_reply_count(t), 0);
    ck_assert_int_eq(r.nw, 1);
    check_frame(&r, 0, 5 + 4, 0x01020304, 0x01);
    ck_assert_int_eq(memcmp(r.w[0].data + 7, "pong", 4), 0);
    ck_assert_int_eq(r.w[0].low, 0);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_RESPONSE, 5, other, 1), 0); /* answered once */
    ck_assert_int_eq(r.ns, 0);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

START_TEST(test_large_answer_is_split_at_low_priority)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    size_t n = 70000;
    char *big = malloc(n);
    memset(big, 'b', n);
    cluster_reply_add(t, 1, 77, 9);
    cluster_reply_offer(t, PTYPE_RESPONSE, 1, big, n);
    ck_assert_int_eq(r.nw, 4); /* 02 header, 03, 03, 04: B.5's 70 000-byte example */
    check_frame(&r, 0, 9, 77, 0x02);
    ck_assert_int_eq(memcmp(r.w[0].data + 7, "\x70\x11\x01\x00", 4), 0);
    check_frame(&r, 1, 5 + CLUSTER_CHUNK, 77, 0x03);
    check_frame(&r, 2, 5 + CLUSTER_CHUNK, 77, 0x03);
    check_frame(&r, 3, 5 + 4464, 77, 0x04);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r.w[i].low, 1);
    /* exactly CLUSTER_CHUNK bytes is still one frame */
    big = malloc(CLUSTER_CHUNK);
    memset(big, 'c', CLUSTER_CHUNK);
    cluster_reply_add(t, 2, 78, 9);
    cluster_reply_offer(t, PTYPE_RESPONSE, 2, big, CLUSTER_CHUNK);
    ck_assert_int_eq(r.nw, 5);
    check_frame(&r, 4, 5 + CLUSTER_CHUNK, 78, 0x01);
    ck_assert_int_eq(r.w[4].low, 0);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

START_TEST(test_errors_carry_the_lua_call_texts)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    cluster_reply_add(t, 1, 11, 9);
    cluster_reply_add(t, 2, 12, 9);
    cluster_reply_add(t, 3, 13, 9);
    cluster_reply_offer(t, PTYPE_ERROR, 1, copy("boom", 4), 4);
    cluster_reply_offer(t, PTYPE_ERROR, 2, NULL, 0);
    size_t n = 40000; /* error texts are truncated to one frame, never split */
    char *long_text = malloc(n);
    memset(long_text, 'e', n);
    cluster_reply_offer(t, PTYPE_ERROR, 3, long_text, n);
    ck_assert_int_eq(r.nw, 3);
    check_frame(&r, 0, 5 + sizeof WITH - 1 + 4, 11, 0x00);
    ck_assert_int_eq(memcmp(r.w[0].data + 7, "skynet.lua:1: call failed: boom", 31), 0);
    check_frame(&r, 1, 5 + sizeof WITHOUT - 1, 12, 0x00);
    ck_assert_int_eq(memcmp(r.w[1].data + 7, WITHOUT, sizeof WITHOUT - 1), 0);
    check_frame(&r, 2, 5 + CLUSTER_CHUNK, 13, 0x00);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

START_TEST(test_watch_wakes_the_agent_once_at_zero)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    ck_assert_uint_eq(cluster_reply_watch(t), 0); /* nothing in flight: nothing armed */
    cluster_reply_add(t, 1, 1, 9);
    cluster_reply_add(t, 2, 2, 9);
    ck_assert_uint_eq(cluster_reply_watch(t), 2);
    cluster_reply_offer(t, PTYPE_RESPONSE, 1, NULL, 0);
    ck_assert_int_eq(r.ns, 0);
    cluster_reply_offer(t, PTYPE_RESPONSE, 2, NULL, 0);
    ck_assert_int_eq(r.ns, 1);
    ck_assert_uint_eq(r.s[0].source, AGENT);
    ck_assert_uint_eq(r.s[0].dest, AGENT);
    ck_assert_int_eq(r.s[0].type, CLUSTER_REPLY_PTYPE);
    ck_assert_int_eq(r.s[0].session, 0);
    cluster_reply_add(t, 3, 3, 9); /* disarmed after the wake-up */
    cluster_reply_offer(t, PTYPE_RESPONSE, 3, NULL, 0);
    ck_assert_int_eq(r.ns, 1);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

START_TEST(test_close_drops_answers_and_tells_each_callee_once)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    cluster_reply_add(t, 1, 1, 20);
    cluster_reply_add(t, 2, 2, 21);
    cluster_reply_add(t, 3, 3, 20);
    cluster_reply_add(t, 4, 4, 22);
    ck_assert_int_eq(cluster_reply_cancel(t, 4), 0); /* never sent: not a callee */
    ck_assert_int_eq(cluster_reply_cancel(t, 4), -1);
    cluster_reply_watch(t);
    cluster_reply_close(t);
    ck_assert_int_eq(r.ns, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(r.s[i].type, PTYPE_ERROR);
        ck_assert_int_eq(r.s[i].session, 0);
        ck_assert_uint_eq(r.s[i].source, AGENT);
    }
    ck_assert_uint_eq(r.s[0].dest + r.s[1].dest, 20 + 21);
    ck_assert_int_eq(cluster_reply_add(t, 5, 5, 20), -1);
    /* late answers are still recognised (not queued to the agent), then dropped */
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_RESPONSE, 1, copy("late", 4), 4), 1);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_ERROR, 2, NULL, 0), 1);
    cluster_reply_offer(t, PTYPE_RESPONSE, 3, NULL, 0);
    ck_assert_int_eq(r.nw, 0);
    ck_assert_int_eq(r.ns, 2); /* no wake-up for a closed link */
    cluster_reply_close(t);    /* twice: nothing more */
    ck_assert_int_eq(r.ns, 2);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

START_TEST(test_table_grows_and_finds_every_session)
{
    struct rec r;
    struct cluster_reply *t = table(&r);
    enum { N = 20000 };
    static int order[N];
    for (int i = 0; i < N; i++) /* sessions spread and colliding on their home slots */
        order[i] = 1 + (int)(((unsigned)i * 7919u) % 1000003u) * 64;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(cluster_reply_add(t, order[i], (uint32_t)i, 9), order[i]);
    ck_assert_uint_eq(cluster_reply_count(t), N);
    srand(7);
    for (int i = N - 1; i > 0; i--) { /* answer in a shuffled order */
        int k = rand() % (i + 1), tmp = order[i];
        order[i] = order[k];
        order[k] = tmp;
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(cluster_reply_cancel(t, order[i]), 0);
        if (i % 1000 == 0) /* the rest are still found after the removals */
            for (int j = i + 1; j < N; j += 997)
                ck_assert_int_eq(cluster_reply_add(t, order[j], 0, 9), -1);
    }
    ck_assert_uint_eq(cluster_reply_count(t), 0);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

/* Offers from two threads while a third closes the link: nothing is written once close has
 * returned, every answer is taken (written or dropped), none reaches the agent's queue. */
struct racer {
    struct cluster_reply *t;
    int first, n, taken;
};

static void *offer_all(void *arg)
{
    struct racer *x = arg;
    for (int s = x->first; s < x->first + x->n; s++)
        x->taken += cluster_reply_offer(x->t, PTYPE_RESPONSE, s, copy("ok", 2), 2);
    return NULL;
}

START_TEST(test_offers_racing_a_close_never_write_after_it)
{
    for (int round = 0; round < 20; round++) {
        struct rec r;
        struct cluster_reply *t = table(&r);
        enum { PER = 3000 };
        for (int s = 1; s <= 2 * PER; s++)
            cluster_reply_add(t, s, (uint32_t)s, 9);
        struct racer a = {t, 1, PER, 0}, b = {t, 1 + PER, PER, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, offer_all, &a);
        pthread_create(&tb, NULL, offer_all, &b);
        for (volatile int spin = 0; spin < round * 2000; spin++)
            ;
        cluster_reply_close(t);
        atomic_store(&r.closed_returned, 1);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ck_assert_int_eq(atomic_load(&r.late_writes), 0);
        ck_assert_int_eq(a.taken + b.taken, 2 * PER);
        ck_assert_uint_eq(cluster_reply_count(t), 0);
        cluster_reply_free(t);
        rec_free(&r);
    }
}
END_TEST

/* ---- the request filter ---- */

static const struct service_module unit_module = {"unit_target", NULL, NULL, NULL, NULL};

static size_t queued(uint32_t handle)
{
    struct service_stat st = {0};
    ck_assert_int_eq(service_stat(handle, &st), 0);
    return st.mqlen;
}

/* A DATA event of socket FD holding `n` bytes of `frames`. */
static struct reactor_event *data_event(const uint8_t *frames, size_t n, size_t *size)
{
    struct reactor_event *ev = calloc(1, sizeof *ev);
    ev->type = REACTOR_DATA;
    ev->id = FD;
    ev->size = ev->ud = (int)n;
    ev->data = malloc(n);
    memcpy(ev->data, frames, n);
    *size = sizeof *ev;
    return ev;
}

/* A named call frame (80) to "@t" with session `remote` and a packed payload, at out. */
static size_t named_call(uint8_t *out, uint32_t remote)
{
    static const uint8_t payload[] = {0x04, 0x01}; /* skynet.pack(1): a small integer */
    size_t body = 2 + 2 + 4 + sizeof payload;
    out[0] = 0;
    out[1] = (uint8_t)body;
    memcpy(out + 2, "\x80\x02@t", 4);
    memcpy(out + 6, &remote, 4); /* little-endian host */
    memcpy(out + 10, payload, sizeof payload);
    return 2 + body;
}

START_TEST(test_filter_sends_calls_only_while_the_agent_has_caught_up)
{
    static int runtime;
    if (!runtime++) {
        service_init(NULL);
        service_register_module(&unit_module);
    }
    uint32_t target = service_launch("unit_target", "");
    ck_assert_uint_ne(target, 0);
    struct rec r;
    struct cluster_reply *t = table(&r);
    uint8_t buf[64];
    size_t n = named_call(buf, 5), size;
    /* not caught up yet (authentication, takeover): the event goes on to the agent */
    struct reactor_event *ev = data_event(buf, n, &size);
    cluster_reply_name(t, "@t", 2, target);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    ck_assert_int_eq(ev->size, (int)n);
    free(ev->data);
    free(ev);
    /* caught up with that one event: a call, then half of the next one */
    cluster_reply_caught_up(t, 1, 0);
    n = named_call(buf, 6);
    n += named_call(buf + n, 7) - 3;
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    ck_assert_int_eq(ev->size, (int)(n - 12)); /* the partial frame stays for the agent */
    ck_assert_int_eq(memcmp(ev->data, buf + 12, (size_t)ev->size), 0);
    free(ev->data);
    free(ev);
    ck_assert_uint_eq(queued(target), 1);
    ck_assert_uint_eq(cluster_reply_count(t), 1);
    /* the table's sessions start at 2^30; the answer goes to the peer's session 6 */
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_RESPONSE, 0x40000000, NULL, 0), 1);
    check_frame(&r, 0, 5, 6, 0x01);
    /* the agent holds a partial frame: whole frames now go to it too, in order */
    n = named_call(buf, 8);
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    free(ev->data);
    free(ev);
    ck_assert_uint_eq(queued(target), 1);
    /* caught up with all three: the next event is taken whole */
    cluster_reply_caught_up(t, 3, 0);
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 1);
    ck_assert_uint_eq(queued(target), 2);
    ck_assert_uint_eq(cluster_reply_count(t), 1);
    /* an unknown name, a push, another socket: the agent's */
    ev = data_event(buf, n, &size);
    ev->id = FD + 1;
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    free(ev->data);
    free(ev);
    cluster_reply_flush_names(t);
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    free(ev->data);
    free(ev);
    ck_assert_uint_eq(queued(target), 2);
    /* max_pending counts the agent's own requests too; stop_filter ends it for good */
    cluster_reply_name(t, "@t", 2, target);
    cluster_reply_caught_up(t, 4, 999); /* 1 in the table + 999 = max_pending */
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    free(ev->data);
    free(ev);
    cluster_reply_stop_filter(t);
    cluster_reply_caught_up(t, 5, 0);
    ev = data_event(buf, n, &size);
    ck_assert_int_eq(cluster_reply_offer(t, PTYPE_SOCKET, 0, ev, size), 0);
    free(ev->data);
    free(ev);
    ck_assert_uint_eq(queued(target), 2);
    service_kill(target);
    cluster_reply_free(t);
    rec_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_reply");
    TCase *tc = tcase_create("table");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_answer_is_framed_for_the_peer_session);
    tcase_add_test(tc, test_large_answer_is_split_at_low_priority);
    tcase_add_test(tc, test_errors_carry_the_lua_call_texts);
    tcase_add_test(tc, test_watch_wakes_the_agent_once_at_zero);
    tcase_add_test(tc, test_close_drops_answers_and_tells_each_callee_once);
    tcase_add_test(tc, test_table_grows_and_finds_every_session);
    tcase_add_test(tc, test_offers_racing_a_close_never_write_after_it);
    tcase_add_test(tc, test_filter_sends_calls_only_while_the_agent_has_caught_up);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
