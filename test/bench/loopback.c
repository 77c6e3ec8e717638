/* loopback: the physical reference for the benchmark suite, measured on 127.0.0.1 in the same
 * run as the skyjet workloads. Two measurements, each over one fresh TCP connection between a
 * server thread and the main (client) thread:
 *   ping-pong  the client writes 1 byte, the server echoes it, the client reads it: one round
 *              trip, timed with CLOCK_MONOTONIC around write+read (TCP_NODELAY on both ends);
 *   bulk       the client writes 64 KiB chunks until the duration (or byte cap) is reached, then
 *              shuts its side down; the server counts what it read until EOF. MB/s = bytes the
 *              server read / (first write .. server saw EOF), MB = 10^6 bytes.
 *   ping-pong over N connections at once (-c N, default 64): N client threads, each with its
 *              own connection and echo thread, doing the same; total round trips/s.
 * Output (stdout), one line each:
 *   BENCH name=loopback_pingpong value=<rt/s> unit=rt/s p50_us=.. p90_us=.. p99_us=.. p999_us=..
 *   BENCH name=loopback_pingpong_<N> value=<rt/s> unit=rt/s
 *   BENCH name=loopback_bulk value=<MB/s> unit=MB/s
 * Usage: loopback [-p ping_seconds] [-b bulk_seconds] [-n bulk_max_bytes] [-c connections]
 *        (defaults 2, 2, none, 64)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

enum mode { MODE_ECHO, MODE_SINK };

struct server {
    int listen_fd;
    enum mode mode;
    uint64_t bytes; /* sink: bytes read until EOF */
    double eof_at;  /* sink: monotonic seconds when EOF was seen */
};

static void die(const char *what)
{
    fprintf(stderr, "loopback: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("setsockopt TCP_NODELAY");
}

/* Bind 127.0.0.1 on an ephemeral port; returns the listening fd and the port. */
static int listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0)
        die("bind/listen");
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        die("getsockname");
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_loopback(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    set_nodelay(fd);
    return fd;
}

