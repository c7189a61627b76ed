/* The job engine: the chunk queue, workers, leases, retries, dead letters, cancellation and
 * recovery (see jobs.h for the life of a job; admission is in jobs_submit.c).
 *
 * Memory model: a job_rt_t exists while any of its chunks is in memory; each chunk is a
 * chunk_item_t owned by exactly one place: the ready heap, the delayed list (retry backoff),
 * or the leased list. A worker holding a lease knows it only by its token: when the
 * watchdog takes an expired lease back, the item leaves the leased list and the token no
 * longer matches, so whatever the old holder does later is dropped (and its commit, if it
 * got that far, is skipped by the store: commits are exactly-once). Every execution holds a
 * reference on its job_rt_t, so the job's work (params + ids) outlives the model run. */
#include "jobs/jobs_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define RUN_STEP 512            /* entities per model call; the lease is renewed between */

static const char *const STATUS_LABELS[5] = {
    "status=\"QUEUED\"", "status=\"PROCESSING\"", "status=\"COMPLETED\"",
    "status=\"FAILED\"", "status=\"CANCELLED\""};

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t rng_next(jobs_t *j) { /* splitmix64; call with j->mu held */
    uint64_t z = (j->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* min(max, base * 2^attempt) with full jitter: uniform in [0, cap]. j->mu held. */
static int64_t backoff_ms(jobs_t *j, int attempt) {
    double cap = (double)j->cfg.backoff_base_ms * ldexp(1.0, attempt < 60 ? attempt : 60);
    if (cap > j->cfg.backoff_max_ms) cap = j->cfg.backoff_max_ms;
    return (int64_t)((double)(rng_next(j) >> 11) * 0x1.0p-53 * cap);
}

void jobs_model_labels(const model_t *md, char *out, size_t n) {
    snprintf(out, n, "model=\"%s\"", md ? md->name : "unknown");
}

static void work_free(job_work_t *w) {
    if (!w) return;
    if (w->state && w->free_state) w->free_state(w->state);
    json_decref(w->params);
    free(w->ids_blob);
    free(w->ids);
    free(w);
}

/* Takes ownership of params and blob. NULL on allocation failure (both freed). */
job_work_t *jobs_work_new(json_t *params, char *blob, size_t blob_len, long n) {
    job_work_t *w = calloc(1, sizeof *w);
    const char **ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!w || !ids) goto fail;
    size_t off = 0;
    for (long i = 0; i < n; i++) {
        if (off >= blob_len) goto fail; /* fewer ids than the job says: corrupt */
        ids[i] = blob + off;
        off += strlen(blob + off) + 1;
    }
    w->params = params;
    w->ids_blob = blob;
    w->ids = ids;
    w->n = n;
    return w;
fail:
    free(w);
    free(ids);
    json_decref(params);
    free(blob);
    return NULL;
}

static job_work_t *work_load(jobs_t *j, const job_rt_t *rt, char *err, size_t errlen) {
    char *pj = NULL, *blob = NULL;
    size_t len = 0;
    int rc = store_job_load_work(j->st, rt->id, &pj, &blob, &len);
    if (rc != 0) {
        snprintf(err, errlen, "could not load the job's work from the store (rc %d)", rc);
        free(pj);
        free(blob);
        return NULL;
    }
    json_error_t je;
    json_t *params = json_loads(pj ? pj : "", 0, &je);
    free(pj);
    if (!params) {
        snprintf(err, errlen, "stored parameters do not parse: %s", je.text);
        free(blob);
        return NULL;
    }
    job_work_t *w = jobs_work_new(params, blob, len, rt->n_entities);
    if (!w) snprintf(err, errlen, "could not load the job's work (ids corrupt or out of memory)");
    return w;
}

/* ---- job runtime records (j->mu held) --------------------------------------------- */

/* A queue of thousands of small jobs holds as many records, and every submission and
 * cancel looks one up under j->mu: by hash, not by walking the list. */
static uint64_t rt_hash(const char *id) { return hash_bytes(id, strlen(id), 0x6a6f6273); }

static job_rt_t *rt_find(jobs_t *j, const char *id) {
    if (!j->rt_cap) return NULL;
    const uint64_t h = rt_hash(id);
    for (job_rt_t *rt = j->rt_tab[h & (j->rt_cap - 1)]; rt; rt = rt->hnext)
        if (rt->hash == h && strcmp(rt->id, id) == 0) return rt;
    return NULL;
}

/* Doubles the buckets once the records outnumber them; without memory the chains just grow. */
static void rt_tab_grow(jobs_t *j) {
    size_t cap = j->rt_cap ? j->rt_cap * 2 : 64;
    job_rt_t **tab = calloc(cap, sizeof *tab);
    if (!tab) return;
    for (size_t b = 0; b < j->rt_cap; b++)
        for (job_rt_t *rt = j->rt_tab[b], *next; rt; rt = next) {
            next = rt->hnext;
            rt->hnext = tab[rt->hash & (cap - 1)];
            tab[rt->hash & (cap - 1)] = rt;
        }
    free(j->rt_tab);
    j->rt_tab = tab;
    j->rt_cap = cap;
}

job_rt_t *jobs_rt_get(jobs_t *j, const store_job_t *job, const model_t *md) {
    job_rt_t *rt = rt_find(j, job->id);
    if (rt) return rt;
    if (j->rt_n >= j->rt_cap) rt_tab_grow(j);
    if (!j->rt_cap) return NULL;
    rt = calloc(1, sizeof *rt);
    if (!rt) return NULL;
    snprintf(rt->id, sizeof rt->id, "%s", job->id);
    rt->hash = rt_hash(rt->id);
    rt->model = md;
    rt->priority = job->priority;
    rt->chunk_size = job->chunk_size > 0 ? job->chunk_size : 1;
    rt->n_entities = job->n_entities;
    rt->next = j->rts;
    if (j->rts) j->rts->prev = rt;
    j->rts = rt;
    job_rt_t **b = &j->rt_tab[rt->hash & (j->rt_cap - 1)];
    rt->hnext = *b;
    *b = rt;
    j->rt_n++;
    return rt;
}

void jobs_rt_unref(jobs_t *j, job_rt_t *rt) {
    if (--rt->refs > 0) return;
    if (rt->prev) rt->prev->next = rt->next; else j->rts = rt->next;
    if (rt->next) rt->next->prev = rt->prev;
    job_rt_t **b = &j->rt_tab[rt->hash & (j->rt_cap - 1)];
    while (*b != rt) b = &(*b)->hnext;
    *b = rt->hnext;
    j->rt_n--;
    work_free(rt->work);
    free(rt);
}

static void item_free(jobs_t *j, chunk_item_t *it) {
    job_rt_t *rt = it->rt;
    free(it);
    jobs_rt_unref(j, rt);
}

/* ---- the ready heap: priority desc, then seq asc (j->mu held) ---------------------- */

static int item_before(const chunk_item_t *a, const chunk_item_t *b) {
    if (a->rt->priority != b->rt->priority) return a->rt->priority > b->rt->priority;
    return a->seq < b->seq;
}

static void heap_up(jobs_t *j, size_t i) {
    chunk_item_t **h = j->heap;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_before(h[i], h[p])) break;
        chunk_item_t *t = h[i]; h[i] = h[p]; h[p] = t;
        i = p;
    }
}

