/* Small jobs computed during their submission (jobs.inline_max_entities).
 *
 * A job of per-entity formulas (model_t.xInline: Ising analytic, EWS, bifurcation) whose
 * entities still to compute after the cache number at most inline_max_entities costs less
 * to compute than to queue: the submitting thread runs its chunks exactly as a worker would
 * (cache hits filled in, misses computed, results put into the cache), and the chunk blobs
 * are written with the job in the job's own transaction, like chunks served whole from the
 * cache. The job is stored COMPLETED: one commit instead of one per chunk plus the job's, and
 * the client's first answer already says the results are ready. Durability is unchanged: the
 * 202 still follows the commit, and a crash before it loses nothing that was acknowledged.
 *
 * Not inlined: models without xInline (simulations, jobs with a summary), jobs over the
 * limit, and servers injecting chunk faults (faults.chunk_failures exercises the queue). */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

long jobs_inline_fill(jobs_t *j, const model_t *md, const json_t *params, const char *job_id,
                      const char *ids, size_t ids_len, long n, int cs, jobs_prefill_t *pf) {
    if (j->cfg.inline_max_entities <= 0 || !md->xInline || j->cfg.fault_chunk_failures > 0 || n <= 0 ||
        cs <= 0 || !md->xInline(params))
        return 0;
    const long n_chunks = (n + cs - 1) / cs;
    long to_compute = 0;
    for (long ch = 0; ch < n_chunks; ch++)
        if (!pf->done || !pf->done[ch]) to_compute += n - ch * cs < cs ? n - ch * cs : cs;
    if (to_compute == 0 || to_compute > j->cfg.inline_max_entities) return 0;

    const int no = md->n_outputs;
    const char **ptr = malloc((size_t)n * sizeof *ptr);
    uint8_t *codes = malloc((size_t)cs);
    double *vals = malloc(((size_t)cs * (size_t)no + 1) * sizeof *vals);
    if (!pf->done) pf->done = calloc((size_t)n_chunks, 1);
    if (!pf->settled) pf->settled = malloc((size_t)n_chunks * sizeof *pf->settled);
    long settled = 0;
    if (!ptr || !codes || !vals || !pf->done || !pf->settled) goto out;
    const char *p = ids, *end = ids + ids_len;
    for (long i = 0; i < n; i++) {
        if (p >= end) goto out; /* fewer ids than n: leave it all to the queue */
        ptr[i] = p;
        p += strlen(p) + 1;
    }
    /* what a worker would hold for this job (jobs_cache_begin reads the scope from it) */
    job_work_t w = {.params = (json_t *)params, .ids_blob = (char *)ids, .ids = ptr, .n = n, .prepared = 1};
    model_env_t env = j->env;
    env.job_id = job_id;
    env.model_ctx = md->ctx;
    char err[256];
    double t0 = mono_s();
    /* the job's cache scope, as jobs_cache_prefill found it (a worker's chunk derives it from
     * its job's work) */
    cache_scope_t scope = pf->scope;
    for (long ch = 0; ch < n_chunks; ch++) {
        if (pf->done[ch]) continue;
        const long from = ch * cs;
        const uint32_t m = (uint32_t)(n - from < cs ? n - from : cs);
        err[0] = 0;
        int rc = 0;
        jobs_cache_run_t *run = jobs_cache_begin(j, md, &w, &scope, ptr + from, m, codes, vals);
        if (!run)
            rc = md->xRunChunk(&env, params, ptr + from, m, codes, vals, err, sizeof err);
        else if (run->n_miss) {
            env.slots = run->slot;
            env.slots_mutations = run->graph_mutations;
            rc = md->xRunChunk(&env, params, run->miss_ids, run->n_miss, run->miss_codes, run->miss_vals,
                               err, sizeof err);
            env.slots = NULL;
        }
        if (rc == 0 && run) {
            jobs_cache_end(j, run, codes, vals);
            jobs_cache_commit(j, run);
        }
        if (rc != 0) {
            jobs_cache_run_free(run);
            /* the queue retries it with backoff and dead letters, as for any chunk */
            LOG_W("inline chunk failed; queued instead", "job=%s chunk=%ld reason=\"%s\"", job_id, ch, err);
            break;
        }
        if (jobs_prefill_add(pf, (uint32_t)ch, ptr + from, m, no, codes, vals) < 0) {
            jobs_cache_run_free(run);
            break;
        }
        if (run) { /* what these results hold for (see jobs_prefill_t) */
            uint32_t q = 0;
            for (; q < m && run->stamp_all[q]; q++) jobs_stamp_add(&pf->digest1, &pf->digest2, from + q, run->stamp_all[q]);
            if (q == m) pf->stamped += m;
        }
        jobs_cache_run_free(run);
        for (uint32_t q = 0; q < m; q++) pf->inline_failed += codes[q] != MODEL_OK;
        pf->inline_n += m;
        settled++;
    }
    pf->exec_ms += (mono_s() - t0) * 1000.0;
    if (settled) {
        metrics_counter_add(j->m, "predictd_jobs_inline_total", NULL, 1);
        metrics_counter_add(j->m, "predictd_jobs_inline_entities_total", NULL, (double)pf->inline_n);
    }
out:
    free(ptr);
    free(codes);
    free(vals);
    return settled;
}
