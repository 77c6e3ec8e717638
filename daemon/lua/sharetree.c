/* sharetree: immutable C trees built from Lua tables, a node-wide registry of named trees, and
 * the proxy tables through which any service reads them. Threads: every worker. A tree never
 * changes after it is built, so reading takes no lock; the registry and each tree's `next` link
 * (the version that replaced it) are guarded by reg_lock; reference counts and the stale flag are
 * atomics. Proxies belong to one Lua state (see "proxies" below for their layout). */
#include "sharetree.h"

#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_DEPTH 100
#define ST_CHUNK (64 * 1024)
#define ST_REF_MT "skynet.sharetree.ref"

enum { ST_NIL, ST_FALSE, ST_TRUE, ST_NUM, ST_STR, ST_TABLE };

struct st_str {
    uint32_t len, hash;
    char bytes[];
};

struct st_node;
struct st_value {
    int type;
    union {
        double n;
        const struct st_str *s;
        const struct st_node *t;
    } u;
};

struct st_slot {
    struct st_value key, val;
};

/* Keys 1..narray live in `array`; every other key in an open-addressed hash of mask+1 slots
 * (none when mask is 0 and slots NULL). An empty slot has key type ST_NIL. */
struct st_node {
    uint32_t narray, mask;
    struct st_value *array;
    struct st_slot *slots;
};

struct st_chunk {
    struct st_chunk *next;
    size_t used, cap;
    char data[];
};

struct st_tree {
    atomic_int refs;
    atomic_int stale;     /* set once a newer version replaced this one, or it was deleted */
    struct st_tree *next; /* the replacing version (holds a reference); guarded by reg_lock */
    const struct st_node *root;
    double id; /* unique per tree in this process (never reused, unlike an address) */
    size_t bytes;
    struct st_chunk *chunks; /* all nodes and strings of the tree, freed together */
};

static atomic_uint_fast64_t tree_ids;

/* A key as seen from Lua, for lookups. */
struct st_key {
    int type;
    double n;
    const char *s;
    size_t len;
    uint32_t hash;
};

/* ---- trees ----------------------------------------------------------------------------- */

