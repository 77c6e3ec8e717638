/* salloc: small headerless blocks in per-class pages for the Lua states (see salloc.h).
 * Threads: any thread allocates and frees. Its cache (one list per class, thread-local) takes no
 * lock; a class's lock guards its partial-page list and its pages' free lists and counts; the
 * pool lock guards empty pages and the mapping, and is taken inside a class lock, never around
 * one. A page's header (its first bytes) names its block size, so a free finds it by address. */
#include "salloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096u
#define CHUNK_PAGES 256u /* pages mapped at once */
#define NCLASS (SALLOC_MAX / 8)
#define CACHE_BYTES 2048u /* a thread's cache refills and drains this much of a class at once */

struct page {
    void *free;               /* blocks given back, linked through their first word */
    struct page *prev, *next; /* the class's partial list (0 < used < cap), or the pool */
    uint32_t used;            /* blocks out of the page: live or in a thread's cache */
    uint32_t cap;             /* blocks the page holds */
    uint32_t cut;             /* blocks cut so far; the rest of the page was never touched */
    uint32_t size;            /* block size */
};
#define FIRST_BLOCK ((sizeof(struct page) + 7) & ~(size_t)7)

static struct {
    pthread_mutex_t lock;
    struct page *partial;
} classes[NCLASS];

static struct {
    pthread_mutex_t lock;
    struct page *fresh; /* empty pages still resident, linked by next */
    size_t nfresh;
    struct page **gone; /* empty pages handed back to the system */
    size_t ngone, capgone;
    char *chunk;         /* the part of the last mapping not cut into pages yet */
    size_t chunk_left;   /* pages left there */
    size_t used, mapped; /* pages out to classes; bytes mapped */
} pool = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, NULL, 0, 0, NULL, 0, 0, 0};

/* A thread's blocks of one class: a list of given-back blocks, and a run of blocks never used
 * (the uncut rest of a page), handed out by address so that nothing is written into them first. */
struct tcache {
    void *head;
    uint32_t n; /* blocks in the list */
    char *run, *run_end;
};
static _Thread_local struct tcache cache[NCLASS];
static _Thread_local int cache_registered;
static pthread_key_t cache_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void thread_gone(void *unused)
{
    (void)unused;
    salloc_thread_flush();
}

static void init_once(void)
{
    for (int c = 0; c < NCLASS; c++)
        pthread_mutex_init(&classes[c].lock, NULL);
    pthread_key_create(&cache_key, thread_gone);
}

static uint32_t class_limit(unsigned c)
{
    uint32_t n = CACHE_BYTES / ((c + 1) * 8);
    return n < 8 ? 8 : n;
}

/* ---- pages (pool lock) ------------------------------------------------------------------ */

static struct page *page_new(uint32_t size)
{
    pthread_mutex_lock(&pool.lock);
    struct page *p = pool.fresh;
    if (p) {
        pool.fresh = p->next;
        pool.nfresh--;
    } else if (pool.ngone) {
        p = pool.gone[--pool.ngone];
    } else {
        if (!pool.chunk_left) {
            void *m = mmap(NULL, (size_t)CHUNK_PAGES * PAGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m != MAP_FAILED) {
                pool.chunk = m;
                pool.chunk_left = CHUNK_PAGES;
                pool.mapped += (size_t)CHUNK_PAGES * PAGE;
            }
        }
        if (pool.chunk_left) {
            p = (struct page *)pool.chunk;
            pool.chunk += PAGE;
            pool.chunk_left--;
        }
    }
    if (p)
        pool.used++;
    pthread_mutex_unlock(&pool.lock);
    if (p)
        *p = (struct page){NULL, NULL, NULL, 0, (uint32_t)((PAGE - FIRST_BLOCK) / size), 0, size};
    return p;
}

static void page_release(struct page *p)
{
    pthread_mutex_lock(&pool.lock);
    p->next = pool.fresh;
    pool.fresh = p;
    pool.nfresh++;
    pool.used--;
    pthread_mutex_unlock(&pool.lock);
}

