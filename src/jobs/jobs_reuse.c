/* Identical requests answered with the job that already holds their results.
 *
 * A job done in its submission (every entity served from the cache or computed inline) has
 * its results on disk and, for each entity, the dependency stamp its result holds for (see
 * cache.h: the stamp moves whenever anything the result reads changes). Those stamps are kept
 * as a digest (jobs_prefill_t). A later submission of the same model, the same normalised
 * parameters and the same entity list, while every entity's stamp is the same again, would
 * compute exactly those results; so it gets that job, already durable, instead of a new job
 * that stores a second copy: no write, no commit to wait for. The answer says "reused": true.
 *
 * Never staler than the cache itself: an entry lives for the model's cache TTL (or half of
 * jobs.retention_s when shorter, so its job is never deleted first), and any cache
 * invalidation (an EWS alert, the manual call) retires every entry (the cache's generation is
 * part of the check). Requests with an Idempotency-Key keep their own semantics and are not
 * reused. The table is small and in memory: after a restart the first repeat is a new job. */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

#define REUSE_SLOTS 4096 /* direct-mapped: a newer job takes an older one's slot */

typedef struct {
    uint64_t k1, k2;       /* request: model, parameters, entity list */
    uint64_t b1, b2;       /* the bytes of the request that made it (0: unknown) */
    cache_scope_t scope;
    uint64_t d1, d2;       /* the stamps' digest */
    uint64_t cache_gen;
    uint64_t mutations;    /* the graph's mutation count the job saw throughout, or 0 */
    int64_t expires_ms;    /* monotonic */
    long n;
    store_job_t job;
} reuse_entry_t;

/* The same jobs found by the bytes of their request: body hash -> request key. */
typedef struct {
    uint64_t b1, b2, k1, k2;
} body_entry_t;

struct jobs_reuse {
    long max_s;         /* an entry's longest life (half the jobs' retention); 0 = no bound */
    pthread_mutex_t mu; /* protects slots and bodies */
    reuse_entry_t slots[REUSE_SLOTS];
    body_entry_t bodies[REUSE_SLOTS];
};

jobs_reuse_t *jobs_reuse_new(long retention_s) {
    jobs_reuse_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->max_s = retention_s > 0 ? (retention_s + 1) / 2 : 0;
    return r;
}

void jobs_reuse_expire(jobs_reuse_t *r, int64_t finished_before_ms) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < REUSE_SLOTS; i++)
        if (r->slots[i].expires_ms && r->slots[i].job.finished_at < finished_before_ms)
            memset(&r->slots[i], 0, sizeof r->slots[i]);
    pthread_mutex_unlock(&r->mu);
}