static void *tree_alloc(struct st_tree *t, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct st_chunk *c = t->chunks;
    if (c && c->cap - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    size_t cap = n > ST_CHUNK / 4 ? n : ST_CHUNK;
    struct st_chunk *nc = malloc(sizeof *nc + cap);
    if (!nc)
        return NULL;
    nc->cap = cap;
    nc->used = n;
    t->bytes += sizeof *nc + cap;
    if (c && cap == n) { /* a big block of its own: keep filling the current chunk */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        t->chunks = nc;
    }
    return nc->data;
}

static void tree_free(struct st_tree *t)
{
    for (struct st_chunk *c = t->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(t);
}

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static void tree_retain(struct st_tree *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

/* Dropping the last reference frees the tree and releases the version that replaced it. */
static void tree_release(struct st_tree *t)
{
    while (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&reg_lock);
        struct st_tree *next = t->next;
        pthread_mutex_unlock(&reg_lock);
        tree_free(t);
        t = next;
    }
}

/* The newest version reachable from t (t itself when it was deleted), with a reference. */
static struct st_tree *tree_latest(struct st_tree *t)
{
    pthread_mutex_lock(&reg_lock);
    while (t->next)
        t = t->next;
    tree_retain(t);
    pthread_mutex_unlock(&reg_lock);
    return t;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_num(double d)
{
    if (d == 0)
        d = 0; /* -0 and 0 are the same key */
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    b ^= b >> 33;
    b *= 0xff51afd7ed558ccdULL;
    b ^= b >> 33;
    return (uint32_t)b;
}

static uint32_t key_hash(const struct st_key *k)
{
    switch (k->type) {
    case ST_STR:
        return k->hash;
    case ST_NUM:
        return hash_num(k->n);
    case ST_TRUE:
        return 0x9e3779b9u;
    default:
        return 0x7f4a7c15u;
    }
}

static int key_matches(const struct st_key *k, const struct st_value *v)
{
    if (k->type != v->type)
        return 0;
    if (k->type == ST_NUM)
        return k->n == v->u.n;
    if (k->type == ST_STR)
        return v->u.s->hash == k->hash && v->u.s->len == k->len &&
               memcmp(v->u.s->bytes, k->s, k->len) == 0;
    return 1;
}

/* Fill *k from the Lua value at idx; 0 when that value can never be a key of a tree. */
static int key_from_lua(lua_State *L, int idx, struct st_key *k)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        k->type = ST_STR;
        k->s = lua_tolstring(L, idx, &k->len);
        k->hash = hash_bytes(k->s, k->len);
        return 1;
    case LUA_TNUMBER:
        k->type = ST_NUM;
        k->n = lua_tonumber(L, idx);
        return k->n == k->n;
    case LUA_TBOOLEAN:
        k->type = lua_toboolean(L, idx) ? ST_TRUE : ST_FALSE;
        return 1;
    default:
        return 0;
    }
}

static int array_index(const struct st_node *n, const struct st_key *k)
{
    if (k->type != ST_NUM || k->n < 1 || k->n > n->narray || k->n != floor(k->n))
        return -1;
    return (int)k->n - 1;
}

/* The slot holding k, or -1. */
static long slot_find(const struct st_node *n, const struct st_key *k)
{
    if (!n->slots)
        return -1;
    for (uint32_t i = key_hash(k) & n->mask;; i = (i + 1) & n->mask) {
        const struct st_value *sk = &n->slots[i].key;
        if (sk->type == ST_NIL)
            return -1;
        if (key_matches(k, sk))
            return i;
    }
}

static const struct st_value nil_value = {ST_NIL, {0}};

static const struct st_value *node_get(const struct st_node *n, const struct st_key *k)
{
    int ai = array_index(n, k);
    if (ai >= 0)
        return &n->array[ai];
    long si = slot_find(n, k);
    return si >= 0 ? &n->slots[si].val : &nil_value;
}

/* ---- building ------------------------------------------------------------------------------ */

struct build {
    lua_State *L;
    struct st_tree *tree;
    int depth;
    int visiting; /* stack index: tables on the current path (cycle check) */
    int strings;  /* stack index: string -> st_str already in this tree */
    char path[256];
    size_t pathlen;
};

static void *build_alloc(struct build *b, size_t n)
{
    void *p = tree_alloc(b->tree, n);
    if (!p)
        luaL_error(b->L, "not enough memory for a shared table");
    return p;
}

static void build_fail(struct build *b, const char *what, int idx)
{
    luaL_error(b->L, "%s %s at [%s]", what, luaL_typename(b->L, idx),
               b->pathlen ? b->path : "(root)");
}

/* Append ".key" or "[n]" to the error path; returns the length to restore. */
static size_t path_push(struct build *b, int kidx)
{
    size_t old = b->pathlen, room = sizeof b->path - old;
    lua_State *L = b->L;
    int w;
    if (lua_type(L, kidx) == LUA_TSTRING)
        w = snprintf(b->path + old, room, "%s%s", old ? "." : "", lua_tostring(L, kidx));
    else if (lua_type(L, kidx) == LUA_TNUMBER)
        w = snprintf(b->path + old, room, "[%.14g]", lua_tonumber(L, kidx));
    else
        w = snprintf(b->path + old, room, "[%s]", lua_toboolean(L, kidx) ? "true" : "false");
    b->pathlen = w < 0 || (size_t)w >= room ? sizeof b->path - 1 : old + (size_t)w;
    return old;
}

static const struct st_str *build_string(struct build *b, int idx)
{
    lua_State *L = b->L;
    lua_pushvalue(L, idx);
    lua_rawget(L, b->strings);
    const struct st_str *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (s)
        return s;
    size_t len;
    const char *p = lua_tolstring(L, idx, &len);
    if (len > UINT32_MAX - 16)
        luaL_error(L, "string too long for a shared table");
    struct st_str *ns = build_alloc(b, sizeof *ns + len + 1);
    ns->len = (uint32_t)len;
    ns->hash = hash_bytes(p, len);
    memcpy(ns->bytes, p, len + 1);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, ns);
    lua_rawset(L, b->strings);
    return ns;
}

static const struct st_node *build_node(struct build *b, int idx);