/* ---- classes (class lock) ----------------------------------------------------------------- */

static void partial_add(unsigned c, struct page *p)
{
    p->prev = NULL;
    p->next = classes[c].partial;
    if (p->next)
        p->next->prev = p;
    classes[c].partial = p;
}

static void partial_remove(unsigned c, struct page *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        classes[c].partial = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* The class's first partial page, or a new one (NULL when out of memory). */
static struct page *page_partial(unsigned c)
{
    struct page *p = classes[c].partial;
    if (!p) {
        p = page_new((c + 1) * 8);
        if (p)
            partial_add(c, p);
    }
    return p;
}

/* A given-back block of a partial page, or NULL when no partial page has one. */
static void *block_take(unsigned c)
{
    struct page *p = classes[c].partial;
    while (p && !p->free)
        p = p->next;
    if (!p)
        return NULL;
    void *b = p->free;
    p->free = *(void **)b;
    if (++p->used == p->cap)
        partial_remove(c, p);
    return b;
}

/* The uncut rest of a page becomes this thread's run: returns its blocks (0: out of memory). */
static uint32_t run_take(unsigned c, struct tcache *t)
{
    struct page *p = page_partial(c);
    if (!p)
        return 0;
    uint32_t n = p->cap - p->cut;
    t->run = (char *)p + FIRST_BLOCK + (size_t)p->cut * p->size;
    t->run_end = t->run + (size_t)n * p->size;
    p->cut = p->cap;
    p->used += n;
    if (p->used == p->cap)
        partial_remove(c, p);
    return n;
}

static void block_give(unsigned c, void *b)
{
    struct page *p = (struct page *)((uintptr_t)b & ~(uintptr_t)(PAGE - 1));
    *(void **)b = p->free;
    p->free = b;
    if (p->used-- == p->cap)
        partial_add(c, p);
    if (p->used == 0) {
        partial_remove(c, p);
        page_release(p);
    }
}

/* The first use of salloc by a thread: its cache goes back to the pages at its exit. */
static void cache_register(void)
{
    pthread_once(&once, init_once);
    cache_registered = 1;
    pthread_setspecific(cache_key, &cache_registered);
}

/* Fill this thread's cache of class c; returns how many blocks it got. */
static uint32_t cache_refill(unsigned c)
{
    if (!cache_registered)
        cache_register();
    struct tcache *t = &cache[c];
    uint32_t want = class_limit(c), got = 0;
    pthread_mutex_lock(&classes[c].lock);
    for (; got < want; got++) {
        void *b = block_take(c);
        if (!b)
            break;
        *(void **)b = t->head;
        t->head = b;
    }
    t->n += got;
    if (!got) /* every partial page is cut to its end and handed out: a fresh run */
        got = run_take(c, t);
    pthread_mutex_unlock(&classes[c].lock);
    return got;
}

/* Give n blocks of this thread's cache of class c back to their pages. */
static void cache_drain(unsigned c, uint32_t n)
{
    struct tcache *t = &cache[c];
    pthread_mutex_lock(&classes[c].lock);
    for (; n && t->head; n--, t->n--) {
        void *b = t->head;
        t->head = *(void **)b;
        block_give(c, b);
    }
    pthread_mutex_unlock(&classes[c].lock);
}

/* ---- interface ------------------------------------------------------------------------------ */

static void *small_alloc(size_t size)
{
    unsigned c = (unsigned)((size - 1) >> 3);
    struct tcache *t = &cache[c];
    void *b = t->head;
    if (b) {
        t->head = *(void **)b;
        t->n--;
        return b;
    }
    if (t->run == t->run_end && !cache_refill(c))
        return NULL;
    if (t->head) /* refilled from given-back blocks */
        return small_alloc(size);
    b = t->run;
    t->run += (c + 1) * 8;
    return b;
}

static void small_free(void *b, size_t size)
{
    unsigned c = (unsigned)((size - 1) >> 3);
    struct tcache *t = &cache[c];
    if (!cache_registered)
        cache_register();
    *(void **)b = t->head;
    t->head = b;
    if (++t->n >= 2 * class_limit(c))
        cache_drain(c, class_limit(c));
}

void *salloc_realloc(void *ptr, size_t osize, size_t nsize)
{
    int was_small = ptr && osize <= SALLOC_MAX;
    if (nsize == 0) {
        if (was_small)
            small_free(ptr, osize);
        else
            free(ptr);
        return NULL;
    }
    if (!ptr || was_small) {
        if (was_small && nsize <= SALLOC_MAX && (osize - 1) >> 3 == (nsize - 1) >> 3)
            return ptr; /* same class */
        void *p = nsize <= SALLOC_MAX ? small_alloc(nsize) : malloc(nsize);
        if (p && was_small) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            small_free(ptr, osize);
        }
        return p;
    }
    if (nsize > SALLOC_MAX)
        return realloc(ptr, nsize);
    void *p = small_alloc(nsize); /* a malloc block shrinks into a class */
    if (p) {
        memcpy(p, ptr, nsize);
        free(ptr);
    }
    return p;
}

