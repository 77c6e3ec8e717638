/* Tests of the reactor through its public interface, with real sockets on the loopback only.
 * The deliver callback queues events (mutex + condvar) for the test thread, which waits for
 * them with wait_event(); raw POSIX sockets in the test thread play the peers. "Nothing
 * happened" is checked after fence(), never after a sleep. */
#include "log.h"
#include "reactor.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANY -1
#define WAIT_MS 10000
#define OWNER_A 0x0a
#define OWNER_B 0x0b
#define OWNER_FENCE 0xfe
#define MIB (1024 * 1024)

/* ---- the event queue fed by the deliver callback ---- */

struct tev {
    struct tev *next;
    uint32_t owner;
    size_t size;
    struct reactor_event *ev;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct tev *head;
    int echo;        /* DATA is sent straight back, from the reactor thread */
    int auto_resume; /* ACCEPT is answered with resume(owner of the listener) */
    int gate_closed; /* the next deliver blocks the reactor thread until gate_open() */
    int gate_blocked;
    int bad_size; /* an event whose size did not match its text */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static struct reactor *R;

static void tev_free(struct tev *t)
{
    if (!t)
        return;
    free(t->ev->data);
    free(t->ev);
    free(t);
}

static int has_text(const struct reactor_event *ev, size_t size) { return size > sizeof *ev; }

static void test_deliver(void *ud, uint32_t owner, struct reactor_event *ev, size_t size)
{
    int text_required =
        ev->type == REACTOR_OPEN || ev->type == REACTOR_ACCEPT || ev->type == REACTOR_ERROR;
    pthread_mutex_lock(&T.lock);
    if ((text_required && !has_text(ev, size)) ||
        (has_text(ev, size) && size != sizeof *ev + strlen(ev->text) + 1))
        T.bad_size = 1;
    while (T.gate_closed) {
        T.gate_blocked = 1;
        pthread_cond_broadcast(&T.cond);
        pthread_cond_wait(&T.cond, &T.lock);
    }
    T.gate_blocked = 0;
    int echo = T.echo && ev->type == REACTOR_DATA;
    int resume = T.auto_resume && ev->type == REACTOR_ACCEPT;
    pthread_mutex_unlock(&T.lock);
    if (echo) {
        reactor_send(R, ev->id, ev->data, (size_t)ev->size);
        free(ev);
        return;
    }
    if (resume)
        reactor_resume(R, owner, ev->ud);
    struct tev *t = calloc(1, sizeof *t);
    t->owner = owner;
    t->size = size;
    t->ev = ev;
    pthread_mutex_lock(&T.lock);
    struct tev **p = &T.head;
    while (*p)
        p = &(*p)->next;
    *p = t;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

/* Removes and returns the first queued event of `type` for `id` (ANY matches all), waiting up
 * to timeout_ms for it; NULL on timeout. */
static struct tev *wait_event(int type, int id, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&T.lock);
    for (;;) {
        for (struct tev **p = &T.head; *p; p = &(*p)->next) {
            struct tev *t = *p;
            if ((type == ANY || t->ev->type == type) && (id == ANY || t->ev->id == id)) {
                *p = t->next;
                pthread_mutex_unlock(&T.lock);
                return t;
            }
        }
        if (pthread_cond_timedwait(&T.cond, &T.lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&T.lock);
    return NULL;
}

static struct tev *expect_event(int type, int id)
{
    struct tev *t = wait_event(type, id, WAIT_MS);
    ck_assert_msg(t != NULL, "no event of type %d for socket %d", type, id);
    return t;
}

static void drop_events(void)
{
    struct tev *t;
    while ((t = wait_event(ANY, ANY, 0)))
        tev_free(t);
}

static void gate_close(void)
{
    pthread_mutex_lock(&T.lock);
    T.gate_closed = 1;
    pthread_mutex_unlock(&T.lock);
}

static void gate_wait_blocked(void)
{
    pthread_mutex_lock(&T.lock);
    while (!T.gate_blocked)
        pthread_cond_wait(&T.cond, &T.lock);
    pthread_mutex_unlock(&T.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&T.lock);
    T.gate_closed = 0;
    pthread_cond_broadcast(&T.cond);
    pthread_mutex_unlock(&T.lock);
}

static size_t output_limit; /* for the next start_reactor; reset by it */

static void start_reactor(size_t high_water, int max_sockets)
{
    struct reactor_config cfg = {test_deliver, NULL, high_water, max_sockets, output_limit};
    output_limit = 0;
    T.echo = T.auto_resume = T.bad_size = 0;
    R = reactor_create(&cfg);
    ck_assert_ptr_nonnull(R);
    ck_assert_int_eq(reactor_start(R), 0);
}

static void stop_reactor(void)
{
    reactor_destroy(R);
    R = NULL;
    drop_events();
    ck_assert_msg(!T.bad_size, "an event's size did not match its text");
}

static int raw_listen(int *port, int rcvbuf);

/* Returns once everything the reactor was asked before, and every read that was already
 * possible, has been handled. A listen is synchronous and runs after the commands queued before
 * it; a second one runs in a later loop iteration than any socket that was ready with the
 * first. Both fail (the port is taken), so the fence leaves no socket behind. */
static void fence(void)
{
    static int busy_port, busy_fd = -1;
    if (busy_fd < 0)
        busy_fd = raw_listen(&busy_port, 0);
    for (int i = 0; i < 2; i++) {
        char err[128] = "";
        ck_assert_int_eq(
            reactor_listen(R, OWNER_FENCE, "127.0.0.1", busy_port, 0, NULL, err, sizeof err), -1);
        ck_assert_str_eq(err, "Address already in use");
    }
}

static int count_events(int type, int id)
{
    int n = 0;
    pthread_mutex_lock(&T.lock);
    for (struct tev *t = T.head; t; t = t->next)
        n += (type == ANY || t->ev->type == type) && (id == ANY || t->ev->id == id);
    pthread_mutex_unlock(&T.lock);
    return n;
}

/* ---- raw peers ---- */

static void set_timeout(int fd)
{
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A raw listener on 127.0.0.1; rcvbuf > 0 shrinks the receive buffer of accepted sockets. */
static int raw_listen(int *port, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1024), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_accept(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, WAIT_MS), 1);
    int fd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    set_timeout(fd);
    return fd;
}

static int raw_socket(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    set_timeout(fd);
    return fd;
}

static int raw_connect_fd(int fd, int port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return connect(fd, (struct sockaddr *)&a, sizeof a);
}

static int raw_connect(int port)
{
    int fd = raw_socket(0);
    ck_assert_int_eq(raw_connect_fd(fd, port), 0);
    return fd;
}

/* A port nobody listens on (bound once, then released). */
static int closed_port(void)
{
    int port, fd = raw_listen(&port, 0);
    close(fd);
    return port;
}

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        ck_assert_int_gt(k, 0);
        p += k;
        n -= (size_t)k;
    }
}