static void heap_down(jobs_t *j, size_t i) {
    chunk_item_t **h = j->heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < j->heap_n && item_before(h[l], h[best])) best = l;
        if (r < j->heap_n && item_before(h[r], h[best])) best = r;
        if (best == i) return;
        chunk_item_t *t = h[i]; h[i] = h[best]; h[best] = t;
        i = best;
    }
}

static int heap_push(jobs_t *j, chunk_item_t *it) {
    if (j->heap_n == j->heap_cap) {
        size_t cap = j->heap_cap ? j->heap_cap * 2 : 256;
        chunk_item_t **p = realloc(j->heap, cap * sizeof *p);
        if (!p) return -1;
        j->heap = p;
        j->heap_cap = cap;
    }
    j->heap[j->heap_n++] = it;
    heap_up(j, j->heap_n - 1);
    return 0;
}

static chunk_item_t *heap_pop(jobs_t *j) {
    if (!j->heap_n) return NULL;
    chunk_item_t *top = j->heap[0];
    j->heap[0] = j->heap[--j->heap_n];
    if (j->heap_n) heap_down(j, 0);
    return top;
}

static int delayed_push(jobs_t *j, chunk_item_t *it) {
    if (j->delayed_n == j->delayed_cap) {
        size_t cap = j->delayed_cap ? j->delayed_cap * 2 : 64;
        chunk_item_t **p = realloc(j->delayed, cap * sizeof *p);
        if (!p) return -1;
        j->delayed = p;
        j->delayed_cap = cap;
    }
    j->delayed[j->delayed_n++] = it;
    return 0;
}

/* Moves delayed chunks whose time came into the heap; returns the earliest remaining due
 * time (INT64_MAX when none). */
static int64_t promote_due(jobs_t *j) {
    int64_t now = mono_ms(), next = INT64_MAX;
    for (size_t i = 0; i < j->delayed_n;) {
        chunk_item_t *it = j->delayed[i];
        if (it->due_ms <= now && heap_push(j, it) == 0) {
            j->delayed[i] = j->delayed[--j->delayed_n];
            continue;
        }
        if (it->due_ms < next) next = it->due_ms;
        i++;
    }
    return next;
}

/* A new chunk item in the heap (or, with delay_ms > 0, the delayed list). -1: no memory. */
int jobs_queue_chunk(jobs_t *j, job_rt_t *rt, uint32_t chunk, int attempts) {
    chunk_item_t *it = calloc(1, sizeof *it);
    if (!it) return -1;
    it->rt = rt;
    it->chunk = chunk;
    it->attempts = attempts;
    it->seq = j->next_seq++;
    rt->refs++;
    if (heap_push(j, it) < 0) {
        item_free(j, it);
        return -1;
    }
    return 0;
}

/* ---- leases (j->mu held) ------------------------------------------------------------ */

static void leased_add(jobs_t *j, chunk_item_t *it) {
    it->lprev = NULL;
    it->lnext = j->leased;
    if (j->leased) j->leased->lprev = it;
    j->leased = it;
    j->leased_n++;
}

static void leased_remove(jobs_t *j, chunk_item_t *it) {
    if (it->lprev) it->lprev->lnext = it->lnext; else j->leased = it->lnext;
    if (it->lnext) it->lnext->lprev = it->lprev;
    it->lprev = it->lnext = NULL;
    j->leased_n--;
}

static chunk_item_t *lease_find(jobs_t *j, uint64_t token) {
    for (chunk_item_t *it = j->leased; it; it = it->lnext)
        if (it->token == token) return it;
    return NULL;
}

