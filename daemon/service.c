/* service: service lifecycle and message delivery (see service.h). A service is alive while its
 * handle is registered; references (handle_obj.ref) keep the struct valid for senders and for
 * the worker running it, and the last one to drop it releases the module instance and hands the
 * queue to a worker to drain. Locking: none of its own; it relies on handle's rwlock, each
 * queue's lock and atomics. */
#include "service.h"

#include "handle.h"
#include "log.h"
#include "mq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_MODULES 16

struct service {
    struct handle_obj ho; /* first: handle_grab hands back a pointer to this */
    const struct service_module *module;
    void *inst;
    struct mq *queue;
    service_cb cb;
    void *ud;
    int session_id;
    atomic_int endless;
    atomic_int internal;
    atomic_uint_fast64_t messages, cpu_ns;
    _Atomic(struct service_reply_hook *) reply_hook; /* NULL for all but cluster agents */
};

static struct service_hooks hooks;
static const struct service_module *modules[MAX_MODULES];
static int nmodules;
static atomic_size_t live;
static atomic_uint_fast64_t launched_total, released_total;
static atomic_uint monitor;
static int profile; /* time every message (service_stat cpu_ns); off by default: clock reads cost */

void service_set_profile(int on) { profile = on; }
static atomic_int holds, stopping;

void service_hold(int delta) { atomic_fetch_add(&holds, delta); }
int service_holds(void) { return atomic_load(&holds); }
void service_set_stopping(void) { atomic_store(&stopping, 1); }
int service_stopping(void) { return atomic_load(&stopping); }

void service_set_monitor(uint32_t handle) { atomic_store(&monitor, handle); }
uint32_t service_get_monitor(void) { return atomic_load(&monitor); }

void service_init(const struct service_hooks *h)
{
    if (h)
        hooks = *h;
    handle_init();
}

void service_exit(void) { handle_exit(); }

void service_register_module(const struct service_module *m)
{
    if (nmodules < MAX_MODULES)
        modules[nmodules++] = m;
}

