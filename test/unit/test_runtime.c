/* Check tests of the runtime's data structures: message queues, the handle registry and names,
 * the timer set, the env store, and config validation (errors name the file, line and key). */
#include "config.h"
#include "env.h"
#include "handle.h"
#include "mq.h"
#include "timer.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- mq ---- */

static int dropped;
static void count_drop(struct message *m, void *ud)
{
    (void)ud;
    free(m->data);
    dropped++;
}

START_TEST(test_mq_keeps_fifo_order_across_growth)
{
    struct mq *q = mq_create(7);
    mq_global_push(q); /* born scheduled: the creator schedules it once */
    ck_assert_ptr_eq(mq_global_pop(), q);
    for (int i = 0; i < 5000; i++) {
        struct message m = {1, i, 10, 0, NULL};
        mq_push(q, &m);
    }
    ck_assert_uint_eq(mq_length(q), 5000);
    struct message m;
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(mq_pop(q, &m), 0);
        ck_assert_int_eq(m.session, i);
    }
    ck_assert_int_eq(mq_pop(q, &m), -1);
    ck_assert_uint_eq(mq_handle(q), 7);
    /* the queue is runnable again by its next push */
    ck_assert_int_eq(mq_push(q, &(struct message){1, 1, 10, 0, NULL}), 1);
    ck_assert_ptr_eq(mq_global_pop(), q);
    mq_pop(q, &m);
    mq_pop(q, &m);
    mq_mark_release(q);
    ck_assert_ptr_eq(mq_global_pop(), q);
    ck_assert_int_eq(mq_release(q, count_drop, NULL), 1);
}
END_TEST

START_TEST(test_mq_release_drains_every_message)
{
    struct mq *q = mq_create(9);
    mq_global_push(q);
    ck_assert_ptr_eq(mq_global_pop(), q);
    for (int i = 0; i < 100; i++) {
        struct message m = {1, i, 10, 4, malloc(4)};
        mq_push(q, &m);
    }
    /* a worker holds it (popped from the run queue): release before marking puts it back */
    ck_assert_int_eq(mq_release(q, count_drop, NULL), 0);
    ck_assert_ptr_eq(mq_global_pop(), q);
    mq_mark_release(q);
    dropped = 0;
    ck_assert_int_eq(mq_release(q, count_drop, NULL), 1);
    ck_assert_int_eq(dropped, 100);
}
END_TEST

START_TEST(test_mq_queue_is_in_run_queue_once)
{
    struct mq *q = mq_create(3);
    mq_global_push(q);
    ck_assert_ptr_eq(mq_global_pop(), q);
    struct message m = {0};
    ck_assert_int_eq(mq_pop(q, &m), -1); /* empty: leaves the run queue */
    ck_assert_int_eq(mq_push(q, &m), 1);
    ck_assert_int_eq(mq_push(q, &m), 0);
    ck_assert_ptr_eq(mq_global_pop(), q);
    ck_assert_ptr_eq(mq_global_pop(), NULL);
    ck_assert_int_eq(mq_global_empty(), 1);
    mq_pop(q, &m);
    mq_pop(q, &m);
    mq_mark_release(q);
    mq_global_pop();
    mq_release(q, count_drop, NULL);
}
END_TEST

START_TEST(test_mq_overload_reported_at_thresholds)
{
    struct mq *q = mq_create(4);
    mq_global_push(q);
    mq_global_pop();
    struct message m = {0};
    for (int i = 0; i < 3000; i++)
        mq_push(q, &m);
    mq_global_pop();
    mq_pop(q, &m);
    ck_assert_uint_eq(mq_overload(q), 2999);
    ck_assert_uint_eq(mq_overload(q), 0); /* read clears */
    mq_mark_release(q);
    mq_release(q, count_drop, NULL);
}
END_TEST

static struct mq *shared_q;
static void *pusher(void *arg)
{
    int base = *(int *)arg;
    for (int i = 0; i < 10000; i++) {
        struct message m = {(uint32_t)base, i, 10, 0, NULL};
        mq_push(shared_q, &m);
    }
    return NULL;
}

