/* Private to the SQLite store (store_sqlite.c: schema, writer thread, ops; store_sqlite_read.c:
 * the read side): statement ids, connections and the helpers both halves use. */
#ifndef PREDICTD_STORE_SQLITE_INT_H
#define PREDICTD_STORE_SQLITE_INT_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"

enum {
    Q_CLOCK_SET, Q_ENT_SET_VERSION_K, Q_ENT_GET, Q_ENT_UPSERT, Q_ENT_EXISTS, Q_ENT_SET_VERSION, Q_ENT_SET_PROPS, Q_ENT_DELETE,
    Q_REL_INSERT, Q_REL_MATCH, Q_REL_DEL_ROWID, Q_REL_NEIGHBOURS, Q_REL_DEL_ENTITY, Q_OBS_UPSERT,
    Q_OBS_DEL_ENTITY, Q_JOB_INSERT, Q_JOB_IDS_INSERT, Q_JOB_BY_IDEM, Q_JOB_GET, Q_JOB_LIST, Q_JOB_WORK, Q_JOB_UNFINISHED,
    Q_JOB_COUNTS, Q_JOB_STARTED, Q_JOB_SETTLE, Q_JOB_CANCEL, Q_JOB_REOPEN, Q_CHUNK_N, Q_CHUNK_EXISTS, Q_CHUNK_INSERT,
    Q_CHUNK_LIST, Q_DL_ACTIVE, Q_DL_INSERT, Q_DL_LIST, Q_DL_GET, Q_DL_MARK_RETRIED, Q_DL_DEAD_LIST,
    Q_RESULTS_SCAN, Q_ENT_ALL, Q_REL_ALL, Q_OBS_GET, Q_COUNT
};

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

#endif
