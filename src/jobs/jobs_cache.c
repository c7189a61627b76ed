/* The result cache inside the job engine (the keys and their meaning: cache/cache.h).
 *
 * Submission: every entity is looked up, a chunk at a time; a chunk whose entities all hit
 * is encoded as its result blob and written with the job in the job's own transaction (so
 * it is as durable as a computed chunk, the results pages have one code path, and recovery
 * never queues it); a job whose chunks all hit is stored COMPLETED. Workers: the other chunks
 * look their entities up again when they run (the cache may have gained some since) and
 * the model computes only the misses. A computed result is stored after its chunk commits,
 * under the stamp read before the model ran (stamps only grow, so the model saw that state
 * or a later one: never stale), and only if the stamp is the same after the run, so that an
 * entry holds exactly the state its stamp names.
 * Counting: an entity served from the cache is a hit, one the model computed a miss (each
 * counted once per chunk execution, where it was decided). */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

/* What the cache knows about a model's jobs (see cache_scope). */
void jobs_cache_scope(jobs_t *j, const model_t *md, const json_t *params, const char *params_json,
                      const char *ids, size_t ids_len, cache_scope_t *s) {
    int job_level = md->xPrepare != NULL || md->xSummary != NULL;
    cache_scope(jobs_cache(j), md->name, md->n_outputs, job_level, params, params_json, ids, ids_len, s);
}

void jobs_cache_on_alert(void *arg, const model_alert_t *a) {
    jobs_t *j = arg;
    cache_invalidate_entity(jobs_cache(j), a->entity_id);
    jobs_publish_alert(j, a);
}

void jobs_attach_cache(jobs_t *j, struct cache *c) { __atomic_store_n(&j->cache, c, __ATOMIC_RELEASE); }

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void jobs_stamp_add(uint64_t *d1, uint64_t *d2, long pos, uint64_t stamp) {
    uint64_t a = mix64(((uint64_t)pos << 1) ^ mix64(stamp));
    *d1 += a;
    *d2 += mix64(a ^ 0x9E3779B97F4A7C15ULL ^ stamp);
}

void jobs_prefill_free(jobs_prefill_t *pf) {
    for (size_t i = 0; i < pf->n_settled; i++) free((void *)pf->settled[i].blob);
    free(pf->settled);
    free(pf->done);
    memset(pf, 0, sizeof *pf);
}

int jobs_cache_prefill(jobs_t *j, const model_t *md, const json_t *params, const char *params_json,
                       const char *ids, size_t ids_len, long n, int cs, jobs_prefill_t *pf) {
    memset(pf, 0, sizeof *pf);
    cache_t *c = jobs_cache(j);
    if (!c || n <= 0 || cs <= 0) return 0;
    cache_scope_t s;
    jobs_cache_scope(j, md, params, params_json, ids, ids_len, &s);
    pf->scope = s; /* also when nothing is cached yet: the inline path caches into it */
    if (s.dep == CACHE_DEP_NONE || !cache_may_hold(c, &s)) return 0;
    const long n_chunks = (n + cs - 1) / cs;
    const int no = md->n_outputs;
    const char **ptr = malloc((size_t)cs * sizeof *ptr);
    uint8_t *codes = malloc((size_t)cs), *hit = malloc((size_t)cs);
    double *vals = malloc(((size_t)cs * (size_t)no + 1) * sizeof *vals);
    int64_t *slots = malloc((size_t)cs * sizeof *slots);
    uint64_t *stamps = malloc((size_t)cs * sizeof *stamps);
    pf->done = calloc((size_t)n_chunks, 1);
    pf->settled = malloc((size_t)n_chunks * sizeof *pf->settled);
    if (!ptr || !codes || !hit || !vals || !slots || !stamps || !pf->done || !pf->settled) goto fail;
    const char *p = ids, *end = ids + ids_len;
    for (long ch = 0; ch < n_chunks; ch++) {
        uint32_t m = (uint32_t)(n - ch * cs < cs ? n - ch * cs : cs);
        for (uint32_t k = 0; k < m; k++) {
            if (p >= end) goto fail; /* fewer ids than n: the caller's bug; compute everything */
            ptr[k] = p;
            p += strlen(p) + 1;
        }
        /* a chunk with any miss runs (its hits are looked up again then) */
        graph_rdlock(j->g);
        graph_find_many(j->g, ptr, m, slots);
        uint32_t k = 0;
        for (; k < m; k++)
            if (!(stamps[k] = cache_stamp(c, &s, j->g, slots[k]))) break; /* unknown: computed */
        graph_unlock(j->g);
        if (k < m || cache_get_many(c, &s, m, ptr, slots, stamps, codes, vals, hit) < (long)m) continue;
        if (jobs_prefill_add(pf, (uint32_t)ch, ptr, m, no, codes, vals) < 0) continue; /* no memory: it runs */
        for (uint32_t q = 0; q < m; q++) jobs_stamp_add(&pf->digest1, &pf->digest2, ch * cs + q, stamps[q]);
        pf->stamped += m;
    }
    goto out;
fail:
    jobs_prefill_free(pf);
out:
    free(ptr);
    free(codes);
    free(hit);
    free(vals);
    free(slots);
    free(stamps);
    return 0;
}

