/* reactor: the socket thread. It alone owns the libevent event_base, the DNS resolver, the
 * socket table and every fd's life (open, read, accept, connect, close); other threads read only
 * `state` and push commands under r->lock (command queue, free-id FIFO, run state), never held
 * across a blocking call or a deliver. Direct writes: a worker's reactor_send writes a TCP socket
 * itself when nothing of it is queued or in flight and the reactor has run since its last direct
 * write (so a burst is still coalesced by the reactor), under the socket's wlock (which the
 * reactor takes to close the fd; the write never blocks); what does not go out at once is queued
 * behind, still under wlock, so order holds. Read filters: a worker may install one on an open
 * socket (under wlock); the reactor runs it on every read before the owner hears of it (the
 * cluster fast path answers replies there) and releases it in sock_detach, before the id can be
 * reused. Bytes given to reactor_send are the reactor's until written or dropped. Hostile peers:
 * EOF half-closes (writes go on until the owner closes), unsent output is capped, listeners have
 * caps and the last fds are kept from the one flooding, refusals are logged once a second. */
#include "reactor.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define DEFAULT_MAX_SOCKETS 65536
#define DEFAULT_HIGH_WATER (1024 * 1024)
#define READ_MIN 64
#define READ_START 4096
#define READ_MAX (1024 * 1024)
#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_US 100000 /* pause accepting this long when out of fds */
#define FD_RESERVE 64            /* fds a flooded listener may not take (at most 1/8 of them) */
#define REPORT_SECONDS 1         /* refused connections are logged as one line per period */
#ifdef IOV_MAX
#define WRITE_IOVS IOV_MAX
#else
#define WRITE_IOVS 64
#endif
#define ADDR_TEXT 64
#define UDP_MAX 65536 /* largest datagram read */

/* A slot's life: FREE -> CONNECTING (taken by reactor_connect's caller) or LISTEN / OPEN (taken
 * by the reactor) -> CLOSING (reactor_close, flushing) -> CLOSED (event being delivered) ->
 * FREE. reactor_send accepts data only while CONNECTING or OPEN. */
enum { S_FREE, S_CONNECTING, S_LISTEN, S_OPEN, S_CLOSING, S_CLOSED };

struct udp_to {
    socklen_t len;
    struct sockaddr_storage ss;
};

struct wnode {
    struct wnode *next;
    char *data;
    size_t size, offset;
    struct udp_to *to; /* UDP: the destination, or NULL for the connected peer */
};

struct wqueue {
    struct wnode *head, *tail;
};

struct resolve; /* one name lookup in flight */

/* A read filter (reactor_set_filter): set by a worker under wlock, read and removed only by the
 * reactor thread, which frees it. */
struct sock_filter {
    reactor_filter_fn fn;
    void *ud;
};

struct sock {
    atomic_int state;
    int id, fd;
    int live; /* set up by the reactor thread; only live slots are in live_ids */
    int live_index;
    uint32_t owner;
    char reading;  /* the owner wants input (resume/pause) */
    char read_on;  /* ev_read is added */
    char write_on; /* ev_write is added */
    char dirty;    /* got output in this command batch */
    char silent;   /* the owner is gone: deliver nothing more */
    char nodelay;
    char eof; /* the peer shut its write side: reading stopped, writing goes on */
    char listener;
    char udp;
    int from;            /* accepted socket: its listener's id while that lives, else -1 */
    int max_conn, nconn; /* listener: cap on live accepted sockets (0 = none), how many live */
    unsigned refused_cap, refused_room, errors; /* listener: since the last report */
    int last_error;
    /* Guarded by wlock (taken by workers in reactor_send and by the reactor to change fd):
     * inflight = this slot's send/close commands queued and not yet run, busy = the reactor
     * holds output for it. A worker writes directly only when both are 0 and state is OPEN. */
    pthread_mutex_t wlock;
    int inflight;
    char busy;
    unsigned direct_turn;                 /* r->turn at this socket's last direct write */
    _Atomic(struct sock_filter *) filter; /* sees input before the owner; NULL = none */
    struct event *ev_read, *ev_write, *ev_retry;
    struct wqueue out[2]; /* [0] normal, [1] low priority */
    size_t pending;       /* bytes queued in out[] */
    size_t warn_at;       /* next WARNING when pending passes this */
    size_t rsize;         /* next read buffer size */
    struct resolve *resolve;
    struct evutil_addrinfo *ai, *ai_next; /* resolved addresses, those left to try */
    struct reactor *r;
};

struct resolve {
    struct reactor *r;
    int id; /* -1 once the socket went away */
    struct evdns_getaddrinfo_request *req;
};

enum {
    C_LISTEN,
    C_CONNECT,
    C_RESUME,
    C_PAUSE,
    C_SEND,
    C_SEND_LOW,
    C_CLOSE,
    C_SHUTDOWN,
    C_NODELAY,
    C_ACCEPT_LIMIT,
    C_UDP_ADD,
    C_UDP_CONNECT,
    C_CLOSE_OWNER,
    C_STOP
};

struct cmd {
    int type, id, port;
    uint32_t owner;
    char counted; /* pushed by sock_push: counted in the slot's inflight */
    size_t size;
    size_t offset;     /* C_SEND*: bytes of data a direct write already sent */
    void *ptr;         /* C_SEND*: data; C_CONNECT: host (malloc'd); C_LISTEN: struct listen_req;
                        * C_UDP_CONNECT: struct udp_to */
    struct udp_to *to; /* C_SEND to a UDP address (malloc'd) */
};

struct cmdq {
    struct cmd *items;
    int count, cap;
};

/* A reactor_listen call waiting for the reactor thread; lives on the caller's stack. */
struct listen_req {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t owner;
    int backlog;
    int id, port;
    char err[128];
};

enum { R_NEW, R_RUNNING, R_STOPPED };

struct reactor {
    reactor_deliver_fn deliver;
    void *ud;
    size_t high_water;
    size_t output_limit; /* 0 = none */
    int max;
    struct sock *slots;
    struct event_base *base;
    struct evdns_base *dns; /* made on the first name lookup */
    struct event *wake_ev;
    int wake_fd;
    pthread_t thread;
    int started;

    pthread_mutex_t lock; /* guards q, the free FIFO and run */
    struct cmdq q;
    int *free_ids; /* ring of free ids, oldest freed first */
    int free_head, free_count;
    int run;

    struct cmdq work; /* reactor thread from here on */
    int *live_ids, nlive;
    int *dirty, ndirty;

    int fd_limit;   /* RLIMIT_NOFILE at creation */
    int fd_reserve; /* the last fds, kept from a flooded listener */
    int spare_fd;   /* kept open to accept-and-close when every other fd is taken */
    struct event *report_ev;
    char report_on;

    atomic_uint turn; /* bumped by the reactor on each wake-up, read and write event */
    atomic_int n_sockets;
    _Atomic uint64_t bytes_in, bytes_out, writes, reads;
};

static _Thread_local struct reactor *current_reactor; /* set on the reactor thread */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_accept(evutil_socket_t fd, short what, void *arg);
static void listener_forget(struct reactor *r, struct sock *s);
static int udp_write(struct reactor *r, struct sock *s);
static void udp_read(struct reactor *r, struct sock *s);
static void cmd_udp_add(struct reactor *r, struct cmd *c);
static void sock_connect_next(struct reactor *r, struct sock *s, int err);

static void turn_next(struct reactor *r)
{
    atomic_fetch_add_explicit(&r->turn, 1, memory_order_relaxed);
}