void jobs_reuse_free(jobs_reuse_t *r) {
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void jobs_reuse_key(const char *model, const char *params_json, const char *ids, size_t ids_len,
                    uint64_t *k1, uint64_t *k2) {
    /* two independent 64-bit hashes (different seeds and orders): a false match needs both */
    uint64_t a = hash_bytes(model, strlen(model) + 1, 0x243f6a8885a308d3ULL);
    a = hash_bytes(params_json, strlen(params_json) + 1, a);
    a = hash_bytes(ids, ids_len, a);
    uint64_t b = hash_bytes(ids, ids_len, 0x13198a2e03707344ULL);
    b = hash_bytes(params_json, strlen(params_json), b ^ 0xa4093822299f31d0ULL);
    b = hash_bytes(model, strlen(model), b);
    *k1 = a;
    *k2 = b;
}

void jobs_body_key(const char *model, const char *body, size_t len, jobs_body_key_t *out) {
    out->h1 = hash_bytes(body, len, hash_bytes(model, strlen(model) + 1, 0x452821e638d01377ULL));
    out->h2 = hash_bytes(body, len, hash_bytes(model, strlen(model) + 1, 0xbe5466cf34e90c6cULL));
    if (!out->h1 && !out->h2) out->h1 = 1; /* 0/0 means "no body key" */
}

void jobs_reuse_put(jobs_reuse_t *r, uint64_t k1, uint64_t k2, const jobs_body_key_t *body,
                    const cache_scope_t *scope, uint64_t d1, uint64_t d2, uint64_t cache_gen, uint64_t mutations,
                    long n, const store_job_t *job) {
    if (!r || scope->ttl_s <= 0) return;
    const long ttl_s = r->max_s > 0 && r->max_s < scope->ttl_s ? r->max_s : scope->ttl_s;
    pthread_mutex_lock(&r->mu);
    reuse_entry_t *e = &r->slots[k1 % REUSE_SLOTS];
    e->k1 = k1;
    e->k2 = k2;
    e->b1 = body ? body->h1 : 0;
    e->b2 = body ? body->h2 : 0;
    e->scope = *scope;
    if (body) {
        body_entry_t *be = &r->bodies[body->h1 % REUSE_SLOTS];
        be->b1 = body->h1;
        be->b2 = body->h2;
        be->k1 = k1;
        be->k2 = k2;
    }
    e->d1 = d1;
    e->d2 = d2;
    e->cache_gen = cache_gen;
    e->mutations = mutations;
    e->expires_ms = mono_ms() + (int64_t)ttl_s * 1000;
    e->n = n;
    e->job = *job;
    pthread_mutex_unlock(&r->mu);
}

void jobs_reuse_count(jobs_t *j, const model_t *md, const cache_scope_t *s, long n) {
    if (md) {
        char lab[96];
        jobs_model_labels(md, lab, sizeof lab);
        metrics_counter_add(j->m, "predictd_jobs_submitted_total", lab, 1);
    }
    metrics_counter_add(j->m, "predictd_jobs_reused_total", NULL, 1);
    cache_count(jobs_cache(j), s, n, 0); /* served without computing: cache hits */
}

int jobs_reuse_find(jobs_t *j, const cache_scope_t *s, uint64_t k1, uint64_t k2, const char *ids, size_t ids_len,
                    long n, store_job_t *out) {
    jobs_reuse_t *r = j->reuse;
    cache_t *c = jobs_cache(j);
    if (!r || !c || s->dep == CACHE_DEP_NONE || n <= 0) return 0;
    reuse_entry_t e;
    pthread_mutex_lock(&r->mu);
    e = r->slots[k1 % REUSE_SLOTS];
    pthread_mutex_unlock(&r->mu);
    if (e.k1 != k1 || e.k2 != k2 || e.n != n || e.expires_ms <= mono_ms() || e.cache_gen != cache_generation(c))
        return 0;
    /* nothing at all changed in the graph since before that job was computed: its results
     * still hold, no need to look at each entity */
    if (e.mutations && e.mutations == graph_mutations(j->g)) {
        *out = e.job;
        return 1;
    }
    /* the same request: are its entities in the state its results hold for? */
    const char **ptr = malloc((size_t)n * sizeof *ptr);
    int64_t *slots = malloc((size_t)n * sizeof *slots);
    int same = 0;
    if (ptr && slots) {
        const char *p = ids, *end = ids + ids_len;
        long k = 0;
        for (; k < n && p < end; k++) {
            ptr[k] = p;
            p += strlen(p) + 1;
        }
        if (k == n) {
            uint64_t d1 = 0, d2 = 0;
            graph_rdlock(j->g);
            graph_find_many(j->g, ptr, (size_t)n, slots);
            long q = 0;
            for (; q < n; q++) {
                uint64_t st = cache_stamp(c, s, j->g, slots[q]);
                if (!st) break;
                jobs_stamp_add(&d1, &d2, q, st);
            }
            graph_unlock(j->g);
            same = q == n && d1 == e.d1 && d2 == e.d2;
        }
    }
    free(ptr);
    free(slots);
    if (same) *out = e.job;
    return same;
}

int jobs_reuse_by_body(jobs_t *j, const char *model, const jobs_body_key_t *body, store_job_t *out) {
    (void)model; /* part of the body key */
    jobs_reuse_t *r = j->reuse;
    cache_t *c = jobs_cache(j);
    if (!r || !c || !body || (!body->h1 && !body->h2)) return 0;
    reuse_entry_t e;
    pthread_mutex_lock(&r->mu);
    const body_entry_t be = r->bodies[body->h1 % REUSE_SLOTS];
    int found = be.b1 == body->h1 && be.b2 == body->h2;
    if (found) e = r->slots[be.k1 % REUSE_SLOTS];
    pthread_mutex_unlock(&r->mu);
    /* the job made by these bytes, still remembered, and the graph untouched since before it
     * was computed (anything else: the request is parsed and checked entity by entity) */
    if (!found || e.k1 != be.k1 || e.k2 != be.k2 || e.b1 != body->h1 || e.b2 != body->h2 ||
        e.expires_ms <= mono_ms() || e.cache_gen != cache_generation(c) || !e.mutations ||
        e.mutations != graph_mutations(j->g))
        return 0;
    *out = e.job;
    jobs_reuse_count(j, jobs_model_find(j, e.job.model), &e.scope, e.n);
    return 1;
}
