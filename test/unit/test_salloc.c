/* Check tests of salloc, the Lua states' allocator: every size class keeps its bytes and its
 * alignment, realloc moves contents across classes and to and from malloc, blocks freed on
 * another thread (or left in an exiting thread's cache) go back to their pages, and churn reuses
 * the pages it mapped while salloc_trim hands empty ones back. */
#include "salloc.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t pages_used(void)
{
    struct salloc_stats st;
    salloc_stats(&st);
    return st.pages_used;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31 + i))
            return 0;
    return 1;
}

START_TEST(test_salloc_every_size_is_aligned_distinct_and_keeps_its_bytes)
{
    enum { PER_SIZE = 40 };
    size_t base = pages_used();
    static unsigned char *blocks[SALLOC_MAX + 1][PER_SIZE];
    for (size_t size = 1; size <= SALLOC_MAX; size++)
        for (unsigned i = 0; i < PER_SIZE; i++) {
            blocks[size][i] = salloc_realloc(NULL, 0, size);
            ck_assert_ptr_nonnull(blocks[size][i]);
            ck_assert_uint_eq((uintptr_t)blocks[size][i] % 8, 0);
            fill(blocks[size][i], size, (unsigned)size + i);
        }
    for (size_t size = 1; size <= SALLOC_MAX; size++)
        for (unsigned i = 0; i < PER_SIZE; i++) {
            ck_assert(intact(blocks[size][i], size, (unsigned)size + i));
            salloc_realloc(blocks[size][i], size, 0);
        }
    salloc_thread_flush();
    ck_assert_uint_eq(pages_used(), base);
}
END_TEST

START_TEST(test_salloc_realloc_keeps_contents_across_classes_and_malloc)
{
    size_t base = pages_used();
    unsigned char *p = salloc_realloc(NULL, 0, 3);
    fill(p, 3, 7);
    /* within one class the block stays where it is */
    ck_assert_ptr_eq(salloc_realloc(p, 3, 8), p);
    size_t size = 8;
    fill(p, size, 7);
    static const size_t steps[] = {9, 64, 200, 256, 257, 1000, 5000, 300, 256, 100, 16, 1};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t next = steps[i];
        unsigned char *q = salloc_realloc(p, size, next);
        ck_assert_ptr_nonnull(q);
        ck_assert(intact(q, next < size ? next : size, 7));
        p = q;
        size = next;
        fill(p, size, 7);
    }
    salloc_realloc(p, size, 0);
    salloc_thread_flush();
    ck_assert_uint_eq(pages_used(), base);
}
END_TEST

enum { HANDED = 20000 };
static unsigned char *handed[HANDED];

static size_t handed_size(unsigned i) { return 1 + (i * 37) % SALLOC_MAX; }

/* frees what the main thread allocated, then exits without flushing its cache */
static void *free_them(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < HANDED; i++) {
        if (!intact(handed[i], handed_size(i), i))
            return (void *)1;
        salloc_realloc(handed[i], handed_size(i), 0);
    }
    return NULL;
}

START_TEST(test_salloc_frees_on_another_thread_go_back_to_the_pages)
{
    salloc_thread_flush();
    size_t base = pages_used();
    for (unsigned i = 0; i < HANDED; i++) {
        handed[i] = salloc_realloc(NULL, 0, handed_size(i));
        ck_assert_ptr_nonnull(handed[i]);
        fill(handed[i], handed_size(i), i);
    }
    ck_assert_uint_gt(pages_used(), base);
    pthread_t t;
    void *bad = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, free_them, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &bad), 0);
    ck_assert_ptr_null(bad);
    salloc_thread_flush(); /* the blocks this thread cached when it refilled */
    ck_assert_uint_eq(pages_used(), base);
}
END_TEST

