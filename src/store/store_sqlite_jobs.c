/* The SQLite store's job ops: a job and its ids, chunk results with their completion mark
 * (exactly once), dead letters and their retry, cancel. The writer thread runs them inside
 * its group transaction, one SAVEPOINT each (store_sqlite.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store_sqlite_int.h"

int sq_op_job_insert(store_t *st, op_t *op) {
    const store_new_job_t *nj = op->nj;
    const store_job_t *j = &nj->job;
    if (nj->idem_key) {
        sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_BY_IDEM);
        if (!s) return sq_exec_step(st, op, s);
        sq_bind_text(s, 1, nj->idem_key);
        if (sqlite3_step(s) == SQLITE_ROW) {
            if (op->existing_id) snprintf(op->existing_id, 32, "%s", (const char *)sqlite3_column_text(s, 0));
            sq_done_stmt(s);
            return 1;
        }
        sq_done_stmt(s);
    }
    sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_INSERT);
    if (!s) return sq_exec_step(st, op, s);
    sq_bind_text(s, 1, j->id);
    sq_bind_text(s, 2, j->model);
    sqlite3_bind_int(s, 3, (int)j->status);
    sqlite3_bind_int(s, 4, j->priority);
    sqlite3_bind_int(s, 5, j->chunk_size);
    sqlite3_bind_int64(s, 6, j->n_entities);
    sqlite3_bind_int64(s, 7, j->n_chunks);
    sqlite3_bind_int64(s, 8, j->chunks_done);
    sqlite3_bind_int64(s, 9, j->chunks_dead);
    sqlite3_bind_int64(s, 10, j->successful);
    sqlite3_bind_int64(s, 11, j->failed);
    sqlite3_bind_int64(s, 12, j->created_at);
    sqlite3_bind_int64(s, 13, j->started_at);
    sqlite3_bind_int64(s, 14, j->finished_at);
    sqlite3_bind_int64(s, 15, j->updated_at ? j->updated_at : j->created_at);
    sqlite3_bind_double(s, 16, j->exec_ms);
    sq_bind_text(s, 17, nj->params_json ? nj->params_json : "{}");
    sq_bind_text(s, 18, nj->idem_key);
    if (sq_exec_step(st, op, s)) return -1;
    /* A job done in its submission never needs its ids again: every chunk has its results
     * (which name their entities), and nothing reruns, retries or cancels one of its chunks.
     * Only jobs with chunks left to run keep them (recovery, dead letters, cancellation). */
    const int finished = j->status == JOB_COMPLETED && (long)nj->n_settled == j->n_chunks;
    if (!finished) {
        s = sq_stmt(st->w, Q_JOB_IDS_INSERT);
        if (s) {
            sq_bind_text(s, 1, j->id);
            sqlite3_bind_blob64(s, 2, nj->ids ? (const void *)nj->ids : (const void *)"", nj->ids ? nj->ids_len : 0,
                                SQLITE_STATIC);
        }
        if (sq_exec_step(st, op, s)) return -1;
    }
    for (size_t i = 0; i < nj->n_settled; i++) { /* results served from the cache */
        const store_chunk_blob_t *cb = &nj->settled[i];
        s = sq_stmt(st->w, Q_CHUNK_INSERT);
        if (s) {
            sq_bind_text(s, 1, j->id);
            sqlite3_bind_int64(s, 2, cb->chunk);
            sqlite3_bind_blob64(s, 3, cb->blob ? cb->blob : (const void *)"", cb->len, SQLITE_STATIC);
            sqlite3_bind_int64(s, 4, j->created_at);
        }
        if (sq_exec_step(st, op, s)) return -1;
    }
    return 0;
}

/* Job status and chunk count. 0 ok, 1 not found, -1 error. */
static int job_state(store_t *st, op_t *op, const char *id, int *status, long *n_chunks) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_GET);
    if (!s) return sq_exec_step(st, op, s);
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *status = sqlite3_column_int(s, 2);
        *n_chunks = (long)sqlite3_column_int64(s, 6);
    }
    sq_done_stmt(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
    return -1;
}

