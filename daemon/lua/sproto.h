/* sproto: Skynet's sproto for LuaJIT. This core (sproto.c) owns the schema objects built from the
 * binary that lualib/sprotoparser.lua produces, the one reader that walks a struct on the wire,
 * and the 0-packing; sproto_lua.c is the `sproto.core` Lua module over it (encode, decode, the
 * sprotoloader slots). A schema is immutable once built, so one copy is read by every service
 * of the node from any thread; everything else runs on the caller's thread, no locks. */
#ifndef SKYJET_SPROTO_H
#define SKYJET_SPROTO_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#define SPROTO_MAXTAG 0x7ffe      /* the parser's largest tag: a skip over a gap fits 16 bits */
#define SPROTO_MAXSIZE 0x10000000 /* largest message built or unpacked (256 MiB) */

/* ---- the schema: read-only once sproto_create returned it ---- */

enum { SPROTO_INTEGER, SPROTO_BOOLEAN, SPROTO_STRING, SPROTO_DOUBLE, SPROTO_STRUCT };

struct sproto_type;

struct sproto_field {
    char *name;
    int tag;
    int type;        /* SPROTO_INTEGER ... SPROTO_STRUCT */
    int array;       /* '*' in the schema */
    int key;         /* keyed array: tag of the element's key field, else -1 */
    int map;         /* keyed array of two-field structs decoded as { [key] = value } */
    int64_t decimal; /* integer(N): 10^N, else 0 */
    int binary;      /* `binary` rather than `string` (same wire form) */
    struct sproto_type *st;
    const char *keyname, *valname; /* resolved names of the key (and map value) fields */
};

struct sproto_type {
    char *name;
    int n;
    struct sproto_field *f; /* sorted by tag, strictly ascending */
};

struct sproto_proto {
    char *name;
    int tag;
    struct sproto_type *req, *resp;
    int confirm; /* `response nil`: a reply without content */
};

struct sproto {
    int ntype, nproto;
    struct sproto_type *types;
    struct sproto_proto *protos; /* sorted by tag */
    size_t bytes;
};

/* Build a schema from its binary form; NULL when the bytes are not a well-formed schema. */
struct sproto *sproto_create(const void *bin, size_t size);
void sproto_release(struct sproto *sp);
/* Bytes of heap the schema holds (for the memory figures in README). */
size_t sproto_memsize(const struct sproto *sp);
/* The field of t with that tag, the protocol with that tag; NULL when there is none. */
const struct sproto_field *sproto_field_by_tag(const struct sproto_type *t, long tag);
const struct sproto_proto *sproto_proto_by_tag(const struct sproto *sp, long tag);

/* ---- the reader: one struct on the wire (2-byte field count, 2-byte slots, data parts) ---- */

struct sproto_reader {
    const uint8_t *slot, *data, *end, *start;
    size_t nslot;
    long tag;
};

struct sproto_item {
    long tag;
    int inl;       /* 1: value is in the slot */
    int64_t value; /* the inline value */
    const uint8_t *data;
    uint32_t len;
};

/* 0, or -1 when the header does not fit in size bytes. */
int sproto_reader_open(struct sproto_reader *r, const uint8_t *p, size_t size);
/* The next present field: 1, 0 at the end, -1 when a data part runs past the buffer. After the
 * end, r->data - r->start is the size of the struct. */
int sproto_reader_next(struct sproto_reader *r, struct sproto_item *it);
/* The next length-prefixed element of an array part [*p, end): 1, 0 at the end, -1 if cut. */
int sproto_part_next(const uint8_t **p, const uint8_t *end, const uint8_t **data, uint32_t *len);
/* An integer field: inline or a 4/8-byte data part; -1 for another size. */
int sproto_item_int(const struct sproto_item *it, int64_t *v);

static inline uint32_t sproto_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sproto_le64(const uint8_t *p)
{
    return (uint64_t)sproto_le32(p) | (uint64_t)sproto_le32(p + 4) << 32;
}

static inline void sproto_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- 0-packing ----
 * sproto_pack writes at most sproto_pack_bound(n) bytes and returns the length.
 * sproto_unpack returns the unpacked length (writing at most cap bytes; pass out = NULL to size
 * the output), or -1 when src is not a complete packed stream or unpacks beyond SPROTO_MAXSIZE. */
size_t sproto_pack_bound(size_t n);
size_t sproto_pack(const uint8_t *src, size_t n, uint8_t *out);
long sproto_unpack(const uint8_t *src, size_t n, uint8_t *out, size_t cap);

/* package.preload["sproto.core"] (sproto_lua.c) */
int luaopen_sproto_core(lua_State *L);

#endif
