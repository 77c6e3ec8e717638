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

/* The int64 policy (wire-format.md A.9), shared by every module that meets 64-bit integers
 * (skynet.pack, string.pack, math.type, bson): a value is an integer when it is a number that is
 * finite, integral and in [-2^63, 2^63) (-0.0 counts, as 0), or an int64_t/uint64_t cdata.
 * seri_integer_value stores it in *v and returns SERI_INT_EXACT, SERI_INT_UINT64_HIGH for a
 * uint64_t above INT64_MAX (*v holds its bits), or SERI_INT_NONE (*v untouched). */
enum { SERI_INT_NONE, SERI_INT_EXACT, SERI_INT_UINT64_HIGH };
int seri_integer_value(lua_State *L, int idx, int64_t *v);
/* Push an integer as Lua sees it: a plain number when a double holds it exactly (every |v| <=
 * 2^53, and larger values such as 2^60 or -2^63), else an int64_t cdata with the exact value. */
void seri_push_integer(lua_State *L, int64_t v);

/* Register as package.preload["skynet.seri"] = { pack, packstring, unpack } */
int luaopen_skynet_seri(lua_State *L);

#endif