/* Renews the lease; 0 while it is still ours, -1 when it was taken back or we stop. */
static int lease_renew(jobs_t *j, uint64_t token) {
    pthread_mutex_lock(&j->mu);
    chunk_item_t *it = lease_find(j, token);
    if (it) it->deadline_ms = mono_ms() + j->cfg.lease_ms;
    int ok = it && !j->abandon;
    pthread_mutex_unlock(&j->mu);
    return ok ? 0 : -1;
}

/* A failed attempt of a still-held lease: backoff or, at max_attempts, the dead letter
 * (returns 1: caller hands it to the store). j->mu held. */
static int attempt_failed(jobs_t *j, chunk_item_t *it) {
    if (it->rt->cancelled) { /* cancelled while it ran: nothing left to retry */
        leased_remove(j, it);
        item_free(j, it);
        return 0;
    }
    it->attempts++;
    if (it->attempts >= j->cfg.max_attempts) {
        it->committing = 1;
        j->commits_inflight++;
        return 1;
    }
    leased_remove(j, it);
    it->due_ms = mono_ms() + backoff_ms(j, it->attempts - 1);
    if (delayed_push(j, it) < 0) {
        /* no memory for the delay: it stays pending in the store, redone at restart */
        item_free(j, it);
    }
    pthread_cond_broadcast(&j->work_cv);
    return 0;
}

/* ---- store callbacks (run on the store's writer thread) ------------------------------ */

typedef struct {
    jobs_t *j;
    uint64_t token;
    const model_t *model;
    long successful, failed;
    int dead;
    char *blob;          /* owned: the store may read it until the callback */
    size_t blob_len;
    char reason[256];
    jobs_cache_run_t *cache_run; /* owned: results to cache once committed (NULL: none) */
} commit_ctx_t;

/* job.progress after each settled chunk, and job.completed / job.failed once the job's last
 * chunk settled: the store decides that in the settling transaction, so it is read back here
 * (a primary-key read on a reader connection, after the commit). Two chunks settled in one
 * group commit both see the job finished: the runtime record's flag keeps it to one event
 * (their items hold the record). */
static void announce_if_finished(jobs_t *j, uint64_t token) {
    pthread_mutex_lock(&j->mu);
    struct bus *b = j->bus;
    chunk_item_t *it = b ? lease_find(j, token) : NULL;
    char id[32] = "";
    if (it && !it->rt->announced) snprintf(id, sizeof id, "%s", it->rt->id);
    pthread_mutex_unlock(&j->mu);
    if (!id[0]) return;
    store_job_t job;
    if (store_job_get(j->st, id, &job) != 0) return;
    jobs_publish_progress(j, &job);
    if (job.status != JOB_COMPLETED && job.status != JOB_FAILED) return;
    pthread_mutex_lock(&j->mu);
    it = lease_find(j, token);
    int first = it && !it->rt->announced;
    if (first) it->rt->announced = 1;
    pthread_mutex_unlock(&j->mu);
    if (first) jobs_publish_finished(j, &job);
}

static void on_settled(void *arg, int rc) {
    commit_ctx_t *c = arg;
    jobs_t *j = c->j;
    /* metrics first: once commits_inflight drops, jobs_stop may free j */
    if (rc == 0) {
        char lab[96];
        if (c->dead) {
            metrics_counter_add(j->m, "predictd_deadletters_total", NULL, 1);
        } else {
            snprintf(lab, sizeof lab, "model=\"%s\",outcome=\"ok\"", c->model->name);
            metrics_counter_add(j->m, "predictd_predictions_total", lab, (double)c->successful);
            snprintf(lab, sizeof lab, "model=\"%s\",outcome=\"error\"", c->model->name);
            metrics_counter_add(j->m, "predictd_predictions_total", lab, (double)c->failed);
        }
    } else if (rc < 0) {
        LOG_W("chunk settle failed in the store", "dead=%d", c->dead);
    }
    if (c->cache_run && rc == 0) jobs_cache_commit(j, c->cache_run);
    jobs_cache_run_free(c->cache_run);
    if (rc == 0) announce_if_finished(j, c->token);
    pthread_mutex_lock(&j->mu);
    chunk_item_t *it = lease_find(j, c->token);
    if (it && rc == 0) { /* its job moved on: wake the status reads waiting for that */
        it->rt->changes++;
        pthread_cond_broadcast(&j->change_cv[it->rt->hash % JOBS_CHANGE_CVS]);
    }
    if (it) {
        leased_remove(j, it);
        if (rc < 0 && !j->stopping) {
            /* the store could not write it: try again later, not counted as an attempt */
            it->committing = 0;
            it->due_ms = mono_ms() + backoff_ms(j, it->attempts);
            if (delayed_push(j, it) < 0) item_free(j, it);
            pthread_cond_broadcast(&j->work_cv);
        } else {
            item_free(j, it);
        }
    }
    j->commits_inflight--;
    pthread_cond_broadcast(&j->idle_cv);
    pthread_mutex_unlock(&j->mu); /* j is not touched after this */
    free(c->blob);
    free(c);
}

/* ---- workers ------------------------------------------------------------------------ */

/* Runs ids[0..n) through the model in steps, renewing the lease between steps. 0 ok,
 * -1 model failure (err filled), -2 lease lost or stopping (drop the result). */
