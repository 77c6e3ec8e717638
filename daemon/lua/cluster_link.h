/* cluster_link: the client side's fast path of one cluster sender (issue 14), exposed to Lua as
 * package "skynet.cluster.link". A link holds a sender's session counter and the calls that
 * callers framed and wrote themselves; a read filter on the sender's connection (reactor thread)
 * answers their single-part replies straight into the callers' queues. The frame cutter below is
 * pure (no locks, no I/O) so unit tests and the fuzz harness drive it directly. */
#ifndef SKYJET_CLUSTER_LINK_H
#define SKYJET_CLUSTER_LINK_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Cuts a byte stream into frames (u16 big-endian body length + body, wire-format.md B.1),
 * across reads: `part` holds a frame begun in an earlier read (at most 2 + 65535 bytes). */
struct link_cutter {
    uint8_t *part;
    size_t len, cap;
};

/* Offered every whole frame (header included); returns 1 when it consumed it, 0 to pass it. */
typedef int (*link_take_fn)(void *ud, const uint8_t *frame, size_t size);

/* Feed n bytes of data (malloc'd; taken over). Every whole frame is offered to take, in order;
 * the frames it passes are returned, in order and whole, in *out (malloc'd, possibly data
 * itself) with their total size as the result (0: nothing, *out = NULL). A trailing partial
 * frame stays in the cutter. Returns (size_t)-1 with nothing kept when out of memory. */
size_t link_cut(struct link_cutter *c, uint8_t *data, size_t n, link_take_fn take, void *ud,
                uint8_t **out);
void link_cutter_free(struct link_cutter *c);

int luaopen_cluster_link(lua_State *L);

#endif