static void build_value(struct build *b, int idx, struct st_value *out)
{
    lua_State *L = b->L;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        out->type = lua_toboolean(L, idx) ? ST_TRUE : ST_FALSE;
        break;
    case LUA_TNUMBER:
        out->type = ST_NUM;
        out->u.n = lua_tonumber(L, idx);
        break;
    case LUA_TSTRING:
        out->type = ST_STR;
        out->u.s = build_string(b, idx);
        break;
    case LUA_TTABLE:
        out->type = ST_TABLE;
        out->u.t = build_node(b, idx);
        break;
    default:
        build_fail(b, "unsupported value type", idx);
    }
}

static int in_array(lua_State *L, int kidx, uint32_t narray)
{
    if (lua_type(L, kidx) != LUA_TNUMBER)
        return 0;
    double d = lua_tonumber(L, kidx);
    return d >= 1 && d <= narray && d == floor(d);
}

static void slot_insert(struct st_node *n, const struct st_value *key, const struct st_value *val)
{
    struct st_key k = {key->type, 0, NULL, 0, 0};
    if (key->type == ST_NUM)
        k.n = key->u.n;
    else if (key->type == ST_STR)
        k.hash = key->u.s->hash;
    uint32_t i = key_hash(&k) & n->mask;
    while (n->slots[i].key.type != ST_NIL)
        i = (i + 1) & n->mask;
    n->slots[i].key = *key;
    n->slots[i].val = *val;
}

/* Count the array part (1..n without holes) and the other keys of the table at idx. */
static uint32_t count_keys(struct build *b, int idx, uint32_t *narray)
{
    lua_State *L = b->L;
    uint32_t na = 0, nh = 0;
    for (;; na++) {
        lua_rawgeti(L, idx, (int)na + 1);
        int end = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (end)
            break;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
            build_fail(b, "unsupported key type", -1);
        if (!in_array(L, -1, na))
            nh++;
    }
    *narray = na;
    return nh;
}

static void build_hash(struct build *b, int idx, struct st_node *n)
{
    lua_State *L = b->L;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kidx = lua_gettop(L) - 1;
        if (!in_array(L, kidx, n->narray)) {
            struct st_value key, val;
            if (lua_type(L, kidx) == LUA_TSTRING) {
                key.type = ST_STR;
                key.u.s = build_string(b, kidx);
            } else if (lua_type(L, kidx) == LUA_TNUMBER) {
                key.type = ST_NUM;
                key.u.n = lua_tonumber(L, kidx);
            } else {
                key.type = lua_toboolean(L, kidx) ? ST_TRUE : ST_FALSE;
            }
            size_t old = path_push(b, kidx);
            build_value(b, kidx + 1, &val);
            b->pathlen = old;
            b->path[old] = 0;
            slot_insert(n, &key, &val);
        }
        lua_pop(L, 1);
    }
}

static const struct st_node *build_node(struct build *b, int idx)
{
    lua_State *L = b->L;
    if (++b->depth > ST_MAX_DEPTH)
        luaL_error(L, "shared table nested deeper than %d levels at [%s]", ST_MAX_DEPTH, b->path);
    luaL_checkstack(L, 8, "shared table");
    lua_pushvalue(L, idx);
    lua_rawget(L, b->visiting);
    if (!lua_isnil(L, -1))
        luaL_error(L, "cycle in shared table: [%s] contains a table that contains it",
                   b->pathlen ? b->path : "(root)");
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, b->visiting);

    struct st_node *n = build_alloc(b, sizeof *n);
    memset(n, 0, sizeof *n);
    uint32_t nh = count_keys(b, idx, &n->narray);
    if (n->narray)
        n->array = build_alloc(b, n->narray * sizeof *n->array);
    if (nh) {
        uint32_t cap = 4;
        while (cap * 3 < nh * 4) /* at most 3/4 full */
            cap <<= 1;
        n->mask = cap - 1;
        n->slots = build_alloc(b, cap * sizeof *n->slots);
        memset(n->slots, 0, cap * sizeof *n->slots);
    }
    for (uint32_t i = 0; i < n->narray; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        lua_pushnumber(L, i + 1);
        size_t old = path_push(b, lua_gettop(L));
        lua_pop(L, 1);
        build_value(b, lua_gettop(L), &n->array[i]);
        b->pathlen = old;
        b->path[old] = 0;
        lua_pop(L, 1);
    }
    build_hash(b, idx, n);
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, b->visiting);
    b->depth--;
    return n;
}