static const struct service_module *find_module(const char *name, size_t len)
{
    for (int i = 0; i < nmodules; i++)
        if (strlen(modules[i]->name) == len && memcmp(modules[i]->name, name, len) == 0)
            return modules[i];
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct service *grab(uint32_t handle) { return (struct service *)handle_grab(handle); }

void service_free_message(int type, uint32_t source, void *data, size_t size)
{
    if (data && hooks.free_data)
        hooks.free_data(type, source, data, size);
    free(data);
}

/* A queued message whose service is gone: requests get an ERROR so no caller hangs. */
static void drop_message(struct message *m, void *ud)
{
    uint32_t self = *(uint32_t *)ud;
    if (m->session != 0 && m->source != 0 && m->type != PTYPE_RESPONSE && m->type != PTYPE_ERROR) {
        static const char why[] = "service exited before answering";
        char *text = malloc(sizeof why - 1);
        if (text)
            memcpy(text, why, sizeof why - 1);
        service_send(self, m->source, PTYPE_ERROR, m->session, text, text ? sizeof why - 1 : 0);
    }
    service_free_message(m->type, m->source, m->data, m->size);
}

static void delete_service(struct service *s)
{
    uint32_t handle = s->ho.handle;
    if (s->module->release)
        s->module->release(s->inst, s);
    struct service_reply_hook *rh = atomic_load(&s->reply_hook);
    if (rh)
        rh->release(rh);
    if (hooks.retired)
        hooks.retired(handle);
    mq_mark_release(s->queue);
    free(s);
    uint32_t m = atomic_load(&monitor);
    if (m && m != handle)
        service_send(handle, m, PTYPE_CLIENT, 0, NULL, 0);
    atomic_fetch_sub(&live, 1);
    atomic_fetch_add(&released_total, 1);
    if (hooks.wakeup)
        hooks.wakeup(); /* a worker must drain the queue */
}

static void release(struct service *s)
{
    if (atomic_fetch_sub(&s->ho.ref, 1) == 1)
        delete_service(s);
}

uint32_t service_launch(const char *module, const char *args)
{
    size_t mlen = strcspn(module, " \t");
    const struct service_module *m = find_module(module, mlen);
    if (!m) {
        log_write(0, LOG_ERROR, "launch failed: unknown service module '%.*s'", (int)mlen, module);
        return 0;
    }
    struct service *s = calloc(1, sizeof *s);
    if (!s)
        return 0;
    s->module = m;
    s->inst = m->create ? m->create() : NULL;
    atomic_init(&s->ho.ref, 1); /* ours, for the duration of init */
    uint32_t handle = handle_register(&s->ho);
    if (!handle) {
        log_write(0, LOG_ERROR, "launch failed: handle table full");
        if (m->release)
            m->release(s->inst, s);
        free(s);
        return 0;
    }
    atomic_fetch_add(&live, 1);
    atomic_fetch_add(&launched_total, 1);
    s->queue = mq_create(handle);
    if (!s->queue)
        abort();
    int rc = m->init ? m->init(s->inst, s, args ? args : "") : 0;
    /* The queue was born "scheduled" so nothing ran before init finished; schedule it now. */
    mq_global_push(s->queue);
    if (hooks.wakeup)
        hooks.wakeup();
    if (rc != 0) {
        log_write(handle, LOG_ERROR, "launch failed: %s %s", m->name, args ? args : "");
        struct handle_obj *o = handle_retire(handle);
        if (o)
            release(s);
        release(s);
        return 0;
    }
    release(s);
    return handle;
}

int service_send(uint32_t source, uint32_t dest, int type, int session, void *data, size_t size)
{
    struct service *s = grab(dest);
    if (!s) {
        service_free_message(type, source, data, size);
        return -1;
    }
    struct service_reply_hook *rh = atomic_load_explicit(&s->reply_hook, memory_order_acquire);
    if (rh &&
        (type == PTYPE_SOCKET ||
         (session != 0 && (type == PTYPE_RESPONSE || type == PTYPE_ERROR))) &&
        rh->offer(rh, type, session, data, size)) {
        release(s);
        return 0;
    }
    struct message m = {source, session, type, size, data};
    if (mq_push(s->queue, &m) && hooks.wakeup)
        hooks.wakeup();
    release(s);
    return 0;
}

uint32_t service_resolve(const char *addr)
{
    if (addr[0] == ':') {
        char *end;
        unsigned long h = strtoul(addr + 1, &end, 16);
        return (*end == '\0' && end != addr + 1 && h <= 0xffffffffu) ? (uint32_t)h : 0;
    }
    if (addr[0] == '.')
        addr++;
    return handle_findname(addr);
}

int service_kill(uint32_t handle)
{
    struct handle_obj *o = handle_retire(handle);
    if (!o)
        return -1;
    release((struct service *)o);
    return 0;
}

void service_abort(void)
{
    uint32_t buf[256];
    size_t n;
    while ((n = handle_list(buf, 256)) > 0) {
        size_t k = n < 256 ? n : 256;
        for (size_t i = 0; i < k; i++)
            service_kill(buf[i]);
    }
}

size_t service_count(void) { return atomic_load(&live); }
uint64_t service_launched_total(void) { return atomic_load(&launched_total); }
uint64_t service_released_total(void) { return atomic_load(&released_total); }

int service_signal(uint32_t handle, int sig)
{
    struct service *s = grab(handle);
    if (!s)
        return -1;
    if (s->module->signal)
        s->module->signal(s->inst, sig);
    release(s);
    return 0;
}

void service_callback(struct service *s, service_cb cb, void *ud)
{
    s->cb = cb;
    s->ud = ud;
}

uint32_t service_handle(const struct service *s) { return s->ho.handle; }

int service_set_reply_hook(struct service *s, struct service_reply_hook *h)
{
    struct service_reply_hook *none = NULL;
    return atomic_compare_exchange_strong(&s->reply_hook, &none, h) ? 0 : -1;
}

int service_newsession(struct service *s)
{
    if (++s->session_id <= 0)
        s->session_id = 1;
    return s->session_id;
}

int service_stat(uint32_t handle, struct service_stat *out)
{
    struct service *s = grab(handle);
    if (!s)
        return -1;
    out->messages = atomic_load(&s->messages);
    out->mqlen = mq_length(s->queue);
    out->cpu_ns = atomic_load(&s->cpu_ns);
    out->endless = atomic_load(&s->endless);
    release(s);
    return 0;
}

void service_set_internal(uint32_t handle)
{
    struct service *s = grab(handle);
    if (s) {
        atomic_store(&s->internal, 1);
        release(s);
    }
}

int service_is_internal(uint32_t handle)
{
    struct service *s = grab(handle);
    int r = s ? atomic_load(&s->internal) : 0;
    if (s)
        release(s);
    return r;
}

int service_endless(struct service *s) { return atomic_exchange(&s->endless, 0); }

void service_mark_endless(uint32_t handle)
{
    struct service *s = grab(handle);
    if (s) {
        atomic_store(&s->endless, 1);
        release(s);
    }
}

static void deliver(struct service_watch *w, struct service *s, struct message *m)
{
    uint32_t self = s->ho.handle;
    atomic_store(&w->source, m->source);
    atomic_store(&w->dest, self);
    atomic_fetch_add(&w->version, 1);
    uint64_t t0 = profile ? now_ns() : 0;
    int kept = s->cb ? s->cb(s, s->ud, m->type, m->session, m->source, m->data, m->size) : 0;
    if (!kept)
        service_free_message(m->type, m->source, m->data, m->size);
    if (profile)
        atomic_fetch_add(&s->cpu_ns, now_ns() - t0);
    atomic_fetch_add(&s->messages, 1);
    atomic_fetch_add_explicit(&w->messages, 1, memory_order_relaxed);
    atomic_store(&w->dest, 0);
    atomic_fetch_add(&w->version, 1);
}

struct mq *service_dispatch(struct service_watch *w, struct mq *q, int weight)
{
    if (!q) {
        q = mq_global_pop();
        if (!q)
            return NULL;
    }
    uint32_t handle = mq_handle(q);
    struct service *s = grab(handle);
    if (!s) {
        mq_release(q, drop_message, &handle);
        return mq_global_pop();
    }
    int n = 1;
    struct message m;
    for (int i = 0; i < n; i++) {
        if (mq_pop(q, &m) != 0) {
            release(s);
            return mq_global_pop();
        }
        if (i == 0 && weight >= 0) {
            n = (int)(mq_length(q) >> weight) + 1;
        }
        size_t overload = mq_overload(q);
        if (overload)
            log_write(handle, LOG_WARN, "error: May overload, message queue length = %zu",
                      overload);
        deliver(w, s, &m);
    }
    /* Drop our reference before the queue can reach another worker: if the service retired
     * meanwhile, its queue is then already marked and gets drained instead of bouncing. */
    release(s);
    struct mq *next = mq_global_pop();
    if (next) {
        mq_global_push(q);
        q = next;
    }
    return q;
}
