/* scheduler: worker threads (see scheduler.h). Sleeping workers wait on one condvar; the count
 * of sleepers is an atomic read by wakers, so a busy node never touches the sleep mutex. The
 * lost-wakeup race is closed by checking the run queue after announcing sleep, under the mutex
 * that the waker takes before signalling. */
#include "scheduler.h"

#include "log.h"
#include "mq.h"
#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define SPIN_ROUNDS 64

struct worker {
    pthread_t thread;
    int index, weight;
    struct service_watch watch;
    atomic_uint_fast64_t busy_ns;     /* time awake, summed at each sleep */
    atomic_uint_fast64_t awake_since; /* when it last woke; 0 while asleep */
    atomic_uint_fast64_t reported_ns; /* the largest busy time handed out (never goes back) */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int sleeping;
    atomic_int quit;
    int n;
    struct worker *workers;
} sched = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void scheduler_wakeup(void)
{
    if (atomic_load(&sched.sleeping) > 0) {
        pthread_mutex_lock(&sched.lock);
        pthread_cond_signal(&sched.cond);
        pthread_mutex_unlock(&sched.lock);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    atomic_store(&w->awake_since, now_ns());
    struct mq *q = NULL;
    while (!atomic_load(&sched.quit)) {
        q = service_dispatch(&w->watch, q, w->weight);
        if (q)
            continue;
        /* Briefly spin before sleeping: a reply usually comes back within microseconds. */
        for (int i = 0; i < SPIN_ROUNDS && mq_global_empty(); i++)
            sched_yield();
        if (!mq_global_empty())
            continue;
        /* Clocks are read only around sleeps (a clock read can cost a syscall in a VM): the time
         * awake is added up at each sleep. */
        uint64_t t0 = now_ns();
        atomic_fetch_add(&w->busy_ns, t0 - atomic_load(&w->awake_since));
        atomic_store(&w->awake_since, 0);
        pthread_mutex_lock(&sched.lock);
        atomic_fetch_add(&sched.sleeping, 1);
        if (mq_global_empty() && !atomic_load(&sched.quit))
            pthread_cond_wait(&sched.cond, &sched.lock);
        atomic_fetch_sub(&sched.sleeping, 1);
        pthread_mutex_unlock(&sched.lock);
        atomic_store(&w->awake_since, now_ns());
    }
    /* Stopping: finish the queue in hand (a released service's queue is freed here). */
    while (q)
        q = service_dispatch(&w->watch, q, w->weight);
    return NULL;
}

int scheduler_start(int threads)
{
    /* Skynet's weights: the first workers take one message per turn (latency), later ones take
     * a growing share of the queue (throughput). */
    static const int weights[] = {-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1,
                                  2,  2,  2,  2,  3, 3, 3, 3, 3, 3, 3, 3};
    sched.n = threads;
    sched.workers = calloc((size_t)threads, sizeof *sched.workers);
    if (!sched.workers)
        return -1;
    for (int i = 0; i < threads; i++) {
        struct worker *w = &sched.workers[i];
        w->index = i;
        w->weight = i < (int)(sizeof weights / sizeof *weights) ? weights[i] : 0;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_write(0, LOG_ERROR, "cannot create worker thread %d", i);
            return -1;
        }
    }
    return 0;
}

void scheduler_stop(void)
{
    atomic_store(&sched.quit, 1);
    pthread_mutex_lock(&sched.lock);
    pthread_cond_broadcast(&sched.cond);
    pthread_mutex_unlock(&sched.lock);
    for (int i = 0; i < sched.n; i++)
        pthread_join(sched.workers[i].thread, NULL);
    free(sched.workers);
    sched.workers = NULL;
    sched.n = 0;
}

int scheduler_threads(void) { return sched.n; }

struct service_watch *scheduler_watch(int i)
{
    return (i >= 0 && i < sched.n) ? &sched.workers[i].watch : NULL;
}

uint64_t scheduler_messages(int i)
{
    return (i >= 0 && i < sched.n) ? atomic_load(&sched.workers[i].watch.messages) : 0;
}

uint64_t scheduler_busy_ns(int i)
{
    if (i < 0 || i >= sched.n)
        return 0;
    /* The summed time plus the current stretch awake. Read racing a sleep, the stretch may be
     * counted twice for a moment; the high-water mark keeps the counter from going back. */
    struct worker *w = &sched.workers[i];
    uint64_t since = atomic_load(&w->awake_since), busy = atomic_load(&w->busy_ns);
    uint64_t now = since ? now_ns() : 0, value = busy + (since && now > since ? now - since : 0);
    uint64_t reported = atomic_load(&w->reported_ns);
    while (value > reported && !atomic_compare_exchange_weak(&w->reported_ns, &reported, value))
        ;
    return value > reported ? value : reported;
}
