/* handle: the node's service registry: 32-bit handles (":%08x") and local names (".name").
 * Thread-safe (one rwlock). Objects are registered by an embedded `struct handle_obj` whose
 * reference count handle_grab increments under the read lock, so a grabbed object stays alive
 * until its owner drops the reference (service.c does the counting and freeing). */
#ifndef SKYJET_HANDLE_H
#define SKYJET_HANDLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct handle_obj {
    atomic_int ref;  /* references held; the registry holds one while registered */
    uint32_t handle; /* set by handle_register */
};

#define HANDLE_MASK 0xffffff /* low 24 bits count up; high 8 bits are the harbor (0) */
#define HANDLE_NAME_MAX 64

void handle_init(void);
void handle_exit(void);
/* Assign the next handle (never reused until the 24-bit counter wraps) and take one reference
 * for the registry. Returns the handle, 0 if the table is full. */
uint32_t handle_register(struct handle_obj *obj);
/* Remove the handle and its names. Returns the object (whose registry reference the caller now
 * owns and must drop), or NULL if it was not registered. */
struct handle_obj *handle_retire(uint32_t handle);
/* Find and reference the object: NULL if no such handle. */
struct handle_obj *handle_grab(uint32_t handle);
/* Bind a local name (without the leading '.') to a handle. 0, or -1 if the name is taken, the
 * handle is unknown or the name is invalid. */
int handle_name(uint32_t handle, const char *name);
/* The handle bound to `name` (without '.'), or 0. */
uint32_t handle_findname(const char *name);
/* Copy up to n live handles into out; returns how many exist. */
size_t handle_list(uint32_t *out, size_t n);
/* The first name bound to handle, copied into buf (size n); returns 0 or -1 if none. */
int handle_namefor(uint32_t handle, char *buf, size_t n);
size_t handle_count(void);

#endif