static int run_chunk(jobs_t *j, const model_t *md, const char *job_id, const job_work_t *w,
                     const char *const *ids, uint32_t n, uint64_t token, uint8_t *codes, double *out,
                     const jobs_cache_run_t *cr, char *err, size_t errlen) {
    model_env_t env = j->env;
    env.job_state = w->state;
    env.job_id = job_id;
    env.model_ctx = md->ctx;
    if (cr) env.slots_mutations = cr->graph_mutations;
    for (uint32_t off = 0; off < n; off += RUN_STEP) {
        uint32_t k = n - off < RUN_STEP ? n - off : RUN_STEP;
        if (cr) env.slots = cr->slot + off; /* the misses' slots, as the cache looked them up */
        if (md->xRunChunk(&env, w->params, ids + off, k, codes + off,
                          out + (size_t)off * (size_t)md->n_outputs, err, errlen) != 0)
            return -1;
        if (lease_renew(j, token) < 0) return -2;
    }
    return 0;
}

static void *worker_main(void *arg) {
    jobs_t *j = arg;
    char err[256];
    buf_t blob = {0};
    /* Batch work yields to request handling: a worker thread runs at a lower scheduling
     * priority (nice +5, this thread only), so the HTTP threads and the store's writer,
     * which a waiting client is timing, get a core first when the cores are busy. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5) != 0)
        LOG_D("worker priority unchanged", "errno=%d", errno);
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->stopping) break;
        /* Backpressure: workers may run ahead of the store's writer by a few chunks only, so
         * result commits never pile up in front of a submission (its 202 waits on the same
         * writer) and priority order holds for commits, not just for computation. */
        if (j->commits_inflight >= 4 * j->n_workers + 4) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&j->idle_cv, &j->mu, &ts);
            continue;
        }
        int64_t next_due = promote_due(j);
        chunk_item_t *it = heap_pop(j);
        if (!it) {
            int64_t wait_ms = next_due == INT64_MAX ? 1000 : next_due - mono_ms();
            if (wait_ms > 1000) wait_ms = 1000;
            if (wait_ms > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
                pthread_cond_timedwait(&j->work_cv, &j->mu, &ts);
            }
            continue;
        }
        job_rt_t *rt = it->rt;
        if (rt->cancelled) { item_free(j, it); continue; }

        /* lease it */
        it->token = ++j->next_token;
        it->deadline_ms = mono_ms() + j->cfg.lease_ms;
        it->committing = 0;
        leased_add(j, it);
        const uint64_t token = it->token;
        const uint32_t chunk = it->chunk;
        const int attempts = it->attempts;
        rt->refs++; /* this execution's reference */
        j->executing++;
        j->busy++;
        int inject = j->faults_injected < j->cfg.fault_chunk_failures;
        if (inject) j->faults_injected++;
        int mark = !rt->started_marked;
        rt->started_marked = 1;
        /* loading = reading the work from the store and/or the model's per-job xPrepare (a
         * whole-job simulation may take longer than a lease): the lease does not expire while
         * its holder waits for or does that; it runs again from when the chunk starts */
        if (rt->loading) {
            it->deadline_ms = INT64_MAX;
            while (rt->loading) pthread_cond_wait(&j->work_cv, &j->mu);
            it->deadline_ms = mono_ms() + j->cfg.lease_ms;
        }
        int need_load = !rt->work || !rt->work->prepared;
        if (need_load) {
            rt->loading = 1;
            it->deadline_ms = INT64_MAX;
        }
        pthread_mutex_unlock(&j->mu);

        const model_t *md = rt->model;
        if (mark) store_job_mark_started(j->st, rt->id, now_ms());
        err[0] = 0;
        int rc = 0;
        if (need_load) {
            /* rt->work is written only by the holder of loading (or under mu while no one
             * loads), so reading it here is safe */
            job_work_t *w = rt->work ? rt->work : work_load(j, rt, err, sizeof err);
            if (w && !w->prepared) {
                void *state = NULL;
                model_env_t penv = j->env;
                penv.model_ctx = md->ctx;
                if (!md->xPrepare ||
                    md->xPrepare(&penv, w->params, w->ids, w->n, &state, err, sizeof err) == 0) {
                    w->state = state;
                    w->free_state = md->xFreeState;
                    w->prepared = 1;
                } else if (!err[0]) {
                    snprintf(err, sizeof err, "model %s could not prepare the job", md->name);
                }
            }
            pthread_mutex_lock(&j->mu);
            chunk_item_t *held = lease_find(j, token);
            if (held) held->deadline_ms = mono_ms() + j->cfg.lease_ms;
            rt->work = w;
            rt->loading = 0;
            pthread_cond_broadcast(&j->work_cv);
            pthread_mutex_unlock(&j->mu);
            if (!w || !w->prepared) rc = -1;
        }
        long from = (long)chunk * rt->chunk_size;
        long left = rt->n_entities - from;
        uint32_t n = (uint32_t)(left < rt->chunk_size ? (left > 0 ? left : 0) : rt->chunk_size);
        uint8_t *codes = NULL;
        double *vals = NULL;
        long ok_n = 0;
        jobs_cache_run_t *cache_run = NULL;
        double t0 = mono_s(), exec_ms = 0;
        if (rc == 0 && inject) {
            snprintf(err, sizeof err, "injected fault");
            rc = -1;
        }
        if (rc == 0) {
            codes = malloc(n ? n : 1);
            vals = malloc(((size_t)n * (size_t)md->n_outputs + 1) * sizeof *vals);
            if (!codes || !vals) {
                snprintf(err, sizeof err, "out of memory");
                rc = -1;
            } else {
                /* entities served from the cache are filled in; the model computes the rest */
                cache_run = jobs_cache_begin(j, md, rt->work, NULL, rt->work->ids + from, n, codes, vals);
                if (!cache_run)
                    rc = run_chunk(j, md, rt->id, rt->work, rt->work->ids + from, n, token, codes,
                                   vals, NULL, err, sizeof err);
                else if (cache_run->n_miss)
                    rc = run_chunk(j, md, rt->id, rt->work, cache_run->miss_ids, cache_run->n_miss, token,
                                   cache_run->miss_codes, cache_run->miss_vals, cache_run, err, sizeof err);
                if (rc == 0 && cache_run) {
                    jobs_cache_end(j, cache_run, codes, vals);
                    /* cached here, on the worker, before the commit: the store's writer never
                     * spends a group commit's time on cache work, and a repeat submitted once
                     * the job reads COMPLETED always finds them. A value is correct for its
                     * stamp whether or not this chunk's commit succeeds. */
                    jobs_cache_commit(j, cache_run);
                    jobs_cache_run_free(cache_run);
                    cache_run = NULL;
                }
                if (rc == -1 && !err[0]) snprintf(err, sizeof err, "model %s failed", md->name);
            }
        }
        exec_ms = (mono_s() - t0) * 1000.0;
        if (rc == 0) {
            for (uint32_t k = 0; k < n; k++) ok_n += codes[k] == MODEL_OK;
            buf_reset(&blob);
            if (jobs_blob_encode(&blob, rt->work->ids + from, n, md->n_outputs, codes, vals) < 0) {
                snprintf(err, sizeof err, "out of memory encoding results");
                rc = -1;
            } else if (chunk == 0 && md->xSummary && rt->work->state) {
                jobs_blob_add_summary(&blob, md, rt->work->state);
            }
            char lab[64];
            jobs_model_labels(md, lab, sizeof lab);
            metrics_observe(j->m, "predictd_chunk_seconds", lab, exec_ms / 1000.0);
        }
        free(codes);
        free(vals);
        if (rc == -1)
            LOG_W("chunk attempt failed", "job=%s chunk=%u attempt=%d reason=\"%s\"", rt->id,
                  chunk, attempts + 1, err);

        pthread_mutex_lock(&j->mu);
        it = lease_find(j, token);
        commit_ctx_t *ctx = NULL;
        int dead = 0;
        if (!it) {
            /* taken back by the watchdog (or settled): someone else owns it now */
        } else if (j->abandon || rc == -2) {
            leased_remove(j, it);
            item_free(j, it);
            j->released++;
        } else if (rc == 0) {
            it->committing = 1;
            it->deadline_ms = mono_ms() + j->cfg.lease_ms;
            j->commits_inflight++;
            j->chunk_ms_avg = j->chunk_ms_avg > 0 ? 0.8 * j->chunk_ms_avg + 0.2 * exec_ms : exec_ms;
        } else {
            dead = attempt_failed(j, it);
            if (!dead) metrics_counter_add(j->m, "predictd_chunk_retries_total", NULL, 1);
        }
        if (it && !j->abandon && rc != -2 && (rc == 0 || dead)) {
            ctx = calloc(1, sizeof *ctx);
            if (ctx) {
                ctx->j = j;
                ctx->token = token;
                ctx->model = md;
                ctx->successful = ok_n;
                ctx->failed = (long)n - ok_n;
                ctx->dead = dead;
                snprintf(ctx->reason, sizeof ctx->reason, "%s", err);
                if (!dead) {
                    ctx->blob_len = blob.len;
                    ctx->blob = buf_steal(&blob);
                    ctx->cache_run = cache_run;
                    cache_run = NULL;
                }
            } else {
                /* cannot track the commit: release the chunk, the store still has it */
                leased_remove(j, it);
                item_free(j, it);
                j->commits_inflight--;
            }
        }
        pthread_mutex_unlock(&j->mu);
        jobs_cache_run_free(cache_run); /* not committed: nothing to cache */
        if (ctx && !dead)
            store_chunk_commit(j->st, rt->id, chunk, ctx->blob, ctx->blob_len, ok_n,
                               (long)n - ok_n, exec_ms, on_settled, ctx);
        else if (ctx)
            store_chunk_deadletter(j->st, rt->id, chunk, ctx->reason, attempts + 1, on_settled, ctx);

        pthread_mutex_lock(&j->mu);
        j->executing--;
        j->busy--;
        jobs_rt_unref(j, rt);
        pthread_cond_broadcast(&j->idle_cv);
    }
    pthread_mutex_unlock(&j->mu);
    buf_free(&blob);
    return NULL;
}