static void read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        ck_assert_msg(k > 0, "read returned %zd (%s) with %zu bytes missing", k,
                      k < 0 ? strerror(errno) : "EOF", n);
        p += k;
        n -= (size_t)k;
    }
}

/* Reads up to `limit` bytes, stopping early at EOF (or reset); returns the byte count. With
 * `check`, each byte must follow pattern(). */
static size_t read_stream(int fd, size_t limit, int check)
{
    static char buf[256 * 1024];
    size_t total = 0;
    while (total < limit) {
        size_t want = limit - total < sizeof buf ? limit - total : sizeof buf;
        ssize_t k = read(fd, buf, want);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            break;
        ck_assert_msg(k > 0, "read failed: %s", strerror(errno));
        for (ssize_t i = 0; check && i < k; i++) /* no ck_assert per byte: each one is a syscall */
            if ((unsigned char)buf[i] != (unsigned char)((total + i) * 7 % 251))
                ck_abort_msg("byte %zu is wrong", total + i);
        total += (size_t)k;
    }
    return total;
}

static size_t read_to_eof(int fd, int check) { return read_stream(fd, (size_t)-1, check); }

static void *dup_bytes(const void *p, size_t n)
{
    void *d = malloc(n);
    memcpy(d, p, n);
    return d;
}

/* n bytes of a position-dependent pattern, continuing at stream offset `at`. */
static void *pattern(size_t at, size_t n)
{
    unsigned char *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (unsigned char)((at + i) * 7 % 251);
    return d;
}

/* Sends `total` bytes of pattern() in 1 MiB pieces. */
static void send_pattern(int id, size_t total)
{
    for (size_t at = 0; at < total; at += MIB)
        ck_assert_int_eq(reactor_send(R, id, pattern(at, MIB), MIB), 0);
}

static int expect_data(int id, const char *want)
{
    size_t n = strlen(want), got = 0;
    char buf[4096];
    while (got < n) {
        struct tev *t = expect_event(REACTOR_DATA, id);
        ck_assert_int_eq(t->ev->ud, t->ev->size);
        ck_assert_int_le(got + (size_t)t->ev->size, n);
        memcpy(buf + got, t->ev->data, (size_t)t->ev->size);
        got += (size_t)t->ev->size;
        tev_free(t);
    }
    ck_assert_mem_eq(buf, want, n);
    return 0;
}

/* A reactor socket (owned by `owner`) connected to a raw peer; returns the id. */
static int reactor_to_raw(uint32_t owner, int *peer, int rcvbuf)
{
    int port, lfd = raw_listen(&port, rcvbuf);
    int id = reactor_connect(R, owner, "127.0.0.1", port);
    ck_assert_int_ge(id, 0);
    *peer = raw_accept(lfd);
    close(lfd);
    struct tev *t = expect_event(REACTOR_OPEN, id);
    ck_assert_uint_eq(t->owner, owner);
    tev_free(t);
    return id;
}

/* A reactor listener owned by `owner`, already accepting; returns the id. */
static int reactor_listener(uint32_t owner, int *port)
{
    char err[128];
    int id = reactor_listen(R, owner, "127.0.0.1", 0, 1024, port, err, sizeof err);
    ck_assert_msg(id >= 0, "listen failed: %s", err);
    ck_assert_int_eq(reactor_resume(R, owner, id), 0);
    tev_free(expect_event(REACTOR_OPEN, id));
    return id;
}

/* A raw client accepted by listener `lid` and started by `owner`; returns the new id. */
static int accept_raw(int lid, int port, uint32_t owner, int *peer)
{
    *peer = raw_connect(port);
    struct tev *t = expect_event(REACTOR_ACCEPT, lid);
    int id = t->ev->ud;
    tev_free(t);
    ck_assert_int_eq(reactor_resume(R, owner, id), 0);
    t = expect_event(REACTOR_OPEN, id);
    ck_assert_uint_eq(t->owner, owner);
    tev_free(t);
    return id;
}

/* ---- listen ---- */

START_TEST(test_listen_on_port_zero_returns_real_port)
{
    start_reactor(0, 0);
    char err[128] = "";
    int port = 0;
    int id = reactor_listen(R, OWNER_A, NULL, 0, 0, &port, err, sizeof err);
    ck_assert_int_ge(id, 0);
    ck_assert_int_gt(port, 0);
    int fd = raw_connect(port); /* the kernel completes the handshake before any accept */
    close(fd);
    stop_reactor();
}
END_TEST

START_TEST(test_accept_limit_counts_live_sockets_only)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    ck_assert_int_eq(reactor_accept_limit(R, lid, 2), 0);
    int p1, id1 = accept_raw(lid, port, OWNER_A, &p1);
    int p2, id2 = accept_raw(lid, port, OWNER_B, &p2); /* counted whoever owns it */
    for (int i = 0; i < 3; i++) { /* over the cap: accepted and closed at once */
        int fd = raw_connect(port);
        char c;
        ck_assert_int_le(read(fd, &c, 1), 0);
        close(fd);
    }
    ck_assert_int_eq(reactor_close(R, OWNER_B, id2), 0);
    tev_free(expect_event(REACTOR_CLOSE, id2));
    int p3, id3 = accept_raw(lid, port, OWNER_A, &p3); /* a slot is free again */
    ck_assert_int_ge(id3, 0);
    ck_assert_int_ne(id3, id1);
    close(p1);
    close(p2);
    close(p3);
    stop_reactor();
}
END_TEST