static void stat_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static int sock_state(struct sock *s) { return atomic_load(&s->state); }

static void copy_text(char *dst, size_t len, const char *src)
{
    if (dst && len)
        snprintf(dst, len, "%s", src);
}

/* ---- ids: a FIFO of free slots, so a freed id comes back as late as possible ---- */

static int id_take_locked(struct reactor *r, int state)
{
    if (r->free_count == 0)
        return -1;
    int id = r->free_ids[r->free_head];
    r->free_head = (r->free_head + 1) % r->max;
    r->free_count--;
    atomic_store(&r->slots[id].state, state);
    return id;
}

static void id_put_locked(struct reactor *r, int id)
{
    r->free_ids[(r->free_head + r->free_count) % r->max] = id;
    r->free_count++;
    atomic_store(&r->slots[id].state, S_FREE);
}

static int id_take(struct reactor *r, int state)
{
    pthread_mutex_lock(&r->lock);
    int id = id_take_locked(r, state);
    pthread_mutex_unlock(&r->lock);
    return id;
}

/* ---- commands ---- */

static void listen_answer(struct listen_req *q)
{
    pthread_mutex_lock(&q->lock);
    q->done = 1;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock); /* the caller may free q from here on */
}

/* Releases what a command carries when it will never run. */
static void cmd_drop(struct cmd *c)
{
    if (c->type == C_LISTEN) {
        struct listen_req *q = c->ptr;
        q->id = -1;
        copy_text(q->err, sizeof q->err, "reactor not running");
        listen_answer(q);
    } else {
        free(c->ptr);
        free(c->to);
        if (c->type == C_UDP_ADD)
            close(c->port); /* the fd it carried */
    }
}

/* Appends under r->lock. Returns 1 if the queue was empty (a wake-up is due), 0, or -1. */
static int queue_locked(struct reactor *r, const struct cmd *c)
{
    if (r->run == R_STOPPED || (c->type == C_LISTEN && r->run != R_RUNNING))
        return -1;
    if (r->q.count == r->q.cap) {
        int cap = r->q.cap ? r->q.cap * 2 : 256;
        struct cmd *items = realloc(r->q.items, cap * sizeof *items);
        if (!items)
            return -1;
        r->q.items = items;
        r->q.cap = cap;
    }
    r->q.items[r->q.count++] = *c;
    return r->q.count == 1;
}

static void wake(struct reactor *r)
{
    uint64_t one = 1;
    ssize_t rc = write(r->wake_fd, &one, sizeof one);
    (void)rc; /* EAGAIN only if the counter is saturated: it is readable anyway */
}

/* Queues a command; on failure its payload is released. Returns 0 or -1. */
static int cmd_push(struct reactor *r, struct cmd *c)
{
    pthread_mutex_lock(&r->lock);
    int rc = queue_locked(r, c);
    pthread_mutex_unlock(&r->lock);
    if (rc < 0) {
        cmd_drop(c);
        return -1;
    }
    if (rc == 1)
        wake(r);
    return 0;
}

/* ---- events ---- */

static void emit(struct reactor *r, uint32_t owner, int type, int id, int ud, char *data, int size,
                 const char *text)
{
    size_t len = sizeof(struct reactor_event) + (text ? strlen(text) + 1 : 0);
    struct reactor_event *ev = malloc(len);
    if (!ev) {
        log_write(0, LOG_ERROR, "reactor: out of memory, event %d for socket %d lost", type, id);
        free(data);
        return;
    }
    ev->type = type;
    ev->id = id;
    ev->ud = ud;
    ev->size = size;
    ev->data = data;
    if (text)
        memcpy(ev->text, text, strlen(text) + 1);
    r->deliver(r->ud, owner, ev, len);
}

/* "ip:port", or "[ipv6]:port"; an IPv4-mapped IPv6 address prints as IPv4. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(out, len, "%s:%d", ip, ntohs(a->sin6_port));
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            snprintf(out, len, "[%s]:%d", ip, ntohs(a->sin6_port));
        }
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%d", ip, ntohs(a->sin_port));
    } else {
        copy_text(out, len, "?");
    }
}

static void sock_name(int fd, int peer, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
              : getsockname(fd, (struct sockaddr *)&ss, &sl)) < 0)
        ss.ss_family = AF_UNSPEC;
    addr_text(&ss, out, len);
}

/* Numeric host -> address. NULL, "" mean 0.0.0.0; "[v6]" brackets are accepted. */
static int addr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = host ? strlen(host) : 0;
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, host ? host : "", n + 1);
    if (n == 0)
        copy_text(buf, sizeof buf, "0.0.0.0");
    else if (n > 2 && buf[0] == '[' && buf[n - 1] == ']') {
        memmove(buf, buf + 1, n - 2);
        buf[n - 2] = '\0';
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
    } else if (inet_pton(AF_INET6, buf, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
    } else {
        return -1;
    }
    return 0;
}

/* ---- the socket table (reactor thread) ---- */

static void ev_set(struct event *ev, char *on, int want)
{
    if (!ev || *on == want)
        return;
    if (want)
        event_add(ev, NULL);
    else
        event_del(ev);
    *on = (char)want;
}

static void sock_set_live(struct reactor *r, struct sock *s, uint32_t owner)
{
    s->live = 1;
    s->owner = owner;
    s->live_index = r->nlive;
    r->live_ids[r->nlive++] = s->id;
}

/* Gives fd to s with its read/write events. On failure fd is closed and -1 returned. */
static int sock_attach(struct reactor *r, struct sock *s, int fd, int listener)
{
    s->ev_read = event_new(r->base, fd, EV_READ | EV_PERSIST, listener ? on_accept : on_read, s);
    s->ev_write = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_write, s);
    if (!s->ev_read || !s->ev_write) {
        if (s->ev_read)
            event_free(s->ev_read);
        if (s->ev_write)
            event_free(s->ev_write);
        s->ev_read = s->ev_write = NULL;
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&s->wlock);
    s->fd = fd;
    pthread_mutex_unlock(&s->wlock);
    atomic_fetch_add(&r->n_sockets, 1);
    return 0;
}

static void sock_detach(struct reactor *r, struct sock *s)
{
    if (s->fd < 0)
        return;
    event_free(s->ev_read);
    event_free(s->ev_write);
    if (s->ev_retry)
        event_free(s->ev_retry);
    s->ev_read = s->ev_write = s->ev_retry = NULL;
    s->read_on = s->write_on = 0;
    pthread_mutex_lock(&s->wlock); /* no worker is writing to it from here on */
    close(s->fd);
    s->fd = -1;
    s->busy = 0;
    struct sock_filter *f = atomic_exchange(&s->filter, NULL);
    pthread_mutex_unlock(&s->wlock);
    atomic_fetch_sub(&r->n_sockets, 1);
    if (f) { /* before the id can be reused: the filter's owner stops writing to it here */
        f->fn(f->ud, s->id, NULL, 0, NULL);
        free(f);
    }
}

/* Unlinks s from its listener's count, or (for a listener) its accepted sockets from it. */
static void listener_forget(struct reactor *r, struct sock *s)
{
    if (s->from >= 0)
        r->slots[s->from].nconn--;
    s->from = -1;
    if (!s->listener)
        return;
    for (int i = 0; i < r->nlive && s->nconn > 0; i++) {
        struct sock *c = &r->slots[r->live_ids[i]];
        if (c->from == s->id) {
            c->from = -1;
            s->nconn--;
        }
    }
    s->nconn = s->max_conn = 0;
    s->refused_cap = s->refused_room = s->errors = 0;
}