enum { WORKERS = 4, ROUNDS = 200000, SLOTS = 4096 };
static struct {
    pthread_mutex_t lock;
    unsigned char *p[SLOTS];
    size_t size[SLOTS];
    unsigned seed[SLOTS];
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* every thread swaps random blocks in and out of shared slots: each block is freed by whichever
 * thread happens to take it */
static void *swap_blocks(void *arg)
{
    unsigned r = (unsigned)(uintptr_t)arg * 2654435761u;
    for (unsigned n = 0; n < ROUNDS; n++) {
        r = r * 1103515245u + 12345u;
        unsigned slot = (r >> 8) % SLOTS, seed = r;
        size_t size = 1 + (r >> 20) % (SALLOC_MAX + 64);
        unsigned char *mine = salloc_realloc(NULL, 0, size);
        if (!mine)
            return (void *)1;
        fill(mine, size, seed);
        pthread_mutex_lock(&shared.lock);
        unsigned char *old = shared.p[slot];
        size_t osize = shared.size[slot];
        unsigned oseed = shared.seed[slot];
        shared.p[slot] = mine;
        shared.size[slot] = size;
        shared.seed[slot] = seed;
        pthread_mutex_unlock(&shared.lock);
        if (old) {
            if (!intact(old, osize, oseed))
                return (void *)1;
            salloc_realloc(old, osize, 0);
        }
    }
    return NULL;
}

START_TEST(test_salloc_threads_freeing_each_others_blocks_keep_every_byte)
{
    salloc_thread_flush();
    size_t base = pages_used();
    pthread_t t[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, swap_blocks, (void *)(i + 1)), 0);
    for (int i = 0; i < WORKERS; i++) {
        void *bad = NULL;
        ck_assert_int_eq(pthread_join(t[i], &bad), 0);
        ck_assert_ptr_null(bad);
    }
    for (unsigned s = 0; s < SLOTS; s++)
        if (shared.p[s]) {
            ck_assert(intact(shared.p[s], shared.size[s], shared.seed[s]));
            salloc_realloc(shared.p[s], shared.size[s], 0);
            shared.p[s] = NULL;
        }
    salloc_thread_flush();
    ck_assert_uint_eq(pages_used(), base);
}
END_TEST

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* allocate n mixed blocks, free them all (as a node's services come and go) */
static void churn(unsigned char **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        v[i] = salloc_realloc(NULL, 0, handed_size(i));
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 1, handed_size(i));
    }
    for (unsigned i = 0; i < n; i++)
        salloc_realloc(v[i], handed_size(i), 0);
    salloc_thread_flush();
}

START_TEST(test_salloc_churn_reuses_its_pages_and_trim_hands_them_back)
{
    enum { N = 300000 }; /* ~38 MiB of blocks */
    unsigned char **v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    size_t base = pages_used();
    churn(v, N);
    struct salloc_stats first;
    salloc_stats(&first);
    ck_assert_uint_eq(first.pages_used, base);
    ck_assert_uint_gt(first.pages_pooled, 1000);
    ck_assert_uint_eq(salloc_trim(), first.pages_pooled * 4096);
    size_t rss_first = rss_kib();
    churn(v, N);
    struct salloc_stats second;
    salloc_stats(&second);
    ck_assert_uint_eq(second.bytes_mapped, first.bytes_mapped); /* nothing new mapped */
    salloc_trim();
    size_t rss_second = rss_kib();
#if !defined(__SANITIZE_ADDRESS__) /* ASan's shadow and quarantine move RSS on their own */
    ck_assert_uint_lt(rss_second, rss_first + 2048);
#endif
    (void)rss_first;
    (void)rss_second;
    salloc_stats(&second);
    ck_assert_uint_eq(second.pages_pooled, 0);
    ck_assert_uint_ge(second.pages_returned, first.pages_pooled);
    free(v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("salloc");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_salloc_every_size_is_aligned_distinct_and_keeps_its_bytes);
    tcase_add_test(tc, test_salloc_realloc_keeps_contents_across_classes_and_malloc);
    tcase_add_test(tc, test_salloc_frees_on_another_thread_go_back_to_the_pages);
    tcase_add_test(tc, test_salloc_threads_freeing_each_others_blocks_keep_every_byte);
    tcase_add_test(tc, test_salloc_churn_reuses_its_pages_and_trim_hands_them_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
