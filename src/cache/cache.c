/* The cache front end: which jobs are cached and on what stamp (see cache.h), metrics, the
 * clock, and the calls the job engine, the API and the store hook make. The backend only
 * stores keys; everything about meaning lives here. */
#include "cache/cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* The models the cache knows: label and TTL key. An index here is what entries store. */
static const char *const MODEL_NAMES[] = {"ising", "cascade", "ews", "bifurcation"};
#define N_MODELS ((int)(sizeof MODEL_NAMES / sizeof MODEL_NAMES[0]))

struct cache {
    cache_backend_t *b;
    metrics_t *m;
    int ttl_s[N_MODELS];
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
    /* The version of the last graph change applied: written by the store's writer thread
     * under the graph write lock, read under the graph read lock. */
    _Atomic uint64_t global_stamp;
    graph_t *graph; /* invalidation by id finds the slot here (cache_attach_graph) */
};

static int64_t default_clock(void *arg) {
    (void)arg;
    return mono_ms();
}

static int model_index(const char *name) {
    for (int i = 0; name && i < N_MODELS; i++)
        if (strcmp(MODEL_NAMES[i], name) == 0) return i;
    return -1;
}

static void label(int model, char *out, size_t n) {
    snprintf(out, n, "model=\"%s\"", model >= 0 && model < N_MODELS ? MODEL_NAMES[model] : "unknown");
}

static void flush_counts(cache_t *c, const cache_counts_t *cnt) {
    char lab[64];
    for (int i = 0; i < N_MODELS; i++) {
        if (!cnt->hits[i] && !cnt->misses[i] && !cnt->evictions[i] && !cnt->invalidations[i]) continue;
        label(i, lab, sizeof lab);
        if (cnt->hits[i]) metrics_counter_add(c->m, "predictd_cache_hits_total", lab, (double)cnt->hits[i]);
        if (cnt->misses[i]) metrics_counter_add(c->m, "predictd_cache_misses_total", lab, (double)cnt->misses[i]);
        if (cnt->evictions[i])
            metrics_counter_add(c->m, "predictd_cache_evictions_total", lab, (double)cnt->evictions[i]);
        if (cnt->invalidations[i])
            metrics_counter_add(c->m, "predictd_cache_invalidations_total", lab, (double)cnt->invalidations[i]);
    }
}

static void collect(void *arg, metrics_t *m) {
    cache_t *c = arg;
    long bytes = 0, entries = 0;
    c->b->pMethods->xUsage(c->b, &bytes, &entries);
    metrics_gauge_set(m, "predictd_cache_bytes", NULL, (double)bytes);
    metrics_gauge_set(m, "predictd_cache_entries", NULL, (double)entries);
}

cache_t *cache_new(cache_backend_t *b, const predictd_config_t *cfg, metrics_t *m) {
    if (!b) return NULL;
    cache_t *c = calloc(1, sizeof *c);
    if (!c) {
        b->pMethods->xClose(b);
        return NULL;
    }
    c->b = b;
    c->m = m;
    c->ttl_s[0] = cfg->cache_ttl_ising_s;
    c->ttl_s[1] = cfg->cache_ttl_cascade_s;
    c->ttl_s[2] = cfg->cache_ttl_ews_s;
    c->ttl_s[3] = cfg->cache_ttl_bifurcation_s;
    c->clock_ms = default_clock;
    atomic_init(&c->global_stamp, 0);
    if (m) {
        metrics_describe(m, "predictd_cache_hits_total", METRIC_COUNTER,
                         "Entity results served from the cache, by model.", NULL, 0);
        metrics_describe(m, "predictd_cache_misses_total", METRIC_COUNTER,
                         "Entity results of cacheable jobs that had to be computed, by model.", NULL, 0);
        metrics_describe(m, "predictd_cache_evictions_total", METRIC_COUNTER,
                         "Cache entries dropped for space (LRU) or at their TTL, by model.", NULL, 0);
        metrics_describe(m, "predictd_cache_invalidations_total", METRIC_COUNTER,
                         "Cache entries dropped because what they depend on changed, an EWS alert "
                         "or a manual invalidation, by model.", NULL, 0);
        metrics_describe(m, "predictd_cache_bytes", METRIC_GAUGE, "Bytes the result cache holds.", NULL, 0);
        metrics_describe(m, "predictd_cache_entries", METRIC_GAUGE, "Entries in the result cache.", NULL, 0);
        char lab[64];
        for (int i = 0; i < N_MODELS; i++) {
            label(i, lab, sizeof lab);
            metrics_counter_add(m, "predictd_cache_hits_total", lab, 0);
            metrics_counter_add(m, "predictd_cache_misses_total", lab, 0);
        }
        metrics_add_collector(m, collect, c);
    }
    return c;
}