static void sock_set_busy(struct sock *s, int busy)
{
    pthread_mutex_lock(&s->wlock);
    s->busy = (char)busy;
    pthread_mutex_unlock(&s->wlock);
}

/* Closes s now, drops its output, delivers `type` (REACTOR_CLOSE/ERROR; 0 = none) to its owner
 * unless it is silent, then frees the slot. The slot goes back to the free FIFO only after the
 * event was handed over, so nobody can be told about a socket that reuses the id. */
static void sock_free(struct reactor *r, struct sock *s, int type, const char *reason)
{
    atomic_store(&s->state, S_CLOSED);
    listener_forget(r, s);
    sock_detach(r, s);
    if (s->resolve) {
        s->resolve->id = -1; /* its callback still runs (EVUTIL_EAI_CANCEL) and frees it */
        evdns_getaddrinfo_cancel(s->resolve->req);
        s->resolve = NULL;
    }
    if (s->ai)
        evutil_freeaddrinfo(s->ai);
    s->ai = s->ai_next = NULL;
    for (int i = 0; i < 2; i++) {
        struct wnode *w = s->out[i].head;
        while (w) {
            struct wnode *next = w->next;
            free(w->data);
            free(w->to);
            free(w);
            w = next;
        }
        s->out[i].head = s->out[i].tail = NULL;
    }
    if (type && !s->silent)
        emit(r, s->owner, type, s->id, 0, NULL, 0, reason);
    if (s->live) {
        int last = r->live_ids[--r->nlive];
        r->live_ids[s->live_index] = last;
        r->slots[last].live_index = s->live_index;
    }
    s->live = 0;
    s->owner = 0;
    s->reading = s->dirty = s->silent = s->nodelay = s->eof = s->listener = s->udp = 0;
    s->pending = 0;
    if (s->busy)
        sock_set_busy(s, 0);
    s->warn_at = r->high_water;
    s->rsize = READ_START;
    pthread_mutex_lock(&r->lock);
    id_put_locked(r, s->id);
    pthread_mutex_unlock(&r->lock);
}

/* WARNING when pending output passes high_water and again at each doubling; WARNING 0 once
 * it drains after a warning. */
static void sock_warn(struct reactor *r, struct sock *s)
{
    if (s->silent)
        return;
    if (s->pending > s->warn_at) {
        while (s->warn_at < s->pending)
            s->warn_at *= 2;
        size_t kib = s->pending / 1024;
        int ud = kib > INT_MAX ? INT_MAX : kib ? (int)kib : 1;
        emit(r, s->owner, REACTOR_WARNING, s->id, ud, NULL, 0, NULL);
    } else if (s->pending == 0 && s->warn_at > r->high_water) {
        s->warn_at = r->high_water;
        emit(r, s->owner, REACTOR_WARNING, s->id, 0, NULL, 0, NULL);
    }
}

/* Drops `n` written bytes from the nodes behind iov[0..count), in that order. */
static void sock_consume(struct sock *s, struct wqueue **from, int count, size_t n)
{
    for (int i = 0; i < count && n > 0; i++) {
        struct wnode *w = from[i]->head; /* nodes are taken from each queue's head in order */
        size_t take = w->size - w->offset;
        if (take > n)
            take = n;
        w->offset += take;
        s->pending -= take;
        n -= take;
        if (w->offset == w->size) {
            from[i]->head = w->next;
            if (!w->next)
                from[i]->tail = NULL;
            free(w->data);
            free(w);
        }
    }
}

/* Writes as much queued output as the kernel takes, a batch of nodes per sendmsg. Order: the
 * rest of a low packet already started, then normal data, then low data. Returns 0, or -1 if
 * a write error closed (and freed) the socket. */
static int sock_write(struct reactor *r, struct sock *s)
{
    if (s->udp)
        return udp_write(r, s);
    struct iovec iov[WRITE_IOVS];
    struct wqueue *from[WRITE_IOVS];
    while (s->pending > 0) {
        int n = 0;
        size_t total = 0;
        struct wnode *low = s->out[1].head, *w;
        if (low && low->offset > 0) {
            from[n] = &s->out[1];
            iov[n++] = (struct iovec){low->data + low->offset, low->size - low->offset};
            total += low->size - low->offset;
            low = low->next;
        }
        for (w = s->out[0].head; w && n < WRITE_IOVS; w = w->next) {
            from[n] = &s->out[0];
            iov[n++] = (struct iovec){w->data + w->offset, w->size - w->offset};
            total += w->size - w->offset;
        }
        if (w)
            low = NULL; /* normal data left over: low data waits */
        for (w = low; w && n < WRITE_IOVS; w = w->next) {
            from[n] = &s->out[1];
            iov[n++] = (struct iovec){w->data, w->size};
            total += w->size;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t k = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        stat_add(&r->writes, 1);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            sock_free(r, s, REACTOR_CLOSE, strerror(errno));
            return -1;
        }
        stat_add(&r->bytes_out, (uint64_t)k);
        sock_consume(s, from, n, (size_t)k);
        if ((size_t)k < total)
            return 0; /* the kernel buffer is full: wait for EV_WRITE */
    }
    return 0;
}

/* A peer that does not read cannot make the node hold unbounded output (like Redis's client
 * output buffer limit): past output_limit unsent bytes the socket is closed, dropping them, and
 * the log says why. Returns -1 if it closed s. */
static int sock_over_limit(struct reactor *r, struct sock *s)
{
    if (!r->output_limit || s->pending <= r->output_limit)
        return 0;
    char peer[ADDR_TEXT];
    sock_name(s->fd, 1, peer, sizeof peer);
    log_write(0, LOG_WARN,
              "socket %d (%s): %zu bytes of unsent output exceed socket_output_limit (%zu); "
              "closing it",
              s->id, peer, s->pending, r->output_limit);
    sock_free(r, s, REACTOR_CLOSE, "output limit exceeded");
    return -1;
}

/* Writes what it can now, then keeps EV_WRITE, warnings and a pending close up to date.
 * Returns 0, or -1 if the socket was freed. */
static int sock_output(struct reactor *r, struct sock *s)
{
    if (sock_write(r, s) < 0 || sock_over_limit(r, s) < 0)
        return -1;
    ev_set(s->ev_write, &s->write_on, s->pending > 0);
    if (s->pending == 0 && s->busy)
        sock_set_busy(s, 0);
    sock_warn(r, s);
    if (sock_state(s) == S_CLOSING && s->pending == 0) {
        sock_free(r, s, REACTOR_CLOSE, NULL);
        return -1;
    }
    return 0;
}

/* End of a command batch: each socket that got data is written once (unless it already waits
 * for EV_WRITE, or is still connecting). */
static void flush_dirty(struct reactor *r)
{
    for (int i = 0; i < r->ndirty; i++) {
        struct sock *s = &r->slots[r->dirty[i]];
        if (!s->dirty)
            continue; /* freed meanwhile */
        s->dirty = 0;
        int st = sock_state(s);
        if ((st == S_OPEN || st == S_CLOSING) && !s->write_on)
            sock_output(r, s);
        else if (sock_over_limit(r, s) == 0) /* waiting for EV_WRITE: the peer may not read */
            sock_warn(r, s);
    }
    r->ndirty = 0;
}

/* ---- connect ---- */