/* Takes back expired leases, wakes workers for due retries, runs the retention sweep. */
static void *watchdog_main(void *arg) {
    jobs_t *j = arg;
    int64_t tick = j->cfg.lease_ms / 4;
    if (tick < 10) tick = 10;
    if (tick > 500) tick = 500;
    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        int64_t now = mono_ms();
        int expired = 0;
        for (chunk_item_t *it = j->leased, *next; it; it = next) {
            next = it->lnext;
            if (it->committing || it->deadline_ms > now) continue;
            LOG_W("chunk lease expired, taking it back", "job=%s chunk=%u", it->rt->id, it->chunk);
            leased_remove(j, it);
            if (heap_push(j, it) < 0) item_free(j, it);
            expired++;
        }
        if (expired) metrics_counter_add(j->m, "predictd_lease_expired_total", NULL, expired);
        promote_due(j);
        if (j->heap_n) pthread_cond_broadcast(&j->work_cv);
        if (j->cfg.retention_s > 0 && now >= j->next_sweep_ms) {
            /* store writes: never under mu (the writer's callbacks take it) */
            pthread_mutex_unlock(&j->mu);
            int64_t wait_ms = jobs_retention_sweep(j);
            pthread_mutex_lock(&j->mu);
            j->next_sweep_ms = mono_ms() + wait_ms;
            if (j->stopping) break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += tick * 1000000L;
        while (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&j->idle_cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- metrics ------------------------------------------------------------------------ */

static void collect(void *arg, metrics_t *m) {
    jobs_t *j = arg;
    jobs_stats_t s;
    jobs_stats(j, &s);
    for (int i = 0; i < 5; i++)
        metrics_gauge_set(m, "predictd_jobs", STATUS_LABELS[i], (double)s.jobs_by_status[i]);
    metrics_gauge_set(m, "predictd_queue_depth_chunks", NULL, (double)s.queued_chunks);
    metrics_gauge_set(m, "predictd_workers_busy", NULL, s.busy_workers);
    metrics_gauge_set(m, "predictd_workers", NULL, s.workers);
}

static void describe_metrics(metrics_t *m) {
    metrics_describe(m, "predictd_jobs", METRIC_GAUGE, "Jobs by status.", NULL, 0);
    metrics_describe(m, "predictd_queue_depth_chunks", METRIC_GAUGE,
                     "Chunks waiting to run, retry delays included.", NULL, 0);
    metrics_describe(m, "predictd_workers_busy", METRIC_GAUGE, "Workers running a chunk now.", NULL, 0);
    metrics_describe(m, "predictd_workers", METRIC_GAUGE, "Worker threads.", NULL, 0);
    metrics_describe(m, "predictd_jobs_reused_total", METRIC_COUNTER,
                     "Submissions answered with the job already holding their results (an identical "
                     "request, every entity in the same state).", NULL, 0);
    metrics_describe(m, "predictd_predictions_total", METRIC_COUNTER,
                     "Per-entity predictions stored, by model and outcome (ok or error).", NULL, 0);
    metrics_describe(m, "predictd_chunk_seconds", METRIC_HISTOGRAM,
                     "Time to compute one chunk, by model.", NULL, 0);
    metrics_describe(m, "predictd_chunk_retries_total", METRIC_COUNTER,
                     "Failed chunk attempts that were scheduled again.", NULL, 0);
    metrics_describe(m, "predictd_deadletters_total", METRIC_COUNTER,
                     "Chunks moved to the dead-letter list after max_attempts.", NULL, 0);
    metrics_describe(m, "predictd_jobs_submitted_total", METRIC_COUNTER,
                     "Jobs accepted, by model.", NULL, 0);
    metrics_describe(m, "predictd_jobs_inline_total", METRIC_COUNTER,
                     "Jobs computed during their submission (jobs.inline_max_entities).", NULL, 0);
    metrics_describe(m, "predictd_jobs_inline_entities_total", METRIC_COUNTER,
                     "Entities of chunks settled during their job's submission (cache hits in them included).", NULL, 0);
    metrics_describe(m, "predictd_jobs_expired_total", METRIC_COUNTER,
                     "Finished jobs deleted with their results after jobs.retention_s.", NULL, 0);
    metrics_counter_add(m, "predictd_jobs_expired_total", NULL, 0);
    metrics_describe(m, "predictd_jobs_status_waits_total", METRIC_COUNTER,
                     "Status reads (?wait_ms=) that waited for an unfinished job to move.", NULL, 0);
    metrics_counter_add(m, "predictd_jobs_status_waits_total", NULL, 0);
    metrics_describe(m, "predictd_lease_expired_total", METRIC_COUNTER,
                     "Chunk leases taken back by the watchdog (holder stuck past lease_ms).", NULL, 0);
    metrics_counter_add(m, "predictd_chunk_retries_total", NULL, 0);
    metrics_counter_add(m, "predictd_lease_expired_total", NULL, 0);
    metrics_counter_add(m, "predictd_deadletters_total", NULL, 0);
    metrics_counter_add(m, "predictd_jobs_inline_total", NULL, 0);
    metrics_counter_add(m, "predictd_jobs_inline_entities_total", NULL, 0);
}

/* ---- start / stop ------------------------------------------------------------------- */

/* Queues the pending chunks of every unfinished job (only: of that model; NULL: of every
 * model known now, the others are left for jobs_add_model). */
static int recover(jobs_t *j, const char *only, char *err, size_t errlen) {
    char (*ids)[32] = NULL;
    size_t n = 0;
    if (store_jobs_unfinished(j->st, &ids, &n) != 0) {
        snprintf(err, errlen, "recovery: cannot list unfinished jobs");
        return -1;
    }
    long chunks = 0;
    for (size_t i = 0; i < n; i++) {
        store_job_t job;
        if (store_job_get(j->st, ids[i], &job) != 0) continue;
        if (only && strcmp(job.model, only) != 0) continue;
        const model_t *md = jobs_model_find(j, job.model);
        if (!md) {
            /* a model added later (jobs_add_model) recovers its own jobs */
            LOG_I("recovery: job of a model not known yet left as is", "job=%s model=%s", job.id, job.model);
            continue;
        }
        uint8_t *settled = calloc((size_t)(job.n_chunks > 0 ? job.n_chunks : 1), 1);
        if (!settled || store_job_settled_chunks(j->st, job.id, settled, job.n_chunks) != 0) {
            free(settled);
            free(ids);
            snprintf(err, errlen, "recovery: cannot read the chunks of %s", job.id);
            return -1;
        }
        pthread_mutex_lock(&j->mu);
        job_rt_t *rt = jobs_rt_get(j, &job, md);
        if (rt) rt->refs++; /* hold it while queueing */
        for (long c = 0; rt && c < job.n_chunks; c++) {
            if (settled[c] != 0) continue;
            if (jobs_queue_chunk(j, rt, (uint32_t)c, 0) == 0) chunks++;
        }
        if (rt) jobs_rt_unref(j, rt);
        pthread_mutex_unlock(&j->mu);
        free(settled);
    }
    if (n) LOG_I("recovered unfinished jobs", "jobs=%zu chunks=%ld", n, chunks);
    free(ids);
    return 0;
}

const model_t *jobs_model_find(jobs_t *j, const char *name) {
    const model_t *md = NULL;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_extra_models && !md; i++)
        if (strcmp(j->extra_models[i]->name, name) == 0) md = j->extra_models[i];
    pthread_mutex_unlock(&j->mu);
    return md ? md : model_find(name);
}

int jobs_add_model(jobs_t *j, const model_t *md, char *err, size_t errlen) {
    pthread_mutex_lock(&j->mu);
    int full = j->n_extra_models >= (int)(sizeof j->extra_models / sizeof j->extra_models[0]);
    int taken = model_find(md->name) != NULL;
    for (int i = 0; i < j->n_extra_models; i++) taken |= strcmp(j->extra_models[i]->name, md->name) == 0;
    if (!full && !taken) j->extra_models[j->n_extra_models++] = md;
    pthread_mutex_unlock(&j->mu);
    if (full || taken) {
        snprintf(err, errlen, "model '%s': %s", md->name, taken ? "the name is taken" : "too many models added");
        return -1;
    }
    return recover(j, md->name, err, errlen);
}

int jobs_start(jobs_t **out, const predictd_config_t *cfg, store_t *st, graph_t *g,
               metrics_t *m, char *err, size_t errlen) {
    *out = NULL;
    jobs_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->cfg = *cfg;
    if (j->cfg.chunk_size < 1) j->cfg.chunk_size = 1;
    if (j->cfg.max_attempts < 1) j->cfg.max_attempts = 1;
    if (j->cfg.lease_ms < 10) j->cfg.lease_ms = 10;
    j->st = st;
    j->g = g;
    j->m = m;
    j->env.graph = g;
    j->env.store = st;
    j->env.on_alert = jobs_cache_on_alert; /* an EWS alert drops the entity's cached results */
    j->env.alert_arg = j;
    j->rng = (uint64_t)now_ms() ^ ((uint64_t)(uintptr_t)j << 16) ^ 0x5eedULL;
    /* two per core by default: a chunk that waits on a commit (the market pipeline's chunks
     * write their outcome synchronously before they settle) leaves its core to another */
    j->n_workers = cfg->workers > 0 ? cfg->workers : 2 * cpu_count();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->work_cv, NULL);
    pthread_cond_init(&j->idle_cv, NULL);
    pthread_condattr_t ca; /* deadlines of waiting reads on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < JOBS_CHANGE_CVS; i++) pthread_cond_init(&j->change_cv[i], &ca);
    pthread_condattr_destroy(&ca);
    j->reuse = jobs_reuse_new(cfg->retention_s); /* NULL (no memory) only means no reuse */
    j->recent = jobs_recent_new(cfg->recent_bytes > 0 ? (size_t)cfg->recent_bytes : 0);
    describe_metrics(m);
    if (recover(j, NULL, err, errlen) < 0) goto fail;
    j->threads = calloc((size_t)j->n_workers, sizeof *j->threads);
    if (!j->threads) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < j->n_workers; i++) {
        int rc = pthread_create(&j->threads[i], NULL, worker_main, j);
        if (rc) {
            snprintf(err, errlen, "cannot start a worker thread: %s", strerror(rc));
            goto fail;
        }
        pthread_setname_np(j->threads[i], "pd-worker");
        j->threads_started++;
    }
    int rc = pthread_create(&j->watchdog, NULL, watchdog_main, j);
    if (rc) {
        snprintf(err, errlen, "cannot start the watchdog thread: %s", strerror(rc));
        goto fail;
    }
    j->watchdog_started = 1;
    pthread_setname_np(j->watchdog, "pd-watchdog");
    metrics_add_collector(m, collect, j);
    *out = j;
    return 0;
fail:
    jobs_free(j);
    return -1;
}