START_TEST(test_mq_concurrent_pushers_keep_per_sender_order)
{
    shared_q = mq_create(5);
    mq_global_push(shared_q);
    mq_global_pop();
    pthread_t t[4];
    int ids[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, pusher, &ids[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int next[5] = {0};
    struct message m;
    int n = 0;
    while (mq_pop(shared_q, &m) == 0) {
        ck_assert_int_eq(m.session, next[m.source]);
        next[m.source]++;
        n++;
    }
    ck_assert_int_eq(n, 40000);
    while (mq_global_pop())
        ;
    mq_mark_release(shared_q);
    mq_global_pop();
    mq_release(shared_q, count_drop, NULL);
}
END_TEST

/* ---- handle ---- */

START_TEST(test_handles_count_up_and_are_not_reused)
{
    handle_init();
    struct handle_obj a = {0}, b = {0}, c = {0};
    uint32_t ha = handle_register(&a), hb = handle_register(&b);
    ck_assert_uint_eq(ha, 1);
    ck_assert_uint_eq(hb, 2);
    ck_assert_int_eq(atomic_load(&a.ref), 1);
    ck_assert_ptr_eq(handle_retire(ha), &a);
    ck_assert_ptr_eq(handle_retire(ha), NULL);
    ck_assert_ptr_eq(handle_grab(ha), NULL);
    uint32_t hc = handle_register(&c);
    ck_assert_uint_eq(hc, 3);
    ck_assert_ptr_eq(handle_grab(hc), &c);
    ck_assert_int_eq(atomic_load(&c.ref), 2);
    ck_assert_uint_eq(handle_count(), 2);
    handle_exit();
}
END_TEST

START_TEST(test_handle_table_grows_past_thousands)
{
    handle_init();
    static struct handle_obj objs[5000];
    for (int i = 0; i < 5000; i++)
        ck_assert_uint_eq(handle_register(&objs[i]), (uint32_t)i + 1);
    for (int i = 0; i < 5000; i++)
        ck_assert_ptr_eq(handle_grab((uint32_t)i + 1), &objs[i]);
    uint32_t list[10];
    ck_assert_uint_eq(handle_list(list, 10), 5000);
    handle_exit();
}
END_TEST

START_TEST(test_names_bind_once_and_vanish_with_the_handle)
{
    handle_init();
    struct handle_obj a = {0}, b = {0};
    uint32_t ha = handle_register(&a), hb = handle_register(&b);
    ck_assert_int_eq(handle_name(ha, "launcher"), 0);
    ck_assert_int_eq(handle_name(hb, "launcher"), -1); /* taken */
    ck_assert_int_eq(handle_name(ha, "alias"), 0);     /* several names per handle */
    ck_assert_int_eq(handle_name(999, "ghost"), -1);   /* unknown handle */
    ck_assert_int_eq(handle_name(ha, ""), -1);
    ck_assert_uint_eq(handle_findname("launcher"), ha);
    ck_assert_uint_eq(handle_findname("alias"), ha);
    char buf[64];
    ck_assert_int_eq(handle_namefor(ha, buf, sizeof buf), 0);
    handle_retire(ha);
    ck_assert_uint_eq(handle_findname("launcher"), 0);
    ck_assert_uint_eq(handle_findname("alias"), 0);
    ck_assert_int_eq(handle_name(hb, "launcher"), 0);
    handle_exit();
}
END_TEST

/* ---- timer ---- */

START_TEST(test_timer_pops_in_expiry_order_with_stable_ties)
{
    struct timer *t = timer_new();
    int order[] = {50, 10, 30, 10, 20, 10};
    for (int i = 0; i < 6; i++)
        timer_add(t, (uint64_t)order[i], (struct timer_event){1, i});
    ck_assert_uint_eq(timer_next(t), 10);
    struct timer_event ev;
    ck_assert_int_eq(timer_pop_due(t, 9, &ev), 0);
    int want[] = {1, 3, 5, 4, 2, 0};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(timer_pop_due(t, 100, &ev), 1);
        ck_assert_int_eq(ev.session, want[i]);
    }
    ck_assert_int_eq(timer_pop_due(t, 100, &ev), 0);
    ck_assert_uint_eq(timer_next(t), UINT64_MAX);
    timer_free(t);
}
END_TEST

START_TEST(test_timer_cancel_removes_only_that_timer)
{
    struct timer *t = timer_new();
    uint64_t ids[100];
    for (int i = 0; i < 100; i++)
        ids[i] = timer_add(t, (uint64_t)(i % 7), (struct timer_event){1, i});
    for (int i = 0; i < 100; i += 3)
        ck_assert_int_eq(timer_cancel(t, ids[i]), 0);
    ck_assert_int_eq(timer_cancel(t, ids[0]), -1); /* twice */
    struct timer_event ev;
    int seen = 0;
    uint64_t last = 0;
    int last_session = -1;
    while (timer_pop_due(t, 1000, &ev)) {
        ck_assert_int_ne(ev.session % 3, 0);
        uint64_t exp = (uint64_t)(ev.session % 7);
        ck_assert(exp > last || (exp == last && ev.session > last_session));
        last = exp;
        last_session = ev.session;
        seen++;
    }
    ck_assert_int_eq(seen, 66);
    ck_assert_int_eq(timer_cancel(t, ids[1]), -1); /* already fired */
    /* a recycled slot does not answer to the old id */
    uint64_t fresh = timer_add(t, 5, (struct timer_event){1, 1});
    ck_assert_int_eq(timer_cancel(t, ids[1]), -1);
    ck_assert_int_eq(timer_cancel(t, fresh), 0);
    ck_assert_int_eq(timer_count(t), 0);
    timer_free(t);
}
END_TEST

START_TEST(test_timer_random_operations_stay_ordered)
{
    struct timer *t = timer_new();
    srand(42);
    uint64_t ids[2000];
    int live[2000] = {0};
    for (int i = 0; i < 2000; i++) {
        ids[i] = timer_add(t, (uint64_t)(rand() % 500), (struct timer_event){1, i});
        live[i] = 1;
        if (i % 5 == 0) {
            int k = rand() % (i + 1);
            if (live[k]) {
                ck_assert_int_eq(timer_cancel(t, ids[k]), 0);
                live[k] = 0;
            }
        }
    }
    struct timer_event ev;
    uint64_t prev = 0, n = 0;
    for (uint64_t now = 0; now < 500; now++) {
        while (timer_pop_due(t, now, &ev)) {
            ck_assert(live[ev.session]);
            live[ev.session] = 0;
            ck_assert(now >= prev);
            prev = now;
            n++;
        }
    }
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(live[i], 0);
    ck_assert_int_eq(timer_count(t), 0);
    (void)n;
    timer_free(t);
}
END_TEST

/* ---- env and config ---- */

static char tmpdir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static int load(const char *text, char *err, size_t errlen)
{
    env_exit();
    env_init();
    struct node_config cfg;
    int rc = config_load(write_file("node.ini", text), "/opt/skyjet", &cfg, err, errlen);
    if (rc == 0)
        config_free(&cfg);
    return rc;
}

START_TEST(test_env_sets_each_key_once)
{
    env_init();
    ck_assert_int_eq(env_set("k", "v1"), 0);
    ck_assert_int_eq(env_set("k", "v2"), -1);
    ck_assert_str_eq(env_get("k"), "v1");
    ck_assert_ptr_eq(env_get("missing"), NULL);
    for (int i = 0; i < 500; i++) {
        char key[32];
        snprintf(key, sizeof key, "key%d", i);
        ck_assert_int_eq(env_set(key, key), 0);
    }
    ck_assert_str_eq(env_get("key499"), "key499");
    env_exit();
}
END_TEST

START_TEST(test_config_publishes_keys_aliases_and_defaults)
{
    char err[256] = "";
    ck_assert_int_eq(load("[node]\nname = game1\nthreads = 3\n[lua]\nservice_path = svc/?.lua\n"
                          "[cluster]\nfile = clustername.lua\n[env]\nmykey = hello world\n",
                          err, sizeof err),
                     0);
    ck_assert_str_eq(env_get("name"), "game1");
    ck_assert_str_eq(env_get("nodename"), "game1");
    ck_assert_str_eq(env_get("threads"), "3");
    ck_assert_str_eq(env_get("thread"), "3");
    ck_assert_str_eq(env_get("node.threads"), "3");
    ck_assert_str_eq(env_get("mykey"), "hello world");
    ck_assert_str_eq(env_get("start"), "main");
    ck_assert_str_eq(env_get("bootstrap"), "snlua bootstrap");
    ck_assert_str_eq(env_get("harbor"), "0");
    char want[600];
    snprintf(want, sizeof want, "%s/clustername.lua", tmpdir);
    ck_assert_str_eq(env_get("cluster"), want);
    snprintf(want, sizeof want, "%s/svc/?.lua;/opt/skyjet/service/?.lua", tmpdir);
    ck_assert_str_eq(env_get("luaservice"), want);
    ck_assert_str_eq(env_get("lua_path"), "/opt/skyjet/lualib/?.lua;/opt/skyjet/lualib/?/init.lua");
}
END_TEST

START_TEST(test_config_unknown_key_names_file_line_and_key)
{
    char err[256] = "";
    ck_assert_int_eq(load("[node]\nname = x\n\nthread_count = 4\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "node.ini:4:") && strstr(err, "thread_count"), "%s", err);
}
END_TEST

START_TEST(test_config_bad_values_are_rejected)
{
    char err[256] = "";
    ck_assert_int_eq(load("[node]\nthreads = lots\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":2:") && strstr(err, "threads"), "%s", err);
    ck_assert_int_eq(load("[node]\nthreads = 0\n", err, sizeof err), -1);
    ck_assert_int_eq(load("[node]\nthreads = 2000\n", err, sizeof err), -1);
    ck_assert_int_eq(load("[node]\nloglevel = loud\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "loglevel"), "%s", err);
    ck_assert_int_eq(load("[cluster]\nmax_message = 12Q\n", err, sizeof err), -1);
    ck_assert_int_eq(load("[node]\nname = a\nname = b\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":3:") && strstr(err, "twice"), "%s", err);
    ck_assert_int_eq(load("[nodes]\nname = a\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "unknown section [nodes]"), "%s", err);
    ck_assert_int_eq(load("[env]\nthread = 3\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "clashes"), "%s", err);
    ck_assert_int_eq(load("[node]\nthis line has no equals sign\n", err, sizeof err), -1);
    ck_assert_msg(strstr(err, ":2:"), "%s", err);
}
END_TEST

START_TEST(test_config_reports_every_error_with_its_line)
{
    char err[2048] = "";
    ck_assert_int_eq(load("[node]\nthread = 4\nbroken line\n[lua]\njit = fast\n"
                          "[cluster]\nmax_mesage = 1M\n",
                          err, sizeof err),
                     -1);
    ck_assert_msg(
        strstr(err, "node.ini:2: [node] thread: unknown key; did you mean [node] threads?"), "%s",
        err);
    ck_assert_msg(strstr(err, "node.ini:3: syntax error"), "%s", err);
    ck_assert_msg(strstr(err, "node.ini:5: [lua] jit = 'fast': must be one of auto|on|off"), "%s",
                  err);
    ck_assert_msg(strstr(err, "node.ini:7: [cluster] max_mesage: unknown key; did you mean "
                              "[cluster] max_message?"),
                  "%s", err);
}
END_TEST

START_TEST(test_config_skynet_lua_config_gets_a_hint)
{
    char err[2048] = "";
    ck_assert_int_eq(load("-- a Skynet config\nthread = 8\nstart = \"main\"\n", err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "node.ini:2: this looks like a Skynet Lua config") &&
                      strstr(err, "thread -> [node] threads") &&
                      strstr(err, "luaservice -> [lua] service_path"),
                  "%s", err);
}
END_TEST

START_TEST(test_config_directory_is_not_a_config)
{
    char err[256] = "";
    struct node_config cfg;
    ck_assert_int_eq(config_load(tmpdir, "/opt", &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
}
END_TEST

START_TEST(test_config_missing_file_is_an_error)
{
    char err[256] = "";
    struct node_config cfg;
    ck_assert_int_eq(config_load("/nonexistent/node.ini", "/opt", &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "/nonexistent/node.ini") && strstr(err, "cannot open"), "%s", err);
}
END_TEST

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/skyjet-unit-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_mq_keeps_fifo_order_across_growth);
    tcase_add_test(tc, test_mq_release_drains_every_message);
    tcase_add_test(tc, test_mq_queue_is_in_run_queue_once);
    tcase_add_test(tc, test_mq_overload_reported_at_thresholds);
    tcase_add_test(tc, test_mq_concurrent_pushers_keep_per_sender_order);
    tcase_add_test(tc, test_handles_count_up_and_are_not_reused);
    tcase_add_test(tc, test_handle_table_grows_past_thousands);
    tcase_add_test(tc, test_names_bind_once_and_vanish_with_the_handle);
    tcase_add_test(tc, test_timer_pops_in_expiry_order_with_stable_ties);
    tcase_add_test(tc, test_timer_cancel_removes_only_that_timer);
    tcase_add_test(tc, test_timer_random_operations_stay_ordered);
    tcase_add_test(tc, test_env_sets_each_key_once);
    tcase_add_test(tc, test_config_reports_every_error_with_its_line);
    tcase_add_test(tc, test_config_skynet_lua_config_gets_a_hint);
    tcase_add_test(tc, test_config_directory_is_not_a_config);
    tcase_add_test(tc, test_config_publishes_keys_aliases_and_defaults);
    tcase_add_test(tc, test_config_unknown_key_names_file_line_and_key);
    tcase_add_test(tc, test_config_bad_values_are_rejected);
    tcase_add_test(tc, test_config_missing_file_is_an_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        return 1;
    return failed ? 1 : 0;
}