START_TEST(test_udp_datagram_in_and_answer_out)
{
    start_reactor(0, 0);
    char err[128] = "";
    int raw = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(raw, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(raw, (struct sockaddr *)&a, &len), 0);
    /* a socket connected to the raw one: what it reads comes from there */
    int id = reactor_udp(R, OWNER_A, "127.0.0.1", ntohs(a.sin_port), 1, err, sizeof err);
    ck_assert_msg(id >= 0, "udp: %s", err);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("ping", 4), 4), 0);
    char buf[64];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ck_assert_int_eq(recvfrom(raw, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
    ck_assert_int_eq(sendto(raw, "pong!", 5, 0, (struct sockaddr *)&from, flen), 5);
    struct tev *t = expect_event(REACTOR_UDP, id);
    ck_assert_uint_eq(t->owner, OWNER_A);
    ck_assert_int_eq(t->ev->size, 5);
    ck_assert_mem_eq(t->ev->data, "pong!", 5);
    ck_assert_int_eq(t->ev->ud, 7); /* IPv4 sender: 1 + 2 + 4 bytes */
    struct sockaddr_storage ss;
    socklen_t sl;
    ck_assert_int_eq(reactor_udp_unpack(t->ev->data + 5, 7, &ss, &sl), 0);
    ck_assert_int_eq(((struct sockaddr_in *)&ss)->sin_port, a.sin_port);
    /* sendto that opaque address */
    ck_assert_int_eq(reactor_sendto(R, id, t->ev->data + 5, 7, dup_bytes("again", 5), 5), 0);
    ck_assert_int_eq(recv(raw, buf, sizeof buf, 0), 5);
    ck_assert_mem_eq(buf, "again", 5);
    tev_free(t);
    ck_assert_int_eq(reactor_sendto(R, id, "bad", 3, dup_bytes("x", 1), 1), -1);
    ck_assert_int_eq(reactor_udp_unpack("bad", 3, &ss, &sl), -1);
    ck_assert_int_eq(reactor_udp(R, OWNER_A, "127.0.0.1", ntohs(a.sin_port), 0, err, sizeof err),
                     -1); /* the port is taken */
    ck_assert_str_eq(err, "Address already in use");
    ck_assert_int_eq(reactor_close(R, OWNER_A, id), 0);
    tev_free(expect_event(REACTOR_CLOSE, id));
    close(raw);
    stop_reactor();
}
END_TEST

START_TEST(test_listen_on_busy_port_fails_with_address_in_use)
{
    start_reactor(0, 0);
    int port, lfd = raw_listen(&port, 0);
    char err[128] = "";
    int out = -7;
    ck_assert_int_eq(reactor_listen(R, OWNER_A, "127.0.0.1", port, 0, &out, err, sizeof err), -1);
    ck_assert_str_eq(err, "Address already in use");
    ck_assert_int_eq(out, -7);
    close(lfd);
    stop_reactor();
}
END_TEST

START_TEST(test_listen_on_ipv6_loopback_accepts_ipv6_peer)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "no IPv6 loopback here: test skipped\n");
        return;
    }
    close(probe);
    start_reactor(0, 0);
    char err[128];
    int port;
    int lid = reactor_listen(R, OWNER_A, "::1", 0, 0, &port, err, sizeof err);
    ck_assert_msg(lid >= 0, "%s", err);
    reactor_resume(R, OWNER_A, lid);
    struct tev *t = expect_event(REACTOR_OPEN, lid);
    char want[64];
    snprintf(want, sizeof want, "[::1]:%d", port);
    ck_assert_str_eq(t->ev->text, want);
    tev_free(t);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    a.sin6_port = htons(port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    t = expect_event(REACTOR_ACCEPT, lid);
    ck_assert_int_eq(strncmp(t->ev->text, "[::1]:", 6), 0);
    tev_free(t);
    close(fd);
    stop_reactor();
}
END_TEST

START_TEST(test_listener_accepts_only_after_resume)
{
    start_reactor(0, 0);
    char err[128];
    int port;
    int lid = reactor_listen(R, OWNER_A, "127.0.0.1", 0, 0, &port, err, sizeof err);
    ck_assert_int_ge(lid, 0);
    int fd = raw_connect(port);
    fence();
    ck_assert_int_eq(count_events(ANY, lid), 0);
    ck_assert_int_eq(reactor_resume(R, OWNER_A, lid), 0);
    struct tev *t = expect_event(REACTOR_OPEN, lid);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ck_assert_str_eq(t->ev->text, want);
    tev_free(t);
    t = expect_event(REACTOR_ACCEPT, lid);
    ck_assert_uint_eq(t->owner, OWNER_A);
    ck_assert_int_ge(t->ev->ud, 0);
    ck_assert_int_ne(t->ev->ud, lid);
    ck_assert_int_eq(strncmp(t->ev->text, "127.0.0.1:", 10), 0);
    tev_free(t);
    close(fd);
    stop_reactor();
}
END_TEST

/* ---- connect, accept, read ---- */

START_TEST(test_connect_accept_resume_then_echo_round_trip)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int cid = reactor_connect(R, OWNER_B, "127.0.0.1", port);
    ck_assert_int_ge(cid, 0);
    struct tev *t = expect_event(REACTOR_OPEN, cid);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ck_assert_str_eq(t->ev->text, want);
    ck_assert_uint_eq(t->owner, OWNER_B);
    tev_free(t);
    t = expect_event(REACTOR_ACCEPT, lid);
    int sid = t->ev->ud;
    tev_free(t);
    ck_assert_int_eq(reactor_resume(R, 0x77, sid), 0); /* a third service takes it over */
    t = expect_event(REACTOR_OPEN, sid);
    ck_assert_uint_eq(t->owner, 0x77);
    tev_free(t);

    ck_assert_int_eq(reactor_send(R, cid, dup_bytes("ping", 4), 4), 0);
    t = expect_event(REACTOR_DATA, sid);
    ck_assert_uint_eq(t->owner, 0x77);
    ck_assert_int_eq(t->ev->size, 4);
    ck_assert_mem_eq(t->ev->data, "ping", 4);
    ck_assert_int_eq(reactor_send(R, sid, t->ev->data, 4), 0); /* the buffer goes back */
    t->ev->data = NULL;
    tev_free(t);
    expect_data(cid, "ping");
    stop_reactor();
}
END_TEST

START_TEST(test_accepted_socket_is_not_read_until_resume)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int fd = raw_connect(port);
    write_all(fd, "early", 5);
    struct tev *t = expect_event(REACTOR_ACCEPT, lid);
    int id = t->ev->ud;
    tev_free(t);
    fence();
    ck_assert_int_eq(count_events(REACTOR_DATA, id), 0);
    reactor_resume(R, OWNER_B, id);
    t = expect_event(REACTOR_OPEN, id);
    ck_assert_int_eq(strncmp(t->ev->text, "127.0.0.1:", 10), 0);
    tev_free(t);
    expect_data(id, "early");
    close(fd);
    stop_reactor();
}
END_TEST

START_TEST(test_thousand_concurrent_connections_each_echo)
{
    enum { N = 1000 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * N + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= 2 * N + 64, "need %d fds", 2 * N + 64);
    start_reactor(0, 0);
    T.echo = 1;
    T.auto_resume = 1;
    int port, lid = reactor_listener(OWNER_A, &port);
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect(port);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "hello %d", i);
        write_all(fds[i], msg, (size_t)n);
    }
    for (int i = 0; i < N; i++) {
        char msg[32], got[32];
        int n = snprintf(msg, sizeof msg, "hello %d", i);
        read_all(fds[i], got, (size_t)n);
        ck_assert_mem_eq(got, msg, (size_t)n);
        close(fds[i]);
    }
    for (int i = 0; i < N; i++)
        tev_free(expect_event(REACTOR_ACCEPT, lid));
    for (int i = 0; i < N; i++)
        tev_free(expect_event(REACTOR_CLOSE, ANY));
    stop_reactor();
}
END_TEST

/* ---- writing ---- */

