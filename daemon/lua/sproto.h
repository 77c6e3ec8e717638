/* sproto: Skynet's sproto for LuaJIT (`sproto.core`): schema objects built from the binary that
 * lualib/sprotoparser.lua produces, message encode/decode against a type, and the 0-packing.
 * A schema is immutable once built, so one copy is shared by every service of the node
 * (sprotoloader's slots); everything else runs on the calling service's thread, no locks. */
#ifndef SKYJET_SPROTO_H
#define SKYJET_SPROTO_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

struct sproto;

/* Build a schema from its binary form; NULL when the bytes are not a well-formed schema. */
struct sproto *sproto_create(const void *bin, size_t size);
void sproto_release(struct sproto *sp);
/* Bytes of heap the schema holds (for the memory figures in README). */
size_t sproto_memsize(const struct sproto *sp);

/* 0-packing. sproto_pack writes at most sproto_pack_bound(n) bytes and returns the length.
 * sproto_unpack returns the unpacked length (writing at most cap bytes; pass out = NULL to size
 * the output), or -1 when src is not a complete packed stream. */
size_t sproto_pack_bound(size_t n);
size_t sproto_pack(const uint8_t *src, size_t n, uint8_t *out);
long sproto_unpack(const uint8_t *src, size_t n, uint8_t *out, size_t cap);

/* package.preload["sproto.core"] */
int luaopen_sproto_core(lua_State *L);

#endif
