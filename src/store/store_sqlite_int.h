/* Private to the SQLite store (store_sqlite.c: schema, writer thread, ops; store_sqlite_sql.c:
 * store_sql.h; store_sqlite_read.c:
 * the read side): statement ids, connections and the helpers both halves use. */
#ifndef PREDICTD_STORE_SQLITE_INT_H
#define PREDICTD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/util.h"

#include "store/store.h"

enum {
    Q_CLOCK_SET, Q_ENT_SET_VERSION_K, Q_ENT_GET, Q_ENT_UPSERT, Q_ENT_EXISTS, Q_ENT_SET_VERSION, Q_ENT_SET_PROPS, Q_ENT_DELETE,
    Q_REL_INSERT, Q_REL_MATCH, Q_REL_DEL_ROWID, Q_REL_NEIGHBOURS, Q_REL_DEL_ENTITY, Q_OBS_UPSERT,
    Q_OBS_DEL_ENTITY, Q_JOB_INSERT, Q_JOB_IDS_INSERT, Q_JOB_BY_IDEM, Q_JOB_GET, Q_JOB_LIST, Q_JOB_WORK, Q_JOB_UNFINISHED,
    Q_JOB_COUNTS, Q_JOB_STARTED, Q_JOB_SETTLE, Q_JOB_CANCEL, Q_JOB_REOPEN, Q_JOB_EXPIRED, Q_JOB_DEL, Q_JOB_IDS_DEL,
    Q_CHUNK_DEL_JOB, Q_DL_DEL_JOB, Q_CHUNK_N, Q_CHUNK_EXISTS, Q_CHUNK_INSERT,
    Q_CHUNK_LIST, Q_DL_ACTIVE, Q_DL_INSERT, Q_DL_LIST, Q_DL_GET, Q_DL_MARK_RETRIED, Q_DL_DEAD_LIST,
    Q_RESULTS_SCAN, Q_ENT_ALL, Q_REL_ALL, Q_OBS_GET,
    Q_TX_BEGIN, Q_TX_SAVEPOINT, Q_TX_ROLLBACK_TO, Q_TX_RELEASE, Q_TX_COMMIT, Q_TX_ROLLBACK, Q_COUNT
};

#define SQ_BUSY_TIMEOUT_MS 10000 /* how long a connection waits for a lock */

/* The relationships' two indexes (the schema makes them; a big import rebuilds them) */
#define SQ_REL_INDEXES                                                                 \
    "CREATE INDEX IF NOT EXISTS relationships_source ON relationships(source);"         \
    "CREATE INDEX IF NOT EXISTS relationships_target ON relationships(target);"

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT]; /* prepared on first use */
    struct conn *next;        /* in the read pool */
} conn_t;

/* The prepared statement i of c (prepared on first use); NULL with the error logged. */
sqlite3_stmt *sq_stmt(conn_t *c, int i);
/* Resets a statement and clears its bindings; NULL is a no-op. */
void sq_done_stmt(sqlite3_stmt *s);
/* A read connection from the pool (opened when the pool is empty); NULL on failure. */
conn_t *sq_rconn_get(store_t *st);
void sq_rconn_put(store_t *st, conn_t *c);
void sq_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Binds t as text parameter i (NULL binds SQL NULL); the text must outlive the step. */
void sq_bind_text(sqlite3_stmt *s, int i, const char *t);
/* A jobs row selected with JOB_COLS into *j. */
void sq_read_job(sqlite3_stmt *s, store_job_t *j);

/* ---- writer ops (store_sqlite.c queues and runs them; store_sqlite_jobs.c has the job ones) */

typedef enum {
    OP_IMPORT_ENT, OP_IMPORT_REL, OP_IMPORT_OBS, OP_PATCH, OP_DELETE, OP_REL_DELETE, OP_JOB_INSERT,
    OP_JOB_STARTED, OP_CHUNK_COMMIT, OP_DEADLETTER, OP_CANCEL, OP_DL_RETRY, OP_JOBS_EXPIRE, OP_SQL
} op_kind_t;

typedef struct { char *a, *b; double w; } removed_rel_t;

