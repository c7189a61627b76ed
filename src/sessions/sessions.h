/* Session anomaly scoring (issue 7, MODELS.md "Session anomaly scoring"): a session is
 * submitted with its telemetry, answered at once with the heuristic score, and queued in
 * SQLite (durable before the answer). A scheduler thread scores the queue in batches with an
 * isolation forest fitted on the batch plus a reservoir-sampled reference set of earlier
 * batches, and commits a batch's results, its reference updates and its counters in one
 * transaction, so that a session is scored by the forest exactly once even across kill -9.
 *
 * Tables (own schema, created at open): sessions, session_batches, session_reference,
 * session_meta (sessions_sql.c). Thread-safety: every function may be called from any
 * thread; one batch runs at a time (the scheduler's and POST /batch/process's wait for each
 * other). Locks are never held across the store or a forest fit. */
#ifndef PREDICTD_SESSIONS_H
#define PREDICTD_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "metrics/metrics.h"
#include "sessions/features.h"
#include "sessions/sched.h"
#include "sessions/telemetry.h"
#include "store/store.h"

typedef struct sessions sessions_t;

/* Creates the tables if needed, counts the queue, starts the scheduler thread (running or
 * stopped as sessions.autostart says). cfg is copied. 0 ok, -1 with err. */
int sessions_open(sessions_t **out, const predictd_config_t *cfg, store_t *st, metrics_t *m, char *err,
                  size_t errlen);
/* Stops the scheduler (a batch in progress finishes first) and frees. NULL is a no-op.
 * Call before the store is closed. */
void sessions_close(sessions_t *s);

typedef enum {
    SESSIONS_NEW = 0,      /* stored and queued */
    SESSIONS_DUPLICATE,    /* the same body was submitted before: its first answer */
    SESSIONS_CONFLICT,     /* the id was submitted before with another body */
    SESSIONS_FULL,         /* the queue holds max_queued sessions */
    SESSIONS_ERROR,        /* the store failed (err) */
} sessions_submit_rc_t;

/* The answer to a submission (and a result lookup). */
typedef struct {
    char session_id[SESSIONS_ID_MAX + 1];
    double score;
    const char *verdict;      /* static string */
    int processed;            /* 1: score/verdict are the forest's */
    double h_score;           /* the heuristic's, always */
    const char *h_verdict;
    int64_t received_ms, processed_ms;
    long batch_id;            /* 0 until processed */
} sessions_result_t;

/* Scores t with the heuristic and stores it queued; durable on return. */
sessions_submit_rc_t sessions_submit(sessions_t *s, const sessions_telemetry_t *t, sessions_result_t *res,
                                     char *err, size_t errlen);

/* 1 found (res filled), 0 unknown, -1 store error. */
int sessions_result(sessions_t *s, const char *session_id, sessions_result_t *res, char *err, size_t errlen);

typedef struct {
    long total, queue_depth, processed, in_batch;
    long processed_total, batches, failures, consecutive_failures;
    long reference_size, reference_seen, last_batch_size;
    int64_t last_run_ms;      /* last successful batch; 0 never */
    int scheduler_running;
    int64_t next_retry_ms;    /* when failures > 0: the earliest retry; else 0 */
} sessions_stats_t;

int sessions_stats(sessions_t *s, sessions_stats_t *out, char *err, size_t errlen);

/* What one batch did. */
typedef struct {
    long batch_id;   /* 0: nothing was queued */
    long size;       /* sessions scored (0 when nothing was queued) */
    double seconds;
    long by_verdict[3]; /* human, suspicious, bot */
} sessions_batch_report_t;

/* Runs one batch now (up to max_batch sessions), whatever the scheduler's rules say; waits
 * for a batch in progress first. 0 ok (report filled; size 0 when the queue was empty), -1
 * failed (err; counted, nothing committed, the sessions stay queued). */
int sessions_process_now(sessions_t *s, sessions_batch_report_t *rep, char *err, size_t errlen);

/* The scheduler: start/stop decide whether it runs batches (the thread stays). */
void sessions_scheduler_set(sessions_t *s, int running);

typedef struct {
    int running;
    sessions_sched_cfg_t cfg;
    int64_t last_run_ms, next_check_ms;
    int failures;
    const char *last_decision; /* static string, sched.h's reasons; "" before the first */
} sessions_sched_status_t;
void sessions_scheduler_status(sessions_t *s, sessions_sched_status_t *out);

/* Deletes queued sessions (all = 0) or every session, the reference set and the counters
 * (all = 1). *deleted: sessions deleted. 0 ok, -1 with err. */
int sessions_clear(sessions_t *s, int all, long *deleted, char *err, size_t errlen);

/* Admin key check: 1 when the configured key is set and equals key (constant time). */
int sessions_admin_ok(const sessions_t *s, const char *key);
int sessions_admin_enabled(const sessions_t *s);

#endif
