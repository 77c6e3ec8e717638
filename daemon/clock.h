/* clock: the node's time in Skynet's units and the timer thread that turns due timeouts into
 * RESPONSE messages (source 0, the timer's session, no payload). clock_now() counts 10 ms ticks
 * and starts at the centisecond part of the wall clock at boot (as Skynet does), so
 * starttime + now/100 tracks the wall clock. Any thread may call these. */
#ifndef SKYJET_CLOCK_H
#define SKYJET_CLOCK_H

#include <stdint.h>

int clock_start(void);
void clock_stop(void);
uint64_t clock_now(void);       /* ticks */
uint32_t clock_starttime(void); /* UTC seconds at boot */
uint64_t clock_hpc(void);       /* CLOCK_MONOTONIC nanoseconds */
/* Deliver RESPONSE(session) to handle after `ticks` (<= 0: queued at once). Returns a timer id
 * for clock_cancel (0 when queued at once), or -1 if the service is gone. */
int64_t clock_timeout(uint32_t handle, int ticks, int session);
int clock_cancel(int64_t id);
int clock_pending(void);

#endif
