/* Private to src/jobs: the engine's state, shared by jobs.c (queue, workers, recovery),
 * jobs_submit.c (admission), jobs_inline.c, jobs_cache.c, jobs_events.c and jobs_results.c. */
#ifndef PREDICTD_JOBS_INT_H
#define PREDICTD_JOBS_INT_H

#include <pthread.h>

#include "cache/cache.h"
#include "jobs/jobs.h"
#include "models/model.h"

/* What a job's chunks need to run: loaded once (from the submission, or store_job_load_work)
 * and shared by its chunks; freed with the job's runtime record. */
typedef struct {
    json_t *params;
    char *ids_blob;         /* n NUL-terminated ids back to back */
    const char **ids;       /* n pointers into ids_blob */
    long n;
    void *state;            /* the model's xPrepare state (NULL: none or not yet) */
    int prepared;           /* xPrepare ran (or the model has none) */
    void (*free_state)(void *state);
    cache_scope_t cache_scope; /* what its results are cached on (jobs_cache.c) */
    int cache_scope_set;       /* cache_scope filled (under jobs.mu) */
} job_work_t;

/* A job with chunks in memory (queued, delayed, leased or committing). */
typedef struct job_rt {
    char id[32];
    const model_t *model;
    int priority;
    int chunk_size;
    long n_entities;
    int cancelled;
    int started_marked;     /* store_job_mark_started sent */
    int loading;            /* a worker is loading work (others wait on work_cv) */
    job_work_t *work;       /* NULL until loaded */
    long refs;              /* chunk items alive + executions in flight */
    int announced;          /* job.completed/job.failed published (jobs.c) */
    long changes;           /* chunks settled or dead-lettered, cancels: what a waiting
                             * status read (jobs_job_wait) watches */
    struct job_rt *prev, *next;
    struct job_rt *hnext;   /* its chain in jobs.rt_tab */
    uint64_t hash;          /* of id */
} job_rt_t;

#define JOBS_CHANGE_CVS 64

typedef struct chunk_item {
    job_rt_t *rt;
    uint32_t chunk;
    int attempts;           /* failed attempts so far */
    uint64_t seq;           /* FIFO order within a priority */
    int64_t due_ms;         /* delayed: when it may run again (mono) */
    uint64_t token;         /* leased: the lease's id */
    int64_t deadline_ms;    /* leased: mono deadline, renewed while it runs */
    int committing;         /* leased: commit or dead letter handed to the store */
    struct chunk_item *lprev, *lnext; /* leased list */
} chunk_item_t;

struct jobs {
    predictd_config_t cfg;
    store_t *st;
    graph_t *g;
    metrics_t *m;
    model_env_t env;
    cache_t *cache;         /* NULL: no result cache; set once under mu (jobs_attach_cache) */
    struct bus *bus;        /* NULL: no events; set once under mu (jobs_attach_bus) */
    struct jobs_reuse *reuse; /* identical requests (jobs_reuse.c); NULL: none */
    struct jobs_recent *recent; /* recently finished jobs in memory (jobs_recent.c); NULL: none */

    pthread_mutex_t mu;     /* protects everything below */
    pthread_cond_t work_cv; /* workers: new chunk, delay due, stop, work loaded */
    pthread_cond_t idle_cv; /* jobs_stop: an execution or commit finished */
    /* jobs_job_wait: a job's changes grew (the condition of its id's hash bucket: a settle
     * wakes the reads waiting on 1/JOBS_CHANGE_CVS of the jobs, not all), or stopping (all) */
    pthread_cond_t change_cv[JOBS_CHANGE_CVS];
    chunk_item_t **heap;    /* ready chunks: priority desc, then seq asc */
    size_t heap_n, heap_cap;
    chunk_item_t **delayed; /* waiting for their retry delay */
    size_t delayed_n, delayed_cap;
    chunk_item_t *leased;   /* leased list (running or committing) */
    long leased_n;
    job_rt_t *rts;          /* jobs with chunks in memory */
    job_rt_t **rt_tab;      /* ... by id: chained, rt_cap buckets (a power of two, or 0) */
    size_t rt_cap, rt_n;
    long reserved_chunks;   /* admitted, being committed, not yet queued */
    uint64_t next_seq, next_token, rng;
    long faults_injected;
    long executing;         /* model runs in progress */
    long commits_inflight;  /* store callbacks not yet called */
    int busy;
    double chunk_ms_avg;    /* exponential moving average; 0 = no sample yet */
    int stopping, abandon, stopped;
    long released;          /* chunks given up at stop */
    int64_t next_sweep_ms;  /* watchdog: when the retention sweep runs next (mono) */

