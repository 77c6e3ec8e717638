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
    atomic_uint_fast64_t idle_ns; /* time spent asleep waiting for work */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int sleeping;
    atomic_int quit;
    int n;
    struct worker *workers;
    uint64_t started_ns;
} sched = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, 0};

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
        /* Clocks are read only around sleeps (a clock read can cost a syscall in a VM): busy time
         * is wall time minus this. */
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&sched.lock);
        atomic_fetch_add(&sched.sleeping, 1);
        if (mq_global_empty() && !atomic_load(&sched.quit))
            pthread_cond_wait(&sched.cond, &sched.lock);
        atomic_fetch_sub(&sched.sleeping, 1);
        pthread_mutex_unlock(&sched.lock);
        atomic_fetch_add(&w->idle_ns, now_ns() - t0);
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
    static const int weights[] = {-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                  3,  3,  3,  3,  3, 3, 3, 3};
    sched.n = threads;
    sched.started_ns = now_ns();
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
    uint64_t wall = now_ns() - sched.started_ns, idle = atomic_load(&sched.workers[i].idle_ns);
    return wall > idle ? wall - idle : 0;
}
