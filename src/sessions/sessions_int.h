/* Private to sessions.c (service, scheduler thread) and sessions_sql.c (the statements run
 * through store_sql.h). Every *_arg_t is filled by sessions.c, handed to one store_sql_*
 * call, and read back after it returns. */
#ifndef PREDICTD_SESSIONS_INT_H
#define PREDICTD_SESSIONS_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "sessions/sessions.h"

#define NF SESSIONS_N_FEATURES

struct sessions {
    predictd_config_t cfg;
    sessions_sched_cfg_t sched;
    store_t *st;
    metrics_t *m;
    _Atomic long queued;   /* queued sessions: changed only by the writer-thread fns below */
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv;     /* scheduler wake-ups; a batch finished */
    pthread_t thread;
    int thread_started;
    int stop;              /* the scheduler thread should end */
    int enabled;           /* the scheduler runs batches */
    int running;           /* a batch is in progress (scheduler or process_now) */
    int waiting;           /* process_now / clear calls waiting for it: the scheduler lets them go first */
    long in_batch;         /* sessions in that batch */
    int64_t opened_ms;
    int64_t last_run_ms;   /* last successful batch (from session_meta at open), 0 never */
    int failures;          /* consecutive failed batches */
    int64_t last_failure_ms;
    int64_t next_check_ms;
    int64_t next_cleanup_ms;
    const char *last_decision;
    long fault_left;       /* sessions.fault_batch_failures still to inject */
};

/* ---- sessions_sql.c ------------------------------------------------------------------- */
int sessions_sql_schema(sqlite3 *db, void *arg, char *err, size_t errlen);

typedef struct {
    sessions_t *s;
    const sessions_telemetry_t *t;
    const double *f;        /* [NF] */
    double h_score;
    const char *h_verdict;
    int64_t now_ms;
    sessions_submit_rc_t rc; /* out */
    sessions_result_t *res;  /* out: the stored answer */
} sessions_insert_arg_t;
int sessions_sql_insert(sqlite3 *db, void *arg, char *err, size_t errlen);

typedef struct {
    const char *session_id;
    int found;               /* out */
    sessions_result_t *res;  /* out */
} sessions_get_arg_t;
int sessions_sql_get(sqlite3 *db, void *arg, char *err, size_t errlen);

int sessions_sql_count_queued(sqlite3 *db, void *arg /* long * */, char *err, size_t errlen);

typedef struct {
    long max, ref_max;
    /* out */
    long n;                 /* batch rows */
    char (*ids)[SESSIONS_ID_MAX + 1];
    long n_ref;
    double *X;              /* [(n + n_ref), NF]: the batch first, then the reference rows */
    int64_t reference_seen, batches;
} sessions_batch_read_t;
int sessions_sql_batch_read(sqlite3 *db, void *arg, char *err, size_t errlen);
void sessions_batch_read_free(sessions_batch_read_t *r);

typedef struct {
    sessions_t *s;
    const sessions_batch_read_t *rd;
    const double *scores;   /* [rd->n] */
    const char **verdicts;  /* [rd->n] */
    int64_t started_ms, now_ms;
    uint64_t forest_seed, reservoir_seed;
    long batch_id;          /* out */
    long updated;           /* out: sessions this batch scored (queued ones only) */
    long reference_size;    /* out */
} sessions_commit_arg_t;
int sessions_sql_batch_commit(sqlite3 *db, void *arg, char *err, size_t errlen);

int sessions_sql_count_failure(sqlite3 *db, void *arg /* unused */, char *err, size_t errlen);

typedef struct {
    sessions_t *s;
    int all;
    int64_t older_than_ms;  /* retention: processed before this; 0 = clear */
    long limit;             /* retention: rows per call */
    long deleted;           /* out */
} sessions_delete_arg_t;
int sessions_sql_clear(sqlite3 *db, void *arg, char *err, size_t errlen);
int sessions_sql_retention(sqlite3 *db, void *arg, char *err, size_t errlen);

typedef struct {
    sessions_stats_t *out;
    int64_t last_run_ms;    /* out (meta) */
} sessions_stats_arg_t;
int sessions_sql_stats(sqlite3 *db, void *arg, char *err, size_t errlen);

/* The verdict strings are static: a stored one is mapped back to them. */
const char *sessions_verdict_intern(const char *v);

#endif
