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
 * the in-process one (entries by parameter set and graph slot, LRU by bytes). Thread-safe throughout. */
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

typedef enum {
    CACHE_DEP_NONE = 0,   /* not cached */
    CACHE_DEP_ENTITY,     /* the entity's version */
    CACHE_DEP_NEIGHBOURS, /* max of the entity's and its neighbours' versions */
    CACHE_DEP_GLOBAL,     /* every graph change */
} cache_dep_t;

/* What a job's results are keyed on: decided once per job from its model and parameters.
 * A backend keeps the entries of one (model, h1, h2) together: a parameter set. */
typedef struct {
    cache_dep_t dep;      /* CACHE_DEP_NONE: skip the cache for this job */
    int model;            /* index into the model table */
    int ttl_s;
    int n_outputs;
    uint64_t h1, h2;      /* parameter hash (two independent 64-bit hashes) */
} cache_scope_t;

/* Per-model counts a backend call adds to (the front end turns them into metrics). */
typedef struct {
    long hits[CACHE_MAX_MODELS], misses[CACHE_MAX_MODELS];
    long evictions[CACHE_MAX_MODELS], invalidations[CACHE_MAX_MODELS];
} cache_counts_t;

/* A backend. Calls take many entities at once (a chunk): one lock, one set lookup. Entities
 * come as ids and graph slots naming the same entities: the memory backend keys on slots
 * (no string hashing; a slot reused by another entity is told apart by the stamp, which
 * comes from a store-wide clock and so is newer than any entry of the slot's old entity), a
 * networked one would key on ids. now_ms comes from the front end's clock (tests inject one). */
typedef struct cache_backend cache_backend_t;
typedef struct cache_methods {
    /* For each k with stamps[k] != 0: a live entry of the set with that stamp is a hit
     * (hit[k] = 1, codes[k] and out[k * n_outputs ..] filled, else hit[k] = 0). An entry with
     * an older stamp is dead for good and is removed (an invalidation), an expired one too
     * (an eviction). Returns the hits. */
    long (*xGetMany)(cache_backend_t *b, const cache_scope_t *s, size_t n, const char *const *ids,
                     const int64_t *slots, const uint64_t *stamps, int64_t now_ms, uint8_t *codes,
                     double *out, uint8_t *hit, cache_counts_t *cnt);
    /* Stores the entities with stamps[k] != 0 (replacing the set's entry for the entity unless
     * that one has a newer stamp), unless an invalidation ran since gen was read. */
    void (*xPutMany)(cache_backend_t *b, const cache_scope_t *s, uint64_t gen, size_t n,
                     const char *const *ids, const int64_t *slots, const uint64_t *stamps,
                     int64_t now_ms, const uint8_t *codes, const double *out, cache_counts_t *cnt);
    /* 0 when the set holds nothing: a job with parameters never seen skips its lookups. */
    int (*xMayHold)(cache_backend_t *b, const cache_scope_t *s);
    /* The invalidation generation: read before computing results, given to xPutMany. */
    uint64_t (*xGeneration)(cache_backend_t *b);
    /* Removes the entity's entries (model < 0: of every model); returns how many. */
    long (*xInvalidateEntity)(cache_backend_t *b, const char *entity_id, int64_t slot, int model,
                              cache_counts_t *cnt);
    /* Removes every entry of model (model < 0: everything); returns how many. */
    long (*xInvalidateModel)(cache_backend_t *b, int model, cache_counts_t *cnt);
    /* Bytes held and entries. */
    void (*xUsage)(cache_backend_t *b, long *bytes, long *entries);
    void (*xClose)(cache_backend_t *b);
} cache_methods_t;

struct cache_backend {
    const cache_methods_t *pMethods;
};

/* The memory backend, bounded by max_bytes (cache_mem.c says how). NULL on no memory. */
cache_backend_t *cache_mem_open(long max_bytes);

/* ---- the front end ------------------------------------------------------------------- */

/* Opens the backend the config names (memory for now). metrics may be NULL (tests).
 * With cache.enabled = 0 returns 0 and *out = NULL: every cache_* call takes NULL. */
int cache_open(cache_t **out, const predictd_config_t *cfg, metrics_t *m, char *err, size_t errlen);
/* Same, on a given backend (owned from here on), for tests. */
cache_t *cache_new(cache_backend_t *b, const predictd_config_t *cfg, metrics_t *m);
void cache_free(cache_t *c); /* NULL is a no-op */

/* Tests: the clock TTLs are measured on (default mono_ms). */
void cache_set_clock(cache_t *c, int64_t (*clock_ms)(void *arg), void *arg);

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

/* Looks n entities up (slots from graph_find, stamps from cache_stamp; a 0 stamp is never
 * looked up): hit[k] = 1 and codes[k], out[k * n_outputs ..] filled for each hit. Returns the
 * hits. Counts no hits or misses: see cache_count. */
long cache_get_many(cache_t *c, const cache_scope_t *s, size_t n, const char *const *ids,
                    const int64_t *slots, const uint64_t *stamps, uint8_t *codes, double *out,
                    uint8_t *hit);
/* Adds served-from-cache and computed entity counts of the scope's model to the metrics. */
void cache_count(cache_t *c, const cache_scope_t *s, long hits, long misses);
/* 0 when no result with these parameters is held: a lookup would miss (cheap; a job with
 * parameters never seen skips its lookups). 1: maybe. */
int cache_may_hold(cache_t *c, const cache_scope_t *s);
/* Read before computing results; pass to cache_put_many. */
uint64_t cache_generation(cache_t *c);
/* Stores n results (entities with a 0 stamp are skipped) unless an invalidation ran since
 * gen was read. */
void cache_put_many(cache_t *c, const cache_scope_t *s, uint64_t gen, size_t n, const char *const *ids,
                    const int64_t *slots, const uint64_t *stamps, const uint8_t *codes, const double *out);

/* The graph whose slots the entries are keyed on: invalidation by entity id looks the id
 * up there. Set once at start, before any call that invalidates. */
void cache_attach_graph(cache_t *c, graph_t *g);
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
