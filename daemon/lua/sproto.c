/* sproto: the schema, the reader and the 0-packing of Skynet's sproto (the C core under
 * sproto_lua.c). One reader (sproto_reader) walks every struct on the wire: the schema loader
 * here and the message decoder in sproto_lua.c both use it, so what the loader accepts and what
 * the decoder validates cannot drift. Pure functions; a schema is immutable after sproto_create
 * and may be read by any thread. */
#include "sproto.h"

#include <stdlib.h>
#include <string.h>

/* ---- the reader ------------------------------------------------------------------------- */

int sproto_reader_open(struct sproto_reader *r, const uint8_t *p, size_t size)
{
    if (size < 2)
        return -1;
    size_t n = (size_t)p[0] | (size_t)p[1] << 8;
    if (size - 2 < 2 * n)
        return -1;
    r->start = p;
    r->slot = p + 2;
    r->nslot = n;
    r->data = p + 2 + 2 * n;
    r->end = p + size;
    r->tag = -1;
    return 0;
}

/* The next present field: 1, 0 at the end, -1 when a data part runs past the buffer. */
int sproto_reader_next(struct sproto_reader *r, struct sproto_item *it)
{
    while (r->nslot > 0) {
        unsigned v = (unsigned)r->slot[0] | (unsigned)r->slot[1] << 8;
        r->slot += 2;
        r->nslot--;
        if (v & 1) {
            r->tag += (v + 1) / 2;
            continue;
        }
        it->tag = ++r->tag;
        if (v != 0) {
            it->inl = 1;
            it->value = v / 2 - 1;
            return 1;
        }
        if (r->end - r->data < 4)
            return -1;
        uint32_t len = sproto_le32(r->data);
        if ((size_t)(r->end - r->data - 4) < len)
            return -1;
        it->inl = 0;
        it->data = r->data + 4;
        it->len = len;
        r->data += 4 + (size_t)len;
        return 1;
    }
    return 0;
}

/* Elements of an array of length-prefixed parts (strings, structs). */
int sproto_part_next(const uint8_t **p, const uint8_t *end, const uint8_t **data, uint32_t *len)
{
    if (*p == end)
        return 0;
    if (end - *p < 4)
        return -1;
    *len = sproto_le32(*p);
    if ((size_t)(end - *p - 4) < *len)
        return -1;
    *data = *p + 4;
    *p += 4 + (size_t)*len;
    return 1;
}

/* An integer field of the schema: inline or a 4/8-byte data part. */
int sproto_item_int(const struct sproto_item *it, int64_t *v)
{
    if (it->inl)
        *v = it->value;
    else if (it->len == 4)
        *v = (int32_t)sproto_le32(it->data);
    else if (it->len == 8)
        *v = (int64_t)sproto_le64(it->data);
    else
        return -1;
    return 0;
}

/* ---- schema ----------------------------------------------------------------------------- */

static char *sp_strdup(struct sproto *sp, const struct sproto_item *it)
{
    if (it->inl)
        return NULL;
    char *s = malloc((size_t)it->len + 1);
    if (s) {
        memcpy(s, it->data, it->len);
        s[it->len] = 0;
        sp->bytes += (size_t)it->len + 1;
    }
    return s;
}

static size_t sp_count_parts(const uint8_t *p, uint32_t len)
{
    const uint8_t *d, *end = p + len;
    uint32_t n;
    size_t count = 0;
    int r;
    while ((r = sproto_part_next(&p, end, &d, &n)) == 1)
        count++;
    return r < 0 ? (size_t)-1 : count;
}

static int sp_load_field(struct sproto *sp, struct sproto_field *f, const uint8_t *p, uint32_t len)
{
    struct sproto_reader r = {0};
    struct sproto_item it;
    int64_t v, buildin = -1, typeidx = -1, tag = -1, key = -1;
    int rc;
    f->key = -1;
    if (sproto_reader_open(&r, p, len) < 0)
        return -1;
    while ((rc = sproto_reader_next(&r, &it)) == 1) {
        if (it.tag == 0) {
            if (f->name || !(f->name = sp_strdup(sp, &it)))
                return -1;
            continue;
        }
        if (it.tag > 6 || sproto_item_int(&it, &v) < 0)
            continue; /* a field from a newer schema format */
        switch (it.tag) {
        case 1:
            buildin = v;
            break;
        case 2:
            typeidx = v;
            break;
        case 3:
            tag = v;
            break;
        case 4:
            f->array = v != 0;
            break;
        case 5:
            key = v;
            break;
        default:
            f->map = v != 0;
            break;
        }
    }
    if (rc < 0 || !f->name || tag < 0 || tag > SPROTO_MAXTAG || buildin > SPROTO_DOUBLE)
        return -1;
    f->tag = (int)tag;
    if (buildin >= 0) {
        f->type = (int)buildin;
        if (f->type == SPROTO_INTEGER && typeidx > 0) {
            if (typeidx > 18)
                return -1;
            for (f->decimal = 1; typeidx > 0; typeidx--)
                f->decimal *= 10;
        }
        f->binary = f->type == SPROTO_STRING && typeidx == 1;
    } else {
        if (typeidx < 0 || typeidx >= sp->ntype)
            return -1;
        f->type = SPROTO_STRUCT;
        f->st = &sp->types[typeidx];
    }
    if (key >= 0 && (!f->array || f->type != SPROTO_STRUCT || key > SPROTO_MAXTAG))
        return -1;
    f->key = (int)key;
    return f->map && f->key < 0 ? -1 : 0;
}

