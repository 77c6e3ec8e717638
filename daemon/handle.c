/* handle: service registry. An open-addressed table indexed by handle & (cap-1), grown by
 * doubling so every live handle has its own slot; names are a sorted array for binary search.
 * One rwlock guards both: lookups (the hot path: every send) take the read lock only. */
#include "handle.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct name_entry {
    char *name;
    uint32_t handle;
};

static struct {
    pthread_rwlock_t lock;
    uint32_t next; /* next handle to try (low 24 bits) */
    size_t cap;    /* power of two */
    size_t count;
    struct handle_obj **slot;
    struct name_entry *names;
    size_t nname, capname;
} reg;

void handle_init(void)
{
    pthread_rwlock_init(&reg.lock, NULL);
    reg.next = 1;
    reg.cap = 16;
    reg.count = 0;
    reg.slot = calloc(reg.cap, sizeof *reg.slot);
    reg.capname = 16;
    reg.nname = 0;
    reg.names = calloc(reg.capname, sizeof *reg.names);
}

void handle_exit(void)
{
    for (size_t i = 0; i < reg.nname; i++)
        free(reg.names[i].name);
    free(reg.names);
    free(reg.slot);
    reg.names = NULL;
    reg.slot = NULL;
    reg.nname = reg.count = 0;
    pthread_rwlock_destroy(&reg.lock);
}

static int grow(void)
{
    size_t cap = reg.cap * 2;
    if (cap > (size_t)HANDLE_MASK + 1)
        return -1;
    struct handle_obj **slot = calloc(cap, sizeof *slot);
    if (!slot)
        return -1;
    for (size_t i = 0; i < reg.cap; i++)
        if (reg.slot[i])
            slot[reg.slot[i]->handle & (cap - 1)] = reg.slot[i];
    free(reg.slot);
    reg.slot = slot;
    reg.cap = cap;
    return 0;
}

uint32_t handle_register(struct handle_obj *obj)
{
    pthread_rwlock_wrlock(&reg.lock);
    for (;;) {
        for (size_t i = 0; i < reg.cap; i++) {
            uint32_t h = (reg.next + (uint32_t)i) & HANDLE_MASK;
            if (h == 0)
                continue;
            size_t idx = h & (reg.cap - 1);
            if (reg.slot[idx] == NULL) {
                reg.slot[idx] = obj;
                obj->handle = h;
                atomic_fetch_add(&obj->ref, 1);
                reg.next = (h + 1) & HANDLE_MASK;
                reg.count++;
                pthread_rwlock_unlock(&reg.lock);
                return h;
            }
        }
        if (grow() < 0) {
            pthread_rwlock_unlock(&reg.lock);
            return 0;
        }
    }
}

static void remove_names(uint32_t handle)
{
    size_t j = 0;
    for (size_t i = 0; i < reg.nname; i++) {
        if (reg.names[i].handle == handle)
            free(reg.names[i].name);
        else
            reg.names[j++] = reg.names[i];
    }
    reg.nname = j;
}

struct handle_obj *handle_retire(uint32_t handle)
{
    struct handle_obj *obj = NULL;
    pthread_rwlock_wrlock(&reg.lock);
    size_t idx = handle & (reg.cap - 1);
    if (handle && reg.slot[idx] && reg.slot[idx]->handle == handle) {
        obj = reg.slot[idx];
        reg.slot[idx] = NULL;
        reg.count--;
        remove_names(handle);
    }
    pthread_rwlock_unlock(&reg.lock);
    return obj;
}

struct handle_obj *handle_grab(uint32_t handle)
{
    struct handle_obj *obj = NULL;
    pthread_rwlock_rdlock(&reg.lock);
    struct handle_obj *o = reg.slot[handle & (reg.cap - 1)];
    if (o && o->handle == handle && handle) {
        atomic_fetch_add(&o->ref, 1);
        obj = o;
    }
    pthread_rwlock_unlock(&reg.lock);
    return obj;
}

/* Binary search: index of name, or -(insertion point) - 1. */
static long find_name(const char *name)
{
    long lo = 0, hi = (long)reg.nname - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int c = strcmp(reg.names[mid].name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

int handle_name(uint32_t handle, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= HANDLE_NAME_MAX)
        return -1;
    int rc = -1;
    pthread_rwlock_wrlock(&reg.lock);
    struct handle_obj *o = reg.slot[handle & (reg.cap - 1)];
    long at = find_name(name);
    if (o && o->handle == handle && at < 0) {
        size_t pos = (size_t)(-at - 1);
        if (reg.nname == reg.capname) {
            struct name_entry *n = realloc(reg.names, sizeof *n * reg.capname * 2);
            if (!n)
                goto out;
            reg.names = n;
            reg.capname *= 2;
        }
        char *copy = strdup(name);
        if (!copy)
            goto out;
        memmove(&reg.names[pos + 1], &reg.names[pos], sizeof *reg.names * (reg.nname - pos));
        reg.names[pos].name = copy;
        reg.names[pos].handle = handle;
        reg.nname++;
        rc = 0;
    }
out:
    pthread_rwlock_unlock(&reg.lock);
    return rc;
}

uint32_t handle_findname(const char *name)
{
    uint32_t h = 0;
    pthread_rwlock_rdlock(&reg.lock);
    long at = find_name(name);
    if (at >= 0)
        h = reg.names[at].handle;
    pthread_rwlock_unlock(&reg.lock);
    return h;
}

int handle_namefor(uint32_t handle, char *buf, size_t n)
{
    int rc = -1;
    pthread_rwlock_rdlock(&reg.lock);
    for (size_t i = 0; i < reg.nname; i++) {
        if (reg.names[i].handle == handle) {
            snprintf(buf, n, "%s", reg.names[i].name);
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    return rc;
}

size_t handle_list(uint32_t *out, size_t n)
{
    pthread_rwlock_rdlock(&reg.lock);
    size_t k = 0;
    for (size_t i = 0; i < reg.cap; i++) {
        if (reg.slot[i]) {
            if (k < n)
                out[k] = reg.slot[i]->handle;
            k++;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    return k;
}

size_t handle_count(void)
{
    pthread_rwlock_rdlock(&reg.lock);
    size_t n = reg.count;
    pthread_rwlock_unlock(&reg.lock);
    return n;
}