static void sock_connected(struct reactor *r, struct sock *s)
{
    char text[ADDR_TEXT];
    atomic_store(&s->state, S_OPEN);
    if (s->ai)
        evutil_freeaddrinfo(s->ai);
    s->ai = s->ai_next = NULL;
    sock_name(s->fd, 1, text, sizeof text);
    emit(r, s->owner, REACTOR_OPEN, s->id, 0, NULL, 0, text);
    ev_set(s->ev_read, &s->read_on, s->reading);
    sock_output(r, s); /* what was sent while connecting */
}

/* Starts a non-blocking connect. Returns 0 (in progress or done) or an errno. */
static int sock_connect(struct reactor *r, struct sock *s, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    if (sock_attach(r, s, fd, 0) < 0)
        return ENOMEM;
    if (s->nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    if (connect(fd, sa, len) == 0) {
        sock_connected(r, s);
        return 0;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        ev_set(s->ev_write, &s->write_on, 1);
        return 0;
    }
    int err = errno;
    sock_detach(r, s);
    return err;
}

/* Tries the resolved addresses left; ERROR with the last failure when none connects. */
static void sock_connect_next(struct reactor *r, struct sock *s, int err)
{
    while (s->ai_next) {
        struct evutil_addrinfo *a = s->ai_next;
        s->ai_next = a->ai_next;
        err = sock_connect(r, s, a->ai_addr, (socklen_t)a->ai_addrlen);
        if (err == 0)
            return;
    }
    sock_free(r, s, REACTOR_ERROR, strerror(err));
}

static const char *resolve_error(int err)
{
    return err <= EVUTIL_EAI_CANCEL ? evutil_gai_strerror(err) : gai_strerror(err);
}

static void on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct resolve *q = arg;
    struct reactor *r = q->r;
    int id = q->id;
    free(q);
    if (id < 0) { /* cancelled: the socket is gone */
        if (ai)
            evutil_freeaddrinfo(ai);
        return;
    }
    struct sock *s = &r->slots[id];
    s->resolve = NULL;
    if (err || !ai) {
        if (ai)
            evutil_freeaddrinfo(ai);
        sock_free(r, s, REACTOR_ERROR, err ? resolve_error(err) : "Name or service not known");
        return;
    }
    s->ai = s->ai_next = ai;
    sock_connect_next(r, s, ECONNREFUSED);
}

static void sock_resolve(struct reactor *r, struct sock *s, const char *host, int port)
{
    if (!r->dns) {
        r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (!r->dns && (r->dns = evdns_base_new(r->base, 0)))
            evdns_base_load_hosts(r->dns, NULL); /* no usable resolv.conf: /etc/hosts only */
    }
    struct resolve *q = calloc(1, sizeof *q);
    if (!r->dns || !q) {
        free(q);
        sock_free(r, s, REACTOR_ERROR, "resolver unavailable");
        return;
    }
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    q->r = r;
    q->id = s->id;
    s->resolve = q;
    /* Names in /etc/hosts are answered at once: on_resolved has run (and freed q) when this
     * returns NULL. Only a non-NULL request is still in flight. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(r->dns, host, service, &hints, on_resolved, q);
    if (req)
        q->req = req;
    else if (s->resolve == q) { /* failed without calling back */
        s->resolve = NULL;
        free(q);
        sock_free(r, s, REACTOR_ERROR, "Name resolution failed");
    }
}

static void cmd_connect(struct reactor *r, struct cmd *c)
{
    struct sock *s = &r->slots[c->id];
    struct sockaddr_storage ss;
    socklen_t len;
    char *host = c->ptr;
    sock_set_live(r, s, c->owner);
    s->reading = 1;
    if (c->port <= 0 || c->port > 65535)
        sock_free(r, s, REACTOR_ERROR, "Invalid port");
    else if (!host[0])
        sock_free(r, s, REACTOR_ERROR, "Invalid address");
    else if (addr_parse(host, c->port, &ss, &len) == 0) {
        int err = sock_connect(r, s, (struct sockaddr *)&ss, len);
        if (err)
            sock_free(r, s, REACTOR_ERROR, strerror(err));
    } else {
        sock_resolve(r, s, host, c->port);
    }
    free(host);
}

/* ---- I/O callbacks ---- */

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct sock *s = arg;
    struct reactor *r = s->r;
    turn_next(r);
    if (sock_state(s) != S_CONNECTING) {
        sock_output(r, s);
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        sock_connected(r, s);
        return;
    }
    sock_detach(r, s);
    sock_connect_next(r, s, err);
}

/* EOF from the peer (it shut its write side, or closed): reading stops for good, but the socket
 * stays open for writing, so queued and later output still goes out, until the owner closes it
 * (Skynet's half-close). The owner hears CLOSE with ud = 1: "read side closed, still yours". A
 * peer that closed completely makes a later write fail, which closes the socket (CLOSE, ud 0). */
static void sock_half_close(struct reactor *r, struct sock *s)
{
    s->eof = 1;
    s->reading = 0;
    ev_set(s->ev_read, &s->read_on, 0);
    if (!s->silent)
        emit(r, s->owner, REACTOR_CLOSE, s->id, 1, NULL, 0, NULL);
}

/* One read per readiness, so a busy socket cannot starve the others. The buffer becomes the
 * DATA event's data; its size doubles when a read fills it and halves when reads are small. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct sock *s = arg;
    struct reactor *r = s->r;
    turn_next(r);
    if (s->udp) {
        udp_read(r, s);
        return;
    }
    char *buf = malloc(s->rsize);
    if (!buf)
        return; /* level-triggered: tried again on the next loop */
    ssize_t n = read(fd, buf, s->rsize);
    if (n > 0) {
        stat_add(&r->reads, 1);
        stat_add(&r->bytes_in, (uint64_t)n);
        if ((size_t)n == s->rsize && s->rsize < READ_MAX)
            s->rsize *= 2;
        else if (s->rsize > READ_MIN && (size_t)n * 2 < s->rsize)
            s->rsize /= 2;
        struct sock_filter *f = atomic_load_explicit(&s->filter, memory_order_acquire);
        if (f) {
            char *out = NULL;
            n = (ssize_t)f->fn(f->ud, s->id, buf, (size_t)n, &out);
            if (n == 0)
                return;
            buf = out;
        }
        emit(r, s->owner, REACTOR_DATA, s->id, (int)n, buf, (int)n, NULL);
        return;
    }
    int err = n < 0 ? errno : 0;
    free(buf);
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        return;
    if (n == 0 && sock_state(s) == S_OPEN) {
        sock_half_close(r, s);
        return;
    }
    sock_free(r, s, REACTOR_CLOSE, n == 0 ? NULL : strerror(err));
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct sock *s = arg;
    ev_set(s->ev_read, &s->read_on, s->reading);
}

/* Out of fds: stop accepting for a moment instead of spinning on a ready listener. */
static void listener_backoff(struct reactor *r, struct sock *s)
{
    struct timeval tv = {0, ACCEPT_BACKOFF_US};
    if (!s->ev_retry && !(s->ev_retry = evtimer_new(r->base, on_retry, s)))
        return;
    ev_set(s->ev_read, &s->read_on, 0);
    evtimer_add(s->ev_retry, &tv);
}