static int sp_load_type(struct sproto *sp, struct sproto_type *t, const uint8_t *p, uint32_t len)
{
    struct sproto_reader r = {0};
    struct sproto_item it;
    int rc;
    if (sproto_reader_open(&r, p, len) < 0)
        return -1;
    while ((rc = sproto_reader_next(&r, &it)) == 1) {
        if (it.tag == 0 && !t->name) {
            if (!(t->name = sp_strdup(sp, &it)))
                return -1;
        } else if (it.tag == 1 && !it.inl && !t->f) {
            size_t n = sp_count_parts(it.data, it.len);
            if (n == (size_t)-1 || n > SPROTO_MAXTAG + 1)
                return -1;
            t->f = calloc(n ? n : 1, sizeof *t->f);
            if (!t->f)
                return -1;
            sp->bytes += (n ? n : 1) * sizeof *t->f;
            const uint8_t *q = it.data, *d;
            uint32_t dl;
            while (sproto_part_next(&q, it.data + it.len, &d, &dl) == 1) {
                struct sproto_field *f = &t->f[t->n++]; /* counted first: release frees its name */
                if (sp_load_field(sp, f, d, dl) < 0 || (t->n > 1 && f->tag <= f[-1].tag))
                    return -1;
            }
        }
    }
    return rc < 0 || !t->name ? -1 : 0;
}

