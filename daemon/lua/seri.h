/* seri: the value serialization of skynet.pack/skynet.unpack (wire-format.md Part A), for
 * LuaJIT: doubles-only numbers per A.9, int64_t/uint64_t cdata for integers beyond 2^53.
 * Pure functions over one lua_State; no shared state, any thread. Buffers returned by
 * seri_pack are malloc'd and owned by the caller (free() them or hand them to a send). */
#ifndef SKYJET_SERI_H
#define SKYJET_SERI_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Lua: pack(...) -> lightuserdata, size   (the buffer is malloc'd; size 0 gives NULL, 0) */
int seri_pack(lua_State *L);
/* Lua: packstring(...) -> string */
int seri_packstring(lua_State *L);
/* Lua: unpack(lightuserdata, size) | unpack(string) | unpack(nil) -> values...
 * Raises a Lua error on malformed input (never reads out of bounds). */
int seri_unpack(lua_State *L);
/* Serialize the values at stack indexes from..to (inclusive) into a malloc'd buffer.
 * Returns the buffer and stores its size; raises a Lua error on unsupported values. */
void *seri_pack_range(lua_State *L, int from, int to, size_t *size);

/* Check that buf holds a well-formed serialized message without building values: every value
 * complete, depth <= SERI_MAX_DEPTH, table counts plausible, no type 7, no bad cookies, and
 * (when allow_pointer is 0) no light userdata. Returns 0, or -1 with a reason in err. */
int seri_check(const void *buf, size_t size, int allow_pointer, char *err, size_t errlen);

#define SERI_MAX_DEPTH 64 /* decoder nesting bound; the encoder refuses depth > 32 like Skynet */
/* Decoder bound on top-level values in one message: LuaJIT lets one C call hold at most 8000
 * stack slots (LUAI_MAXCSTACK); the rest is kept for nesting. Skynet messages carry a handful. */
#define SERI_MAX_VALUES 7000

/* The int64 policy for other codecs (sproto): push v as a number when a double holds it exactly,
 * else as an int64_t cdata; read an int64_t/uint64_t cdata at idx into *v (0), -1 when idx holds
 * another cdata, -2 for a uint64_t beyond INT64_MAX. */
void seri_push_int64(lua_State *L, int64_t v);
int seri_cdata_int64(lua_State *L, int idx, int64_t *v);

/* Register as package.preload["skynet.seri"] = { pack, packstring, unpack } */
int luaopen_skynet_seri(lua_State *L);

#endif