/* Frames: 4-byte big-endian payload length, kind (0 normal, 1 low), 4-byte sequence number per
 * kind, then payload bytes that depend on (kind, seq, position). */
#define FRAME_HEAD 9
#define BIG_TOTAL (64u * MIB)

static size_t frame_len(unsigned i, int *kind)
{
    unsigned h = i * 2654435761u;
    *kind = (h >> 7) % 4 == 0; /* about one frame in four is low */
    return *kind ? 1 + (h >> 9) % MIB : 1 + (h >> 9) % (64 * 1024);
}

static unsigned char frame_byte(int kind, unsigned seq, size_t j)
{
    return (unsigned char)(seq * 131u + j * 7u + (unsigned)kind * 61u);
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

struct big_plan {
    int id;
    unsigned frames;
    uint64_t sum[2]; /* per-kind checksum of payloads, computed by the sender */
};

static void *big_sender(void *arg)
{
    struct big_plan *p = arg;
    unsigned seq[2] = {0, 0};
    p->sum[0] = p->sum[1] = 14695981039346656037ull;
    for (unsigned i = 0; i < p->frames; i++) {
        int kind;
        size_t len = frame_len(i, &kind);
        unsigned char *f = malloc(FRAME_HEAD + len);
        f[0] = (unsigned char)(len >> 24);
        f[1] = (unsigned char)(len >> 16);
        f[2] = (unsigned char)(len >> 8);
        f[3] = (unsigned char)len;
        f[4] = (unsigned char)kind;
        memcpy(f + 5, &seq[kind], 4);
        for (size_t j = 0; j < len; j++)
            f[FRAME_HEAD + j] = frame_byte(kind, seq[kind], j);
        p->sum[kind] = fnv(p->sum[kind], f + FRAME_HEAD, len);
        seq[kind]++;
        if ((kind ? reactor_send_low : reactor_send)(R, p->id, f, FRAME_HEAD + len) != 0)
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_64mib_with_interleaved_low_sends_arrives_intact_and_framed)
{
    start_reactor(0, 0);
    int peer;
    struct big_plan plan = {0};
    plan.id = reactor_to_raw(OWNER_A, &peer, 0);
    size_t total = 0;
    while (total < BIG_TOTAL) {
        int kind;
        total += FRAME_HEAD + frame_len(plan.frames++, &kind);
    }
    pthread_t th;
    pthread_create(&th, NULL, big_sender, &plan);

    unsigned seq[2] = {0, 0}, frames = 0;
    uint64_t sum[2] = {14695981039346656037ull, 14695981039346656037ull};
    size_t got = 0;
    unsigned char *payload = malloc(MIB);
    while (frames < plan.frames) {
        unsigned char head[FRAME_HEAD];
        read_all(peer, head, FRAME_HEAD);
        size_t len = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
        int kind = head[4];
        unsigned s;
        memcpy(&s, head + 5, 4);
        ck_assert_msg(kind == 0 || kind == 1, "bad framing at byte %zu", got);
        ck_assert_msg(len >= 1 && len <= MIB, "bad frame length %zu at byte %zu", len, got);
        ck_assert_msg(s == seq[kind], "kind %d frame %u arrived, expected %u", kind, s, seq[kind]);
        read_all(peer, payload, len);
        for (size_t j = 0; j < len; j++)
            if (payload[j] != frame_byte(kind, s, j))
                ck_abort_msg("kind %d frame %u corrupt at %zu", kind, s, j);
        sum[kind] = fnv(sum[kind], payload, len);
        seq[kind]++;
        frames++;
        got += FRAME_HEAD + len;
    }
    void *failed;
    pthread_join(th, &failed);
    ck_assert_ptr_null(failed);
    ck_assert_uint_eq(got, total);
    ck_assert_uint_eq(sum[0], plan.sum[0]);
    ck_assert_uint_eq(sum[1], plan.sum[1]);
    struct reactor_stats st;
    fence(); /* the counters are updated after the syscalls return */
    reactor_get_stats(R, &st);
    ck_assert_uint_eq(st.bytes_out, total);
    free(payload);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_low_priority_data_waits_for_normal_data_of_the_same_batch)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    gate_close();
    write_all(peer, "x", 1); /* its DATA event holds the reactor thread at the gate */
    gate_wait_blocked();
    ck_assert_int_eq(reactor_send_low(R, id, dup_bytes("low1", 4), 4), 0);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("norm", 4), 4), 0);
    ck_assert_int_eq(reactor_send_low(R, id, dup_bytes("low2", 4), 4), 0);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("NORM", 4), 4), 0);
    gate_open();
    char buf[16];
    read_all(peer, buf, 16);
    ck_assert_mem_eq(buf, "normNORMlow1low2", 16);
    close(peer);
    stop_reactor();
}
END_TEST

/* A send queued (low priority data always is) makes the sends after it queue too (a direct
 * write would overtake it); the reactor then writes the batch in few writes, low data last. */
START_TEST(test_small_sends_in_one_batch_are_coalesced_into_few_writes)
{
    enum { N = 1000 };
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    gate_close();
    write_all(peer, "x", 1);
    gate_wait_blocked();
    struct reactor_stats before, after;
    reactor_get_stats(R, &before);
    ck_assert_int_eq(reactor_send_low(R, id, dup_bytes("L", 1), 1), 0);
    for (int i = 0; i < N; i++) {
        char msg[24];
        snprintf(msg, sizeof msg, "msg-%04d\n", i);
        ck_assert_int_eq(reactor_send(R, id, dup_bytes(msg, 9), 9), 0);
    }
    gate_open();
    static char buf[N * 9 + 1];
    read_all(peer, buf, sizeof buf);
    for (int i = 0; i < N; i++) {
        char msg[24];
        snprintf(msg, sizeof msg, "msg-%04d\n", i);
        ck_assert_mem_eq(buf + i * 9, msg, 9);
    }
    ck_assert_int_eq(buf[N * 9], 'L');
    fence();
    reactor_get_stats(R, &after);
    ck_assert_msg(after.writes - before.writes <= 4, "%d sends took %llu writes", N,
                  (unsigned long long)(after.writes - before.writes));
    close(peer);
    stop_reactor();
}
END_TEST

/* ---- direct writes (a worker writes an idle socket itself) ---- */

START_TEST(test_direct_write_goes_out_while_the_reactor_thread_is_busy)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    gate_close();
    write_all(peer, "x", 1);
    gate_wait_blocked(); /* the reactor thread is stuck in deliver from here on */
    struct reactor_stats before, after;
    reactor_get_stats(R, &before);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("direct-1", 8), 8), 0);
    /* The second send in the same reactor turn is left to the reactor (coalescing). */
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("queued-2", 8), 8), 0);
    char buf[16];
    read_all(peer, buf, 8);
    ck_assert_mem_eq(buf, "direct-1", 8);
    reactor_get_stats(R, &after);
    ck_assert_uint_eq(after.writes - before.writes, 1);
    ck_assert_uint_eq(after.bytes_out - before.bytes_out, 8);
    gate_open();
    read_all(peer, buf + 8, 8);
    ck_assert_mem_eq(buf, "direct-1queued-2", 16);
    close(peer);
    stop_reactor();
}
END_TEST

