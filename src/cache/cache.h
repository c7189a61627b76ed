/* The result cache: per-entity prediction results, so that overlapping batches share work.
 *
 * Key: (model, parameter hash, entity id, dependency stamp). Correctness does not rest on
 * anyone remembering to invalidate: the stamp is computed from the graph, under its read
 * lock, and it grows whenever anything the result depends on changes, so a lookup after a
 * change asks for a new key and cannot find the old result. Stamps per model (cache_scope):
 *   ising analytic       max(version of the entity, versions of its neighbours): a spin,
 *                        field, weight or adjacency change bumps one of those versions
 *                        (relationship changes bump both ends, deleting an entity bumps its
 *                        neighbours), and versions come from one store-wide clock, so the
 *                        max strictly grows on every such change.
 *   ews, bifurcation     the entity's version (observations bump it; so does a property
 *                        change, which only costs a recomputation).
 *   ising monte_carlo,   the global stamp: the version of the last graph change applied
 *   cascade              (store apply hook, under the graph write lock), plus the job's whole
 *                        entity list in the parameter hash (the simulated subgraph depends
 *                        on it). Not cached as long as they simulate in xPrepare or keep a
 *                        job summary (cache_scope's job_level): that needs the stamp read
 *                        before xPrepare and a job-level entry.
 * Two 64-bit hashes of the normalised parameters (and of the model name) make up the
 * parameter key. Entries also expire after the model's TTL (cache.ttl_*_s).
 *
 * Invalidation (cache_invalidate*) removes entries at once: EWS alerts, the manual API, and
 * anything else that wants a recomputation although no stamp moved. A put carries the
 * invalidation generation read before its result was computed; a put that raced with an
 * invalidation is dropped, so an invalidation is never undone by a result computed before it.
 *
 * Backends implement cache_methods_t (x-prefixed, like sqlite3_io_methods); cache_mem.c is
 * the in-process one (sharded locks, LRU by bytes). Thread-safe throughout. */
#ifndef PREDICTD_CACHE_H
#define PREDICTD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "graph/graph.h"
#include "metrics/metrics.h"

typedef struct cache cache_t;

#define CACHE_MAX_MODELS 8
#define CACHE_MAX_OUTPUTS 64

/* A full key. model is an index into the front end's model table (label, TTL). */
typedef struct {
    int model;
    uint64_t h1, h2;        /* parameter hash (two independent 64-bit hashes) */
    const char *entity_id;
    uint64_t stamp;         /* dependency stamp; never 0 */
} cache_key_t;

/* Per-model counts a backend call adds to (the front end turns them into metrics). */
typedef struct {
    long hits[CACHE_MAX_MODELS], misses[CACHE_MAX_MODELS];
    long evictions[CACHE_MAX_MODELS], invalidations[CACHE_MAX_MODELS];
} cache_counts_t;

/* A backend. now_ms comes from the front end's clock (tests inject one). */
typedef struct cache_backend cache_backend_t;
typedef struct cache_methods {
    /* 1 hit (code and out[0..n_outputs) filled), 0 miss. An entry of the same model and
     * parameters with an older stamp is dead for good and is removed (an invalidation). */
    int (*xGet)(cache_backend_t *b, const cache_key_t *k, int64_t now_ms, uint8_t *code,
                double *out, int n_outputs, cache_counts_t *cnt);
    /* Stores (replacing the entry of the same model, parameters and entity) unless the
     * entity's invalidation generation moved past gen. ttl_s > 0. */
    void (*xPut)(cache_backend_t *b, const cache_key_t *k, uint64_t gen, int64_t now_ms, int ttl_s,
                 uint8_t code, const double *out, int n_outputs, cache_counts_t *cnt);
    /* The invalidation generation covering entity_id (read before computing a result). */
    uint64_t (*xGeneration)(cache_backend_t *b, const char *entity_id);
    /* Removes the entity's entries (model < 0: every model); returns how many. */
    long (*xInvalidateEntity)(cache_backend_t *b, const char *entity_id, int model, cache_counts_t *cnt);
    /* Removes every entry of model (model < 0: everything); returns how many. */
    long (*xInvalidateModel)(cache_backend_t *b, int model, cache_counts_t *cnt);
    /* Bytes held and entries. */
    void (*xUsage)(cache_backend_t *b, long *bytes, long *entries);
    void (*xClose)(cache_backend_t *b);
} cache_methods_t;

