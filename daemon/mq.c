/* mq: per-service queues (growable ring buffers) and the global run queue (an intrusive FIFO
 * list). Locking: each queue has a mutex for its ring and in_global flag; the run queue has one
 * mutex. Lock order: queue lock, then run-queue lock (mq_push holds the first while it takes the
 * second). See mq.h for the ownership rules. */
#include "mq.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MQ_INITIAL 8 /* 256 bytes: most services never queue more (the ring doubles) */
#define MQ_OVERLOAD 1024

struct mq {
    pthread_mutex_t lock;
    uint32_t handle;
    int cap, head, tail; /* ring: head = next to pop, tail = next free slot */
    int release;         /* marked by a retired service */
    int in_global;
    size_t overload, overload_threshold;
    struct message *ring;
    struct mq *next; /* run-queue link */
};

static struct {
    pthread_mutex_t lock;
    struct mq *head, *tail;
    atomic_size_t count;
} runq = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0};

void mq_global_push(struct mq *q)
{
    pthread_mutex_lock(&runq.lock);
    q->next = NULL;
    if (runq.tail)
        runq.tail->next = q;
    else
        runq.head = q;
    runq.tail = q;
    atomic_fetch_add(&runq.count, 1);
    pthread_mutex_unlock(&runq.lock);
}

struct mq *mq_global_pop(void)
{
    if (atomic_load(&runq.count) == 0)
        return NULL;
    pthread_mutex_lock(&runq.lock);
    struct mq *q = runq.head;
    if (q) {
        runq.head = q->next;
        if (!runq.head)
            runq.tail = NULL;
        q->next = NULL;
        atomic_fetch_sub(&runq.count, 1);
    }
    pthread_mutex_unlock(&runq.lock);
    return q;
}

int mq_global_empty(void) { return atomic_load(&runq.count) == 0; }

static atomic_size_t live_queues;
size_t mq_live(void) { return atomic_load(&live_queues); }

struct mq *mq_create(uint32_t handle)
{
    struct mq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->ring = malloc(sizeof(struct message) * MQ_INITIAL);
    if (!q->ring) {
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    q->handle = handle;
    q->cap = MQ_INITIAL;
    /* Born "in global" so nothing schedules it before the service is fully created; the
     * creator clears this by pushing the queue once (service.c does, after init). */
    q->in_global = 1;
    q->overload_threshold = MQ_OVERLOAD;
    atomic_fetch_add(&live_queues, 1);
    return q;
}

uint32_t mq_handle(const struct mq *q) { return q->handle; }

static size_t ring_length(const struct mq *q)
{
    return (size_t)((q->tail - q->head + q->cap) % q->cap);
}

size_t mq_length(struct mq *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = ring_length(q);
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void ring_grow(struct mq *q)
{
    struct message *ring = malloc(sizeof(struct message) * (size_t)q->cap * 2);
    if (!ring)
        abort(); /* out of memory while queueing: nothing sane is left to do */
    for (int i = 0; i < q->cap; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    q->head = 0;
    q->tail = q->cap;
    q->cap *= 2;
    free(q->ring);
    q->ring = ring;
}

int mq_push(struct mq *q, const struct message *m)
{
    int made_runnable = 0;
    pthread_mutex_lock(&q->lock);
    q->ring[q->tail] = *m;
    if (++q->tail >= q->cap)
        q->tail = 0;
    if (q->head == q->tail)
        ring_grow(q);
    if (!q->in_global) {
        q->in_global = 1;
        made_runnable = 1;
        mq_global_push(q);
    }
    pthread_mutex_unlock(&q->lock);
    return made_runnable;
}

int mq_pop(struct mq *q, struct message *m)
{
    int rc = -1;
    pthread_mutex_lock(&q->lock);
    if (q->head != q->tail) {
        *m = q->ring[q->head];
        if (++q->head >= q->cap)
            q->head = 0;
        rc = 0;
        size_t len = ring_length(q);
        while (len > q->overload_threshold) {
            q->overload = len;
            q->overload_threshold *= 2;
        }
    } else {
        q->overload_threshold = MQ_OVERLOAD; /* reset once drained */
        q->in_global = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

size_t mq_overload(struct mq *q)
{
    size_t n = q->overload; /* only the popping worker reads and clears it */
    if (n)
        q->overload = 0;
    return n;
}

void mq_mark_release(struct mq *q)
{
    pthread_mutex_lock(&q->lock);
    q->release = 1;
    if (!q->in_global) {
        q->in_global = 1;
        mq_global_push(q);
    }
    pthread_mutex_unlock(&q->lock);
}

int mq_release(struct mq *q, mq_drop_fn drop, void *ud)
{
    pthread_mutex_lock(&q->lock);
    int marked = q->release;
    pthread_mutex_unlock(&q->lock);
    if (!marked) {
        mq_global_push(q);
        return 0;
    }
    struct message m;
    while (mq_pop(q, &m) == 0)
        drop(&m, ud);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
    atomic_fetch_sub(&live_queues, 1);
    return 1;
}
