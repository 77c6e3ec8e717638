/* service: a service's life (launch, deliver, retire, release) and message sending between
 * services. Any thread may send; a service's callback runs on one worker at a time. Ownership:
 * service_send takes the data in every case (it is freed if the destination is gone); a
 * callback returning 0 lets the runtime free the message, 1 means the callback kept it.
 * Lower floors: mq, handle, log. Engines above reach back only through the hooks below. */
#ifndef SKYJET_SERVICE_H
#define SKYJET_SERVICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Message types: Skynet's numbers. */
enum {
    PTYPE_TEXT = 0,
    PTYPE_RESPONSE = 1,
    PTYPE_MULTICAST = 2,
    PTYPE_CLIENT = 3,
    PTYPE_SYSTEM = 4,
    PTYPE_HARBOR = 5,
    PTYPE_SOCKET = 6,
    PTYPE_ERROR = 7,
    PTYPE_QUEUE = 8,
    PTYPE_DEBUG = 9,
    PTYPE_LUA = 10,
    PTYPE_SNAX = 11,
    PTYPE_TRACE = 12,
};

#define SERVICE_MAX_MESSAGE 0x7fffffff /* a message's size must stay below 2^31 */

struct service;

/* Returns 0 to let the runtime free msg, 1 if the callback took ownership. */
typedef int (*service_cb)(struct service *s, void *ud, int type, int session, uint32_t source,
                          void *msg, size_t size);

/* A kind of service ("snlua", "logger"): main.c registers them. */
struct service_module {
    const char *name;
    void *(*create)(void);
    /* 0 on success; the service runs only if init succeeds. */
    int (*init)(void *inst, struct service *s, const char *args);
    /* Called once, by whichever thread drops the last reference: no callback runs any more. */
    void (*release)(void *inst, struct service *s);
    void (*signal)(void *inst, int sig);
};

/* What a worker is doing, read by the monitor thread to spot a stuck service. */
struct service_watch {
    atomic_uint version; /* bumped at the start and end of every message */
    atomic_uint source, dest;
    atomic_uint_fast64_t messages; /* messages this worker has handled */
};

/* Hooks from the floors above (set once at start-up by main.c). */
struct service_hooks {
    void (*wakeup)(void);             /* a queue became runnable */
    void (*retired)(uint32_t handle); /* a service was released: close its sockets */
    /* free type-specific contents (a reactor event's buffer) of a message being dropped */
    void (*free_data)(int type, uint32_t source, void *data, size_t size);
};

void service_init(const struct service_hooks *hooks);
void service_exit(void);
void service_register_module(const struct service_module *m);

/* Create a service from a module and args. Returns its handle, or 0 (and logs why). */
uint32_t service_launch(const char *module, const char *args);
/* Send a message. Takes ownership of data. Returns 0, or -1 if dest does not exist (data is
 * freed). type is a PTYPE_*; session 0 = no reply expected. */
int service_send(uint32_t source, uint32_t dest, int type, int session, void *data, size_t size);
/* Resolve ".name", "name" (local names) or ":hex" to a handle; 0 if none. */
uint32_t service_resolve(const char *addr);
/* Retire a service: it gets no more messages; its queue is drained with ERROR replies. 0, or -1
 * if there was no such service. */
int service_kill(uint32_t handle);
/* Retire every service. */
void service_abort(void);
size_t service_count(void);
/* Shutdown: services that still have in-flight work hold the node open (service_hold(+1/-1));
 * service_stopping() is set once SIGTERM arrives. */
void service_hold(int delta);
int service_holds(void);
void service_set_stopping(void);
int service_stopping(void);
/* Node-internal services (launcher, clusterd, ...) are marked so the cluster never lets a remote
 * peer call them. */
void service_set_internal(uint32_t handle);
int service_is_internal(uint32_t handle);

/* Services launched / released since start (for housekeeping and metrics). */
uint64_t service_launched_total(void);
uint64_t service_released_total(void);
/* Free a message the way the runtime does (type-specific contents included). */
void service_free_message(int type, uint32_t source, void *data, size_t size);
int service_signal(uint32_t handle, int sig);
/* Time every message for service_stat's cpu_ns ([node] profile = true; costs two clock reads
 * per message). */
void service_set_profile(int on);
/* The exit monitor: gets a PTYPE_CLIENT message (source = the dead handle) per retired service. */
void service_set_monitor(uint32_t handle);
uint32_t service_get_monitor(void);

/* A reply hook (the cluster agent's reply table, cluster_reply.c): every RESPONSE or ERROR
 * message with a session, and every SOCKET message, addressed to the service is offered to
 * `offer` on the sending thread before it is queued; offer returns 1 when it took the message
 * (data is then its own), 0 to let it be queued as usual (it may have changed what it holds).
 * `release` runs once the service is released (no offer runs any more). A service without a
 * hook pays one pointer test per message sent to it. */
struct service_reply_hook {
    int (*offer)(struct service_reply_hook *h, int type, int session, void *data, size_t size);
    void (*release)(struct service_reply_hook *h);
};

/* Used from inside a running service (its own worker thread). */
void service_callback(struct service *s, service_cb cb, void *ud);
/* Install s's reply hook (once). 0, or -1 when s has one already. */
int service_set_reply_hook(struct service *s, struct service_reply_hook *h);
uint32_t service_handle(const struct service *s);
int service_newsession(struct service *s);

/* Statistics, readable by any thread holding a reference. */
struct service_stat {
    uint64_t messages; /* messages handled */
    size_t mqlen;      /* waiting now */
    uint64_t cpu_ns;   /* time spent handling messages (wall clock on its worker) */
    int endless;       /* flagged stuck by the monitor */
};
int service_stat(uint32_t handle, struct service_stat *out);
/* Read-and-clear the "stuck" flag of s. */
int service_endless(struct service *s);
void service_mark_endless(uint32_t handle);

/* Worker entry: handle a batch of messages of queue q (or the next runnable queue when q is
 * NULL); returns the queue to work on next, or NULL when nothing is runnable. weight < 0 handles
 * one message, otherwise length >> weight. */
struct mq;
struct mq *service_dispatch(struct service_watch *w, struct mq *q, int weight);

#endif