/* Once a period: one line per listener that refused connections or failed to accept. */
static void on_report(evutil_socket_t fd, short what, void *arg)
{
    struct reactor *r = arg;
    char addr[ADDR_TEXT];
    r->report_on = 0;
    for (int i = 0; i < r->nlive; i++) {
        struct sock *s = &r->slots[r->live_ids[i]];
        if (!s->listener || (!s->refused_cap && !s->refused_room && !s->errors))
            continue;
        sock_name(s->fd, 0, addr, sizeof addr);
        if (s->refused_cap || s->refused_room)
            log_write(0, LOG_WARN,
                      "socket: listener %d (%s) refused %u connection(s) in %d s: %u over its "
                      "cap of %d, %u at the fd limit (reserve %d of %d fds) or socket table",
                      s->id, addr, s->refused_cap + s->refused_room, REPORT_SECONDS, s->refused_cap,
                      s->max_conn, s->refused_room, r->fd_reserve, r->fd_limit);
        if (s->errors)
            log_write(0, LOG_ERROR, "socket: listener %d (%s): accept error: %s (%u in %d s)",
                      s->id, addr, strerror(s->last_error), s->errors, REPORT_SECONDS);
        s->refused_cap = s->refused_room = s->errors = 0;
    }
}

static void report_later(struct reactor *r)
{
    struct timeval tv = {REPORT_SECONDS, 0};
    if (r->report_on || !r->report_ev)
        return;
    r->report_on = 1;
    evtimer_add(r->report_ev, &tv);
}

/* Every fd is taken: accept the next connection on the spare fd and close it at once, so the
 * client is told (rather than left in the backlog) and the listener does not spin. */
static void accept_on_spare(struct reactor *r, struct sock *ls)
{
    if (r->spare_fd < 0)
        return;
    close(r->spare_fd);
    int cfd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd >= 0) {
        close(cfd);
        ls->refused_room++;
    }
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Whether a connection just accepted on ls (as cfd) must be refused: the listener is at its
 * cap, or the process is into its last FD_RESERVE fds and ls holds most of the sockets (the
 * flooded listener pauses; the others keep the reserve). */
static int accept_refused(struct reactor *r, struct sock *ls, int cfd)
{
    if (ls->max_conn > 0 && ls->nconn >= ls->max_conn) {
        ls->refused_cap++;
        return 1;
    }
    if (cfd >= r->fd_limit - r->fd_reserve && ls->nconn * 2 >= atomic_load(&r->n_sockets)) {
        ls->refused_room++;
        listener_backoff(r, ls);
        return 1;
    }
    return 0;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct sock *ls = arg;
    struct reactor *r = ls->r;
    for (int i = 0; i < ACCEPT_BATCH && ls->read_on; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                accept_on_spare(r, ls);
                listener_backoff(r, ls);
            } else {
                ls->errors++;
                ls->last_error = errno;
            }
            report_later(r);
            return;
        }
        int refused = accept_refused(r, ls, cfd);
        int id = refused ? -1 : id_take(r, S_OPEN);
        if (id < 0) {
            ls->refused_room += !refused; /* the socket table is full */
            close(cfd);
            report_later(r);
            continue;
        }
        struct sock *s = &r->slots[id];
        if (sock_attach(r, s, cfd, 0) < 0) {
            sock_free(r, s, 0, NULL);
            continue;
        }
        sock_set_live(r, s, ls->owner); /* not read until reactor_resume */
        s->from = ls->id;
        ls->nconn++;
        char text[ADDR_TEXT];
        addr_text(&ss, text, sizeof text);
        emit(r, ls->owner, REACTOR_ACCEPT, ls->id, id, NULL, 0, text);
    }
}

/* ---- commands, run on the reactor thread ---- */

static void do_listen(struct reactor *r, struct listen_req *q)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = socket(q->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    q->id = -1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int)) < 0 ||
        bind(fd, (struct sockaddr *)&q->addr, q->addrlen) < 0 || listen(fd, q->backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        copy_text(q->err, sizeof q->err, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    q->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    int id = id_take(r, S_LISTEN);
    if (id < 0) {
        copy_text(q->err, sizeof q->err, "socket table full");
        close(fd);
        return;
    }
    struct sock *s = &r->slots[id];
    if (sock_attach(r, s, fd, 1) < 0) {
        copy_text(q->err, sizeof q->err, strerror(ENOMEM));
        sock_free(r, s, 0, NULL);
        return;
    }
    sock_set_live(r, s, q->owner); /* accepts nothing until reactor_resume */
    s->listener = 1;
    q->id = id;
}

static void cmd_resume(struct reactor *r, struct sock *s, uint32_t owner, int id)
{
    char text[ADDR_TEXT];
    if (!s) {
        emit(r, owner, REACTOR_ERROR, id, 0, NULL, 0, "invalid socket");
        return;
    }
    int st = sock_state(s);
    if (st == S_CLOSING)
        return;
    s->owner = owner;
    s->reading = !s->eof;
    if (st == S_CONNECTING)
        return; /* OPEN comes when the connect finishes */
    ev_set(s->ev_read, &s->read_on, s->reading);
    sock_name(s->fd, st == S_OPEN, text, sizeof text);
    emit(r, owner, REACTOR_OPEN, s->id, 0, NULL, 0, text);
    if (s->eof) /* handed over after the peer's EOF: the new owner hears it too */
        emit(r, owner, REACTOR_CLOSE, s->id, 1, NULL, 0, NULL);
}

static void cmd_send(struct reactor *r, struct sock *s, struct cmd *c)
{
    int st = s ? sock_state(s) : S_FREE;
    struct wnode *w = NULL;
    if ((st != S_OPEN && st != S_CONNECTING) || (c->to && !s->udp) || !(w = malloc(sizeof *w))) {
        free(c->ptr); /* closed meanwhile (or out of memory) */
        free(c->to);
        return;
    }
    struct wqueue *q = &s->out[c->type == C_SEND_LOW];
    *w = (struct wnode){NULL, c->ptr, c->size, c->offset, c->to};
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    if (s->pending == 0 && !s->busy)
        sock_set_busy(s, 1);
    s->pending += c->size - c->offset;
    if (s->dirty)
        return;
    if (r->ndirty < r->max) {
        s->dirty = 1;
        r->dirty[r->ndirty++] = s->id;
    } else if (st == S_OPEN && !s->write_on) {
        sock_output(r, s); /* the list is full (ids freed and reused in one batch) */
    }
}

/* Graceful close (flush, then close) or, with `now`, an immediate one. */
static void cmd_close(struct reactor *r, struct sock *s, uint32_t owner, int now)
{
    int st = sock_state(s);
    if (st == S_CLOSING && !now)
        return;
    s->owner = owner; /* the CLOSE goes to whoever asked */
    if (now || st != S_OPEN || s->pending == 0) {
        sock_free(r, s, REACTOR_CLOSE, NULL);
        return;
    }
    atomic_store(&s->state, S_CLOSING);
    s->reading = 0;
    ev_set(s->ev_read, &s->read_on, 0);
    if (!s->write_on)
        sock_output(r, s); /* closes at once if everything goes out */
}

static void cmd_exec(struct reactor *r, struct cmd *c)
{
    struct sock *s = NULL;
    if (c->id >= 0 && c->id < r->max && r->slots[c->id].live)
        s = &r->slots[c->id];
    switch (c->type) {
    case C_LISTEN:
        do_listen(r, c->ptr);
        listen_answer(c->ptr);
        break;
    case C_CONNECT:
        cmd_connect(r, c);
        break;
    case C_RESUME:
        cmd_resume(r, s, c->owner, c->id);
        break;
    case C_PAUSE:
        if (s) {
            s->reading = 0;
            ev_set(s->ev_read, &s->read_on, 0);
        }
        break;
    case C_SEND:
    case C_SEND_LOW:
        cmd_send(r, s, c);
        break;
    case C_CLOSE:
    case C_SHUTDOWN:
        if (s) {
            if (c->type == C_SHUTDOWN)
                s->silent = 0; /* an explicit shutdown is always answered */
            cmd_close(r, s, c->owner, c->type == C_SHUTDOWN);
        }
        break;
    case C_NODELAY:
        if (s) {
            s->nodelay = 1;
            if (s->fd >= 0 && sock_state(s) != S_LISTEN)
                setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        }
        break;
    case C_ACCEPT_LIMIT:
        if (s && s->listener)
            s->max_conn = c->port;
        break;
    case C_UDP_ADD:
        cmd_udp_add(r, c);
        break;
    case C_UDP_CONNECT:
        if (s && s->udp &&
            connect(s->fd, (struct sockaddr *)&((struct udp_to *)c->ptr)->ss,
                    ((struct udp_to *)c->ptr)->len) < 0)
            log_write(0, LOG_ERROR, "socket: udp connect of %d failed: %s", s->id, strerror(errno));
        free(c->ptr);
        break;
    case C_CLOSE_OWNER:
        /* Backwards: freeing entry i moves the last (already seen) entry into i. */
        for (int i = r->nlive - 1; i >= 0; i--) {
            s = &r->slots[r->live_ids[i]];
            if (s->owner == c->owner) {
                s->silent = 1;
                cmd_close(r, s, c->owner, 0);
            }
        }
        break;
    case C_STOP:
        event_base_loopbreak(r->base);
        break;
    }
}

/* Runs c; then, if a worker counted it, uncounts it: only after a send's data is queued (busy
 * set), so no direct write can overtake it. */
static void cmd_run(struct reactor *r, struct cmd *c)
{
    cmd_exec(r, c);
    if (c->counted) {
        struct sock *s = &r->slots[c->id];
        pthread_mutex_lock(&s->wlock);
        s->inflight--;
        pthread_mutex_unlock(&s->wlock);
    }
}

/* The eventfd fired: take the whole queue, run it, then write each socket that got data once,
 * so a burst of small sends becomes one writev. Reading the eventfd before taking the queue
 * means a push that lands after the swap always finds it empty and wakes us again. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct reactor *r = arg;
    uint64_t n;
    turn_next(r);
    if (read(r->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_write(0, LOG_ERROR, "reactor: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&r->lock);
    struct cmdq t = r->q;
    r->q = r->work;
    r->work = t;
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->work.count; i++)
        cmd_run(r, &r->work.items[i]);
    r->work.count = 0;
    flush_dirty(r);
}

/* Refuses new commands, drops queued ones, closes every socket silently and lets cancelled
 * DNS lookups call back. Runs on the reactor thread after its loop (or in destroy if it never
 * started). */
static void reactor_teardown(struct reactor *r)
{
    pthread_mutex_lock(&r->lock);
    r->run = R_STOPPED;
    struct cmdq t = r->q;
    r->q.count = 0;
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < t.count; i++) {
        if (t.items[i].type == C_CONNECT || t.items[i].type == C_UDP_ADD) /* not live yet */
            atomic_store(&r->slots[t.items[i].id].state, S_FREE);
        cmd_drop(&t.items[i]);
    }
    while (r->nlive > 0) {
        struct sock *s = &r->slots[r->live_ids[r->nlive - 1]];
        s->silent = 1;
        sock_free(r, s, 0, NULL);
    }
    if (r->dns) {
        event_base_loop(r->base, EVLOOP_NONBLOCK); /* cancelled lookups report and free */
        evdns_base_free(r->dns, 0);
        r->dns = NULL;
    }
}