    const model_t *extra_models[8]; /* jobs_add_model, in order (under mu) */
    int n_extra_models;

    int n_workers;
    pthread_t *threads;
    pthread_t watchdog;
    int threads_started, watchdog_started;
};

/* The cache (NULL: none): set once at start by jobs_attach_cache, read anywhere. */
static inline cache_t *jobs_cache(jobs_t *j) { return __atomic_load_n(&j->cache, __ATOMIC_ACQUIRE); }

/* The model named name: one added with jobs_add_model, else a built-in; NULL if unknown. */
const model_t *jobs_model_find(jobs_t *j, const char *name);

#define DEFAULT_CHUNK_MS 20.0   /* estimate before the first chunk was measured */
#define STORE_RETRY_AFTER_S 5

/* ---- jobs.c, shared with the submission (jobs_submit.c); call with j->mu held where a
 * function touches the queue or the runtime records ---- */
/* "model=\"NAME\"" metric labels. */
void jobs_model_labels(const model_t *md, char *out, size_t n);
/* Takes ownership of params and blob; NULL on allocation failure (both freed). */
job_work_t *jobs_work_new(json_t *params, char *blob, size_t blob_len, long n);
/* The job's runtime record, made when it has none (mu held). NULL: no memory. */
job_rt_t *jobs_rt_get(jobs_t *j, const store_job_t *job, const model_t *md);
/* Drops a reference; the last one frees the record and its work (mu held). */
void jobs_rt_unref(jobs_t *j, job_rt_t *rt);
/* A new chunk item in the ready heap (mu held). -1: no memory. */
int jobs_queue_chunk(jobs_t *j, job_rt_t *rt, uint32_t chunk, int attempts);

/* Appends the model's job summary to a chunk blob as a trailer after the entities
 * ("PDSM", u32 length, JSON text); readers of the entities never reach it. */
void jobs_blob_add_summary(buf_t *blob, const model_t *md, const void *state);

/* ---- jobs_cache.c: the result cache inside the engine ---------------------------------- */

/* Submission: chunks whose every entity is served from the cache, encoded as the chunk blobs
 * the store writes with the job (so the results pages stay one code path). */
typedef struct {
    store_chunk_blob_t *settled; /* n_settled blobs (owned) */
    size_t n_settled;
    uint8_t *done;               /* per chunk: 1 settled here */
    long successful, failed;     /* entities of the settled chunks */
    long inline_n;               /* of those, in chunks settled by jobs_inline.c (their cache
                                  * hits and misses were counted as they ran) */
    long inline_failed;          /* ... with an error code */
    double exec_ms;              /* the time that took */
    cache_scope_t scope;
    /* The dependency stamps the settled entities' results hold for, as an order-free digest
     * (jobs_stamp_add): a job done in its submission whose every entity has one can be reused
     * by an identical request while the digest is the same (jobs_reuse.c). */
    uint64_t digest1, digest2;
    long stamped;                /* entities in the digest */
} jobs_prefill_t;
/* jobs_recent.c: jobs done in their submission, record and results in memory for a while. */
typedef struct jobs_recent jobs_recent_t;
typedef struct jobs_recent_entry jobs_recent_entry_t;
jobs_recent_t *jobs_recent_new(size_t max_bytes); /* NULL: max_bytes 0 or no memory */
/* Drops the jobs that finished before finished_before_ms (wall clock): retention. */
void jobs_recent_expire(jobs_recent_t *r, int64_t finished_before_ms);
void jobs_recent_free(jobs_recent_t *r);
/* Keeps the finished job with its n settled chunk blobs (one per chunk), taking their
 * ownership (their pointers in settled are set to NULL) when it does. */
