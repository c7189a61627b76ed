/* The durable store (SQLite, WAL). All state a 2xx promises lives here: graph data, jobs,
 * chunks, results, dead letters. Writes from many threads go through one writer thread that
 * commits them in groups (one fsync for many submissions); reads take a connection from a
 * pool (one per concurrent reader; WAL lets them run beside the writer). Checkpoints run on
 * a thread of their own. Thread-safe unless a function says otherwise. */
#ifndef PREDICTD_STORE_H
#define PREDICTD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include <jansson.h>

#include "graph/graph.h"
#include "store/rows.h"

typedef struct store store_t;

/* Opens (creating if needed) DATA_DIR/predictd.db. -1 + err on failure. */
int store_open(store_t **out, const predictd_config_t *cfg, char *err, size_t errlen);
void store_close(store_t *st); /* NULL is a no-op; flushes pending writes first */

/* ---- graph data: each call is one transaction, all rows or none ----------------------
 * On a bad row returns -1, err names the row ("line 17: target 'X' does not exist" when
 * rows carry a line, else "[3].target: entity 'X' does not exist") and nothing changes.
 * Entities upsert (properties replaced; values number, string, boolean; a null is left
 * out); relationships add (parallel ones add their weights; no self-loops; finite weight);
 * observations upsert on (entity, series, timestamp). Ends / entities must exist. Ids are
 * 1..256 bytes of UTF-8. */
int store_import_entities(store_t *st, const entity_row_t *rows, size_t n, char *err, size_t errlen);
int store_import_relationships(store_t *st, const rel_row_t *rows, size_t n, char *err, size_t errlen);
int store_import_observations(store_t *st, const obs_row_t *rows, size_t n, char *err, size_t errlen);
/* Versions come from one store-wide clock: each write takes the next value and gives it to
 * every entity it touches, so a version only grows and is never reused (not even by an
 * entity deleted and created again). Relationship changes touch both ends; deleting an
 * entity touches its neighbours; observations touch their entity. */

/* When attached, every committed graph change is applied to g on the writer thread, in
 * commit order, before the committing call returns. Attach before serving. */
void store_attach_graph(store_t *st, graph_t *g);
/* Called on the writer thread with the version of each committed graph change, after it is
 * applied to the attached graph and before the graph's write lock is released (a reader
 * under the read lock sees both or neither). fn must be quick and must not call the store.
 * Set before serving (the result cache's global stamp). */
void store_set_apply_hook(store_t *st, void (*fn)(void *arg, uint64_t version), void *arg);
/* Loads every entity and relationship into g (at start). */
int store_load_graph(store_t *st, graph_t *g, char *err, size_t errlen);

/* ---- entities ---- (return 0 ok, 1 not found, -1 error with err) */
/* props_json: the stored property object as JSON text (owned by the caller, free()). */
int store_entity_get(store_t *st, const char *id, char **props_json, uint64_t *version);
/* Merges props into the entity's properties (a null value removes that key). */
int store_entity_patch(store_t *st, const char *id, const json_t *props, char *err, size_t errlen);
/* Deletes the entity, its relationships and observations; bumps its neighbours' versions. */
int store_entity_delete(store_t *st, const char *id, char *err, size_t errlen);
/* Deletes relationships matching (source, target[, type]) in either direction; *deleted counts them. */
int store_relationships_delete(store_t *st, const rel_row_t *rows, size_t n, int match_type,
                               long *deleted, char *err, size_t errlen);

/* ---- jobs ---- */
typedef enum { JOB_QUEUED = 0, JOB_PROCESSING, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED } job_status_t;
const char *job_status_name(job_status_t s);
/* 1 for COMPLETED, FAILED and CANCELLED: the job will not change any more. */
static inline int job_status_finished(job_status_t s) {
    return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED;
}
int job_status_parse(const char *name, job_status_t *out);

typedef struct {
    char id[32];
    char model[32];
    job_status_t status;
    int priority;
    int chunk_size;           /* entities per chunk, fixed at submission */
    long n_entities, n_chunks, chunks_done, chunks_dead, successful, failed;
    int64_t created_at, started_at, finished_at, updated_at; /* ms since the epoch, 0 = not yet */
    double exec_ms;
} store_job_t;

/* A new job: ids is n_entities NUL-terminated ids back to back (ids_len bytes). */
typedef struct {
    store_job_t job;
    const char *params_json;
    const char *ids;
    size_t ids_len;
    const char *idem_key; /* NULL: none */
    /* Chunks already settled at submission (results served from the cache): written with
     * the job in its transaction. job.chunks_done, successful, failed and status must
     * already count them. */
    const struct store_chunk_blob *settled;
    size_t n_settled;
} store_new_job_t;

typedef struct store_chunk_blob {
    uint32_t chunk;
    const void *blob;
    size_t len;
} store_chunk_blob_t;

/* Commits the job (fsync'd when this returns 0; job.id, created_at, n_chunks and
 * chunk_size are the caller's). With an idempotency key already used,
 * returns 1 and copies that job's id into existing_id; nothing is written. */