static void *reactor_main(void *arg)
{
    struct reactor *r = arg;
    current_reactor = r;
    event_base_dispatch(r->base);
    reactor_teardown(r);
    return NULL;
}

/* ---- UDP ---- */

/* The opaque address a datagram's sender is given as (and sendto takes back): one byte 4 or 6,
 * the port (2 bytes, big-endian), then the 4 or 16 address bytes. */
static size_t udp_pack(const struct sockaddr_storage *ss, char *out)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        out[0] = 6;
        memcpy(out + 1, &a->sin6_port, 2);
        memcpy(out + 3, &a->sin6_addr, 16);
        return 19;
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    out[0] = 4;
    memcpy(out + 1, &a->sin_port, 2);
    memcpy(out + 3, &a->sin_addr, 4);
    return 7;
}

int reactor_udp_unpack(const char *from, size_t len, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    if (len == 7 && from[0] == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_port, from + 1, 2);
        memcpy(&a->sin_addr, from + 3, 4);
        *sl = sizeof *a;
        return 0;
    }
    if (len == 19 && from[0] == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_port, from + 1, 2);
        memcpy(&a->sin6_addr, from + 3, 16);
        *sl = sizeof *a;
        return 0;
    }
    return -1;
}

/* One datagram per readiness; the event's buffer holds the payload, then the sender. */
static void udp_read(struct reactor *r, struct sock *s)
{
    static _Thread_local char buf[UDP_MAX];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    ssize_t n = recvfrom(s->fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNREFUSED)
            log_write(0, LOG_ERROR, "socket: udp %d recv: %s", s->id, strerror(errno));
        return; /* ICMP errors (refused) are not the socket's end */
    }
    char from[19];
    size_t alen = udp_pack(&ss, from);
    char *data = malloc((size_t)n + alen);
    if (!data)
        return;
    memcpy(data, buf, (size_t)n);
    memcpy(data + n, from, alen);
    stat_add(&r->reads, 1);
    stat_add(&r->bytes_in, (uint64_t)n);
    emit(r, s->owner, REACTOR_UDP, s->id, (int)alen, data, (int)n, NULL);
}

/* Each queued datagram goes out whole, in order (normal queue first); one the kernel refuses
 * for good (too big, unreachable) is dropped and logged. Returns 0. */