/* A direct write the kernel takes only part of queues the rest; later sends queue behind it
 * (none is written directly while the reactor holds output) and the stream stays in order. */
/* ---- read filters ---- */

struct tfilter {
    atomic_int reads, released;
};

/* Drops every 'x'; the rest goes on to the owner. */
static size_t drop_x(void *ud, int id, char *data, size_t size, char **out)
{
    struct tfilter *f = ud;
    (void)id;
    if (!data) {
        atomic_fetch_add(&f->released, 1);
        return 0;
    }
    atomic_fetch_add(&f->reads, 1);
    size_t w = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] != 'x')
            data[w++] = data[i];
    if (w == 0) {
        free(data);
        return 0;
    }
    *out = data;
    return w;
}

START_TEST(test_read_filter_sees_input_first_and_is_released_once_on_close)
{
    static struct tfilter f;
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    ck_assert_int_eq(reactor_set_filter(R, id, drop_x, &f), 0);
    ck_assert_int_eq(reactor_set_filter(R, id, drop_x, &f), -1); /* one per socket */
    ck_assert_int_eq(reactor_set_filter(R, -1, drop_x, &f), -1);
    write_all(peer, "xxxx", 4);
    while (atomic_load(&f.reads) == 0)
        sched_yield();
    write_all(peer, "axbxc", 5);
    expect_data(id, "abc"); /* all-'x' input delivered nothing */
    ck_assert_int_eq(atomic_load(&f.released), 0);
    close(peer); /* EOF: half-closed, the filter stays */
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_int_eq(t->ev->ud, 1);
    tev_free(t);
    ck_assert_int_eq(atomic_load(&f.released), 0);
    ck_assert_int_eq(reactor_close(R, OWNER_A, id), 0);
    tev_free(expect_event(REACTOR_CLOSE, id)); /* released before the CLOSE went out */
    ck_assert_int_eq(atomic_load(&f.released), 1);
    stop_reactor();
    ck_assert_int_eq(atomic_load(&f.released), 1);
}
END_TEST

START_TEST(test_partial_direct_write_queues_the_rest_and_later_sends_keep_order)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 64 * 1024);
    gate_close();
    write_all(peer, "x", 1);
    gate_wait_blocked();
    size_t at = 0;
    ck_assert_int_eq(reactor_send(R, id, pattern(at, 8 * MIB), 8 * MIB), 0); /* too big */
    at += 8 * MIB;
    for (int i = 0; i < 100; i++, at += 7)
        ck_assert_int_eq(reactor_send(R, id, pattern(at, 7), 7), 0);
    ck_assert_int_eq(reactor_send(R, id, pattern(at, MIB), MIB), 0);
    at += MIB;
    /* The reactor thread is still blocked: only the direct write's part can be readable. */
    struct pollfd p = {peer, POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, WAIT_MS), 1);
    gate_open();
    ck_assert_uint_eq(read_stream(peer, at, 1), at);
    fence();
    /* Drained: the socket is idle again, so this one goes out directly once more. */
    ck_assert_int_eq(reactor_send(R, id, pattern(at, 5), 5), 0);
    ck_assert_uint_eq(read_stream(peer, 5, 0), 5);
    close(peer);
    stop_reactor();
}
END_TEST

struct stream_arg {
    int id;
    size_t total;
};

/* Sends pattern() in pieces of varying size (9 bytes to 256 KiB), so the socket keeps moving
 * between idle (direct writes, some partial, some refused with EAGAIN) and queued. */
static void *stream_sender(void *arg)
{
    struct stream_arg *a = arg;
    size_t at = 0;
    unsigned seed = 12345;
    while (at < a->total) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 8) % 4 == 0 ? 9 : ((seed >> 12) % (256 * 1024)) + 1;
        if (n > a->total - at)
            n = a->total - at;
        ck_assert_int_eq(reactor_send(R, a->id, pattern(at, n), n), 0);
        at += n;
    }
    return NULL;
}

START_TEST(test_stream_through_full_buffers_mixes_direct_and_queued_writes_in_order)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 32 * 1024);
    struct stream_arg a = {id, 48 * MIB};
    pthread_t th;
    pthread_create(&th, NULL, stream_sender, &a);
    ck_assert_uint_eq(read_stream(peer, a.total, 1), a.total); /* slow reader: 256 KiB a read */
    pthread_join(th, NULL);
    close(peer);
    stop_reactor();
}
END_TEST

/* A close asked after a send flushes it, and a send asked after the close is not written
 * directly ahead of it: it is dropped, as before direct writes. */
START_TEST(test_send_after_close_is_not_written_directly)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    gate_close();
    write_all(peer, "x", 1);
    gate_wait_blocked();
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("before", 6), 6), 0);
    ck_assert_int_eq(reactor_close(R, OWNER_A, id), 0);
    reactor_send(R, id, dup_bytes("after", 5), 5); /* still open: queued behind the close */
    gate_open();
    char buf[16];
    ck_assert_uint_eq(read_stream(peer, sizeof buf, 0), 6);
    tev_free(expect_event(REACTOR_CLOSE, id));
    close(peer);
    stop_reactor();
}
END_TEST

struct race_arg {
    int id;
    _Atomic int sent, stop;
};

static void *race_sender(void *arg)
{
    struct race_arg *a = arg;
    while (!atomic_load(&a->stop))
        if (reactor_send(R, a->id, pattern(0, 100), 100) == 0)
            atomic_fetch_add(&a->sent, 1);
    return NULL;
}

/* Workers writing while the owner shuts the socket down and the peer goes away: the fd is
 * closed only between two direct writes (never under one), later sends fail cleanly, and a new
 * socket that takes a freed fd number gets none of the old socket's bytes. */
START_TEST(test_close_racing_direct_writes_never_writes_a_reused_fd)
{
    start_reactor(0, 0);
    for (int round = 0; round < 20; round++) {
        int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
        struct race_arg a = {.id = id};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, race_sender, &a);
        while (atomic_load(&a.sent) < 50)
            sched_yield();
        if (round % 2)
            reactor_shutdown(R, OWNER_A, id);
        else
            close(peer); /* the peer goes away: a write fails, the reactor closes it */
        tev_free(expect_event(REACTOR_CLOSE, id));
        int peer2, id2 = reactor_to_raw(OWNER_B, &peer2, 0); /* may reuse the fd number */
        atomic_store(&a.stop, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(reactor_send(R, id, dup_bytes("z", 1), 1), -1);
        ck_assert_int_eq(reactor_send(R, id2, dup_bytes("new", 3), 3), 0);
        char buf[3];
        read_all(peer2, buf, 3);
        ck_assert_mem_eq(buf, "new", 3); /* nothing of the old socket came first */
        reactor_shutdown(R, OWNER_B, id2);
        tev_free(expect_event(REACTOR_CLOSE, id2));
        close(peer2);
        if (round % 2)
            close(peer);
        drop_events();
    }
    stop_reactor();
}
END_TEST

