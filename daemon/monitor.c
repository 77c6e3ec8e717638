/* monitor: stuck-service detection (see monitor.h). Reads each worker's service_watch once a
 * second without locks (atomics only); a worker whose version has not moved while it handles a
 * message for `limit` seconds is reported. Its own state is private to its thread. */
#include "monitor.h"

#include "log.h"
#include "scheduler.h"
#include "service.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct seen {
    unsigned version;
    int seconds;
    int reported;
};

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int quit, running, limit;
} mon = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void check(struct seen *seen, int n)
{
    for (int i = 0; i < n; i++) {
        struct service_watch *w = scheduler_watch(i);
        if (!w)
            return; /* the scheduler has stopped */
        unsigned version = atomic_load(&w->version);
        unsigned dest = atomic_load(&w->dest);
        if (version != seen[i].version || dest == 0) {
            seen[i] = (struct seen){version, 0, 0};
            continue;
        }
        if (++seen[i].seconds >= mon.limit && !seen[i].reported) {
            seen[i].reported = 1;
            service_mark_endless(dest);
            log_write(0, LOG_ERROR,
                      "error: A message from [ :%08x ] to [ :%08x ] maybe in an endless loop "
                      "(version = %u, %d s)",
                      atomic_load(&w->source), dest, version, seen[i].seconds);
        }
    }
}

static void *monitor_main(void *arg)
{
    (void)arg;
    int n = scheduler_threads();
    struct seen *seen = calloc((size_t)n, sizeof *seen);
    pthread_mutex_lock(&mon.lock);
    while (!mon.quit) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&mon.cond, &mon.lock, &ts);
        if (!mon.quit && seen)
            check(seen, n);
    }
    pthread_mutex_unlock(&mon.lock);
    free(seen);
    return NULL;
}

int monitor_start(int stuck_seconds)
{
    mon.limit = stuck_seconds > 0 ? stuck_seconds : 5;
    if (pthread_create(&mon.thread, NULL, monitor_main, NULL) != 0)
        return -1;
    mon.running = 1;
    return 0;
}

void monitor_stop(void)
{
    if (!mon.running)
        return;
    pthread_mutex_lock(&mon.lock);
    mon.quit = 1;
    pthread_cond_signal(&mon.cond);
    pthread_mutex_unlock(&mon.lock);
    pthread_join(mon.thread, NULL);
    mon.running = 0;
}
