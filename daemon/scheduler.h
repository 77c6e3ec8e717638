/* scheduler: the worker threads that run services. Each worker takes a runnable queue from the
 * global run queue, handles a batch of its messages (service_dispatch), and sleeps on a condvar
 * when nothing is runnable. scheduler_wakeup is the hook service.c calls when a queue becomes
 * runnable; it is cheap when no worker sleeps. */
#ifndef SKYJET_SCHEDULER_H
#define SKYJET_SCHEDULER_H

#include <stdint.h>

struct service_watch;

int scheduler_start(int threads);
void scheduler_wakeup(void);
/* Stop and join every worker (after the last service has gone). */
void scheduler_stop(void);
int scheduler_threads(void);
/* The watch slot of worker i (for the monitor). */
struct service_watch *scheduler_watch(int i);
/* Nanoseconds worker i has spent handling messages, for the busy ratio. */
uint64_t scheduler_busy_ns(int i);
/* Messages handled by worker i. */
uint64_t scheduler_messages(int i);

#endif