START_TEST(test_sends_queued_while_connecting_go_out_once_open)
{
    start_reactor(0, 0);
    int port, lfd = raw_listen(&port, 0);
    int id = reactor_connect(R, OWNER_A, "127.0.0.1", port);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("early", 5), 5), 0);
    int peer = raw_accept(lfd);
    char buf[5];
    read_all(peer, buf, 5);
    ck_assert_mem_eq(buf, "early", 5);
    tev_free(expect_event(REACTOR_OPEN, id));
    close(peer);
    close(lfd);
    stop_reactor();
}
END_TEST

START_TEST(test_high_water_warning_then_drained_warning)
{
    start_reactor(256 * 1024, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 256 * 1024);
    send_pattern(id, 16 * MIB); /* far more than the kernel buffers hold */
    struct tev *t = expect_event(REACTOR_WARNING, id);
    ck_assert_uint_eq(t->owner, OWNER_A);
    ck_assert_int_gt(t->ev->ud, 256);
    int last = t->ev->ud;
    tev_free(t);
    ck_assert_uint_eq(read_stream(peer, 16 * MIB, 1), 16 * MIB);
    /* Warnings come at each doubling, so they grow, and a single 0 follows the drain. */
    while ((t = expect_event(REACTOR_WARNING, id))->ev->ud != 0) {
        ck_assert_int_gt(t->ev->ud, last);
        last = t->ev->ud;
        tev_free(t);
    }
    tev_free(t);
    fence();
    ck_assert_int_eq(count_events(REACTOR_WARNING, id), 0);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_close_flushes_pending_output_before_eof)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 256 * 1024);
    send_pattern(id, 8 * MIB);
    ck_assert_int_eq(reactor_close(R, OWNER_B, id), 0);
    fence();
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("late", 4), 4), -1); /* closing */
    ck_assert_uint_eq(read_to_eof(peer, 1), 8 * MIB);
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_uint_eq(t->owner, OWNER_B); /* the CLOSE answers whoever asked */
    tev_free(t);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_shutdown_drops_unsent_output_and_closes_at_once)
{
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 256 * 1024);
    send_pattern(id, 32 * MIB); /* far more than the kernel buffers hold */
    ck_assert_int_eq(reactor_shutdown(R, OWNER_A, id), 0);
    tev_free(expect_event(REACTOR_CLOSE, id)); /* while the peer reads nothing */
    size_t got = read_to_eof(peer, 1);
    ck_assert_uint_lt(got, 32 * MIB);
    close(peer);
    stop_reactor();
}
END_TEST

/* The largest send buffer TCP autotuning may give a socket (tcp_wmem's maximum). */
static size_t kernel_sndbuf_max(void)
{
    unsigned long lo = 0, def = 0, max = 4 * MIB;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3)
            max = 4 * MIB;
        fclose(f);
    }
    return max;
}

START_TEST(test_output_past_the_limit_closes_the_socket)
{
    output_limit = 2 * MIB;
    start_reactor(0, 0);
    int peer, id = reactor_to_raw(OWNER_A, &peer, 64 * 1024); /* the peer reads nothing */
    size_t sent = 0;
    while (sent < 64 * MIB && reactor_send(R, id, pattern(sent, MIB), MIB) == 0)
        sent += MIB;
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_str_eq(t->ev->text, "output limit exceeded");
    ck_assert_int_eq(t->ev->ud, 0);
    tev_free(t);
    /* At most what the kernel buffers hold (direct writes fill the send buffer up to its
     * autotuned maximum) plus the limit: far below the 64 MiB offered. */
    ck_assert_uint_lt(read_to_eof(peer, 1), kernel_sndbuf_max() + 2 * MIB);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("a", 1), 1), -1);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_send_to_invalid_or_closed_id_returns_minus_one)
{
    start_reactor(0, 16);
    ck_assert_int_eq(reactor_send(R, -1, dup_bytes("a", 1), 1), -1);
    ck_assert_int_eq(reactor_send(R, 16, dup_bytes("a", 1), 1), -1);
    ck_assert_int_eq(reactor_send(R, 5, dup_bytes("a", 1), 1), -1);
    ck_assert_int_eq(reactor_send_low(R, 5, dup_bytes("a", 1), 1), -1);
    int port, lid = reactor_listener(OWNER_A, &port);
    ck_assert_int_eq(reactor_send(R, lid, dup_bytes("a", 1), 1), -1); /* a listener */
    int peer, id = reactor_to_raw(OWNER_A, &peer, 0);
    close(peer);
    tev_free(expect_event(REACTOR_CLOSE, id)); /* EOF: half-closed, still writable */
    ck_assert_int_eq(reactor_close(R, OWNER_A, id), 0);
    tev_free(expect_event(REACTOR_CLOSE, id)); /* now released */
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("a", 1), 1), -1);
    ck_assert_int_eq(reactor_send_low(R, id, dup_bytes("a", 1), 1), -1);
    stop_reactor(); /* LeakSanitizer checks every refused buffer was freed */
}
END_TEST

/* ---- closing ---- */

START_TEST(test_peer_half_close_keeps_the_write_side_until_close)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    shutdown(peer, SHUT_WR);
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_int_eq(t->ev->ud, 1); /* half-closed: the id is still ours */
    ck_assert_uint_eq(t->size, sizeof(struct reactor_event));
    tev_free(t);
    send_pattern(id, 8 * MIB); /* written after the EOF: all of it still goes out */
    ck_assert_int_eq(reactor_close(R, OWNER_A, id), 0);
    ck_assert_uint_eq(read_to_eof(peer, 1), 8 * MIB);
    t = expect_event(REACTOR_CLOSE, id);
    ck_assert_int_eq(t->ev->ud, 0);
    tev_free(t);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_half_closed_socket_handed_over_tells_the_new_owner)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    shutdown(peer, SHUT_WR);
    tev_free(expect_event(REACTOR_CLOSE, id));
    ck_assert_int_eq(reactor_resume(R, OWNER_B, id), 0); /* abandon + start elsewhere */
    struct tev *t = expect_event(REACTOR_OPEN, id);
    ck_assert_uint_eq(t->owner, OWNER_B);
    tev_free(t);
    t = expect_event(REACTOR_CLOSE, id);
    ck_assert_uint_eq(t->owner, OWNER_B);
    ck_assert_int_eq(t->ev->ud, 1);
    tev_free(t);
    ck_assert_int_eq(reactor_send(R, id, dup_bytes("bye", 3), 3), 0);
    ck_assert_int_eq(reactor_close(R, OWNER_B, id), 0);
    char buf[8];
    read_all(peer, buf, 3);
    ck_assert_mem_eq(buf, "bye", 3);
    tev_free(expect_event(REACTOR_CLOSE, id));
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_half_closed_socket_closes_when_the_peer_is_gone)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    close(peer);
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_int_eq(t->ev->ud, 1);
    tev_free(t);
    /* The first write draws a reset, a later one fails: the reactor releases the id. */
    for (int i = 0; i < 100 && !(t = wait_event(REACTOR_CLOSE, id, 20)); i++)
        reactor_send(R, id, dup_bytes("ping", 4), 4);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ev->ud, 0);
    ck_assert_uint_gt(t->size, sizeof(struct reactor_event)); /* with the write error */
    tev_free(t);
    stop_reactor();
}
END_TEST