int store_job_insert(store_t *st, const store_new_job_t *nj, char existing_id[32], char *err, size_t errlen);
/* 0 ok, 1 not found. */
int store_job_get(store_t *st, const char *id, store_job_t *out);
/* Jobs ordered by id (= creation order), newest first, after cursor (an id, or NULL);
 * status/model filters optional (status < 0 = any). Caller frees *out. */
int store_jobs_list(store_t *st, int status, const char *model, const char *cursor, int limit,
                    store_job_t **out, size_t *n);
/* Loads what a worker needs to run a job: params JSON and the ids blob (caller frees both). */
int store_job_load_work(store_t *st, const char *id, char **params_json, char **ids, size_t *ids_len);
/* Chunks of a job already settled: settled[c] = 0 pending, 1 done (results written),
 * 2 dead (in the dead-letter list, not retried). */
int store_job_settled_chunks(store_t *st, const char *id, uint8_t *settled, long n_chunks);
/* Ids of jobs still QUEUED or PROCESSING (recovery at start). Caller frees *ids. */
int store_jobs_unfinished(store_t *st, char (**ids)[32], size_t *n);

/* Asynchronous writes: queued to the writer thread; done(arg, rc) runs on it after the
 * commit (rc 0 written, 1 skipped because already written or the job was cancelled, -1 error).
 * done must be quick and must not call a synchronous store write (it would wait for itself).
 * Writes are committed in the order they were queued, so any synchronous call returns only
 * after every write queued before it has committed and its done has run. */
typedef void (*store_done_fn)(void *arg, int rc);
void store_job_mark_started(store_t *st, const char *id, int64_t at_ms);
/* The chunk's result blob and its completion mark, in one transaction: a chunk's results
 * are stored exactly once (a second commit of the same chunk is skipped). The same
 * transaction adds successful/failed/exec_ms to the job, bumps chunks_done and updated_at,
 * and when every chunk is settled sets the job COMPLETED (FAILED if any chunk is dead) with
 * finished_at. store_chunk_deadletter settles a chunk the same way (chunks_dead). */
void store_chunk_commit(store_t *st, const char *job_id, uint32_t chunk, const void *blob, size_t len,
                        long successful, long failed, double exec_ms, store_done_fn done, void *arg);
void store_chunk_deadletter(store_t *st, const char *job_id, uint32_t chunk, const char *reason,
                            int attempts, store_done_fn done, void *arg);
/* 0 cancelled, 1 not found, 2 already finished (status in *out). */
int store_job_cancel(store_t *st, const char *id, store_job_t *out);

/* ---- observations ---- */
/* Points of one series (NULL/"" = "value") with from_ts <= ts <= to_ts, by time. Caller
 * frees *ts and *values. 0 ok (n may be 0), -1 error. */
int store_observations_get(store_t *st, const char *id, const char *series, double from_ts, double to_ts,
                           double **ts, double **values, size_t *n);

/* ---- results ---- */
/* Calls fn for each stored chunk blob of the job with chunk index in [from, to]. */
int store_results_scan(store_t *st, const char *job_id, uint32_t from, uint32_t to,
                       void (*fn)(void *arg, uint32_t chunk, const void *blob, size_t len), void *arg);

/* ---- dead letters ---- */
typedef struct {
    long id;
    char job_id[32];
    uint32_t chunk;
    int attempts;
    int64_t created_at;
    char reason[256];
} store_deadletter_t;
/* Dead letters not yet retried, by id, after after_id. Caller frees *out. */
int store_deadletters_list(store_t *st, long after_id, int limit, store_deadletter_t **out, size_t *n);
/* Takes the dead letter back: the chunk is pending again (chunks_dead - 1), the job returns
 * to PROCESSING with finished_at 0. 0 ok (job_id/chunk filled), 1 not found, already
 * retried, or its job was cancelled. */
int store_deadletter_retry(store_t *st, long id, char job_id[32], uint32_t *chunk);

/* Retention: deletes up to limit finished jobs (COMPLETED, FAILED or CANCELLED) whose
 * finished_at is before finished_before_ms (wall clock), oldest first, with their results,
 * ids and dead letters, in one transaction. Returns how many were deleted, -1 on error. */
long store_jobs_expire(store_t *st, int64_t finished_before_ms, int limit);
/* Counts by status (index job_status_t), for metrics at start. */
int store_job_counts(store_t *st, long counts[5]);

/* Write statistics since open: groups committed (one transaction, one fsync each) and ops
 * written in them; ops / groups is the group-commit factor. */
void store_write_stats(store_t *st, uint64_t *groups, uint64_t *ops);
/* Reports the writer's work from now on: group commits, their size and COMMIT time (the
 * fsync with synchronous=full), WAL pages, checkpoints (the predictd_store_* families). m
 * must outlive the store. */
struct metrics;
void store_attach_metrics(store_t *st, struct metrics *m);
#endif
