/* monitor: a thread that watches the workers and logs a service stuck in one message for more
 * than the limit (default 5 s), once per message, and flags it (skynet.endless()). */
#ifndef SKYJET_MONITOR_H
#define SKYJET_MONITOR_H

int monitor_start(int stuck_seconds);
void monitor_stop(void);

#endif
