/* reactor: the thread that owns every socket fd's life (open, read, accept, connect, close),
 * built on a libevent event_base. Other threads talk to it through reactor_* commands (a locked
 * command queue plus an eventfd wake-up; no lock is held across a blocking call), except that
 * reactor_send writes a TCP socket directly from the caller's thread when nothing of that socket
 * is queued (Skynet's direct write; at most once per reactor turn, so bursts stay coalesced)
 * and queues only the rest; a read filter (reactor_set_filter) may take input before the owner
 * does (the cluster fast path). It answers with socket events
 * delivered through the deliver callback given at creation (main.c turns them into PTYPE_SOCKET
 * messages to the socket's owner service). Ownership: data handed to reactor_send belongs to
 * the reactor; the event's `data` buffer belongs to whoever receives the event. */
#ifndef SKYJET_REACTOR_H
#define SKYJET_REACTOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Event types (Skynet's socket message sub-types). */
enum reactor_event_type {
    REACTOR_DATA = 1,   /* bytes arrived: data/size */
    REACTOR_OPEN = 2,   /* connect finished, or a socket was started: text = "ip:port" */
    REACTOR_CLOSE = 3,  /* ud = 0: socket closed and its id released (reset, write error,
                         * close/shutdown done). ud = 1: the peer sent EOF; reading stopped
                         * but the socket stays open for writing until its owner closes it */
    REACTOR_ACCEPT = 4, /* listener accepted: ud = new socket id, text = "ip:port" of peer */
    REACTOR_ERROR = 5, /* connect/IO failed: text = reason ("Connection refused"); socket is gone */
    REACTOR_UDP = 6,   /* a datagram: data/size = payload, followed in the same buffer by ud
                        * bytes of the sender's opaque address (see reactor_udp_unpack) */
    REACTOR_WARNING = 7, /* send queue above high-water: ud = pending KiB; ud = 0 when drained */
};

/* The payload of a PTYPE_SOCKET message: this struct, followed by `text` (NUL-terminated)
 * when there is one. */
struct reactor_event {
    int type;   /* enum reactor_event_type */
    int id;     /* socket id */
    int ud;     /* DATA: size; ACCEPT: new id; WARNING: KiB pending (0 = drained); CLOSE: 1 =
                 * half-closed (see above) */
    int size;   /* DATA: bytes in data */
    char *data; /* DATA: malloc'd bytes, owned by the receiver; NULL otherwise */
    char text[];
};

/* Delivers one event to `owner` (a service handle). `ev` is malloc'd, `size` bytes long; the
 * callback takes ownership of it (and of ev->data). Called on the reactor thread. */
typedef void (*reactor_deliver_fn)(void *ud, uint32_t owner, struct reactor_event *ev, size_t size);

struct reactor_config {
    reactor_deliver_fn deliver;
    void *ud;
    size_t high_water;   /* send-queue warning threshold in bytes; 0 = default 1 MiB */
    int max_sockets;     /* size of the id table; 0 = default 65536 */
    size_t output_limit; /* unsent bytes past which a socket is closed (logged); 0 = none */
};

struct reactor;

struct reactor *reactor_create(const struct reactor_config *cfg);
/* Start the reactor thread. Returns 0 or -errno. */
int reactor_start(struct reactor *r);
/* Ask the thread to stop, join it, close every socket, free everything. */
void reactor_destroy(struct reactor *r);

/* Listen on host:port (port 0 = ephemeral). Done on the reactor thread; the caller waits for the
 * result. Returns the socket id (>= 0) and stores the bound port in *port_out, or returns -1 and
 * writes the reason into err. The listener accepts nothing until reactor_resume(). */
int reactor_listen(struct reactor *r, uint32_t owner, const char *host, int port, int backlog,
                   int *port_out, char *err, size_t errlen);
/* Start a non-blocking connect. Returns the id at once (or -1 if the table is full); the result
 * arrives later as REACTOR_OPEN (text = "ip:port") or REACTOR_ERROR (text = reason). */
int reactor_connect(struct reactor *r, uint32_t owner, const char *host, int port);
/* Begin delivering events for id to owner: for a listener, start accepting; for an accepted or
 * paused socket, start reading (and transfer ownership to `owner`). A REACTOR_OPEN event
 * confirms it. */