/* lua_pcall'd: (tree lightuserdata, table). */
static int build_protected(lua_State *L)
{
    struct build b = {.L = L, .tree = lua_touserdata(L, 1)};
    lua_newtable(L);
    b.visiting = lua_gettop(L);
    lua_newtable(L);
    b.strings = lua_gettop(L);
    b.tree->root = build_node(&b, 2);
    return 0;
}

/* Build a tree (one reference) from the table at idx, or raise the error with nothing leaked. */
static struct st_tree *tree_build(lua_State *L, int idx)
{
    struct st_tree *t = calloc(1, sizeof *t);
    if (!t)
        luaL_error(L, "not enough memory for a shared table");
    atomic_init(&t->refs, 1);
    atomic_init(&t->stale, 0);
    t->id = (double)(atomic_fetch_add(&tree_ids, 1) + 1);
    lua_pushcfunction(L, build_protected);
    lua_pushlightuserdata(L, t);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 2, 0, 0) != 0) {
        tree_free(t);
        lua_error(L);
    }
    return t;
}

/* ---- the registry ------------------------------------------------------------------------- */

/* One name in one space ("sharedata", "sharetable", "datasheet"): key = space NUL name. */
struct st_entry {
    struct st_entry *next;
    struct st_tree *tree;
    size_t klen;
    char key[];
};

static struct st_entry *reg_head;

static size_t reg_key(lua_State *L, char *buf, size_t room)
{
    size_t ls, ln;
    const char *space = luaL_checklstring(L, 1, &ls);
    const char *name = luaL_checklstring(L, 2, &ln);
    if (ls + ln + 1 > room)
        luaL_error(L, "shared table name too long");
    memcpy(buf, space, ls);
    buf[ls] = 0;
    memcpy(buf + ls + 1, name, ln);
    return ls + ln + 1;
}

/* Caller holds reg_lock. */
static struct st_entry **reg_find(const char *key, size_t klen)
{
    struct st_entry **pp = &reg_head;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            break;
    return pp;
}

/* The tree now registered under (space, name) at stack 1, 2, with a reference, or NULL. */
static struct st_tree *reg_get(lua_State *L)
{
    char key[1024];
    size_t klen = reg_key(L, key, sizeof key);
    pthread_mutex_lock(&reg_lock);
    struct st_entry *e = *reg_find(key, klen);
    struct st_tree *t = e ? e->tree : NULL;
    if (t)
        tree_retain(t);
    pthread_mutex_unlock(&reg_lock);
    return t;
}

/* publish(space, name, table, mode): mode "new" fails (returns false) when the name exists;
 * "replace" makes the table the name's new version (readers of the old one move over). */