const struct sproto_field *sproto_field_by_tag(const struct sproto_type *t, long tag)
{
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (t->f[mid].tag == tag)
            return &t->f[mid];
        if (t->f[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* Keyed arrays name their element's key field by tag: it must be a plain builtin field, and a map
 * element has exactly two fields, key first. Checked once every type is loaded. */
static int sp_resolve_keys(struct sproto *sp)
{
    for (int i = 0; i < sp->ntype; i++) {
        for (int j = 0; j < sp->types[i].n; j++) {
            struct sproto_field *f = &sp->types[i].f[j];
            if (f->key < 0)
                continue;
            const struct sproto_field *k = sproto_field_by_tag(f->st, f->key);
            if (!k || k->array || k->type == SPROTO_STRUCT)
                return -1;
            f->keyname = k->name;
            if (f->map) {
                if (f->st->n != 2)
                    return -1;
                f->valname = f->st->f[k == &f->st->f[0] ? 1 : 0].name;
            }
        }
    }
    return 0;
}

static int sp_load_proto(struct sproto *sp, struct sproto_proto *p, const uint8_t *d, uint32_t len)
{
    struct sproto_reader r = {0};
    struct sproto_item it;
    int64_t v, req = -1, resp = -1, tag = -1;
    int rc;
    if (sproto_reader_open(&r, d, len) < 0)
        return -1;
    while ((rc = sproto_reader_next(&r, &it)) == 1) {
        if (it.tag == 0) {
            if (p->name || !(p->name = sp_strdup(sp, &it)))
                return -1;
        } else if (it.tag <= 4 && sproto_item_int(&it, &v) == 0) {
            if (it.tag == 1)
                tag = v;
            else if (it.tag == 2)
                req = v;
            else if (it.tag == 3)
                resp = v;
            else
                p->confirm = v != 0;
        }
    }
    if (rc < 0 || !p->name || tag < 0 || tag > SPROTO_MAXTAG || req >= sp->ntype ||
        resp >= sp->ntype)
        return -1;
    p->tag = (int)tag;
    p->req = req >= 0 ? &sp->types[req] : NULL;
    p->resp = resp >= 0 ? &sp->types[resp] : NULL;
    return 0;
}

/* Allocate and load one of the group's two arrays (0: types, 1: protocols). */
static int sp_load_group_part(struct sproto *sp, const struct sproto_item *it)
{
    if (it->inl)
        return -1;
    size_t n = sp_count_parts(it->data, it->len);
    if (n == (size_t)-1 || n > 0xffff)
        return -1;
    size_t each = it->tag == 0 ? sizeof(struct sproto_type) : sizeof(struct sproto_proto);
    void *arr = calloc(n ? n : 1, each);
    if (!arr)
        return -1;
    sp->bytes += (n ? n : 1) * each;
    const uint8_t *q = it->data, *d;
    uint32_t dl;
    if (it->tag == 0) {
        sp->types = arr;
        sp->ntype = (int)n;
        for (int i = 0; sproto_part_next(&q, it->data + it->len, &d, &dl) == 1; i++)
            if (sp_load_type(sp, &sp->types[i], d, dl) < 0)
                return -1;
        return sp_resolve_keys(sp);
    }
    sp->protos = arr;
    while (sproto_part_next(&q, it->data + it->len, &d, &dl) == 1) {
        struct sproto_proto *p = &sp->protos[sp->nproto++];
        if (sp_load_proto(sp, p, d, dl) < 0 || (sp->nproto > 1 && p->tag <= p[-1].tag))
            return -1;
    }
    return 0;
}

struct sproto *sproto_create(const void *bin, size_t size)
{
    struct sproto *sp = calloc(1, sizeof *sp);
    struct sproto_reader r = {0};
    struct sproto_item it;
    int rc = -1;
    if (!sp)
        return NULL;
    sp->bytes = sizeof *sp;
    if (sproto_reader_open(&r, bin, size) == 0) {
        while ((rc = sproto_reader_next(&r, &it)) == 1) {
            /* types come first: protocols refer to them */
            if (it.tag > 1 || (it.tag == 0 && sp->types) || (it.tag == 1 && sp->protos) ||
                (it.tag == 1 && !sp->types) || sp_load_group_part(sp, &it) < 0) {
                rc = -1;
                break;
            }
        }
    }
    if (rc < 0) {
        sproto_release(sp);
        return NULL;
    }
    return sp;
}

void sproto_release(struct sproto *sp)
{
    if (!sp)
        return;
    for (int i = 0; i < sp->ntype; i++) {
        for (int j = 0; j < sp->types[i].n; j++)
            free(sp->types[i].f[j].name);
        free(sp->types[i].f);
        free(sp->types[i].name);
    }
    for (int i = 0; i < sp->nproto; i++)
        free(sp->protos[i].name);
    free(sp->types);
    free(sp->protos);
    free(sp);
}

size_t sproto_memsize(const struct sproto *sp) { return sp->bytes; }

const struct sproto_proto *sproto_proto_by_tag(const struct sproto *sp, long tag)
{
    int lo = 0, hi = sp->nproto - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (sp->protos[mid].tag == tag)
            return &sp->protos[mid];
        if (sp->protos[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* ---- 0-packing ---------------------------------------------------------------------------
 * Each 8-byte word (the last one zero-padded) becomes a bitmap byte of its non-zero bytes plus
 * those bytes; a word without zeros opens a raw run (0xff, words-1, the words), which goes on
 * taking words with at most two zeros, up to 256 words. */

size_t sproto_pack_bound(size_t n) { return (n + 7) / 8 * 10 + 2; }

size_t sproto_pack(const uint8_t *src, size_t n, uint8_t *out)
{
    uint8_t *o = out, *run = NULL;
    for (size_t i = 0; i < n; i += 8) {
        uint8_t w[8] = {0}, bits = 0;
        int nz = 0;
        memcpy(w, src + i, n - i < 8 ? n - i : 8);
        for (int j = 0; j < 8; j++)
            if (w[j]) {
                nz++;
                bits |= (uint8_t)(1u << j);
            }
        if (run && nz >= 6) {
            memcpy(o, w, 8);
            o += 8;
            if (++run[1] == 255)
                run = NULL;
        } else if (nz == 8) {
            run = o;
            o[0] = 0xff;
            o[1] = 0;
            memcpy(o + 2, w, 8);
            o += 10;
        } else {
            run = NULL;
            *o++ = bits;
            for (int j = 0; j < 8; j++)
                if (w[j])
                    *o++ = w[j];
        }
    }
    return (size_t)(o - out);
}

long sproto_unpack(const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, len = 0;
    while (i < n) {
        uint8_t h = src[i++];
        if (h == 0xff) {
            if (i >= n)
                return -1;
            size_t words = (size_t)src[i++] + 1;
            if (n - i < words * 8)
                return -1;
            if (out && len + words * 8 <= cap)
                memcpy(out + len, src + i, words * 8);
            i += words * 8;
            len += words * 8;
            continue;
        }
        for (int j = 0; j < 8; j++, len++) {
            uint8_t b = 0;
            if (h >> j & 1) {
                if (i >= n)
                    return -1;
                b = src[i++];
            }
            if (out && len < cap)
                out[len] = b;
        }
    }
    return len > (size_t)SPROTO_MAXSIZE ? -1 : (long)len;
}