typedef struct op {
    struct op *next;
    op_kind_t kind;
    int sync, done, rc;
    pthread_cond_t *done_cv;   /* sync ops: the submitter's own condition (one wake-up each) */
    char *err;      /* sync ops: the caller's buffer */
    size_t errlen;
    store_done_fn cb;
    void *cb_arg;

    /* inputs (sync ops point at the caller's data, async ops own copies) */
    const void *rows;
    size_t n;
    const char *id;
    const json_t *props;
    const store_new_job_t *nj;
    char *existing_id;
    int match_type;
    long *deleted;
    store_job_t *job_out;
    long dl_id;
    char *job_id_out;
    uint32_t *chunk_out;
    char job_id[32];
    uint32_t chunk;
    void *blob;
    size_t len;
    long successful, failed;
    double exec_ms;
    int attempts;
    char *reason;
    int64_t at_ms;
    /* OP_SQL (store_sql.h) */
    int (*sql_fn)(sqlite3 *db, void *arg, char *err, size_t errlen);
    void *sql_arg;
    void (*sql_free)(void *arg);

    /* graph changes to apply after the commit */
    uint64_t version;
    json_t **clean;          /* OP_IMPORT_ENT: props without nulls, per row (NULL: use the row's) */
    json_t *merged;          /* OP_PATCH: the full property object */
    const char **touched;    /* entities whose version becomes op->version */
    int64_t *touched_k;      /* their keys, when known (else NULL) */
    size_t n_touched;
    int touched_owned;       /* strings are the op's (else they point into the rows) */
    removed_rel_t *removed;  /* OP_REL_DELETE */
    size_t n_removed;
} op_t;

struct store {
    predictd_config_t cfg;
    char path[600];
    conn_t *w;               /* the writer's connection; only the writer thread uses it */
    uint64_t clock;          /* version clock; writer thread only */
    graph_t *graph;          /* set before serving; read by the writer */
    void (*apply_hook)(void *arg, uint64_t version); /* set before serving; writer calls */
    void *apply_hook_arg;
    buf_t scratch;           /* writer thread: JSON text of properties */

    pthread_mutex_t mu;      /* protects head, tail, stop and every op's done flag */
    pthread_cond_t cv;       /* ops queued, or stop */
    pthread_cond_t done_cv;  /* a group committed */
    op_t *head, *tail;
    int stop;
    pthread_t writer;
    int writer_started;

    /* Checkpoints run on their own thread and connection (PASSIVE: beside the writer), so
     * a commit never waits for the WAL to be copied into the database file. */
    pthread_mutex_t ckpt_mu; /* protects ckpt_wanted, ckpt_stop */
    pthread_cond_t ckpt_cv;
    int ckpt_wanted, ckpt_stop;
    int wal_pages;           /* frames in the WAL after the last commit (writer thread only) */
    int ckpt_last;           /* wal_pages when the last passive checkpoint was asked for (writer) */
    int restart_pages;       /* wal_pages past which the writer restarts the WAL (store.wal_max_mb) */
    _Atomic int restart_wanted; /* the writer waits to restart the WAL: no passive run meanwhile */
    pthread_t ckpt;
    int ckpt_started;

    uint64_t groups, ops;    /* write statistics; protected by mu */
    struct metrics *_Atomic metrics; /* store_attach_metrics; NULL: none */

    pthread_mutex_t pool_mu; /* protects pool */
    conn_t *pool;
};

/* Queues an async op for the writer (it frees it after its callback). */
void sq_enqueue(store_t *st, op_t *op);
/* Queues op and waits until its group committed; returns op->rc. */
int sq_submit_sync(store_t *st, op_t *op);
/* Steps s on the writer's connection: 0 done, -1 with op->err filled (NULL s: prepare failed). */
int sq_exec_step(store_t *st, op_t *op, sqlite3_stmt *s);
/* 1 when statement q with (a, b or i2) finds a row, 0 when not, -1 on error. */
int sq_exists1(store_t *st, op_t *op, int q, const char *a, const char *b, int64_t i2);

/* The ops the writer runs inside the group's transaction: the graph's (store_sqlite_graph.c)
 * and the jobs' (store_sqlite_jobs.c). */
int sq_op_import_entities(store_t *st, op_t *op);
int sq_op_import_relationships(store_t *st, op_t *op);
int sq_op_import_observations(store_t *st, op_t *op);
int sq_op_patch(store_t *st, op_t *op);
int sq_op_delete(store_t *st, op_t *op);
int sq_op_rel_delete(store_t *st, op_t *op);

int sq_op_job_insert(store_t *st, op_t *op);
int sq_op_chunk_commit(store_t *st, op_t *op);
int sq_op_deadletter(store_t *st, op_t *op);
int sq_op_cancel(store_t *st, op_t *op);
int sq_op_dl_retry(store_t *st, op_t *op);
/* op->at_ms: the cutoff, op->n: the limit; op->len: how many jobs were deleted */
int sq_op_jobs_expire(store_t *st, op_t *op);

#endif