struct cache_backend {
    const cache_methods_t *pMethods;
};

/* The memory backend: max_bytes bound over n_shards locks (0: pick). NULL on no memory. */
cache_backend_t *cache_mem_open(long max_bytes, int n_shards);

/* ---- the front end ------------------------------------------------------------------- */

/* Opens the backend the config names (memory for now). metrics may be NULL (tests).
 * With cache.enabled = 0 returns 0 and *out = NULL: every cache_* call takes NULL. */
int cache_open(cache_t **out, const predictd_config_t *cfg, metrics_t *m, char *err, size_t errlen);
/* Same, on a given backend (owned from here on), for tests. */
cache_t *cache_new(cache_backend_t *b, const predictd_config_t *cfg, metrics_t *m);
void cache_free(cache_t *c); /* NULL is a no-op */

/* Tests: the clock TTLs are measured on (default mono_ms). */
void cache_set_clock(cache_t *c, int64_t (*clock_ms)(void *arg), void *arg);

typedef enum {
    CACHE_DEP_NONE = 0,   /* not cached */
    CACHE_DEP_ENTITY,     /* the entity's version */
    CACHE_DEP_NEIGHBOURS, /* max of the entity's and its neighbours' versions */
    CACHE_DEP_GLOBAL,     /* every graph change */
} cache_dep_t;

/* What a job's results are keyed on: decided once per job from its model and parameters. */
typedef struct {
    cache_dep_t dep;      /* CACHE_DEP_NONE: skip the cache for this job */
    int model;            /* index into the model table */
    int ttl_s;
    int n_outputs;
    uint64_t h1, h2;
} cache_scope_t;

/* Fills scope for a job of model_name (n_outputs doubles per entity; job_level: the model
 * simulates the whole job in xPrepare or keeps a job summary: not cached, but for ising
 * analytic, whose xPrepare does nothing) with normalised params
 * params_json (the text the store keeps) and its entity ids (n NUL-terminated, back to back,
 * ids_len bytes). scope->dep is CACHE_DEP_NONE when c is NULL or the job is not cacheable. */
void cache_scope(const cache_t *c, const char *model_name, int n_outputs, int job_level,
                 const json_t *params, const char *params_json, const char *ids, size_t ids_len,
                 cache_scope_t *scope);

/* The dependency stamp of graph slot idx (from graph_find, may be < 0). Call with the graph
 * read lock held. 0: no stamp (unknown entity): neither look up nor store. */
uint64_t cache_stamp(const cache_t *c, const cache_scope_t *s, const graph_t *g, int64_t idx);

/* 1 hit (code, out filled), 0 miss. Counts nothing: see cache_count. */
int cache_get(cache_t *c, const cache_scope_t *s, const char *entity_id, uint64_t stamp,
              uint8_t *code, double *out);
/* Adds served-from-cache and computed entity counts of the scope's model to the metrics. */
void cache_count(cache_t *c, const cache_scope_t *s, long hits, long misses);
/* Read before computing entity_id's result; pass to cache_put. */
/* 0 when no result with these parameters was put lately: a lookup would miss (cheap; a
 * job with parameters never seen skips its lookups). 1: maybe. */
int cache_may_hold(cache_t *c, const cache_scope_t *s);
uint64_t cache_generation(cache_t *c, const char *entity_id);
void cache_put(cache_t *c, const cache_scope_t *s, const char *entity_id, uint64_t stamp,
               uint64_t gen, uint8_t code, const double *out);

/* The EWS-alert trigger (and any other "recompute this entity" signal): removes every
 * cached result of the entity. Thread-safe and quick; returns how many were removed. */
long cache_invalidate_entity(cache_t *c, const char *entity_id);
/* The manual trigger: all != 0 drops everything (model ignored); else the entities' entries
 * (n > 0; of model when not NULL) or, with n == 0, every entry of model. Returns the count
 * removed, or -1 when model is not a cached model. */
long cache_invalidate(cache_t *c, const char *const *entity_ids, size_t n, const char *model, int all);
/* Whether model_name is a model the cache knows (for request validation). */
int cache_model_known(const cache_t *c, const char *model_name);

/* The store's apply hook (store_set_apply_hook): version of a graph change just applied,
 * called under the graph write lock. Moves the global stamp. */
void cache_on_graph_change(void *cache, uint64_t version);

#endif