int jobs_stop(jobs_t *j, int deadline_ms) {
    if (!j) return 0;
    pthread_mutex_lock(&j->mu);
    if (j->stopped) {
        pthread_mutex_unlock(&j->mu);
        return 0;
    }
    j->stopping = 1;
    pthread_cond_broadcast(&j->work_cv);
    for (int i = 0; i < JOBS_CHANGE_CVS; i++) pthread_cond_broadcast(&j->change_cv[i]);
    pthread_cond_broadcast(&j->idle_cv);
    int64_t until = mono_ms() + (deadline_ms > 0 ? deadline_ms : 0);
    while ((j->executing > 0 || j->commits_inflight > 0) && mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&j->idle_cv, &j->mu, &ts);
    }
    /* past the deadline: running chunks give up at their next step; commits already
     * handed to the store are waited for (their callbacks point at us) */
    j->abandon = 1;
    while (j->executing > 0 || j->commits_inflight > 0) pthread_cond_wait(&j->idle_cv, &j->mu);
    j->stopped = 1;
    pthread_cond_broadcast(&j->work_cv);
    pthread_cond_broadcast(&j->idle_cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->threads_started; i++) pthread_join(j->threads[i], NULL);
    j->threads_started = 0;
    if (j->watchdog_started) pthread_join(j->watchdog, NULL);
    j->watchdog_started = 0;
    pthread_mutex_lock(&j->mu);
    long released = j->released + j->leased_n;
    pthread_mutex_unlock(&j->mu);
    if (released) LOG_I("jobs stopped; unfinished chunks left to the next start", "released=%ld", released);
    return (int)released;
}

