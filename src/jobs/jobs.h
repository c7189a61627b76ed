/* The job engine: validation and durable admission of jobs, the in-memory chunk queue,
 * the worker pool, leases, retries with backoff, dead letters, cancellation, recovery.
 *
 * Life of a job: jobs_submit validates the request (entity_ids + the model's xParse), splits
 * it into chunks of cfg.chunk_size, commits it to the store (group commit; the call returns
 * only after the fsync) and queues its chunks (priority first, then FIFO). A worker leases a
 * chunk (an in-memory lease with a deadline, renewed while the chunk runs; the watchdog
 * thread takes back leases that expired, e.g. a worker stuck past lease_ms), runs the model,
 * and hands the encoded results to store_chunk_commit, which writes them and the completion
 * mark in one transaction, exactly once. A failed attempt is retried after
 * min(backoff_max, base * 2^attempt) with full jitter; after max_attempts the chunk goes to
 * the dead-letter list. At start every QUEUED/PROCESSING job's unsettled chunks are queued
 * again, so a kill -9 loses no accepted work and duplicates no result.
 * Thread-safe. */
#ifndef PREDICTD_JOBS_H
#define PREDICTD_JOBS_H

#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/util.h"
#include "graph/graph.h"
#include "metrics/metrics.h"
#include "store/store.h"

typedef struct jobs jobs_t;

/* An error the API turns into {error:{code, message, field}} with http_status. */
typedef struct {
    int http_status;      /* 400, 404, 409, 413, 422, 429, 503 */
    char code[32];        /* "invalid_field", "too_many_entities", "queue_full", ... */
    char field[64];       /* dotted path of the offending field, "" when none */
    char message[256];
    int retry_after_s;    /* for 429/503; 0 = none */
} jobs_error_t;

/* Recovers unfinished jobs from the store and starts the workers and the watchdog. */
int jobs_start(jobs_t **out, const predictd_config_t *cfg, store_t *st, graph_t *g,
               metrics_t *m, char *err, size_t errlen);

/* Validates and durably admits a job for model (e.g. "ising") from the request body:
 * {entity_ids:[...], prediction_type?, parameters:{...}, priority?: int 0..9 (higher first)}.
 * An id repeated in entity_ids is computed once (first occurrence kept). With idem_key
 * (may be NULL) a key already used returns that job with *existed = 1. Without one, the
 * same request as a job done in its submission, while every entity is in the same state,
 * returns that job with *existed = JOBS_REUSED (jobs_reuse.c). Returns 0 and the job
 * record, or -1 with err (nothing stored). estimated_completion_ms: when it should be done. */
#define JOBS_REUSED 2
int jobs_submit(jobs_t *j, const char *model, const json_t *request, const char *idem_key,
                store_job_t *job, int *existed, int64_t *estimated_completion_ms,
                jobs_error_t *err);
/* entity_ids the caller took out of the request itself (the API parses them in one pass):
 * n ids, str[i] of len[i] bytes, len JOBS_ID_NOT_STRING for an element that was not a
 * string. */
#define JOBS_ID_NOT_STRING UINT32_MAX
typedef struct {
    size_t n;
    const char **str;
    const uint32_t *len;
} jobs_ids_t;
/* The request body's bytes, hashed (jobs_body_key): a job remembered for reuse is also found
 * by the bytes of the request that made it, before any parsing (jobs_reuse_by_body). */
typedef struct {
    uint64_t h1, h2;
} jobs_body_key_t;
void jobs_body_key(const char *model, const char *body, size_t len, jobs_body_key_t *out);
/* jobs_submit with entity_ids already taken out of request (ids; NULL: read from request),
 * remembering the body's key (body; NULL: none) with the job when it is reusable. */
int jobs_submit_body(jobs_t *j, const char *model, const json_t *request, const jobs_ids_t *ids,
                     const jobs_body_key_t *body, const char *idem_key, store_job_t *job, int *existed,
                     int64_t *estimated_completion_ms, jobs_error_t *err);
/* 1 and the job (counted as a submission served by reuse) when the same bytes made a job that
 * is reusable now without looking at its entities (the graph unchanged since: jobs_reuse.c);
 * 0: parse and submit as usual. Never for a request with an Idempotency-Key. */
int jobs_reuse_by_body(jobs_t *j, const char *model, const jobs_body_key_t *body, store_job_t *job);