int cache_open(cache_t **out, const predictd_config_t *cfg, metrics_t *m, char *err, size_t errlen) {
    *out = NULL;
    if (!cfg->cache_enabled) return 0;
    cache_t *c = cache_new(cache_mem_open(cfg->cache_max_bytes), cfg, m);
    if (!c) {
        snprintf(err, errlen, "out of memory creating the cache");
        return -1;
    }
    *out = c;
    return 0;
}

void cache_free(cache_t *c) {
    if (!c) return;
    if (c->m) metrics_remove_collector(c->m, collect, c);
    c->b->pMethods->xClose(c->b);
    free(c);
}

void cache_set_clock(cache_t *c, int64_t (*clock_ms)(void *arg), void *arg) {
    c->clock_ms = clock_ms ? clock_ms : default_clock;
    c->clock_arg = arg;
}

/* A second 64-bit hash, independent of FNV-1a (multiply-rotate over 8-byte words), so that
 * a parameter key collision needs both to collide. */
static uint64_t hash2(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    h ^= 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ (w * 0x87c37b91114253d5ULL)) * 0x4cf5ad432745937fULL;
        h = (h << 31) | (h >> 33);
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ (w * 0x87c37b91114253d5ULL)) * 0x4cf5ad432745937fULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

void cache_scope(const cache_t *c, const char *model_name, int n_outputs, int job_level,
                 const json_t *params, const char *params_json, const char *ids, size_t ids_len,
                 cache_scope_t *s) {
    memset(s, 0, sizeof *s);
    int mi = model_index(model_name);
    if (!c || mi < 0 || !params_json || n_outputs < 0 || n_outputs > CACHE_MAX_OUTPUTS) return;
    const json_t *method = params ? json_object_get(params, "method") : NULL;
    int analytic = !method || !json_is_string(method) || strcmp(json_string_value(method), "analytic") == 0;
    int request_scoped = 0;
    if (mi == 0 && analytic) {
        /* reads the graph when each chunk runs (its xPrepare does nothing for analytic) */
        s->dep = CACHE_DEP_NEIGHBOURS;
    } else if (job_level) {
        /* simulated once per job before its chunks run (or a job summary per-entity entries
         * cannot hold): a stamp read when a chunk runs would be later than the state the
         * simulation saw */
        return;
    } else if (mi == 0 || mi == 1) {
        /* whole-graph simulations: the simulated subgraph is the union of the requested
         * entities' neighbourhoods and spins evolve together: every change, whole request */
        s->dep = CACHE_DEP_GLOBAL;
        request_scoped = 1;
        s->dep = CACHE_DEP_GLOBAL;
        request_scoped = 1;
    } else {
        s->dep = CACHE_DEP_ENTITY;
    }
    s->model = mi;
    s->ttl_s = c->ttl_s[mi];
    s->n_outputs = n_outputs;
    size_t len = strlen(params_json);
    s->h1 = hash_fnv1a(model_name, strlen(model_name), 0);
    s->h1 = hash_fnv1a(params_json, len, s->h1);
    s->h2 = hash2(model_name, strlen(model_name), 0);
    s->h2 = hash2(params_json, len, s->h2);
    if (request_scoped) {
        s->h1 = hash_fnv1a(ids ? ids : "", ids ? ids_len : 0, s->h1 ^ 0x51);
        s->h2 = hash2(ids ? ids : "", ids ? ids_len : 0, s->h2 ^ 0x51);
    }
}