void jobs_free(jobs_t *j) {
    if (!j) return;
    metrics_remove_collector(j->m, collect, j);
    jobs_stop(j, j->cfg.shutdown_deadline_ms);
    while (j->leased) {
        chunk_item_t *it = j->leased;
        leased_remove(j, it);
        item_free(j, it);
    }
    for (size_t i = 0; i < j->heap_n; i++) item_free(j, j->heap[i]);
    for (size_t i = 0; i < j->delayed_n; i++) item_free(j, j->delayed[i]);
    while (j->rts) { /* only if a reference was leaked; keep the list consistent anyway */
        job_rt_t *rt = j->rts;
        j->rts = rt->next;
        work_free(rt->work);
        free(rt);
    }
    free(j->rt_tab);
    free(j->heap);
    free(j->delayed);
    free(j->threads);
    jobs_reuse_free(j->reuse);
    jobs_recent_free(j->recent);
    pthread_cond_destroy(&j->work_cv);
    pthread_cond_destroy(&j->idle_cv);
    for (int i = 0; i < JOBS_CHANGE_CVS; i++) pthread_cond_destroy(&j->change_cv[i]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void jobs_stats(jobs_t *j, jobs_stats_t *out) {
    memset(out, 0, sizeof *out);
    long counts[5] = {0};
    if (store_job_counts(j->st, counts) == 0) memcpy(out->jobs_by_status, counts, sizeof counts);
    pthread_mutex_lock(&j->mu);
    out->queued_chunks = (long)(j->heap_n + j->delayed_n);
    out->leased_chunks = j->leased_n;
    out->workers = j->stopped ? 0 : j->n_workers;
    out->busy_workers = j->busy;
    out->chunk_ms_avg = j->chunk_ms_avg;
    pthread_mutex_unlock(&j->mu);
}

/* ---- waiting status reads ------------------------------------------------------------ */

int jobs_job_wait(jobs_t *j, const char *id, long wait_ms, store_job_t *job) {
    if (wait_ms <= 0) return jobs_job_get(j, id, job);
    /* what the job has done so far, taken before reading it: a change after this read is
     * never missed */
    pthread_mutex_lock(&j->mu);
    job_rt_t *rt = rt_find(j, id);
    const long seen = rt ? rt->changes : 0;
    pthread_mutex_unlock(&j->mu);
    int rc = jobs_job_get(j, id, job);
    /* no record in memory: finished (or never queued here), nothing to wait for */
    if (rc != 0 || !rt || job_status_finished(job->status)) return rc;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    metrics_counter_add(j->m, "predictd_jobs_status_waits_total", NULL, 1);
    pthread_mutex_lock(&j->mu);
    /* rt is looked up again each time: the record goes once its last chunk settled */
    while (!j->stopping && (rt = rt_find(j, id)) && rt->changes == seen)
        if (pthread_cond_timedwait(&j->change_cv[rt->hash % JOBS_CHANGE_CVS], &j->mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&j->mu);
    return jobs_job_get(j, id, job);
}

/* ---- cancel / dead-letter retry ----------------------------------------------------- */

int jobs_cancel(jobs_t *j, const char *id, store_job_t *out) {
    int rc = store_job_cancel(j->st, id, out);
    if (rc != 0) return rc == 2 ? 2 : 1;
    pthread_mutex_lock(&j->mu);
    job_rt_t *rt = rt_find(j, id);
    if (rt) {
        rt->refs++;
        rt->cancelled = 1;
        rt->changes++;
        pthread_cond_broadcast(&j->change_cv[rt->hash % JOBS_CHANGE_CVS]);
        /* drop its waiting chunks now so the queue depth tells the truth */
        size_t k = 0;
        for (size_t i = 0; i < j->heap_n; i++) {
            if (j->heap[i]->rt == rt) item_free(j, j->heap[i]);
            else j->heap[k++] = j->heap[i];
        }
        j->heap_n = k;
        for (size_t i = j->heap_n / 2 + 1; i-- > 0;) heap_down(j, i);
        k = 0;
        for (size_t i = 0; i < j->delayed_n; i++) {
            if (j->delayed[i]->rt == rt) item_free(j, j->delayed[i]);
            else j->delayed[k++] = j->delayed[i];
        }
        j->delayed_n = k;
        jobs_rt_unref(j, rt);
    }
    pthread_mutex_unlock(&j->mu);
    return 0;
}

int jobs_deadletter_retry(jobs_t *j, long deadletter_id, char job_id[32]) {
    uint32_t chunk = 0;
    if (store_deadletter_retry(j->st, deadletter_id, job_id, &chunk) != 0) return 1;
    store_job_t job;
    if (store_job_get(j->st, job_id, &job) != 0) return 0; /* pending in the store; next start */
    const model_t *md = jobs_model_find(j, job.model);
    if (!md) return 0;
    pthread_mutex_lock(&j->mu);
    job_rt_t *rt = jobs_rt_get(j, &job, md);
    if (rt) {
        rt->refs++;
        rt->cancelled = 0;
        jobs_queue_chunk(j, rt, chunk, 0);
        jobs_rt_unref(j, rt);
        pthread_cond_broadcast(&j->work_cv);
    }
    pthread_mutex_unlock(&j->mu);
    return 0;
}
