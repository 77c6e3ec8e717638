/* cluster_reply: the reply table of one inbound cluster link (one clusteragent). A request goes
 * to a local service under a session of the table, recorded as session -> the peer's session;
 * the service's RESPONSE or ERROR is then framed (wire-format.md B.5) and written to the link by
 * the thread that sends it (service.h's reply hook), without waking the agent. The same hook
 * sees the link's DATA events on the reactor thread: while the agent holds no earlier bytes, the
 * leading frames that are plain calls to an @name the agent resolved before are sent to their
 * service from there (the request filter); everything else goes to the agent as before.
 * Lua module "skynet.cluster.reply" (the agent's side); the C functions below are what the
 * hook, the Lua binding and the unit tests use. Thread-safe: one mutex per table. */
#ifndef SKYJET_CLUSTER_REPLY_H
#define SKYJET_CLUSTER_REPLY_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* The message type of the agent's "in flight reached 0" wake-up (session 0, no data). */
#define CLUSTER_REPLY_PTYPE 0 /* PTYPE_TEXT */

/* What the table does to the world (the reactor and the services in the node; fakes in the
 * unit tests). */
struct cluster_reply_io {
    /* Write one frame to socket fd; takes data (freed on error too). `low`: a part of a split
     * reply, written at low priority as Skynet does. Called with the table's lock held. */
    void (*write)(void *ud, int fd, void *data, size_t size, int low);
    /* Send an empty message (service_send); called without the lock. */
    void (*send)(void *ud, uint32_t source, uint32_t dest, int type, int session);
};

struct cluster_reply;

/* A table for the link on socket fd of agent `agent` ([cluster] max_pending: requests in
 * flight the filter may add to). The error texts are what a failed call raises in the agent's
 * Lua (skynet.lua's "call failed" texts): `failed_with` is followed by the service's error
 * text, `failed` is used when there is none. NULL when out of memory. */
struct cluster_reply *cluster_reply_new(uint32_t agent, int fd, size_t max_pending,
                                        const struct cluster_reply_io *io, void *ud,
                                        const char *failed_with, size_t with_len,
                                        const char *failed, size_t failed_len);
/* Record a request to service `target` under `session` (0: the table picks a free one of its
 * own range) for the peer's session `remote`. Returns the session, or -1 (closed, the session is
 * in the table already, or out of memory). */
int cluster_reply_add(struct cluster_reply *t, int session, uint32_t remote, uint32_t target);
/* Take a request back (it could not be sent). 0, or -1 when it was not in the table. */
int cluster_reply_cancel(struct cluster_reply *t, int session);
/* The hook: a RESPONSE (type 1) or ERROR (type 7) for `session`. Returns 0 (not ours; data
 * untouched) or 1: taken, framed and written (or dropped once the link is closed), data freed.
 * When the count drops to 0 with a watch armed, the agent gets a CLUSTER_REPLY_PTYPE message.
 * A socket event (type 6) goes through the request filter: 1 when all of it was served (event
 * freed), 0 when it goes on to the agent (a DATA event without the frames served). */
int cluster_reply_offer(struct cluster_reply *t, int type, int session, void *data, size_t size);
/* Requests in flight (answers not written yet). */
size_t cluster_reply_count(struct cluster_reply *t);
/* The count; when it is not 0, the agent is woken once it reaches 0. */
size_t cluster_reply_watch(struct cluster_reply *t);
/* The link is closing: nothing more is written (answers still arriving are dropped) and no
 * request is added; each service still owing an answer gets an ERROR with session 0 from the
 * agent (what skynet.exit tells the services it waits on). Call before closing the socket:
 * once this returns, no write is under way. */
void cluster_reply_close(struct cluster_reply *t);
/* The agent has handled every DATA event it received (`received` of them counted since the
 * start), holds no partial frame, is not waiting in its frame loop and has `lua_inflight`
 * requests of its own in flight: the filter may serve the frames that come next. */
void cluster_reply_caught_up(struct cluster_reply *t, uint64_t received, size_t lua_inflight);
/* The filter serves nothing more (the node is stopping). */
void cluster_reply_stop_filter(struct cluster_reply *t);
/* The agent resolved @name (as on the wire, len bytes) to handle; the filter may use it (up to
 * a few names per link) until flushed (the registry changed). */
void cluster_reply_name(struct cluster_reply *t, const char *name, size_t len, uint32_t handle);
void cluster_reply_flush_names(struct cluster_reply *t);
void cluster_reply_free(struct cluster_reply *t);

int luaopen_cluster_reply(lua_State *L);

#endif
