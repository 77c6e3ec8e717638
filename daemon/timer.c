/* timer: a binary min-heap of pending timeouts keyed by (expire, seq) so ties keep insertion
 * order. Nodes live in a slot array with a free list; an id is (generation << 32 | slot), so a
 * stale id (fired or cancelled) is recognised and cancel is O(log n) without a hash table.
 * One mutex guards everything (workers add, the clock thread pops). */
#include "timer.h"

#include <pthread.h>
#include <stdlib.h>

struct node {
    uint64_t expire, seq;
    struct timer_event ev;
    uint32_t gen;   /* bumped every time the slot is freed */
    int heap_index; /* position in heap, -1 when free */
    int next_free;
};

struct timer {
    pthread_mutex_t lock;
    struct node *nodes;
    int *heap; /* slot indexes */
    int n, cap, free_head;
    uint64_t seq;
};

struct timer *timer_new(void)
{
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    t->free_head = -1;
    return t;
}

void timer_free(struct timer *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->nodes);
    free(t->heap);
    free(t);
}

static int before(const struct timer *t, int a, int b)
{
    const struct node *x = &t->nodes[a], *y = &t->nodes[b];
    return x->expire < y->expire || (x->expire == y->expire && x->seq < y->seq);
}

static void place(struct timer *t, int pos, int slot)
{
    t->heap[pos] = slot;
    t->nodes[slot].heap_index = pos;
}

static void sift_up(struct timer *t, int pos)
{
    int slot = t->heap[pos];
    while (pos > 0) {
        int parent = (pos - 1) / 2;
        if (!before(t, slot, t->heap[parent]))
            break;
        place(t, pos, t->heap[parent]);
        pos = parent;
    }
    place(t, pos, slot);
}

static void sift_down(struct timer *t, int pos)
{
    int slot = t->heap[pos];
    for (;;) {
        int child = pos * 2 + 1;
        if (child >= t->n)
            break;
        if (child + 1 < t->n && before(t, t->heap[child + 1], t->heap[child]))
            child++;
        if (!before(t, t->heap[child], slot))
            break;
        place(t, pos, t->heap[child]);
        pos = child;
    }
    place(t, pos, slot);
}

static void free_slot(struct timer *t, int slot)
{
    struct node *nd = &t->nodes[slot];
    nd->gen++;
    nd->heap_index = -1;
    nd->next_free = t->free_head;
    t->free_head = slot;
}

/* Remove heap position pos, keeping the heap valid. */
static void heap_remove(struct timer *t, int pos)
{
    int slot = t->heap[pos];
    t->n--;
    if (pos != t->n) {
        place(t, pos, t->heap[t->n]);
        if (pos > 0 && before(t, t->heap[pos], t->heap[(pos - 1) / 2]))
            sift_up(t, pos);
        else
            sift_down(t, pos);
    }
    free_slot(t, slot);
}

static int grow(struct timer *t)
{
    int cap = t->cap ? t->cap * 2 : 64;
    struct node *nodes = realloc(t->nodes, sizeof *nodes * (size_t)cap);
    if (!nodes)
        return -1;
    t->nodes = nodes;
    int *heap = realloc(t->heap, sizeof *heap * (size_t)cap);
    if (!heap)
        return -1;
    t->heap = heap;
    for (int i = cap - 1; i >= t->cap; i--) {
        nodes[i].gen = 1;
        nodes[i].heap_index = -1;
        nodes[i].next_free = t->free_head;
        t->free_head = i;
    }
    t->cap = cap;
    return 0;
}

uint64_t timer_add(struct timer *t, uint64_t expire, struct timer_event ev)
{
    pthread_mutex_lock(&t->lock);
    if (t->free_head < 0 && grow(t) < 0) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    int slot = t->free_head;
    struct node *nd = &t->nodes[slot];
    t->free_head = nd->next_free;
    nd->expire = expire;
    nd->seq = t->seq++;
    nd->ev = ev;
    t->heap[t->n] = slot;
    nd->heap_index = t->n++;
    sift_up(t, nd->heap_index);
    uint64_t id = ((uint64_t)nd->gen << 32) | (uint32_t)slot;
    pthread_mutex_unlock(&t->lock);
    return id;
}

int timer_cancel(struct timer *t, uint64_t id)
{
    int rc = -1;
    int slot = (int)(uint32_t)id;
    pthread_mutex_lock(&t->lock);
    if (slot < t->cap && t->nodes[slot].gen == (uint32_t)(id >> 32) &&
        t->nodes[slot].heap_index >= 0) {
        heap_remove(t, t->nodes[slot].heap_index);
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int timer_pop_due(struct timer *t, uint64_t now, struct timer_event *ev)
{
    int got = 0;
    pthread_mutex_lock(&t->lock);
    if (t->n > 0 && t->nodes[t->heap[0]].expire <= now) {
        *ev = t->nodes[t->heap[0]].ev;
        heap_remove(t, 0);
        got = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return got;
}

uint64_t timer_next(struct timer *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t next = t->n > 0 ? t->nodes[t->heap[0]].expire : UINT64_MAX;
    pthread_mutex_unlock(&t->lock);
    return next;
}

int timer_count(struct timer *t)
{
    pthread_mutex_lock(&t->lock);
    int n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}
