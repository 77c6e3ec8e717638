/* timer: the set of pending timeouts, ordered by expiry tick (1 tick = 10 ms, Skynet's unit).
 * A data structure only: clock.c's thread pops what expired and turns it into messages.
 * Thread-safe (one mutex). Ties fire in the order they were added. */
#ifndef SKYJET_TIMER_H
#define SKYJET_TIMER_H

#include <stdint.h>

struct timer_event {
    uint32_t handle; /* service to wake */
    int32_t session; /* the session its RESPONSE carries */
};

struct timer;

struct timer *timer_new(void);
void timer_free(struct timer *t);
/* Schedule ev at `expire` (absolute tick). Returns an id (never 0) for timer_cancel, or 0 on OOM.
 */
uint64_t timer_add(struct timer *t, uint64_t expire, struct timer_event ev);
/* Cancel a pending timer: 0, or -1 if it already fired, was cancelled or never existed. */
int timer_cancel(struct timer *t, uint64_t id);
/* Pop one event whose expiry is <= now: 1 and *ev filled, or 0 if none is due. */
int timer_pop_due(struct timer *t, uint64_t now, struct timer_event *ev);
/* The earliest pending expiry, or UINT64_MAX when empty. */
uint64_t timer_next(struct timer *t);
int timer_count(struct timer *t);

#endif