START_TEST(test_peer_reset_delivers_close_with_reason)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    struct linger lg = {1, 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(peer);
    struct tev *t = expect_event(REACTOR_CLOSE, id);
    ck_assert_str_eq(t->ev->text, "Connection reset by peer");
    tev_free(t);
    stop_reactor();
}
END_TEST

START_TEST(test_connect_to_closed_port_reports_connection_refused)
{
    start_reactor(0, 0);
    int id = reactor_connect(R, OWNER_A, "127.0.0.1", closed_port());
    ck_assert_int_ge(id, 0);
    struct tev *t = expect_event(REACTOR_ERROR, id);
    ck_assert_uint_eq(t->owner, OWNER_A);
    ck_assert_str_eq(t->ev->text, "Connection refused");
    tev_free(t);
    struct reactor_stats st;
    reactor_get_stats(R, &st);
    ck_assert_int_eq(st.sockets, 0);
    stop_reactor();
}
END_TEST

START_TEST(test_connect_by_name_localhost_opens)
{
    start_reactor(0, 0);
    int port, lfd = raw_listen(&port, 0);
    int id = reactor_connect(R, OWNER_A, "localhost", port);
    ck_assert_int_ge(id, 0);
    int peer = raw_accept(lfd);
    struct tev *t = expect_event(REACTOR_OPEN, id);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ck_assert_str_eq(t->ev->text, want);
    tev_free(t);
    write_all(peer, "hi", 2);
    expect_data(id, "hi");
    close(peer);
    close(lfd);
    stop_reactor();
}
END_TEST

START_TEST(test_connect_with_invalid_port_reports_error)
{
    start_reactor(0, 0);
    int id = reactor_connect(R, OWNER_A, "127.0.0.1", 0);
    struct tev *t = expect_event(REACTOR_ERROR, id);
    ck_assert_str_eq(t->ev->text, "Invalid port");
    tev_free(t);
    stop_reactor();
}
END_TEST

START_TEST(test_close_and_shutdown_of_unknown_ids_are_noops)
{
    start_reactor(0, 64);
    ck_assert_int_eq(reactor_close(R, OWNER_A, 40), 0);
    ck_assert_int_eq(reactor_shutdown(R, OWNER_A, 41), 0);
    ck_assert_int_eq(reactor_close(R, OWNER_A, 64), -1);
    ck_assert_int_eq(reactor_shutdown(R, OWNER_A, -3), -1);
    fence();
    ck_assert_int_eq(count_events(ANY, ANY), 0);
    stop_reactor();
}
END_TEST

START_TEST(test_close_owner_closes_all_its_sockets_without_events)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peers[3];
    for (int i = 0; i < 3; i++)
        accept_raw(lid, port, OWNER_A, &peers[i]);
    int out_peer, out_id = reactor_to_raw(OWNER_A, &out_peer, 0);
    ck_assert_int_eq(reactor_send(R, out_id, dup_bytes("bye", 3), 3), 0);
    int b_peer, b_id = accept_raw(lid, port, OWNER_B, &b_peer);

    reactor_close_owner(R, OWNER_A);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(read_to_eof(peers[i], 0), 0);
        close(peers[i]);
    }
    char buf[3];
    read_all(out_peer, buf, 3); /* output already queued still goes out first */
    ck_assert_mem_eq(buf, "bye", 3);
    ck_assert_uint_eq(read_to_eof(out_peer, 0), 0);
    fence();
    int fd = raw_socket(0);
    ck_assert_int_eq(raw_connect_fd(fd, port), -1); /* the listener is gone too */
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(fd);
    ck_assert_int_eq(count_events(ANY, ANY), 0);

    write_all(b_peer, "still", 5); /* OWNER_B's socket is untouched */
    expect_data(b_id, "still");
    close(out_peer);
    close(b_peer);
    stop_reactor();
}
END_TEST

START_TEST(test_freed_id_is_not_reused_by_next_connect)
{
    start_reactor(0, 4);
    int port = closed_port(), seen[5];
    for (int i = 0; i < 5; i++) {
        seen[i] = reactor_connect(R, OWNER_A, "127.0.0.1", port);
        ck_assert_int_ge(seen[i], 0);
        tev_free(expect_event(REACTOR_ERROR, seen[i])); /* the slot is free again */
    }
    /* Every id of the table is used once before the first freed one comes back. */
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            ck_assert_int_ne(seen[i], seen[j]);
    ck_assert_int_eq(seen[4], seen[0]);
    stop_reactor();
}
END_TEST

START_TEST(test_pause_stops_data_until_resume)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    ck_assert_int_eq(reactor_pause(R, OWNER_A, id), 0);
    fence();
    write_all(peer, "abc", 3);
    fence();
    ck_assert_int_eq(count_events(REACTOR_DATA, id), 0);
    ck_assert_int_eq(reactor_resume(R, OWNER_A, id), 0);
    tev_free(expect_event(REACTOR_OPEN, id));
    expect_data(id, "abc");
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_resume_of_unknown_id_reports_error)
{
    start_reactor(0, 0);
    ck_assert_int_eq(reactor_resume(R, OWNER_B, 42), 0);
    struct tev *t = expect_event(REACTOR_ERROR, 42);
    ck_assert_uint_eq(t->owner, OWNER_B);
    ck_assert_str_eq(t->ev->text, "invalid socket");
    tev_free(t);
    stop_reactor();
}
END_TEST