static int l_publish(lua_State *L)
{
    char key[1024];
    size_t klen = reg_key(L, key, sizeof key);
    luaL_checktype(L, 3, LUA_TTABLE);
    int replace = strcmp(luaL_checkstring(L, 4), "replace") == 0;
    struct st_tree *t = tree_build(L, 3);
    struct st_entry *ne = malloc(sizeof *ne + klen);
    if (!ne) {
        tree_release(t);
        return luaL_error(L, "not enough memory for a shared table");
    }
    struct st_tree *old = NULL;
    pthread_mutex_lock(&reg_lock);
    struct st_entry **pp = reg_find(key, klen);
    if (*pp && !replace) {
        pthread_mutex_unlock(&reg_lock);
        free(ne);
        tree_release(t);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (*pp) {
        free(ne);
        old = (*pp)->tree;
        tree_retain(t); /* the old version's link to its successor */
        old->next = t;
        atomic_store_explicit(&old->stale, 1, memory_order_release);
        (*pp)->tree = t;
    } else {
        ne->tree = t;
        ne->klen = klen;
        memcpy(ne->key, key, klen);
        ne->next = reg_head;
        reg_head = ne;
    }
    pthread_mutex_unlock(&reg_lock);
    tree_release(old);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_delete(lua_State *L)
{
    char key[1024];
    size_t klen = reg_key(L, key, sizeof key);
    pthread_mutex_lock(&reg_lock);
    struct st_entry **pp = reg_find(key, klen), *e = *pp;
    if (e) {
        *pp = e->next;
        atomic_store_explicit(&e->tree->stale, 1, memory_order_release);
    }
    pthread_mutex_unlock(&reg_lock);
    if (e) {
        tree_release(e->tree);
        free(e);
    }
    lua_pushboolean(L, e != NULL);
    return 1;
}

static int l_names(lua_State *L)
{
    size_t ls;
    const char *space = luaL_checklstring(L, 1, &ls);
    lua_newtable(L);
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (struct st_entry *e = reg_head; e; e = e->next) {
        if (e->klen > ls && memcmp(e->key, space, ls + 1) == 0) {
            lua_pushlstring(L, e->key + ls + 1, e->klen - ls - 1);
            lua_rawseti(L, -2, ++n);
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return 1;
}

static int l_size(lua_State *L)
{
    struct st_tree *t = reg_get(L);
    if (!t)
        return 0;
    lua_pushnumber(L, (lua_Number)t->bytes);
    tree_release(t);
    return 1;
}

/* ---- proxies --------------------------------------------------------------------------------- */

/* A proxy is a table with one metatable per state (upvalue 1 of every function here), whose
 * fields sit under private lightuserdata keys. A root holds K_REF: a userdata with the tree
 * reference (released by __gc). A child holds K_NODE (its node), K_ID (the id of the tree the
 * node belongs to), K_PARENT and K_KEY. A child holds no reference: it may read K_NODE only while
 * K_ID equals its parent's current tree id, as the root keeps that tree alive. K_CACHE: the
 * children made so far, weak-valued. */
static char K_REF, K_NODE, K_ID, K_PARENT, K_KEY, K_CACHE;
static char weak_values_key; /* registry: the metatable {__mode = "v"} of child caches */

/* A root's reference. A root that follows moves to the newest version on its next access; a
 * pinned one (sharetable) only on refresh. */
struct st_ref {
    struct st_tree *tree;
    const struct st_node *node;
    int follow;
};

struct st_view {
    const struct st_node *node;
    double id;
};

static int abs_index(lua_State *L, int idx)
{
    return idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx;
}

static void raw_get(lua_State *L, int idx, void *key)
{
    idx = abs_index(L, idx);
    lua_pushlightuserdata(L, key);
    lua_rawget(L, idx);
}

static void raw_set(lua_State *L, int idx, void *key) /* t[key] = top, popped */
{
    idx = abs_index(L, idx);
    lua_pushlightuserdata(L, key);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}

static int ref_gc(lua_State *L)
{
    struct st_ref *r = luaL_checkudata(L, 1, ST_REF_MT);
    tree_release(r->tree);
    r->tree = NULL;
    return 0;
}

static int is_proxy(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    int yes = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    return yes;
}

static void check_proxy(lua_State *L, int idx)
{
    if (!is_proxy(L, idx))
        luaL_error(L, "bad argument #%d (shared table expected, got %s)", idx,
                   luaL_typename(L, idx));
}

/* The root reference of a root proxy at idx, or NULL for a child. */
static struct st_ref *root_ref(lua_State *L, int idx)
{
    raw_get(L, idx, &K_REF);
    struct st_ref *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Push the path of the proxy at idx as Skynet words it for a vanished key: ".k1.k2". */
static void push_path(lua_State *L, int idx)
{
    lua_newtable(L);
    int keys = lua_gettop(L), n = 0;
    lua_pushvalue(L, idx);
    for (;;) {
        raw_get(L, -1, &K_PARENT);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 2);
            break;
        }
        raw_get(L, -2, &K_KEY);
        lua_rawseti(L, keys, ++n);
        lua_replace(L, -2);
    }
    luaL_checkstack(L, 2 * n + 2, "shared table");
    for (int i = n; i >= 1; i--) {
        lua_pushliteral(L, ".");
        lua_rawgeti(L, keys, i);
        if (lua_type(L, -1) == LUA_TBOOLEAN) {
            lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
            lua_replace(L, -2);
        } else {
            lua_tostring(L, -1);
        }
    }
    if (n)
        lua_concat(L, 2 * n);
    else
        lua_pushliteral(L, "");
    lua_remove(L, keys);
}

/* Bring the proxy at idx (checked already) up to date; stack unchanged. */
static struct st_view proxy_current(lua_State *L, int idx)
{
    struct st_view v;
    struct st_ref *r = root_ref(L, idx);
    if (r) {
        if (r->follow && atomic_load_explicit(&r->tree->stale, memory_order_acquire)) {
            struct st_tree *t = tree_latest(r->tree);
            tree_release(r->tree);
            r->tree = t;
            r->node = t->root;
        }
        v.node = r->node;
        v.id = r->tree->id;
        return v;
    }
    int top = lua_gettop(L);
    luaL_checkstack(L, 6, "shared table");
    raw_get(L, idx, &K_PARENT);
    struct st_view pv = proxy_current(L, top + 1);
    raw_get(L, idx, &K_ID);
    if (lua_tonumber(L, -1) == pv.id) {
        raw_get(L, idx, &K_NODE);
        v.node = lua_touserdata(L, -1);
    } else {
        struct st_key k;
        raw_get(L, idx, &K_KEY);
        const struct st_value *nv = key_from_lua(L, -1, &k) ? node_get(pv.node, &k) : &nil_value;
        if (nv->type != ST_TABLE) {
            push_path(L, idx);
            luaL_error(L, "The key [%s] doesn't exist after update", lua_tostring(L, -1));
        }
        v.node = nv->u.t;
        lua_pushlightuserdata(L, (void *)v.node);
        raw_set(L, idx, &K_NODE);
        lua_pushnumber(L, pv.id);
        raw_set(L, idx, &K_ID);
    }
    v.id = pv.id;
    lua_settop(L, top);
    return v;
}

static struct st_view proxy_checked(lua_State *L, int idx)
{
    check_proxy(L, idx);
    return proxy_current(L, idx);
}

/* Push a new root proxy on tree (takes over one reference). */
static void root_push(lua_State *L, struct st_tree *tree, int follow)
{
    lua_createtable(L, 0, 2);
    struct st_ref *r = lua_newuserdata(L, sizeof *r);
    r->tree = tree;
    r->node = tree->root;
    r->follow = follow;
    luaL_getmetatable(L, ST_REF_MT);
    lua_setmetatable(L, -2);
    raw_set(L, -2, &K_REF);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
}

/* Push the child of the proxy at pidx under the key at kidx, made or from the cache. */
static void child_push(lua_State *L, int pidx, int kidx, const struct st_node *node, double id)
{
    luaL_checkstack(L, 6, "shared table");
    raw_get(L, pidx, &K_CACHE);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, &weak_values_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        raw_set(L, pidx, &K_CACHE);
    }
    lua_pushvalue(L, kidx);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 5);
        int c = lua_gettop(L);
        lua_pushlightuserdata(L, (void *)node);
        raw_set(L, c, &K_NODE);
        lua_pushnumber(L, id);
        raw_set(L, c, &K_ID);
        lua_pushvalue(L, pidx);
        raw_set(L, c, &K_PARENT);
        lua_pushvalue(L, kidx);
        raw_set(L, c, &K_KEY);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_setmetatable(L, c);
        lua_pushvalue(L, kidx);
        lua_pushvalue(L, c);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
}

/* Push v unless it is a table (nil, booleans, numbers, strings: the same for a proxy read and
 * a plain copy); returns 0, pushing nothing, for a table. */
static int push_scalar(lua_State *L, const struct st_value *v)
{
    switch (v->type) {
    case ST_TABLE:
        return 0;
    case ST_FALSE:
    case ST_TRUE:
        lua_pushboolean(L, v->type == ST_TRUE);
        break;
    case ST_NUM:
        lua_pushnumber(L, v->u.n);
        break;
    case ST_STR:
        lua_pushlstring(L, v->u.s->bytes, v->u.s->len);
        break;
    default:
        lua_pushnil(L);
    }
    return 1;
}

/* Push v, read from the proxy at pidx (whose view is pv) under the key at kidx. */
static void push_value(lua_State *L, int pidx, int kidx, struct st_view pv,
                       const struct st_value *v)
{
    if (!push_scalar(L, v))
        child_push(L, pidx, kidx, v->u.t, pv.id);
}

static int l_index(lua_State *L)
{
    struct st_view pv = proxy_checked(L, 1);
    struct st_key k;
    if (!key_from_lua(L, 2, &k))
        return 0;
    push_value(L, 1, 2, pv, node_get(pv.node, &k));
    return 1;
}

static int l_newindex(lua_State *L)
{
    check_proxy(L, 1);
    push_path(L, 1);
    return luaL_error(L, "Error newindex, the key [%s] (shared tables are read-only)",
                      lua_tostring(L, -1));
}

static int l_len(lua_State *L)
{
    lua_pushnumber(L, proxy_checked(L, 1).node->narray);
    return 1;
}

/* next(proxy, key): array part first, then the hash slots in order. */
static int l_next(lua_State *L)
{
    struct st_view pv = proxy_checked(L, 1);
    const struct st_node *n = pv.node;
    size_t pos = 0, total = (size_t)n->narray + (n->slots ? (size_t)n->mask + 1 : 0);
    lua_settop(L, 2);
    if (!lua_isnil(L, 2)) {
        struct st_key k;
        int ok = key_from_lua(L, 2, &k);
        int ai = ok ? array_index(n, &k) : -1;
        long si = ok && ai < 0 ? slot_find(n, &k) : -1;
        if (ai < 0 && si < 0)
            return luaL_error(L, "invalid key to 'next'");
        pos = ai >= 0 ? (size_t)ai + 1 : n->narray + (size_t)si + 1;
    }
    for (; pos < total; pos++) {
        const struct st_value *val;
        if (pos < n->narray) {
            lua_pushnumber(L, (lua_Number)pos + 1);
            val = &n->array[pos];
        } else {
            const struct st_slot *slot = &n->slots[pos - n->narray];
            if (slot->key.type == ST_NIL)
                continue;
            push_value(L, 1, 2, pv, &slot->key); /* keys are never tables */
            val = &slot->val;
        }
        push_value(L, 1, lua_gettop(L), pv, val);
        return 2;
    }
    return 0;
}

static int l_pairs(lua_State *L)
{
    check_proxy(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int ipairs_step(lua_State *L)
{
    lua_Number i = luaL_checknumber(L, 2) + 1;
    lua_settop(L, 1);
    lua_pushnumber(L, i);
    lua_gettable(L, 1);
    if (lua_isnil(L, -1))
        return 0;
    lua_pushnumber(L, i);
    lua_insert(L, -2);
    return 2;
}

static int l_ipairs(lua_State *L)
{
    check_proxy(L, 1);
    lua_pushcfunction(L, ipairs_step);
    lua_pushvalue(L, 1);
    lua_pushnumber(L, 0);
    return 3;
}

/* query(space, name [, follow]): a root proxy on the name's current version, or nil. */
static int l_query(lua_State *L)
{
    struct st_tree *t = reg_get(L);
    if (!t)
        return 0;
    root_push(L, t, lua_isnone(L, 3) || lua_toboolean(L, 3));
    return 1;
}

static int l_exists(lua_State *L)
{
    struct st_tree *t = reg_get(L);
    lua_pushboolean(L, t != NULL);
    tree_release(t);
    return 1;
}

static struct st_ref *check_root(lua_State *L)
{
    check_proxy(L, 1);
    struct st_ref *r = root_ref(L, 1);
    if (!r)
        luaL_argerror(L, 1, "a table from query, not one of its sub-tables");
    return r;
}

/* refresh(root proxy): move it to the newest version now; true when it moved. */
static int l_refresh(lua_State *L)
{
    struct st_ref *r = check_root(L);
    struct st_tree *t = tree_latest(r->tree);
    int moved = t != r->tree;
    tree_release(r->tree);
    r->tree = t;
    r->node = t->root;
    lua_pushboolean(L, moved);
    return 1;
}

/* alive(root proxy): bring it up to date; false once its name was deleted. */
static int l_alive(lua_State *L)
{
    struct st_ref *r = check_root(L);
    proxy_current(L, 1);
    lua_pushboolean(L, !atomic_load_explicit(&r->tree->stale, memory_order_acquire));
    return 1;
}

static void push_plain(lua_State *L, const struct st_value *v);

static void push_plain_node(lua_State *L, const struct st_node *n)
{
    luaL_checkstack(L, 4, "shared table");
    lua_createtable(L, (int)n->narray, (int)(n->slots ? n->mask + 1 : 0) / 2);
    for (uint32_t i = 0; i < n->narray; i++) {
        push_plain(L, &n->array[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    for (uint32_t i = 0; n->slots && i <= n->mask; i++) {
        if (n->slots[i].key.type == ST_NIL)
            continue;
        push_plain(L, &n->slots[i].key);
        push_plain(L, &n->slots[i].val);
        lua_rawset(L, -3);
    }
}

/* Push v as a plain Lua value (tables copied, recursively). */
static void push_plain(lua_State *L, const struct st_value *v)
{
    if (!push_scalar(L, v))
        push_plain_node(L, v->u.t);
}

/* copy(space, name, key...): a plain copy of the name's current value, or of the value at the
 * path of keys under it; nil when the name or a key is missing. */
static int l_copy(lua_State *L)
{
    struct st_tree *t = reg_get(L);
    if (!t)
        return 0;
    struct st_value root = {ST_TABLE, {.t = t->root}};
    const struct st_value *v = &root;
    for (int i = 3; i <= lua_gettop(L) && v->type == ST_TABLE; i++) {
        struct st_key k;
        v = key_from_lua(L, i, &k) ? node_get(v->u.t, &k) : &nil_value;
    }
    push_plain(L, v);
    tree_release(t);
    return 1;
}

static int l_isproxy(lua_State *L)
{
    lua_pushboolean(L, is_proxy(L, 1));
    return 1;
}

/* pairs/ipairs that honour __pairs/__ipairs as Lua 5.2+ does (LuaJIT's do not): installed as the
 * globals of a service that requires this module, so `pairs(shared)` works unchanged. */
static int compat_pairs(lua_State *L)
{
    if (luaL_getmetafield(L, 1, "__pairs")) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        return 3;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original next */
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int compat_ipairs(lua_State *L)
{
    if (luaL_getmetafield(L, 1, "__ipairs")) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        return 3;
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original ipairs */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 3);
    return 3;
}

static void install_compat(lua_State *L)
{
    lua_getglobal(L, "pairs");
    if (lua_tocfunction(L, -1) == compat_pairs) {
        lua_setfield(L, -2, "pairs");
        lua_getglobal(L, "ipairs");
        lua_setfield(L, -2, "ipairs");
        return;
    }
    lua_pop(L, 1);
    lua_getglobal(L, "next");
    lua_pushcclosure(L, compat_pairs, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "pairs");
    lua_setfield(L, -2, "pairs");
    lua_getglobal(L, "ipairs");
    lua_pushcclosure(L, compat_ipairs, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "ipairs");
    lua_setfield(L, -2, "ipairs");
}

int luaopen_skynet_sharetree(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__index", l_index}, {"__newindex", l_newindex}, {"__len", l_len},
        {"__pairs", l_pairs}, {"__ipairs", l_ipairs},     {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"publish", l_publish}, {"delete", l_delete},   {"names", l_names},     {"size", l_size},
        {"query", l_query},     {"exists", l_exists},   {"refresh", l_refresh}, {"copy", l_copy},
        {"len", l_len},         {"isproxy", l_isproxy}, {"alive", l_alive},     {NULL, NULL},
    };
    if (luaL_newmetatable(L, ST_REF_MT)) {
        lua_pushcfunction(L, ref_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, &weak_values_key);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_newtable(L); /* module */
    lua_newtable(L); /* the proxies' metatable: upvalue 1 of everything below */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_next, 1); /* upvalue 2 */
    for (const luaL_Reg *f = meta; f->name; f++) {
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, -3, f->name);
    }
    for (const luaL_Reg *f = funcs; f->name; f++) {
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, -4, f->name);
    }
    lua_setfield(L, -3, "next");
    lua_pop(L, 1);
    install_compat(L);
    return 1;
}
