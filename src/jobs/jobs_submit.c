/* Submission: validation of a request, durable admission of the job (the 202 follows the
 * commit), its chunks settled at once from the cache or computed inline when small, the rest
 * queued (see jobs.h). The queue, workers and recovery live in jobs.c. */
#include "jobs/jobs_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ID_BYTES 256
/* Jobs up to this size are remembered for reuse by an identical request (jobs_reuse.c):
 * checking one costs a lookup of every entity, hashing its list a pass over its bytes. */
#define REUSE_MAX_ENTITIES 100000

static void set_err(jobs_error_t *e, int status, const char *code, const char *field,
                    int retry_after_s, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void set_err(jobs_error_t *e, int status, const char *code, const char *field,
                    int retry_after_s, const char *fmt, ...) {
    if (!e) return;
    e->http_status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    e->retry_after_s = retry_after_s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* ---- submission --------------------------------------------------------------------- */

/* Milliseconds until chunks_ahead + n_chunks chunks are done by the pool. j->mu held. */
static int64_t estimate_ms(jobs_t *j, long chunks_ahead, long n_chunks) {
    double avg = j->chunk_ms_avg > 0 ? j->chunk_ms_avg : DEFAULT_CHUNK_MS;
    long rounds = (chunks_ahead + n_chunks + j->n_workers - 1) / j->n_workers;
    return (int64_t)ceil((double)rounds * avg);
}

/* Validates a list of entity ids: fills a NUL-separated blob of the distinct ids in
 * first-seen order. 0 ok, -1 err filled. */
static int collect_ids_list(jobs_t *j, const jobs_ids_t *ids, buf_t *blob, long *n_out, jobs_error_t *err) {
    const size_t n = ids->n;
    if (n == 0) {
        set_err(err, 422, "invalid_field", "entity_ids", 0, "entity_ids must not be empty");
        return -1;
    }
    if ((long)n > j->cfg.max_entities) {
        set_err(err, 422, "too_many_entities", "entity_ids", 0,
                "entity_ids has %zu ids; at most %ld per job", n, j->cfg.max_entities);
        return -1;
    }
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    const char **set = calloc(cap, sizeof *set); /* open addressing over the ids */
    if (!set || buf_reserve(blob, n * 8) < 0) {
        free(set);
        set_err(err, 503, "out_of_memory", "", 1, "out of memory");
        return -1;
    }
    long distinct = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = ids->str[i];
        const uint32_t len = ids->len[i];
        if (len == JOBS_ID_NOT_STRING || len == 0 || len > MAX_ID_BYTES || memchr(s, 0, len)) {
            char field[64];
            snprintf(field, sizeof field, "entity_ids[%zu]", i);
            set_err(err, 422, "invalid_field", field, 0,
                    len == JOBS_ID_NOT_STRING ? "entity ids must be strings"
                    : len == 0                ? "entity ids must not be empty"
                    : len > MAX_ID_BYTES      ? "entity ids are at most 256 bytes"
                                              : "entity ids must not contain NUL characters");
            free(set);
            return -1;
        }
        size_t h = (size_t)hash_bytes(s, len, 0) & (cap - 1);
        int dup = 0;
        for (; set[h]; h = (h + 1) & (cap - 1))
            if (strcmp(set[h], s) == 0) { dup = 1; break; }
        if (dup) continue;
        set[h] = s;
        buf_append(blob, s, (size_t)len + 1);
        distinct++;
    }
    free(set);
    if (blob->oom) {
        set_err(err, 503, "out_of_memory", "", 1, "out of memory");
        return -1;
    }
    *n_out = distinct;
    return 0;
}

/* entity_ids from the request's JSON: the list of its elements (a non-string marked). */
static int collect_ids(jobs_t *j, const json_t *arr, buf_t *blob, long *n_out, jobs_error_t *err) {
    if (!arr) {
        set_err(err, 422, "invalid_field", "entity_ids", 0, "entity_ids is required");
        return -1;
    }
    if (!json_is_array(arr)) {
        set_err(err, 422, "invalid_field", "entity_ids", 0, "entity_ids must be an array of strings");
        return -1;
    }
    size_t n = json_array_size(arr);
    if ((long)n > j->cfg.max_entities) { /* before allocating for them */
        set_err(err, 422, "too_many_entities", "entity_ids", 0,
                "entity_ids has %zu ids; at most %ld per job", n, j->cfg.max_entities);
        return -1;
    }
    jobs_ids_t ids = {.n = n, .str = malloc((n ? n : 1) * sizeof *ids.str)};
    uint32_t *len = malloc((n ? n : 1) * sizeof *len);
    ids.len = len;
    if (!ids.str || !len) {
        free((void *)ids.str);
        free(len);
        set_err(err, 503, "out_of_memory", "", 1, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        ids.str[i] = json_is_string(v) ? json_string_value(v) : "";
        size_t l = json_is_string(v) ? json_string_length(v) : 0;
        len[i] = !json_is_string(v) ? JOBS_ID_NOT_STRING : l > MAX_ID_BYTES ? MAX_ID_BYTES + 1 : (uint32_t)l;
    }
    int rc = collect_ids_list(j, &ids, blob, n_out, err);
    free((void *)ids.str);
    free(len);
    return rc;
}

int jobs_submit(jobs_t *j, const char *model, const json_t *request, const char *idem_key,
                store_job_t *job, int *existed, int64_t *estimated_completion_ms,
                jobs_error_t *err) {
    return jobs_submit_body(j, model, request, NULL, NULL, idem_key, job, existed, estimated_completion_ms, err);
}

int jobs_submit_body(jobs_t *j, const char *model, const json_t *request, const jobs_ids_t *ids,
                     const jobs_body_key_t *body, const char *idem_key, store_job_t *job, int *existed,
                     int64_t *estimated_completion_ms, jobs_error_t *err) {
    memset(err, 0, sizeof *err);
    *existed = 0;
    const model_t *md = model ? jobs_model_find(j, model) : NULL;
    if (!md) {
        set_err(err, 404, "unknown_model", "", 0, "unknown model '%.64s'", model ? model : "");
        return -1;
    }
    if (!json_is_object(request)) {
        set_err(err, 422, "invalid_field", "", 0, "the request body must be a JSON object");
        return -1;
    }
    buf_t blob = {0};
    long n = 0;
    json_t *params = NULL;
    const json_t *entity_ids = ids ? NULL : json_object_get(request, "entity_ids");
    /* a model may choose the entities itself when none are given (cascade: all of them) */
    int model_ids = !ids && (!entity_ids || json_is_null(entity_ids)) && md->xDefaultEntities;
    if (ids && collect_ids_list(j, ids, &blob, &n, err) < 0) goto fail;
    if (!ids && !model_ids && collect_ids(j, entity_ids, &blob, &n, err) < 0) goto fail;
    int priority = 0;
    const json_t *pr = json_object_get(request, "priority");
    if (pr && !json_is_null(pr)) {
        if (!json_is_integer(pr) || json_integer_value(pr) < 0 || json_integer_value(pr) > 9) {
            set_err(err, 422, "invalid_field", "priority", 0,
                    "priority must be an integer from 0 to 9 (higher runs first)");
            goto fail;
        }
        priority = (int)json_integer_value(pr);
    }
    model_error_t me;
    memset(&me, 0, sizeof me);
    if (md->xParse(request, &params, &me) != 0) {
        set_err(err, 422, "invalid_field", me.field, 0, "%s",
                me.message[0] ? me.message : "invalid parameters");
        params = NULL;
        goto fail;
    }
    model_env_t menv = j->env;
    menv.model_ctx = md->ctx;
    if (md->xValidate && md->xValidate(&menv, params, &me) != 0) {
        set_err(err, 422, "invalid_field", me.field, 0, "%s",
                me.message[0] ? me.message : "invalid parameters");
        goto fail;
    }
    if (model_ids) {
        if (md->xDefaultEntities(&menv, params, &blob, &n, &me) != 0 || blob.oom) {
            set_err(err, 422, "invalid_field", me.field[0] ? me.field : "entity_ids", 0, "%s",
                    me.message[0] ? me.message : "entity_ids is required");
            goto fail;
        }
        if (n == 0) {
            set_err(err, 422, "invalid_field", "entity_ids", 0, "there are no entities to compute");
            goto fail;
        }
        if (n > j->cfg.max_entities) {
            set_err(err, 422, "too_many_entities", "entity_ids", 0,
                    "the job would have %ld entities; at most %ld per job", n, j->cfg.max_entities);
            goto fail;
        }
    }
    char *params_json = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    if (!params_json) {
        set_err(err, 503, "out_of_memory", "", 1, "out of memory");
        goto fail;
    }

    /* chunk_size entities per chunk, but a big job in at most max_chunks chunks: every chunk
     * costs a commit, and progress needs no finer steps than that */
    long cs_l = md->chunk_size > 0 ? md->chunk_size : j->cfg.chunk_size;
    if (j->cfg.max_chunks > 0 && (n + cs_l - 1) / cs_l > j->cfg.max_chunks)
        cs_l = (n + j->cfg.max_chunks - 1) / j->cfg.max_chunks;
    const int cs = (int)cs_l;
    const long n_chunks_all = (n + cs - 1) / cs;
    /* the same request, done earlier in its submission, with every entity as it was then:
     * that job already holds these results (jobs_reuse.c) */
    uint64_t rk1 = 0, rk2 = 0, cache_gen = cache_generation(jobs_cache(j));
    const uint64_t mutations0 = graph_mutations(j->g); /* before any lookup of this job */
    cache_scope_t rscope = {0};
    if ((!idem_key || !*idem_key) && n <= REUSE_MAX_ENTITIES)
        jobs_cache_scope(j, md, params, params_json, blob.data, blob.len, &rscope);
    if (rscope.dep != CACHE_DEP_NONE) {
        jobs_reuse_key(md->name, params_json, blob.data ? blob.data : "", blob.len, &rk1, &rk2);
        if (jobs_reuse_find(j, &rscope, rk1, rk2, blob.data, blob.len, n, job)) {
            free(params_json);
            json_decref(params);
            buf_free(&blob);
            *existed = JOBS_REUSED;
            *estimated_completion_ms = job->finished_at;
            jobs_reuse_count(j, md, &rscope, n);
            return 0;
        }
    }

    /* chunks served whole from the result cache are stored with the job, not queued */
    jobs_prefill_t pf;
    jobs_cache_prefill(j, md, params, params_json, blob.data, blob.len, n, cs, &pf);
    /* a small job of per-entity formulas is computed here and stored COMPLETED */
    char job_id[32];
    make_job_id(job_id);
    jobs_inline_fill(j, md, params, job_id, blob.data, blob.len, n, cs, &pf);
    const long n_chunks = n_chunks_all - (long)pf.n_settled; /* to compute */
    pthread_mutex_lock(&j->mu);
    long queued = (long)(j->heap_n + j->delayed_n) + j->reserved_chunks;
    if (queued > 0 && n_chunks > 0 && queued + n_chunks > j->cfg.max_queue_chunks) {
        /* drain rate: workers / average chunk time */
        double avg = j->chunk_ms_avg > 0 ? j->chunk_ms_avg : DEFAULT_CHUNK_MS;
        double excess = (double)(queued + n_chunks - j->cfg.max_queue_chunks);
        int retry = (int)ceil(excess * avg / j->n_workers / 1000.0);
        if (retry < 1) retry = 1;
        if (retry > 3600) retry = 3600;
        pthread_mutex_unlock(&j->mu);
        free(params_json);
        jobs_prefill_free(&pf);
        set_err(err, 429, "queue_full", "", retry,
                "the queue holds %ld chunks (limit %ld); retry in %d s", queued,
                j->cfg.max_queue_chunks, retry);
        goto fail;
    }
    j->reserved_chunks += n_chunks;
    pthread_mutex_unlock(&j->mu);

    store_new_job_t nj;
    memset(&nj, 0, sizeof nj);
    memcpy(nj.job.id, job_id, sizeof nj.job.id);
    snprintf(nj.job.model, sizeof nj.job.model, "%s", md->name);
    nj.job.status = JOB_QUEUED;
    nj.job.priority = priority;
    nj.job.chunk_size = cs;
    nj.job.n_entities = n;
    nj.job.n_chunks = n_chunks_all;
    nj.job.created_at = nj.job.updated_at = now_ms();
    nj.settled = pf.settled;
    nj.n_settled = pf.n_settled;
    nj.job.chunks_done = (long)pf.n_settled;
    nj.job.successful = pf.successful;
    nj.job.failed = pf.failed;
    nj.job.exec_ms = pf.exec_ms;
    if (n_chunks == 0) { /* every entity served from the cache or computed inline: done */
        nj.job.status = JOB_COMPLETED;
        nj.job.started_at = nj.job.finished_at = nj.job.created_at;
    }
    nj.params_json = params_json;
    nj.ids = blob.data;
    nj.ids_len = blob.len;
    nj.idem_key = idem_key && *idem_key ? idem_key : NULL;
    char existing[32] = {0}, serr[256] = {0};
    int rc = store_job_insert(j->st, &nj, existing, serr, sizeof serr);
    free(params_json);
    if (rc == 0) jobs_prefill_counted(j, &pf);
    if (rc == 0 && n_chunks == 0 && pf.stamped == n && rscope.dep != CACHE_DEP_NONE && (rk1 || rk2)) {
        const uint64_t mutations1 = graph_mutations(j->g);
        jobs_reuse_put(j->reuse, rk1, rk2, body, &rscope, pf.digest1, pf.digest2, cache_gen,
                       mutations1 == mutations0 ? mutations0 : 0, n, &nj.job);
    }
    const uint8_t *prefilled = pf.done;

    pthread_mutex_lock(&j->mu);
    j->reserved_chunks -= n_chunks;
    if (rc == 0) {
        job_rt_t *rt = jobs_rt_get(j, &nj.job, md);
        if (rt) {
            rt->refs++;
            if (!rt->work && !rt->loading) {
                /* the submission already holds what the workers need */
                size_t len = blob.len;
                rt->work = jobs_work_new(params, buf_steal(&blob), len, n);
                params = NULL;
            }
            for (long c = 0; c < n_chunks_all; c++)
                if ((!prefilled || !prefilled[c]) && jobs_queue_chunk(j, rt, (uint32_t)c, 0) < 0)
                    break; /* no memory: redone at restart */
            jobs_rt_unref(j, rt);
        }
        long ahead = (long)(j->heap_n + j->delayed_n) - n_chunks;
        *estimated_completion_ms = nj.job.created_at + estimate_ms(j, ahead > 0 ? ahead : 0, n_chunks);
        if (n_chunks > 0) pthread_cond_broadcast(&j->work_cv); /* nothing queued: let them sleep */
    }
    long ahead_all = (long)(j->heap_n + j->delayed_n);
    pthread_mutex_unlock(&j->mu);
    /* done in its submission: its record and results stay at hand for the reads that follow */
    if (rc == 0 && n_chunks == 0) jobs_recent_put(j->recent, &nj.job, pf.settled, pf.n_settled);
    const long pf_inline = pf.inline_n, pf_inline_failed = pf.inline_failed;
    jobs_prefill_free(&pf);
    json_decref(params);
    params = NULL;
    buf_free(&blob);

    if (rc == 0) {
        *job = nj.job;
        if (n_chunks == 0) { /* served whole at submission: its one progress step, then done */
            jobs_publish_progress(j, job);
            jobs_publish_finished(j, job);
        }
        char lab[96];
        jobs_model_labels(md, lab, sizeof lab);
        metrics_counter_add(j->m, "predictd_jobs_submitted_total", lab, 1);
        if (pf_inline > 0) { /* as a worker's chunk commit counts them */
            snprintf(lab, sizeof lab, "model=\"%s\",outcome=\"ok\"", md->name);
            metrics_counter_add(j->m, "predictd_predictions_total", lab, (double)(pf_inline - pf_inline_failed));
            snprintf(lab, sizeof lab, "model=\"%s\",outcome=\"error\"", md->name);
            metrics_counter_add(j->m, "predictd_predictions_total", lab, (double)pf_inline_failed);
        }
        return 0;
    }
    if (rc == 1) {
        if (store_job_get(j->st, existing, job) != 0) {
            set_err(err, 503, "store_unavailable", "", STORE_RETRY_AFTER_S,
                    "the job for this idempotency key could not be read");
            return -1;
        }
        *existed = 1;
        int64_t now = now_ms();
        if (job->finished_at) {
            *estimated_completion_ms = job->finished_at;
        } else {
            pthread_mutex_lock(&j->mu);
            long left = job->n_chunks - job->chunks_done - job->chunks_dead;
            *estimated_completion_ms = now + estimate_ms(j, ahead_all - left > 0 ? ahead_all - left : 0,
                                                         left > 0 ? left : 0);
            pthread_mutex_unlock(&j->mu);
        }
        return 0;
    }
    set_err(err, 503, "store_unavailable", "", STORE_RETRY_AFTER_S,
            "the job could not be stored durably: %.200s", serr[0] ? serr : "store error");
    return -1;
fail:
    json_decref(params);
    buf_free(&blob);
    return -1;
}
