/* env: the node-wide environment behind skynet.getenv/setenv: string keys to string values.
 * A key can be set once (Skynet's rule), so a value never changes or moves once set and the
 * pointer env_get returns stays valid until env_exit. Thread-safe (one rwlock). */
#ifndef SKYJET_ENV_H
#define SKYJET_ENV_H

void env_init(void);
void env_exit(void);
/* NULL if unset. */
const char *env_get(const char *key);
/* 0, or -1 if the key is already set (or out of memory). */
int env_set(const char *key, const char *value);

#endif