void salloc_thread_flush(void)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        struct tcache *t = &cache[c];
        if (t->n)
            cache_drain(c, t->n);
        if (t->run != t->run_end) {
            pthread_mutex_lock(&classes[c].lock);
            for (; t->run != t->run_end; t->run += (c + 1) * 8)
                block_give(c, t->run);
            pthread_mutex_unlock(&classes[c].lock);
        }
    }
}

static int page_order(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct page *const *)a, y = (uintptr_t) * (struct page *const *)b;
    return x < y ? -1 : x > y;
}

size_t salloc_trim(void)
{
    static pthread_mutex_t trimming = PTHREAD_MUTEX_INITIALIZER; /* one trim at a time */
    pthread_mutex_lock(&trimming);
    pthread_mutex_lock(&pool.lock);
    size_t n = pool.nfresh;
    struct page **v = n ? malloc(n * sizeof *v) : NULL;
    for (size_t i = 0; v && i < n; i++) {
        v[i] = pool.fresh;
        pool.fresh = pool.fresh->next;
    }
    if (v)
        pool.nfresh = 0;
    pthread_mutex_unlock(&pool.lock);
    if (!v) {
        pthread_mutex_unlock(&trimming);
        return 0;
    }
    /* out of both lists meanwhile: adjacent pages go back in one call */
    qsort(v, n, sizeof *v, page_order);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && (char *)v[j] == (char *)v[j - 1] + PAGE; j++)
            ;
        madvise(v[i], (j - i) * PAGE, MADV_DONTNEED);
    }
    pthread_mutex_lock(&pool.lock);
    struct page **grown = pool.ngone + n > pool.capgone
                              ? realloc(pool.gone, (pool.ngone + n) * sizeof *pool.gone)
                              : pool.gone;
    if (grown) {
        pool.gone = grown;
        if (pool.ngone + n > pool.capgone)
            pool.capgone = pool.ngone + n;
        memcpy(pool.gone + pool.ngone, v, n * sizeof *v);
        pool.ngone += n;
    } else { /* no room to list them: back to the resident pool (headers fault a page in) */
        for (size_t i = 0; i < n; i++) {
            v[i]->next = pool.fresh;
            pool.fresh = v[i];
        }
        pool.nfresh += n;
        n = 0;
    }
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&trimming);
    free(v);
    return n * PAGE;
}

void salloc_stats(struct salloc_stats *st)
{
    pthread_mutex_lock(&pool.lock);
    st->pages_used = pool.used;
    st->pages_pooled = pool.nfresh;
    st->pages_returned = pool.ngone;
    st->bytes_mapped = pool.mapped;
    pthread_mutex_unlock(&pool.lock);
}