void jobs_recent_put(jobs_recent_t *r, const store_job_t *job, store_chunk_blob_t *settled, size_t n);
/* The entry of job id with a reference held (job filled), or NULL. */
const jobs_recent_entry_t *jobs_recent_get(jobs_recent_t *r, const char *id, store_job_t *job);
void jobs_recent_blob(const jobs_recent_entry_t *e, uint32_t chunk, const void **blob, size_t *len);
void jobs_recent_release(jobs_recent_t *r, const jobs_recent_entry_t *e);

/* jobs_reuse.c: identical requests answered with the job already holding their results. */
typedef struct jobs_reuse jobs_reuse_t;
/* retention_s > 0: an entry lives at most half of it (its job must outlive every reuse) */
jobs_reuse_t *jobs_reuse_new(long retention_s);
/* Forgets the jobs that finished before finished_before_ms (wall clock): retention. */
void jobs_reuse_expire(jobs_reuse_t *r, int64_t finished_before_ms);
void jobs_reuse_free(jobs_reuse_t *r);
/* The request's key: model, normalised parameters, the distinct ids in order (NUL-separated). */
void jobs_reuse_key(const char *model, const char *params_json, const char *ids, size_t ids_len,
                    uint64_t *k1, uint64_t *k2);
/* Remembers a job done in its submission whose n entities' stamps had digest d1/d2, under
 * the cache generation read before its lookups; valid for the scope's TTL; body: the key of
 * the request's bytes (NULL: unknown). mutations: the graph's
 * mutation count before the job's lookups when it was still the same after its results were
 * stored (0 otherwise): while the graph stays at that count the job is reused at once. */
void jobs_reuse_put(jobs_reuse_t *r, uint64_t k1, uint64_t k2, const jobs_body_key_t *body,
                    const cache_scope_t *scope, uint64_t d1, uint64_t d2, uint64_t cache_gen, uint64_t mutations,
                    long n, const store_job_t *job);
/* 1 and the job when the same request's job is remembered and its entities are in the same
 * state (stamps) now; 0 otherwise. */
int jobs_reuse_find(jobs_t *j, const cache_scope_t *s, uint64_t k1, uint64_t k2, const char *ids, size_t ids_len,
                    long n, store_job_t *out);
/* Counts a submission of n entities answered by reuse (md may be NULL): a submission, a
 * reuse, and n cache hits of the scope. */
void jobs_reuse_count(jobs_t *j, const model_t *md, const cache_scope_t *s, long n);
/* The cache scope of a job of md (jobs_cache.c). */
void jobs_cache_scope(jobs_t *j, const model_t *md, const json_t *params, const char *params_json,
                      const char *ids, size_t ids_len, cache_scope_t *s);

/* Adds entity number pos with stamp to a digest (sums of mixes: the order chunks settle in
 * does not matter). */
void jobs_stamp_add(uint64_t *d1, uint64_t *d2, long pos, uint64_t stamp);
/* Fills pf for a job of n entities (ids: NUL-separated blob) in chunks of cs. 0 always (a
 * lookup failing only means computing); pf is empty without a cache. pf->scope is the job's
 * cache scope whether or not anything was found in it. */
int jobs_cache_prefill(jobs_t *j, const model_t *md, const json_t *params, const char *params_json,
                       const char *ids, size_t ids_len, long n, int cs, jobs_prefill_t *pf);