int reactor_resume(struct reactor *r, uint32_t owner, int id);
/* Stop reading (flow control) until the next reactor_resume. */
int reactor_pause(struct reactor *r, uint32_t owner, int id);
/* Send bytes; the reactor owns (and frees) data from now on, even on error. reactor_send
 * writes at once on the caller's thread when the socket is open, nothing of it is queued or in
 * flight (no earlier send, close or shutdown still waiting for the reactor) and it was not
 * written directly since the reactor's last wake-up or I/O event (a burst is left to the
 * reactor, which coalesces it into one sendmsg); it queues whatever the kernel did not take.
 * Order per socket is kept either way. Low priority data is
 * always queued, goes out only when the normal queue is empty and never splits a packet.
 * Returns 0, or -1 if the id is not an open socket (data is freed). */
int reactor_send(struct reactor *r, int id, void *data, size_t size);
int reactor_send_low(struct reactor *r, int id, void *data, size_t size);
/* A read filter: fn(ud, id, data, size, &out) runs on the reactor thread for every read of the
 * socket, before its owner hears of it. It takes `data` (malloc'd) and returns the number of
 * bytes to deliver as REACTOR_DATA in *out (malloc'd; 0 = deliver nothing). When the socket is
 * closed or freed (before its id can be reused) it is called once with data == NULL: the
 * filter is gone and ud is the filter's to release. */
typedef size_t (*reactor_filter_fn)(void *ud, int id, char *data, size_t size, char **out);
/* Install fn on an open TCP socket that has none (any thread). Returns 0, or -1 (not open, a
 * filter already set, out of memory): fn is then never called. */
int reactor_set_filter(struct reactor *r, int id, reactor_filter_fn fn, void *ud);
/* Flush pending output, then close; REACTOR_CLOSE follows. */
int reactor_close(struct reactor *r, uint32_t owner, int id);
/* Close at once, dropping unsent output; REACTOR_CLOSE follows. */
int reactor_shutdown(struct reactor *r, uint32_t owner, int id);
int reactor_nodelay(struct reactor *r, int id);
/* Cap a listener's live accepted sockets (those not closed yet, whoever owns them now) at max;
 * 0 = no cap. Connections beyond it are accepted and closed at once. Refused connections and
 * accept errors are logged as one summary line per listener per second. When the process is
 * within its last fds, the listener holding most sockets is refused and paused (100 ms at a
 * time) so the others keep a reserve; with no fd left at all, a spare fd accepts-and-closes. */
int reactor_accept_limit(struct reactor *r, int id, int max);
/* Close every socket owned by a retired service (no events are delivered for them). */
void reactor_close_owner(struct reactor *r, uint32_t owner);

/* UDP. reactor_udp makes a datagram socket that reads at once (no OPEN event): bound to
 * host:port (both unset: unbound IPv4), or with `dial` connected to it. Names are looked up on
 * the caller's thread. Returns the id, or -1 with the reason in err. write (reactor_send) goes
 * to the connected peer; reactor_sendto to an opaque address as REACTOR_UDP gives it (one byte
 * 4|6, 2 bytes port big-endian, 4|16 address bytes). Each datagram goes out whole. */
int reactor_udp(struct reactor *r, uint32_t owner, const char *host, int port, int dial, char *err,
                size_t errlen);
int reactor_udp_connect(struct reactor *r, int id, const char *host, int port, char *err,
                        size_t errlen);
/* Takes data (freed on error too); returns 0, or -1 (bad id or address). */
int reactor_sendto(struct reactor *r, int id, const char *from, size_t fromlen, void *data,
                   size_t size);
/* Opaque address -> sockaddr; 0 or -1 if it is not one. */
int reactor_udp_unpack(const char *from, size_t len, struct sockaddr_storage *ss, socklen_t *sl);

struct reactor_stats {
    int sockets;        /* open sockets */
    uint64_t bytes_in;  /* bytes read, all sockets */
    uint64_t bytes_out; /* bytes written */
    uint64_t writes;    /* write syscalls */
    uint64_t reads;     /* read syscalls that returned data */
};
void reactor_get_stats(struct reactor *r, struct reactor_stats *out);

#endif