int jobs_prefill_add(jobs_prefill_t *pf, uint32_t chunk, const char *const *ids, uint32_t m, int n_outputs,
                     const uint8_t *codes, const double *vals) {
    buf_t b = {0};
    if (jobs_blob_encode(&b, ids, m, n_outputs, codes, vals) < 0 || b.oom) {
        buf_free(&b);
        return -1;
    }
    store_chunk_blob_t *cb = &pf->settled[pf->n_settled++];
    cb->chunk = chunk;
    cb->len = b.len;
    cb->blob = buf_steal(&b);
    pf->done[chunk] = 1;
    for (uint32_t q = 0; q < m; q++) {
        if (codes[q] == MODEL_OK) pf->successful++;
        else pf->failed++;
    }
    return 0;
}

void jobs_prefill_counted(jobs_t *j, const jobs_prefill_t *pf) {
    long hits = pf->successful + pf->failed - pf->inline_n; /* inline chunks counted as they ran */
    if (hits > 0) cache_count(jobs_cache(j), &pf->scope, hits, 0);
}

void jobs_cache_run_free(jobs_cache_run_t *r) {
    if (!r) return;
    free(r->miss_at);
    free(r->miss_ids);
    free(r->ids_copy);
    free(r->miss_codes);
    free(r->miss_vals);
    free(r->stamp);
    free(r->stamp_all);
    free(r->slot);
    free(r);
}