/* Whether the chunk may still be settled: 0 yes, 1 skip (settled, job finished or
 * cancelled), -1 error. */
static int chunk_open(store_t *st, op_t *op) {
    int status = 0;
    long n_chunks = 0;
    int rc = job_state(st, op, op->job_id, &status, &n_chunks);
    if (rc == 1) { sq_seterr(op->err, op->errlen, "job %s not found", op->job_id); return -1; }
    if (rc) return -1;
    if (job_status_finished(status)) return 1;
    if ((long)op->chunk >= n_chunks) { sq_seterr(op->err, op->errlen, "chunk %u out of range", op->chunk); return -1; }
    if ((rc = sq_exists1(st, op, Q_CHUNK_EXISTS, op->job_id, NULL, op->chunk))) return rc;
    return sq_exists1(st, op, Q_DL_ACTIVE, op->job_id, NULL, op->chunk);
}

static int settle(store_t *st, op_t *op, long successful, long failed, double exec_ms, int done, int dead) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_SETTLE);
    if (s) {
        sq_bind_text(s, 1, op->job_id);
        sqlite3_bind_int64(s, 2, successful);
        sqlite3_bind_int64(s, 3, failed);
        sqlite3_bind_double(s, 4, exec_ms);
        sqlite3_bind_int(s, 5, done);
        sqlite3_bind_int(s, 6, dead);
        sqlite3_bind_int64(s, 7, now_ms());
    }
    return sq_exec_step(st, op, s);
}

int sq_op_chunk_commit(store_t *st, op_t *op) {
    int rc = chunk_open(st, op);
    if (rc) return rc;
    sqlite3_stmt *s = sq_stmt(st->w, Q_CHUNK_INSERT);
    if (s) {
        sq_bind_text(s, 1, op->job_id);
        sqlite3_bind_int64(s, 2, op->chunk);
        sqlite3_bind_blob64(s, 3, op->blob ? op->blob : (void *)"", op->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, now_ms());
    }
    if (sq_exec_step(st, op, s)) return -1;
    return settle(st, op, op->successful, op->failed, op->exec_ms, 1, 0);
}

int sq_op_deadletter(store_t *st, op_t *op) {
    int rc = chunk_open(st, op);
    if (rc) return rc;
    sqlite3_stmt *s = sq_stmt(st->w, Q_DL_INSERT);
    if (s) {
        sq_bind_text(s, 1, op->job_id);
        sqlite3_bind_int64(s, 2, op->chunk);
        sq_bind_text(s, 3, op->reason ? op->reason : "");
        sqlite3_bind_int(s, 4, op->attempts);
        sqlite3_bind_int64(s, 5, now_ms());
    }
    if (sq_exec_step(st, op, s)) return -1;
    long n = 0;
    s = sq_stmt(st->w, Q_CHUNK_N);
    if (s) {
        sq_bind_text(s, 1, op->job_id);
        sqlite3_bind_int64(s, 2, op->chunk);
        if (sqlite3_step(s) == SQLITE_ROW) n = (long)sqlite3_column_int64(s, 0);
        sq_done_stmt(s);
    }
    return settle(st, op, 0, n, 0, 0, 1);
}

void sq_read_job(sqlite3_stmt *s, store_job_t *j) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(j->model, sizeof j->model, "%s", (const char *)sqlite3_column_text(s, 1));
    j->status = (job_status_t)sqlite3_column_int(s, 2);
    j->priority = sqlite3_column_int(s, 3);
    j->chunk_size = sqlite3_column_int(s, 4);
    j->n_entities = (long)sqlite3_column_int64(s, 5);
    j->n_chunks = (long)sqlite3_column_int64(s, 6);
    j->chunks_done = (long)sqlite3_column_int64(s, 7);
    j->chunks_dead = (long)sqlite3_column_int64(s, 8);
    j->successful = (long)sqlite3_column_int64(s, 9);
    j->failed = (long)sqlite3_column_int64(s, 10);
    j->created_at = sqlite3_column_int64(s, 11);
    j->started_at = sqlite3_column_int64(s, 12);
    j->finished_at = sqlite3_column_int64(s, 13);
    j->updated_at = sqlite3_column_int64(s, 14);
    j->exec_ms = sqlite3_column_double(s, 15);
}