/* The server thread: accepts one connection, then echoes or sinks until EOF. */
static void *server_main(void *arg)
{
    struct server *srv = arg;
    static char buf[CHUNK];
    int fd = accept(srv->listen_fd, NULL, NULL);
    if (fd < 0)
        die("accept");
    set_nodelay(fd);
    for (;;) {
        ssize_t n = read(fd, buf, srv->mode == MODE_ECHO ? 1 : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("server read");
        if (n == 0)
            break;
        if (srv->mode == MODE_SINK) {
            srv->bytes += (uint64_t)n;
        } else if (write(fd, buf, (size_t)n) != n) {
            die("server write");
        }
    }
    srv->eof_at = now_s();
    close(fd);
    return NULL;
}

static int start_server(struct server *srv, enum mode mode, pthread_t *thread)
{
    uint16_t port;
    memset(srv, 0, sizeof *srv);
    srv->mode = mode;
    srv->listen_fd = listen_loopback(&port);
    if (pthread_create(thread, NULL, server_main, srv) != 0)
        die("pthread_create");
    return connect_loopback(port);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array (q in 0..1). */
static double percentile(const double *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static void bench_pingpong(double seconds)
{
    struct server srv;
    pthread_t thread;
    int fd = start_server(&srv, MODE_ECHO, &thread);
    size_t n = 0, cap = 1 << 16;
    double *lat = malloc(cap * sizeof *lat);
    char c = 'x';
    double start, deadline, t0, t1, elapsed;
    if (!lat)
        die("malloc");
    start = now_s();
    deadline = start + seconds;
    do {
        t0 = now_s();
        if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
            die("ping-pong");
        if (n == cap) {
            cap *= 2;
            lat = realloc(lat, cap * sizeof *lat);
            if (!lat)
                die("realloc");
        }
        t1 = now_s();
        lat[n++] = (t1 - t0) * 1e6;
    } while (t1 < deadline);
    elapsed = t1 - start;
    shutdown(fd, SHUT_WR);
    pthread_join(thread, NULL);
    close(fd);
    close(srv.listen_fd);
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("BENCH name=loopback_pingpong value=%.0f unit=rt/s p50_us=%.1f p90_us=%.1f "
           "p99_us=%.1f p999_us=%.1f\n",
           (double)n / elapsed, percentile(lat, n, 0.50), percentile(lat, n, 0.90),
           percentile(lat, n, 0.99), percentile(lat, n, 0.999));
    free(lat);
}

struct pinger {
    uint16_t port;
    double deadline; /* set by the main thread before the barrier */
    pthread_barrier_t *go;
    uint64_t rts;
};

static void *echo_one(void *arg)
{
    int fd = *(int *)arg;
    char b;
    for (;;) {
        ssize_t n = read(fd, &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (write(fd, &b, 1) != 1)
            break;
    }
    close(fd);
    return NULL;
}

static void *ping_one(void *arg)
{
    struct pinger *p = arg;
    int fd = connect_loopback(p->port);
    char b = 'p';
    pthread_barrier_wait(p->go); /* every connection is up and the deadline set */
    while (now_s() < p->deadline) {
        if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
            die("pingpong many");
        p->rts++;
    }
    close(fd);
    return NULL;
}

static void bench_pingpong_many(double seconds, int n)
{
    uint16_t port;
    int lfd = listen_loopback(&port);
    if (listen(lfd, n) < 0)
        die("listen");
    struct pinger *p = calloc((size_t)n, sizeof *p);
    pthread_t *clients = calloc((size_t)n, sizeof *clients);
    pthread_t *servers = calloc((size_t)n, sizeof *servers);
    int *fds = calloc((size_t)n, sizeof *fds);
    if (!p || !clients || !servers || !fds)
        die("calloc");
    /* The clock starts once all n connections are up (on a loaded machine setting up 64
     * threads can take longer than a smoke run's whole duration). */
    pthread_barrier_t go;
    if (pthread_barrier_init(&go, NULL, (unsigned)n + 1) != 0)
        die("pthread_barrier_init");
    for (int i = 0; i < n; i++) {
        p[i].port = port;
        p[i].go = &go;
        if (pthread_create(&clients[i], NULL, ping_one, &p[i]) != 0)
            die("pthread_create");
        fds[i] = accept(lfd, NULL, NULL);
        if (fds[i] < 0)
            die("accept");
        set_nodelay(fds[i]);
        if (pthread_create(&servers[i], NULL, echo_one, &fds[i]) != 0)
            die("pthread_create");
    }
    double start = now_s();
    for (int i = 0; i < n; i++)
        p[i].deadline = start + seconds;
    pthread_barrier_wait(&go);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(clients[i], NULL);
        total += p[i].rts;
    }
    double elapsed = now_s() - start;
    for (int i = 0; i < n; i++)
        pthread_join(servers[i], NULL);
    close(lfd);
    pthread_barrier_destroy(&go);
    printf("BENCH name=loopback_pingpong_%d value=%.1f unit=rt/s\n", n, (double)total / elapsed);
    free(p);
    free(clients);
    free(servers);
    free(fds);
}

static void bench_bulk(double seconds, uint64_t max_bytes)
{
    static char chunk[CHUNK];
    struct server srv;
    pthread_t thread;
    int fd = start_server(&srv, MODE_SINK, &thread);
    uint64_t sent = 0;
    double start, deadline;
    memset(chunk, 'b', sizeof chunk);
    start = now_s();
    deadline = start + seconds;
    do {
        size_t off = 0;
        while (off < sizeof chunk) {
            ssize_t w = write(fd, chunk + off, sizeof chunk - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                die("bulk write");
            off += (size_t)w;
        }
        sent += sizeof chunk;
    } while (now_s() < deadline && (max_bytes == 0 || sent < max_bytes));
    shutdown(fd, SHUT_WR);
    pthread_join(thread, NULL);
    close(fd);
    close(srv.listen_fd);
    if (srv.bytes != sent) {
        fprintf(stderr, "loopback: bulk: sent %llu bytes, server read %llu\n",
                (unsigned long long)sent, (unsigned long long)srv.bytes);
        exit(1);
    }
    printf("BENCH name=loopback_bulk value=%.1f unit=MB/s\n",
           (double)srv.bytes / 1e6 / (srv.eof_at - start));
}

int main(int argc, char **argv)
{
    double ping_s = 2, bulk_s = 2;
    uint64_t max_bytes = 0;
    int opt, conns = 64;
    while ((opt = getopt(argc, argv, "p:b:n:c:")) != -1) {
        switch (opt) {
        case 'p':
            ping_s = atof(optarg);
            break;
        case 'b':
            bulk_s = atof(optarg);
            break;
        case 'n':
            max_bytes = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        default:
            fprintf(
                stderr,
                "usage: %s [-p ping_seconds] [-b bulk_seconds] [-n bulk_max_bytes] [-c conns]\n",
                argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_pingpong(ping_s);
    if (conns > 0)
        bench_pingpong_many(ping_s, conns);
    bench_bulk(bulk_s, max_bytes);
    return 0;
}
