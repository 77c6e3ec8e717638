/* clock: node time and the timer thread (see clock.h). The thread sleeps on a condvar until the
 * earliest pending expiry (or is signalled when an earlier one is added), then sends every due
 * event. One mutex guards the thread's planned wake-up; the timer set has its own lock. */
#include "clock.h"

#include "log.h"
#include "service.h"
#include "timer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <time.h>

#define NS_PER_TICK 10000000ull

static struct {
    struct timer *timers;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int running, quit;
    uint64_t planned; /* tick the thread will wake at */
    uint64_t start_ns;
    uint32_t starttime;
    uint64_t start_cs;
} clk = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t clock_hpc(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_now(void) { return clk.start_cs + (clock_hpc() - clk.start_ns) / NS_PER_TICK; }
uint32_t clock_starttime(void) { return clk.starttime; }
int clock_pending(void) { return clk.timers ? timer_count(clk.timers) : 0; }

static void fire_due(void)
{
    uint64_t now = clock_now();
    struct timer_event ev;
    while (timer_pop_due(clk.timers, now, &ev))
        service_send(0, ev.handle, PTYPE_RESPONSE, ev.session, NULL, 0);
}

static void *clock_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&clk.lock);
    while (!clk.quit) {
        pthread_mutex_unlock(&clk.lock);
        fire_due();
        pthread_mutex_lock(&clk.lock);
        uint64_t next = timer_next(clk.timers);
        uint64_t now = clock_now();
        if (next <= now)
            continue;
        if (next > now + 100)
            next = now + 100; /* re-check at least once a second */
        clk.planned = next;
        uint64_t wake_ns = clk.start_ns + (next - clk.start_cs) * NS_PER_TICK;
        struct timespec ts = {(time_t)(wake_ns / 1000000000ull), (long)(wake_ns % 1000000000ull)};
        pthread_cond_timedwait(&clk.cond, &clk.lock, &ts);
    }
    pthread_mutex_unlock(&clk.lock);
    return NULL;
}

int clock_start(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    clk.start_ns = clock_hpc();
    clk.starttime = (uint32_t)tv.tv_sec;
    clk.start_cs = (uint64_t)tv.tv_usec / 10000;
    clk.timers = timer_new();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&clk.cond, &attr);
    pthread_condattr_destroy(&attr);
    if (!clk.timers || pthread_create(&clk.thread, NULL, clock_main, NULL) != 0)
        return -1;
    clk.running = 1;
    return 0;
}

void clock_stop(void)
{
    if (!clk.running)
        return;
    pthread_mutex_lock(&clk.lock);
    clk.quit = 1;
    pthread_cond_signal(&clk.cond);
    pthread_mutex_unlock(&clk.lock);
    pthread_join(clk.thread, NULL);
    clk.running = 0;
    timer_free(clk.timers);
    clk.timers = NULL;
}

int64_t clock_timeout(uint32_t handle, int ticks, int session)
{
    if (ticks <= 0)
        return service_send(0, handle, PTYPE_RESPONSE, session, NULL, 0) == 0 ? 0 : -1;
    uint64_t expire = clock_now() + (uint64_t)ticks;
    struct timer_event ev = {handle, session};
    uint64_t id = timer_add(clk.timers, expire, ev);
    if (!id)
        return -1;
    pthread_mutex_lock(&clk.lock);
    if (expire < clk.planned)
        pthread_cond_signal(&clk.cond);
    pthread_mutex_unlock(&clk.lock);
    return (int64_t)(id & 0x7fffffffffffffffull);
}

int clock_cancel(int64_t id) { return timer_cancel(clk.timers, (uint64_t)id); }