static int udp_write(struct reactor *r, struct sock *s)
{
    for (int q = 0; q < 2; q++) {
        struct wnode *w;
        while ((w = s->out[q].head)) {
            ssize_t k = w->to ? sendto(s->fd, w->data, w->size, MSG_NOSIGNAL,
                                       (struct sockaddr *)&w->to->ss, w->to->len)
                              : send(s->fd, w->data, w->size, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            stat_add(&r->writes, 1);
            if (k < 0)
                log_write(0, LOG_WARN, "socket: udp %d: datagram of %zu bytes dropped: %s", s->id,
                          w->size, strerror(errno));
            else
                stat_add(&r->bytes_out, (uint64_t)k);
            s->out[q].head = w->next;
            if (!w->next)
                s->out[q].tail = NULL;
            s->pending -= w->size;
            free(w->data);
            free(w->to);
            free(w);
        }
    }
    return 0;
}

static void cmd_udp_add(struct reactor *r, struct cmd *c)
{
    struct sock *s = &r->slots[c->id];
    s->udp = 1;
    if (sock_attach(r, s, c->port, 0) < 0) {
        s->udp = 0;
        atomic_store(&s->state, S_FREE);
        pthread_mutex_lock(&r->lock);
        id_put_locked(r, s->id);
        pthread_mutex_unlock(&r->lock);
        return;
    }
    sock_set_live(r, s, c->owner);
    atomic_store(&s->state, S_OPEN);
    s->reading = 1;
    ev_set(s->ev_read, &s->read_on, 1);
}

/* ---- public interface ---- */

static void reactor_free(struct reactor *r)
{
    if (r->wake_ev)
        event_free(r->wake_ev);
    if (r->report_ev)
        event_free(r->report_ev);
    if (r->spare_fd >= 0)
        close(r->spare_fd);
    if (r->base)
        event_base_free(r->base);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    pthread_mutex_destroy(&r->lock);
    free(r->q.items);
    free(r->work.items);
    for (int i = 0; r->slots && i < r->max; i++)
        pthread_mutex_destroy(&r->slots[i].wlock);
    free(r->slots);
    free(r->free_ids);
    free(r->live_ids);
    free(r->dirty);
    free(r);
}

struct reactor *reactor_create(const struct reactor_config *cfg)
{
    if (!cfg || !cfg->deliver)
        return NULL;
    struct reactor *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->deliver = cfg->deliver;
    r->ud = cfg->ud;
    r->high_water = cfg->high_water ? cfg->high_water : DEFAULT_HIGH_WATER;
    r->output_limit = cfg->output_limit;
    r->max = cfg->max_sockets > 0 ? cfg->max_sockets : DEFAULT_MAX_SOCKETS;
    r->wake_fd = -1;
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct rlimit rl;
    r->fd_limit =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur : INT_MAX;
    r->fd_reserve = r->fd_limit / 8 < FD_RESERVE ? r->fd_limit / 8 : FD_RESERVE;
    pthread_mutex_init(&r->lock, NULL);
    r->slots = calloc(r->max, sizeof *r->slots);
    r->free_ids = malloc(r->max * sizeof(int));
    r->live_ids = malloc(r->max * sizeof(int));
    r->dirty = malloc(r->max * sizeof(int));
    if (!r->slots || !r->free_ids || !r->live_ids || !r->dirty)
        goto fail;
    for (int i = 0; i < r->max; i++) {
        struct sock *s = &r->slots[i];
        atomic_init(&s->state, S_FREE);
        s->id = i;
        s->fd = -1;
        s->warn_at = r->high_water;
        s->rsize = READ_START;
        s->from = -1;
        s->r = r;
        s->direct_turn = (unsigned)-1;
        pthread_mutex_init(&s->wlock, NULL);
        r->free_ids[i] = i;
    }
    r->free_count = r->max;
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0 || !(r->base = event_base_new()))
        goto fail;
    r->wake_ev = event_new(r->base, r->wake_fd, EV_READ | EV_PERSIST, on_wake, r);
    if (!r->wake_ev || event_add(r->wake_ev, NULL) < 0)
        goto fail;
    r->report_ev = evtimer_new(r->base, on_report, r);
    return r;
fail:
    reactor_free(r);
    return NULL;
}

int reactor_start(struct reactor *r)
{
    pthread_mutex_lock(&r->lock);
    int run = r->run;
    r->run = R_RUNNING;
    pthread_mutex_unlock(&r->lock);
    if (run != R_NEW)
        return -EINVAL;
    int rc = pthread_create(&r->thread, NULL, reactor_main, r);
    if (rc) {
        pthread_mutex_lock(&r->lock);
        r->run = R_NEW;
        pthread_mutex_unlock(&r->lock);
        return -rc;
    }
    r->started = 1;
    return 0;
}

void reactor_destroy(struct reactor *r)
{
    if (!r)
        return;
    if (r->started) {
        struct cmd c = {.type = C_STOP};
        cmd_push(r, &c);
        pthread_join(r->thread, NULL);
    } else {
        reactor_teardown(r);
    }
    reactor_free(r);
}

int reactor_listen(struct reactor *r, uint32_t owner, const char *host, int port, int backlog,
                   int *port_out, char *err, size_t errlen)
{
    struct listen_req q;
    memset(&q, 0, sizeof q);
    if (port < 0 || port > 65535) {
        copy_text(err, errlen, "Invalid port");
        return -1;
    }
    if (addr_parse(host, port, &q.addr, &q.addrlen) < 0) {
        /* A name: resolved here, on the caller's thread, as listen is synchronous anyway. */
        struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai;
        int rc = getaddrinfo(host, NULL, &hints, &ai);
        if (rc != 0) {
            copy_text(err, errlen, gai_strerror(rc));
            return -1;
        }
        memcpy(&q.addr, ai->ai_addr, ai->ai_addrlen);
        q.addrlen = ai->ai_addrlen;
        freeaddrinfo(ai);
        if (q.addr.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&q.addr)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&q.addr)->sin_port = htons(port);
    }
    q.owner = owner;
    q.backlog = backlog > 0 ? backlog : SOMAXCONN;
    if (current_reactor == r) { /* called from a deliver callback */
        do_listen(r, &q);
    } else {
        pthread_mutex_init(&q.lock, NULL);
        pthread_cond_init(&q.cond, NULL);
        struct cmd c = {.type = C_LISTEN, .owner = owner, .ptr = &q};
        cmd_push(r, &c); /* if refused, it is answered at once ("reactor not running") */
        pthread_mutex_lock(&q.lock);
        while (!q.done)
            pthread_cond_wait(&q.cond, &q.lock);
        pthread_mutex_unlock(&q.lock);
        pthread_cond_destroy(&q.cond);
        pthread_mutex_destroy(&q.lock);
    }
    if (q.id < 0) {
        copy_text(err, errlen, q.err);
        return -1;
    }
    if (port_out)
        *port_out = q.port;
    return q.id;
}

int reactor_connect(struct reactor *r, uint32_t owner, const char *host, int port)
{
    char *h = strdup(host ? host : "");
    if (!h)
        return -1;
    pthread_mutex_lock(&r->lock);
    int id = r->run == R_STOPPED ? -1 : id_take_locked(r, S_CONNECTING);
    struct cmd c = {.type = C_CONNECT, .id = id, .port = port, .owner = owner, .ptr = h};
    if (id >= 0 && queue_locked(r, &c) < 0) {
        id_put_locked(r, id);
        id = -1;
    }
    int wakeup = id >= 0 && r->q.count == 1;
    pthread_mutex_unlock(&r->lock);
    if (id < 0)
        free(h);
    else if (wakeup)
        wake(r);
    return id;
}

static int push_id(struct reactor *r, int type, uint32_t owner, int id)
{
    if (id < 0 || id >= r->max)
        return -1;
    struct cmd c = {.type = type, .id = id, .owner = owner};
    return cmd_push(r, &c);
}

/* Queues c for s, counted in s->inflight; the caller holds s->wlock, so no direct write can
 * come between what is already queued and c. Returns queue_locked's answer. */
static int sock_push_locked(struct reactor *r, struct sock *s, struct cmd *c)
{
    c->counted = 1;
    pthread_mutex_lock(&r->lock);
    int rc = queue_locked(r, c);
    pthread_mutex_unlock(&r->lock);
    if (rc >= 0)
        s->inflight++;
    return rc;
}

/* After sock_push_locked, with wlock released: drops c if it was refused, else wakes. */
static int sock_push_done(struct reactor *r, struct cmd *c, int rc)
{
    if (rc < 0) {
        cmd_drop(c);
        return -1;
    }
    if (rc == 1)
        wake(r);
    return 0;
}

/* A close or shutdown, ordered with the socket's sends: a direct write after it waits for it. */
static int push_ordered(struct reactor *r, int type, uint32_t owner, int id)
{
    if (id < 0 || id >= r->max)
        return -1;
    struct sock *s = &r->slots[id];
    struct cmd c = {.type = type, .id = id, .owner = owner};
    pthread_mutex_lock(&s->wlock);
    int rc = sock_push_locked(r, s, &c);
    pthread_mutex_unlock(&s->wlock);
    return sock_push_done(r, &c, rc);
}

int reactor_resume(struct reactor *r, uint32_t owner, int id)
{
    return push_id(r, C_RESUME, owner, id);
}