uint64_t cache_stamp(const cache_t *c, const cache_scope_t *s, const graph_t *g, int64_t idx) {
    if (!c || s->dep == CACHE_DEP_NONE || idx < 0 || (uint64_t)idx >= g->n || !g->ids[idx]) return 0;
    switch (s->dep) {
    case CACHE_DEP_ENTITY: return g->version[idx];
    case CACHE_DEP_NEIGHBOURS: return g->reach_version[idx]; /* kept by the graph's mutators */
    case CACHE_DEP_GLOBAL: return atomic_load(&c->global_stamp) + 1;
    default: return 0;
    }
}

int cache_may_hold(cache_t *c, const cache_scope_t *s) {
    if (!c || s->dep == CACHE_DEP_NONE) return 0;
    return c->b->pMethods->xMayHold(c->b, s);
}

long cache_get_many(cache_t *c, const cache_scope_t *s, size_t n, const char *const *ids,
                    const int64_t *slots, const uint64_t *stamps, uint8_t *codes, double *out,
                    uint8_t *hit) {
    memset(hit, 0, n);
    if (!c || s->dep == CACHE_DEP_NONE || n == 0) return 0;
    cache_counts_t cnt;
    memset(&cnt, 0, sizeof cnt);
    long hits = c->b->pMethods->xGetMany(c->b, s, n, ids, slots, stamps, c->clock_ms(c->clock_arg), codes,
                                         out, hit, &cnt);
    if (c->m && (cnt.evictions[s->model] || cnt.invalidations[s->model])) flush_counts(c, &cnt);
    return hits;
}

void cache_count(cache_t *c, const cache_scope_t *s, long hits, long misses) {
    if (!c || !c->m || s->dep == CACHE_DEP_NONE) return;
    cache_counts_t cnt;
    memset(&cnt, 0, sizeof cnt);
    cnt.hits[s->model] = hits;
    cnt.misses[s->model] = misses;
    flush_counts(c, &cnt);
}

uint64_t cache_generation(cache_t *c) { return c ? c->b->pMethods->xGeneration(c->b) : 0; }

void cache_put_many(cache_t *c, const cache_scope_t *s, uint64_t gen, size_t n, const char *const *ids,
                    const int64_t *slots, const uint64_t *stamps, const uint8_t *codes, const double *out) {
    if (!c || s->dep == CACHE_DEP_NONE || n == 0) return;
    cache_counts_t cnt;
    memset(&cnt, 0, sizeof cnt);
    c->b->pMethods->xPutMany(c->b, s, gen, n, ids, slots, stamps, c->clock_ms(c->clock_arg), codes, out, &cnt);
    if (c->m) flush_counts(c, &cnt);
}

void cache_attach_graph(cache_t *c, graph_t *g) {
    if (c) c->graph = g;
}

static long invalidate_one(cache_t *c, const char *entity_id, int model, cache_counts_t *cnt) {
    int64_t slot = -1;
    if (c->graph) {
        graph_rdlock(c->graph);
        slot = graph_find(c->graph, entity_id);
        graph_unlock(c->graph);
    }
    return c->b->pMethods->xInvalidateEntity(c->b, entity_id, slot, model, cnt);
}

long cache_invalidate_entity(cache_t *c, const char *entity_id) {
    if (!c || !entity_id) return 0;
    cache_counts_t cnt;
    memset(&cnt, 0, sizeof cnt);
    long n = invalidate_one(c, entity_id, -1, &cnt);
    if (c->m) flush_counts(c, &cnt);
    return n;
}

long cache_invalidate(cache_t *c, const char *const *ids, size_t n, const char *model, int all) {
    if (!c) return 0;
    int mi = -1;
    if (!all && model) {
        mi = model_index(model);
        if (mi < 0) return -1;
    }
    cache_counts_t cnt;
    memset(&cnt, 0, sizeof cnt);
    long removed = 0;
    if (all || n == 0) {
        removed = c->b->pMethods->xInvalidateModel(c->b, all ? -1 : mi, &cnt);
    } else {
        for (size_t i = 0; i < n; i++) removed += invalidate_one(c, ids[i], mi, &cnt);
    }
    if (c->m) flush_counts(c, &cnt);
    return removed;
}

int cache_model_known(const cache_t *c, const char *model_name) {
    (void)c;
    return model_index(model_name) >= 0;
}

void cache_on_graph_change(void *arg, uint64_t version) {
    cache_t *c = arg;
    if (c && version > atomic_load(&c->global_stamp)) atomic_store(&c->global_stamp, version);
}