/* Reads a job on the writer's connection (inside the open transaction). */
static int w_job_get(store_t *st, op_t *op, const char *id, store_job_t *out) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_GET);
    if (!s) return sq_exec_step(st, op, s);
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) sq_read_job(s, out);
    sq_done_stmt(s);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
    return -1;
}

int sq_op_cancel(store_t *st, op_t *op) {
    store_job_t j;
    int rc = w_job_get(st, op, op->id, &j);
    if (rc) return rc;
    if (job_status_finished(j.status)) {
        if (op->job_out) *op->job_out = j;
        return 2;
    }
    sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_CANCEL);
    if (s) {
        sq_bind_text(s, 1, op->id);
        sqlite3_bind_int64(s, 2, now_ms());
    }
    if (sq_exec_step(st, op, s)) return -1;
    if (op->job_out && w_job_get(st, op, op->id, op->job_out)) return -1;
    return 0;
}

int sq_op_dl_retry(store_t *st, op_t *op) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_DL_GET);
    if (!s) return sq_exec_step(st, op, s);
    sqlite3_bind_int64(s, 1, op->dl_id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sq_done_stmt(s);
        if (rc == SQLITE_DONE) return 1;
        sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
        return -1;
    }
    snprintf(op->job_id, sizeof op->job_id, "%s", (const char *)sqlite3_column_text(s, 0));
    op->chunk = (uint32_t)sqlite3_column_int64(s, 1);
    int retried = sqlite3_column_int(s, 2), status = sqlite3_column_int(s, 3);
    sq_done_stmt(s);
    if (retried || status == JOB_CANCELLED) return 1;
    s = sq_stmt(st->w, Q_DL_MARK_RETRIED);
    if (s) sqlite3_bind_int64(s, 1, op->dl_id);
    if (sq_exec_step(st, op, s)) return -1;
    s = sq_stmt(st->w, Q_JOB_REOPEN);
    if (s) {
        sq_bind_text(s, 1, op->job_id);
        sqlite3_bind_int64(s, 2, now_ms());
        sqlite3_bind_int64(s, 3, op->chunk);
    }
    if (sq_exec_step(st, op, s)) return -1;
    if (op->job_id_out) memcpy(op->job_id_out, op->job_id, 32);
    if (op->chunk_out) *op->chunk_out = op->chunk;
    return 0;
}


/* Deletes up to op->n finished jobs that finished before op->at_ms, with everything kept for
 * them: results, ids, dead letters. Their ids are read first (a statement is not stepped
 * while the rows under it are deleted). */
int sq_op_jobs_expire(store_t *st, op_t *op) {
    op->len = 0;
    if (op->n == 0) return 0;
    char (*ids)[32] = malloc(op->n * sizeof *ids);
    if (!ids) { sq_seterr(op->err, op->errlen, "store: out of memory"); return -1; }
    size_t n = 0;
    static const int FINAL[3] = {JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED};
    for (int f = 0; f < 3 && n < op->n; f++) {
        sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_EXPIRED);
        if (!s) { free(ids); sq_seterr(op->err, op->errlen, "store: statement unavailable"); return -1; }
        sqlite3_bind_int(s, 1, FINAL[f]);
        sqlite3_bind_int64(s, 2, op->at_ms);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)(op->n - n));
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < op->n) {
            const char *id = (const char *)sqlite3_column_text(s, 0);
            snprintf(ids[n++], sizeof ids[0], "%s", id ? id : "");
        }
        sq_done_stmt(s);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            free(ids);
            sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
            return -1;
        }
    }
    static const int DEL[4] = {Q_CHUNK_DEL_JOB, Q_JOB_IDS_DEL, Q_DL_DEL_JOB, Q_JOB_DEL};
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 4; d++) {
            sqlite3_stmt *s = sq_stmt(st->w, DEL[d]);
            if (s) sq_bind_text(s, 1, ids[i]);
            if (sq_exec_step(st, op, s)) { free(ids); return -1; }
        }
    free(ids);
    op->len = n;
    return 0;
}