int reactor_pause(struct reactor *r, uint32_t owner, int id)
{
    return push_id(r, C_PAUSE, owner, id);
}

int reactor_close(struct reactor *r, uint32_t owner, int id)
{
    return push_ordered(r, C_CLOSE, owner, id);
}

int reactor_shutdown(struct reactor *r, uint32_t owner, int id)
{
    return push_ordered(r, C_SHUTDOWN, owner, id);
}

int reactor_nodelay(struct reactor *r, int id) { return push_id(r, C_NODELAY, 0, id); }

int reactor_accept_limit(struct reactor *r, int id, int max)
{
    if (id < 0 || id >= r->max || max < 0)
        return -1;
    struct cmd c = {.type = C_ACCEPT_LIMIT, .id = id, .port = max};
    return cmd_push(r, &c);
}

void reactor_close_owner(struct reactor *r, uint32_t owner)
{
    struct cmd c = {.type = C_CLOSE_OWNER, .id = -1, .owner = owner};
    cmd_push(r, &c);
}

/* The worker's own write to s (wlock held, fd open, nothing of s queued or in flight): as
 * much as the kernel takes now, never waiting. An error is left for the reactor, whose write of
 * the rest meets it again and closes the socket as usual. Returns the bytes written. */
static size_t direct_write(struct reactor *r, struct sock *s, const char *data, size_t size)
{
    size_t done = 0;
    while (done < size) {
        size_t want = size - done;
        ssize_t k = send(s->fd, data + done, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        stat_add(&r->writes, 1);
        stat_add(&r->bytes_out, (uint64_t)k);
        done += (size_t)k;
        if ((size_t)k < want)
            break; /* the kernel buffer is full */
    }
    return done;
}

static int send_queue(struct reactor *r, int type, int id, void *data, size_t size)
{
    int st = id >= 0 && id < r->max ? atomic_load(&r->slots[id].state) : S_FREE;
    if ((st != S_OPEN && st != S_CONNECTING) || (!data && size > 0)) {
        free(data);
        return -1;
    }
    if (size == 0) {
        free(data);
        return 0;
    }
    struct sock *s = &r->slots[id];
    struct cmd c = {.type = type, .id = id, .size = size, .ptr = data};
    pthread_mutex_lock(&s->wlock);
    unsigned turn = atomic_load_explicit(&r->turn, memory_order_relaxed);
    if (type == C_SEND && s->fd >= 0 && !s->udp && !s->inflight && !s->busy &&
        s->direct_turn != turn && atomic_load(&s->state) == S_OPEN) {
        s->direct_turn = turn; /* the next send in this reactor turn queues: one sendmsg */
        c.offset = direct_write(r, s, data, size);
        if (c.offset == size) {
            pthread_mutex_unlock(&s->wlock);
            free(data);
            return 0;
        }
    }
    int rc = sock_push_locked(r, s, &c);
    pthread_mutex_unlock(&s->wlock);
    return sock_push_done(r, &c, rc);
}

int reactor_set_filter(struct reactor *r, int id, reactor_filter_fn fn, void *ud)
{
    if (id < 0 || id >= r->max || !fn)
        return -1;
    struct sock *s = &r->slots[id];
    struct sock_filter *f = malloc(sizeof *f);
    if (!f)
        return -1;
    *f = (struct sock_filter){fn, ud};
    int rc = -1;
    pthread_mutex_lock(&s->wlock); /* sock_detach takes the filter out under it */
    if (s->fd >= 0 && !s->udp && atomic_load(&s->state) == S_OPEN && !atomic_load(&s->filter)) {
        atomic_store_explicit(&s->filter, f, memory_order_release);
        rc = 0;
    }
    pthread_mutex_unlock(&s->wlock);
    if (rc < 0)
        free(f);
    return rc;
}

int reactor_send(struct reactor *r, int id, void *data, size_t size)
{
    return send_queue(r, C_SEND, id, data, size);
}

int reactor_send_low(struct reactor *r, int id, void *data, size_t size)
{
    return send_queue(r, C_SEND_LOW, id, data, size);
}

void reactor_get_stats(struct reactor *r, struct reactor_stats *out)
{
    out->sockets = atomic_load(&r->n_sockets);
    out->bytes_in = atomic_load(&r->bytes_in);
    out->bytes_out = atomic_load(&r->bytes_out);
    out->writes = atomic_load(&r->writes);
    out->reads = atomic_load(&r->reads);
}

/* host:port -> address for UDP: numeric, or looked up on the caller's thread (as listen). */
static int udp_resolve(const char *host, int port, struct udp_to *to, char *err, size_t errlen)
{
    if (port < 0 || port > 65535) {
        copy_text(err, errlen, "Invalid port");
        return -1;
    }
    if (addr_parse(host, port, &to->ss, &to->len) == 0)
        return 0;
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        copy_text(err, errlen, gai_strerror(rc));
        return -1;
    }
    memcpy(&to->ss, ai->ai_addr, ai->ai_addrlen);
    to->len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int reactor_udp(struct reactor *r, uint32_t owner, const char *host, int port, int dial, char *err,
                size_t errlen)
{
    struct udp_to a;
    int bound = !dial && ((host && host[0]) || port != 0);
    if ((dial || bound) && udp_resolve(host, port, &a, err, errlen) < 0)
        return -1;
    int family = dial || bound ? a.ss.ss_family : AF_INET;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (bound && bind(fd, (struct sockaddr *)&a.ss, a.len) < 0) ||
        (dial && connect(fd, (struct sockaddr *)&a.ss, a.len) < 0)) {
        copy_text(err, errlen, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    int id = r->run == R_STOPPED ? -1 : id_take_locked(r, S_CONNECTING);
    struct cmd c = {.type = C_UDP_ADD, .id = id, .port = fd, .owner = owner};
    if (id >= 0 && queue_locked(r, &c) < 0) {
        id_put_locked(r, id);
        id = -1;
    }
    int wakeup = id >= 0 && r->q.count == 1;
    pthread_mutex_unlock(&r->lock);
    if (id < 0) {
        copy_text(err, errlen, "socket table full");
        close(fd);
    } else if (wakeup) {
        wake(r);
    }
    return id;
}

int reactor_udp_connect(struct reactor *r, int id, const char *host, int port, char *err,
                        size_t errlen)
{
    struct udp_to *to = malloc(sizeof *to);
    if (!to || id < 0 || id >= r->max || udp_resolve(host, port, to, err, errlen) < 0) {
        if (to && (id < 0 || id >= r->max))
            copy_text(err, errlen, "invalid socket");
        free(to);
        return -1;
    }
    struct cmd c = {.type = C_UDP_CONNECT, .id = id, .ptr = to};
    if (cmd_push(r, &c) < 0) {
        copy_text(err, errlen, "reactor not running");
        return -1;
    }
    return 0;
}

int reactor_sendto(struct reactor *r, int id, const char *from, size_t fromlen, void *data,
                   size_t size)
{
    int st = id >= 0 && id < r->max ? atomic_load(&r->slots[id].state) : S_FREE;
    struct udp_to *to = malloc(sizeof *to);
    if ((st != S_OPEN && st != S_CONNECTING) || !to ||
        reactor_udp_unpack(from, fromlen, &to->ss, &to->len) < 0 || (!data && size > 0)) {
        free(to);
        free(data);
        return -1;
    }
    struct cmd c = {.type = C_SEND, .id = id, .size = size, .ptr = data, .to = to};
    return cmd_push(r, &c);
}