START_TEST(test_out_of_fds_on_accept_refuses_with_the_spare_fd_and_serving_goes_on)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = raw_socket(0);
    struct rlimit saved, low;
    getrlimit(RLIMIT_NOFILE, &saved);
    int lowest_free = dup(0);
    close(lowest_free);
    low = saved;
    low.rlim_cur = (rlim_t)lowest_free; /* no new fd can be made */
    uint64_t warns = log_count(LOG_WARN);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(raw_connect_fd(fds[i], port), 0); /* queued by the kernel */
    /* the first is accepted on the spare fd and closed: the client hears it at once */
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 0);
    for (int i = 0; i < 300 && log_count(LOG_WARN) == warns; i++) /* the once-a-second line */
        usleep(10000);
    ck_assert_uint_gt(log_count(LOG_WARN), warns);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    int late = raw_connect(port);
    int accepted = 0;
    struct tev *t;
    while ((t = wait_event(REACTOR_ACCEPT, lid, 500))) {
        accepted++;
        tev_free(t);
    }
    ck_assert_int_ge(accepted, 1); /* serving goes on: at least the late one */
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    close(late);
    stop_reactor();
}
END_TEST

START_TEST(test_stats_count_sockets_and_bytes)
{
    start_reactor(0, 0);
    struct reactor_stats st;
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer, id = accept_raw(lid, port, OWNER_A, &peer);
    ck_assert_int_eq(reactor_nodelay(R, id), 0);
    ck_assert_int_eq(reactor_nodelay(R, -1), -1);
    write_all(peer, "12345", 5);
    expect_data(id, "12345");
    reactor_send(R, id, dup_bytes("abc", 3), 3);
    char buf[3];
    read_all(peer, buf, 3);
    fence(); /* the counters are updated after the syscalls return */
    reactor_get_stats(R, &st);
    ck_assert_int_eq(st.sockets, 2);
    ck_assert_uint_eq(st.bytes_in, 5);
    ck_assert_uint_eq(st.bytes_out, 3);
    ck_assert_uint_ge(st.reads, 1);
    ck_assert_uint_ge(st.writes, 1);
    reactor_close(R, OWNER_A, id);
    reactor_close(R, OWNER_A, lid);
    tev_free(expect_event(REACTOR_CLOSE, id));
    tev_free(expect_event(REACTOR_CLOSE, lid));
    reactor_get_stats(R, &st);
    ck_assert_int_eq(st.sockets, 0);
    close(peer);
    stop_reactor();
}
END_TEST

START_TEST(test_destroy_with_open_sockets_and_queued_data_is_leak_free)
{
    start_reactor(0, 0);
    int port, lid = reactor_listener(OWNER_A, &port);
    int peer1, id1 = accept_raw(lid, port, OWNER_A, &peer1);
    int unstarted = raw_connect(port); /* accepted, never resumed */
    tev_free(expect_event(REACTOR_ACCEPT, lid));
    int peer2, id2 = reactor_to_raw(OWNER_B, &peer2, 256 * 1024);
    send_pattern(id2, 8 * MIB); /* stuck: the peer does not read */
    ck_assert_int_eq(reactor_send_low(R, id1, pattern(0, MIB), MIB), 0);
    reactor_connect(R, OWNER_B, "127.0.0.1", closed_port());
    gate_close();
    write_all(peer1, "x", 1);
    gate_wait_blocked(); /* these commands are still queued when destroy begins */
    for (int i = 0; i < 100; i++)
        reactor_send(R, id1, dup_bytes("queued", 6), 6);
    reactor_connect(R, OWNER_B, "127.0.0.1", port);
    gate_open();
    stop_reactor();
    read_to_eof(peer1, 0); /* destroy closed it: EOF, not a timeout */
    close(peer1);
    close(peer2);
    close(unstarted);
}
END_TEST

/* With an argument, only the tests whose names contain it run. */
static Suite *reactor_suite(const char *only)
{
    Suite *s = suite_create("reactor");
    TCase *tc = tcase_create("reactor");
    tcase_set_timeout(tc, 60);
#define ADD(t)                                                                                     \
    if (!only || strstr(#t, only))                                                                 \
    tcase_add_test(tc, t)
    ADD(test_listen_on_port_zero_returns_real_port);
    ADD(test_listen_on_busy_port_fails_with_address_in_use);
    ADD(test_listen_on_ipv6_loopback_accepts_ipv6_peer);
    ADD(test_listener_accepts_only_after_resume);
    ADD(test_connect_accept_resume_then_echo_round_trip);
    ADD(test_accepted_socket_is_not_read_until_resume);
    ADD(test_thousand_concurrent_connections_each_echo);
    ADD(test_64mib_with_interleaved_low_sends_arrives_intact_and_framed);
    ADD(test_low_priority_data_waits_for_normal_data_of_the_same_batch);
    ADD(test_small_sends_in_one_batch_are_coalesced_into_few_writes);
    ADD(test_direct_write_goes_out_while_the_reactor_thread_is_busy);
    ADD(test_partial_direct_write_queues_the_rest_and_later_sends_keep_order);
    ADD(test_read_filter_sees_input_first_and_is_released_once_on_close);
    ADD(test_stream_through_full_buffers_mixes_direct_and_queued_writes_in_order);
    ADD(test_send_after_close_is_not_written_directly);
    ADD(test_close_racing_direct_writes_never_writes_a_reused_fd);
    ADD(test_sends_queued_while_connecting_go_out_once_open);
    ADD(test_high_water_warning_then_drained_warning);
    ADD(test_close_flushes_pending_output_before_eof);
    ADD(test_shutdown_drops_unsent_output_and_closes_at_once);
    ADD(test_send_to_invalid_or_closed_id_returns_minus_one);
    ADD(test_output_past_the_limit_closes_the_socket);
    ADD(test_accept_limit_counts_live_sockets_only);
    ADD(test_udp_datagram_in_and_answer_out);
    ADD(test_peer_half_close_keeps_the_write_side_until_close);
    ADD(test_half_closed_socket_closes_when_the_peer_is_gone);
    ADD(test_half_closed_socket_handed_over_tells_the_new_owner);
    ADD(test_peer_reset_delivers_close_with_reason);
    ADD(test_connect_to_closed_port_reports_connection_refused);
    ADD(test_connect_by_name_localhost_opens);
    ADD(test_connect_with_invalid_port_reports_error);
    ADD(test_close_and_shutdown_of_unknown_ids_are_noops);
    ADD(test_close_owner_closes_all_its_sockets_without_events);
    ADD(test_freed_id_is_not_reused_by_next_connect);
    ADD(test_pause_stops_data_until_resume);
    ADD(test_resume_of_unknown_id_reports_error);
    ADD(test_out_of_fds_on_accept_refuses_with_the_spare_fd_and_serving_goes_on);
    ADD(test_stats_count_sockets_and_bytes);
    ADD(test_destroy_with_open_sockets_and_queued_data_is_leak_free);
#undef ADD
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    SRunner *sr = srunner_create(reactor_suite(argc > 1 ? argv[1] : NULL));
    srunner_run_all(sr, getenv("CK_VERBOSITY") ? CK_VERBOSE : CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
