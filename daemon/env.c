/* env: node-wide key/value strings (see env.h). A small open-addressed hash table under a
 * rwlock; entries are never removed or changed, only added. */
#include "env.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key, *value;
};

static pthread_rwlock_t env_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct entry *table;
static size_t cap, count;

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static struct entry *slot_for(struct entry *t, size_t n, const char *key)
{
    for (size_t i = hash(key) & (n - 1);; i = (i + 1) & (n - 1))
        if (!t[i].key || strcmp(t[i].key, key) == 0)
            return &t[i];
}

void env_init(void)
{
    cap = 64;
    count = 0;
    table = calloc(cap, sizeof *table);
}

void env_exit(void)
{
    for (size_t i = 0; i < cap; i++) {
        free(table[i].key);
        free(table[i].value);
    }
    free(table);
    table = NULL;
    cap = count = 0;
}

const char *env_get(const char *key)
{
    const char *v = NULL;
    pthread_rwlock_rdlock(&env_lock);
    if (table)
        v = slot_for(table, cap, key)->value;
    pthread_rwlock_unlock(&env_lock);
    return v;
}

int env_set(const char *key, const char *value)
{
    int rc = -1;
    pthread_rwlock_wrlock(&env_lock);
    if (!table)
        goto out;
    if ((count + 1) * 2 > cap) {
        size_t ncap = cap * 2;
        struct entry *nt = calloc(ncap, sizeof *nt);
        if (!nt)
            goto out;
        for (size_t i = 0; i < cap; i++)
            if (table[i].key)
                *slot_for(nt, ncap, table[i].key) = table[i];
        free(table);
        table = nt;
        cap = ncap;
    }
    struct entry *e = slot_for(table, cap, key);
    if (e->key)
        goto out;
    e->key = strdup(key);
    e->value = strdup(value);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        e->key = e->value = NULL;
        goto out;
    }
    count++;
    rc = 0;
out:
    pthread_rwlock_unlock(&env_lock);
    return rc;
}