jobs_cache_run_t *jobs_cache_begin(jobs_t *j, const model_t *md, job_work_t *w, const cache_scope_t *scope,
                                   const char *const *ids, uint32_t n, uint8_t *codes, double *vals) {
    cache_t *c = jobs_cache(j);
    if (!c || n == 0) return NULL;
    cache_scope_t s;
    if (scope) {
        s = *scope;
    } else {
        pthread_mutex_lock(&j->mu);
        if (!w->cache_scope_set) {
            char *pj = json_dumps(w->params, JSON_COMPACT | JSON_SORT_KEYS); /* as the store keeps it */
            if (pj) {
                size_t len = 0;
                if (w->n > 0) len = (size_t)(w->ids[w->n - 1] - w->ids_blob) + strlen(w->ids[w->n - 1]) + 1;
                jobs_cache_scope(j, md, w->params, pj, w->ids_blob, len, &w->cache_scope);
                w->cache_scope_set = 1;
            }
            free(pj);
        }
        s = w->cache_scope;
        int set = w->cache_scope_set;
        pthread_mutex_unlock(&j->mu);
        if (!set) return NULL;
    }
    if (s.dep == CACHE_DEP_NONE) return NULL;

    const int no = md->n_outputs;
    jobs_cache_run_t *r = calloc(1, sizeof *r);
    int64_t *slots = malloc((size_t)n * sizeof *slots);
    uint8_t *hit = malloc((size_t)n);
    if (!r || !slots || !hit) goto fail;
    r->scope = s;
    r->miss_at = malloc((size_t)n * sizeof *r->miss_at);
    r->miss_ids = malloc((size_t)n * sizeof *r->miss_ids);
    r->miss_codes = malloc((size_t)n);
    r->miss_vals = malloc(((size_t)n * (size_t)no + 1) * sizeof *r->miss_vals);
    r->stamp = malloc((size_t)n * sizeof *r->stamp);
    r->slot = malloc((size_t)n * sizeof *r->slot);
    r->stamp_all = malloc((size_t)n * sizeof *r->stamp_all);
    if (!r->miss_at || !r->miss_ids || !r->miss_codes || !r->miss_vals || !r->stamp || !r->slot || !r->stamp_all)
        goto fail;
    r->gen = cache_generation(c); /* before the lookups and the computation */
    graph_rdlock(j->g);
    graph_find_many(j->g, ids, n, slots);
    for (uint32_t k = 0; k < n; k++) r->stamp_all[k] = cache_stamp(c, &s, j->g, slots[k]);
    r->graph_mutations = j->g->mutations;
    graph_unlock(j->g);
    cache_get_many(c, &s, n, ids, slots, r->stamp_all, codes, vals, hit);
    size_t bytes = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (hit[k]) continue;
        r->miss_at[r->n_miss] = k;
        r->stamp[r->n_miss] = r->stamp_all[k];
        r->slot[r->n_miss] = slots[k];
        r->miss_ids[r->n_miss] = ids[k];
        r->n_miss++;
        if (!scope) bytes += strlen(ids[k]) + 1;
    }
    if (!scope) { /* a worker's: the job's ids may be gone by the commit, keep a copy */
        r->ids_copy = malloc(bytes ? bytes : 1);
        if (!r->ids_copy) goto fail;
        char *p = r->ids_copy;
        for (uint32_t q = 0; q < r->n_miss; q++) {
            size_t len = strlen(r->miss_ids[q]) + 1;
            memcpy(p, r->miss_ids[q], len);
            r->miss_ids[q] = p;
            p += len;
        }
    }
    cache_count(c, &s, (long)(n - r->n_miss), (long)r->n_miss);
    free(slots);
    free(hit);
    return r;
fail:
    free(slots);
    free(hit);
    jobs_cache_run_free(r);
    return NULL; /* computes the whole chunk; whatever was filled in is overwritten */
}

void jobs_cache_end(jobs_t *j, jobs_cache_run_t *r, uint8_t *codes, double *vals) {
    const int no = r->scope.n_outputs;
    for (uint32_t q = 0; q < r->n_miss; q++) {
        codes[r->miss_at[q]] = r->miss_codes[q];
        memcpy(vals + (size_t)r->miss_at[q] * no, r->miss_vals + (size_t)q * no, (size_t)no * sizeof *vals);
    }
    cache_t *c = jobs_cache(j);
    graph_rdlock(j->g);
    /* nothing changed in the graph since the stamps were read: they all still hold */
    if (j->g->mutations != r->graph_mutations || r->scope.dep == CACHE_DEP_GLOBAL)
        for (uint32_t q = 0; q < r->n_miss; q++) {
            int64_t slot = graph_find(j->g, r->miss_ids[q]);
            if (r->stamp[q] && (slot != r->slot[q] || cache_stamp(c, &r->scope, j->g, slot) != r->stamp[q])) {
                r->stamp[q] = 0; /* changed while it was computed: which state it saw is unknown */
                r->stamp_all[r->miss_at[q]] = 0;
            }
        }
    graph_unlock(j->g);
}

void jobs_cache_commit(jobs_t *j, jobs_cache_run_t *r) {
    cache_put_many(jobs_cache(j), &r->scope, r->gen, r->n_miss, r->miss_ids, r->slot, r->stamp, r->miss_codes,
                   r->miss_vals);
}
