/* The fast layer: a small key/value interface with a time to live per key, behind an ops
 * struct with one file per backend (kv_mem.c now; Redis later, same keys). Values are
 * opaque bytes (the pipeline keeps JSON). A backend may be down: every op then answers
 * KV_ERR_DOWN and the caller serves from the durable store instead.
 * Thread-safe: any thread may call any function. */
#ifndef PREDICTD_KV_H
#define PREDICTD_KV_H

#include <stddef.h>
#include <stdint.h>

enum {
    KV_OK = 0,
    KV_NOT_FOUND = 1,   /* absent or expired */
    KV_ERR_DOWN = -1,   /* the backend cannot answer (injected with kv_set_down) */
    KV_ERR_NOMEM = -2,
};

typedef struct kv kv_t;

/* The clock TTLs are measured on: ms, monotonic (tests inject their own). */
typedef int64_t (*kv_clock_fn)(void *arg);

typedef struct kv_ops {
    const char *name;
    /* Stores a copy of val under key for ttl_ms (<= 0: no expiry). */
    int (*xPut)(kv_t *kv, const char *key, const void *val, size_t len, int64_t ttl_ms);
    /* *val: a copy (malloc'd, NUL-terminated, caller frees) and its length; *ttl_left_ms
     * (may be NULL): what is left of its life (-1: none). */
    int (*xGet)(kv_t *kv, const char *key, char **val, size_t *len, int64_t *ttl_left_ms);
    int (*xDel)(kv_t *kv, const char *key);
    long (*xCount)(kv_t *kv); /* live keys (expired ones not counted); -1 when down */
    void (*xFree)(kv_t *kv);
} kv_ops_t;

struct kv {
    const kv_ops_t *ops;
    kv_clock_fn clock;
    void *clock_arg;
    volatile int down;   /* failure injection: 1 = every op answers KV_ERR_DOWN */
    void *impl;
};

/* Opens the backend named kind ("mem"). clock NULL: the monotonic clock. 0 ok, -1 err. */
int kv_open(kv_t **out, const char *kind, kv_clock_fn clock, void *clock_arg, char *err, size_t errlen);
void kv_free(kv_t *kv); /* NULL is a no-op */

/* NULL-safe wrappers (a NULL kv is down). */
int kv_put(kv_t *kv, const char *key, const void *val, size_t len, int64_t ttl_ms);
int kv_get(kv_t *kv, const char *key, char **val, size_t *len, int64_t *ttl_left_ms);
int kv_del(kv_t *kv, const char *key);
long kv_count(kv_t *kv);
/* Failure injection for tests and drills (pipeline.fast_layer_down, the debug route). */
void kv_set_down(kv_t *kv, int down);

int kv_mem_open(kv_t *kv, char *err, size_t errlen);

#endif
