/* mq: per-service message queues and the global run queue of queues that have work.
 * Any thread may push; only the worker that popped a queue from the run queue pops its
 * messages, so a service never runs on two threads at once. A queue is in the run queue at most
 * once (in_global flag, guarded by the queue's own lock). Ownership: a message's data moves into
 * the queue on push and out to the popper. */
#ifndef SKYJET_MQ_H
#define SKYJET_MQ_H

#include <stddef.h>
#include <stdint.h>

struct message {
    uint32_t source;
    int32_t session;
    int32_t type;
    size_t size;
    void *data;
};

struct mq;

/* A new queue is not in the run queue until something is pushed (or mq_mark_release). */
struct mq *mq_create(uint32_t handle);
uint32_t mq_handle(const struct mq *q);
/* Append a message. Returns 1 if this made the queue runnable (it was put in the run queue). */
int mq_push(struct mq *q, const struct message *m);
/* Pop the oldest message: 0, or -1 when empty (the queue then leaves the run queue and will be
 * re-queued by the next push). */
int mq_pop(struct mq *q, struct message *m);
size_t mq_length(struct mq *q);
/* Returns the length once it crosses the overload threshold (1024, then doubling), else 0. */
size_t mq_overload(struct mq *q);

/* Mark the queue of a retired service; it is put in the run queue so a worker will drain and
 * free it with mq_release. */
void mq_mark_release(struct mq *q);
/* If marked, drain every message through drop(m, ud), free the queue and return 1; else 0. */
typedef void (*mq_drop_fn)(struct message *m, void *ud);
int mq_release(struct mq *q, mq_drop_fn drop, void *ud);

/* The global run queue. */
void mq_global_push(struct mq *q);
struct mq *mq_global_pop(void);
int mq_global_empty(void);
/* Queues created and not yet released (a node has stopped cleanly when this reaches 0). */
size_t mq_live(void);

#endif