/* 0 cancelled (out filled), 1 not found, 2 already finished (out filled). Chunks still
 * waiting are dropped; one running finishes but its commit is skipped by the store. */
int jobs_cancel(jobs_t *j, const char *id, store_job_t *out);

/* Takes a dead letter back into the queue. 0 ok (job_id filled), 1 not found or retried. */
int jobs_deadletter_retry(jobs_t *j, long deadletter_id, char job_id[32]);

/* Renders GET /api/v1/jobs/{id}/results as JSON into out:
 * {job_id, status, results:[{entity_id, prediction:{...}} | {entity_id, error:{code, message}}],
 *  next_cursor, metadata:{total_entities, successful, failed, execution_time_ms}}.
 * cursor: NULL or "" = start, else the next_cursor of the previous page (opaque to clients;
 * an entity offset). Results come in submission order; a page stops early at a chunk not yet
 * settled (next_cursor then points at it, so a client can poll); next_cursor is null once
 * every result has been returned. Entities of a dead chunk come as errors {code:
 * "chunk_failed", message: the dead letter's reason}; those of chunks a cancelled job never
 * ran as {code: "cancelled"}; metadata.failed counts both. limit is clamped to 1..10000.
 * 0 ok, 1 job not found, -1 with err filled: a bad cursor (400 invalid_cursor) or the store
 * failing (503 store_unavailable). */
int jobs_results_page(jobs_t *j, const char *id, const char *cursor, int limit, buf_t *out,
                      jobs_error_t *err);
/* The job record: from memory for a job done in its submission lately, else the store's.
 * 0 ok, 1 not found, -1 store error. */
int jobs_job_get(jobs_t *j, const char *id, store_job_t *job);
/* jobs_job_get, but a job still QUEUED or PROCESSING is read again once one of its chunks
 * settles (results or dead letter), it is cancelled, wait_ms pass or the engine stops,
 * whichever comes first (a long poll: GET /api/v1/jobs/{id}?wait_ms=). Same returns. */
int jobs_job_wait(jobs_t *j, const char *id, long wait_ms, store_job_t *job);

/* The job's summary (one JSON value, from models with xSummary, e.g. cascade sizes per
 * generation), kept with its first chunk's results. 0 appended to out, 1 none (yet). */
int jobs_summary(jobs_t *j, const char *id, const char *model, buf_t *out);

typedef struct {
    long queued_chunks;    /* waiting to be leased, retry delays included */
    long leased_chunks;    /* running now */
    int workers;
    int busy_workers;
    long jobs_by_status[5];/* index job_status_t */
    double chunk_ms_avg;   /* moving average of a chunk's run time */
} jobs_stats_t;
void jobs_stats(jobs_t *j, jobs_stats_t *out);

/* Serves and fills the result cache from now on (NULL: none); an EWS alert invalidates the
 * entity's entries. Call before serving; c must outlive j. */
struct cache;
void jobs_attach_cache(jobs_t *j, struct cache *c);

/* Publishes events from now on (NULL: none): ews.alert when an EWS alert fires, job.completed
 * or job.failed when a job's last chunk settles. Call before serving; b must outlive j. */
struct bus;
void jobs_attach_bus(jobs_t *j, struct bus *b);

/* Adds a model defined at run time (md->ctx reaches its hooks as env->model_ctx;
 * md->chunk_size, when > 0, is its chunk size) and queues the unfinished jobs of that model
 * left by the last run. md must outlive j. 0 ok, -1 with err (a name taken, or too many). */
struct model;
int jobs_add_model(jobs_t *j, const struct model *md, char *err, size_t errlen);

/* Stops taking chunks; waits up to deadline_ms for the chunks in hand to commit, then stops
 * the workers (work not committed stays pending in the store and is redone at the next
 * start). Returns the number of chunks released unfinished. */
int jobs_stop(jobs_t *j, int deadline_ms);
void jobs_free(jobs_t *j); /* NULL is a no-op; stops first if needed */

/* Result blob of one chunk (what store_chunk_commit keeps), shared with tests:
 *   u32 n, u16 n_outputs, then per entity: u8 code, u16 id_len, id bytes, n_outputs f64
 * (little-endian, unaligned). */
int jobs_blob_encode(buf_t *out, const char *const *ids, uint32_t n, int n_outputs,
                     const uint8_t *codes, const double *values);

#endif