void jobs_prefill_free(jobs_prefill_t *pf);
/* jobs_inline.c: computes the chunks pf has not settled during the submission when the
 * model allows it (xInline) and they hold at most jobs.inline_max_entities entities, adding
 * them to pf as settled chunks (results also go into the cache, under the scope
 * jobs_cache_prefill left in pf). job_id: the id the job
 * will be stored under (for events the model raises). Returns the number of chunks it
 * settled; a model failure leaves the remaining chunks to the queue. */
long jobs_inline_fill(jobs_t *j, const model_t *md, const json_t *params, const char *job_id,
                      const char *ids, size_t ids_len, long n, int cs, jobs_prefill_t *pf);
/* Encodes a chunk's m results as its blob and adds it to pf as settled (counts included).
 * 0 ok, -1 out of memory (pf unchanged). */
int jobs_prefill_add(jobs_prefill_t *pf, uint32_t chunk, const char *const *ids, uint32_t m, int n_outputs,
                     const uint8_t *codes, const double *vals);
/* The job was stored: counts its prefilled entities as cache hits. */
void jobs_prefill_counted(jobs_t *j, const jobs_prefill_t *pf);

/* A worker's chunk: entities served from the cache are filled in before the model runs,
 * the model computes only miss_ids, jobs_cache_end puts them in place, and once the chunk
 * is computed jobs_cache_commit stores the results still valid (on the worker, before the commit). */
typedef struct {
    cache_scope_t scope;
    uint32_t n_miss;
    uint32_t *miss_at;         /* index in the chunk of each entity to compute */
    const char **miss_ids;     /* into ids_copy, or the caller's ids (jobs_cache_begin) */
    char *ids_copy;            /* the missing ids (the job's work may be gone at commit) */
    uint8_t *miss_codes;
    double *miss_vals;         /* n_miss * n_outputs */
    uint64_t *stamp;           /* per miss: stamp before the run (0: not to be stored) */
    uint64_t *stamp_all;       /* per entity of the chunk, hits and misses (0: none or changed) */
    int64_t *slot;             /* per miss: graph slot (-1: unknown), read with the stamps */
    uint64_t gen;              /* the cache's invalidation generation before the lookups */
    uint64_t graph_mutations;  /* the graph's mutation count when the stamps were read */
} jobs_cache_run_t;
/* NULL: no caching for this job (compute ids as usual). */
/* scope: the job's, when the caller has it (a submission: then ids must stay valid until
 * the run is freed, they are not copied); NULL: derived from w, ids copied (a worker). */
jobs_cache_run_t *jobs_cache_begin(jobs_t *j, const model_t *md, job_work_t *w, const cache_scope_t *scope,
                                   const char *const *ids, uint32_t n, uint8_t *codes, double *vals);
void jobs_cache_end(jobs_t *j, jobs_cache_run_t *r, uint8_t *codes, double *vals);
void jobs_cache_commit(jobs_t *j, jobs_cache_run_t *r);
void jobs_cache_run_free(jobs_cache_run_t *r);
/* model_env_t.on_alert (arg: the jobs_t): an EWS alert drops the entity's cached results.
 * Whatever else an alert does (the ews.alert event) chains from here. */
void jobs_cache_on_alert(void *arg, const model_alert_t *alert);
/* jobs_events.c: ews.alert {entity_id, job_id, variance_tau, ar1_tau, at}. */
void jobs_publish_alert(jobs_t *j, const model_alert_t *alert);
/* Publishes job.completed or job.failed {job_id, model, status, successful, failed, at}. */
void jobs_publish_finished(jobs_t *j, const store_job_t *job);
/* job.progress {job_id, chunks_done, chunks_dead, n_chunks, successful, failed, progress}
 * after one of the job's chunks settled (job as read back after that commit). */
void jobs_publish_progress(jobs_t *j, const store_job_t *job);

/* jobs_retention.c: deletes finished jobs past jobs.retention_s (memory, then store); run
 * by the watchdog without jobs.mu. Returns the milliseconds until the next sweep. */
int64_t jobs_retention_sweep(jobs_t *j);

#endif
