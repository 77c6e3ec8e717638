/* salloc: the allocator of Lua service states. Blocks up to SALLOC_MAX bytes come from 4 KiB
 * pages each cut into one size class (8-byte steps) and carry no header: Lua passes a block's
 * size back on free and realloc, so the class is known without one (glibc spends 8-24 bytes on
 * each of an idle service's ~700 small blocks). Larger blocks are malloc's. Any thread may
 * allocate and free any block: each thread keeps a small cache per class, and the pages behind
 * them are shared by all states under one lock per class. Pages whose blocks are all free go to a
 * pool; salloc_trim hands the pool's memory back to the system. */
#ifndef SKYJET_SALLOC_H
#define SKYJET_SALLOC_H

#include <stddef.h>

#define SALLOC_MAX 256

/* lua_Alloc's contract: ptr NULL allocates nsize bytes, nsize 0 frees ptr (osize bytes) and
 * returns NULL, otherwise resizes ptr from osize to nsize bytes (NULL on failure, ptr kept).
 * osize must be the size the block was last allocated or resized with. */
void *salloc_realloc(void *ptr, size_t osize, size_t nsize);

/* Hand the pages of the pool back to the system (they stay mapped and are reused). Returns the
 * bytes handed back. */
size_t salloc_trim(void);

/* Give this thread's cached blocks back to their pages (also done when a thread exits). */
void salloc_thread_flush(void);

struct salloc_stats {
    size_t pages_used;     /* pages with a live or cached block */
    size_t pages_pooled;   /* empty pages still resident */
    size_t pages_returned; /* empty pages handed back by salloc_trim */
    size_t bytes_mapped;   /* all pages ever mapped */
};
void salloc_stats(struct salloc_stats *st);

#endif
