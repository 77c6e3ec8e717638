/* cluster_core: the C codec of the cluster protocol (wire-format.md Part B), exposed to Lua as
 * package "skynet.cluster.core" (alias "cluster.core"). Pure functions; any thread.
 * Decoders never trust the peer: every length is checked against the bytes present and
 * against the message-size cap (cluster_core_set_max_message). */
#ifndef SKYJET_CLUSTER_CORE_H
#define SKYJET_CLUSTER_CORE_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_CHUNK 32768             /* part size of split messages */
#define CLUSTER_DEFAULT_MAX (64u << 20) /* default cap on one assembled message */

/* Process-wide cap on the declared total of a large request/response (bytes). */
void cluster_core_set_max_message(size_t bytes);
size_t cluster_core_max_message(void);

/* One frame: head (hlen bytes) then chunk (clen bytes) make its body. Returns 0, or -1 to stop. */
typedef int (*cluster_core_frame_fn)(void *ud, const uint8_t *head, size_t hlen,
                                     const uint8_t *chunk, size_t clen);
/* The frames of the response to `session` carrying msg (n bytes), in order (B.5): one frame for
 * an error text (truncated to CLUSTER_CHUNK bytes) or an ok reply up to CLUSTER_CHUNK bytes, else
 * a 02 header and 03/04 parts. Returns the number of frames, or -1 (fn stopped, or n is above
 * the protocol's 2^31-1). */
int cluster_core_response(uint32_t session, int ok, const void *msg, size_t n,
                          cluster_core_frame_fn fn, void *ud);
/* A frame (2-byte big-endian body length, head, chunk) in a malloc'd buffer of *size bytes, or
 * NULL when out of memory. */
void *cluster_core_frame(const uint8_t *head, size_t hlen, const uint8_t *chunk, size_t clen,
                         size_t *size);
#define CLUSTER_MAX_SESSION 0x7fffffff /* sessions are 1 .. 2^31-1 (B.4) */
#define CLUSTER_MAX_PAYLOAD 0x7fffffff /* Skynet keeps sizes in C ints (A.8) */
#define CLUSTER_MAX_NAME 255
/* The largest body we build: a named single request, 1 + 1 + 255 + 4 + 32767 bytes (B.10). */
#define CLUSTER_MAX_BODY (1 + 1 + CLUSTER_MAX_NAME + 4 + CLUSTER_CHUNK - 1)
#define CLUSTER_FRAME_SINGLE_MAX (2 + CLUSTER_MAX_BODY)

/* Write the frame of a single request (B.2; session 0 = a single push) for address `id`, or
 * `name` (1..255 bytes) when name != NULL, into out (CLUSTER_FRAME_SINGLE_MAX bytes suffice).
 * Returns its length, or 0 when msg needs splitting (n >= CLUSTER_CHUNK) or the name is bad.
 * The same bytes packrequest/packpush make; any thread. */
size_t cluster_core_frame_single(uint8_t *out, uint32_t id, const char *name, size_t namelen,
                                 uint32_t session, const uint8_t *msg, size_t n);

/* A single request body (B.2: kind 00 or 80, address, session, payload), pointing into it. */
struct cluster_core_single {
    uint32_t id;         /* the numeric address when name is NULL */
    const uint8_t *name; /* the name (80), namelen bytes, or NULL */
    size_t namelen;
    uint32_t session; /* 0: a push */
    const uint8_t *payload;
    size_t size;
};
/* Parse body (n bytes) as a single request. 0, or -1 when it is not one or is too short. */
int cluster_core_single(const uint8_t *body, size_t n, struct cluster_core_single *out);

int luaopen_cluster_core(lua_State *L);

#endif
