/* The sessions' own tables and every statement on them (run through store_sql.h: writes in
 * the writer's group transaction under a savepoint, reads on pooled connections).
 *
 *   sessions           one row per submitted session: seq (queue order), its features (a
 *                      BLOB of SESSIONS_N_FEATURES native doubles), the heuristic answer,
 *                      state 0 queued / 1 processed and then the forest's answer
 *   session_batches    one row per committed batch (its id is the session's batch_id)
 *   session_reference  the reservoir: slot 0..reference_max-1 -> a feature row
 *   session_meta       counters: reference_seen, batches, failures, processed_total,
 *                      last_run_ms, last_batch_size */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "sessions/sessions_int.h"

#define SQLFAIL(db, err, errlen) \
    do { snprintf((err), (errlen), "sessions: %s", sqlite3_errmsg(db)); goto fail; } while (0)

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS sessions("
    " seq INTEGER PRIMARY KEY,"
    " session_id TEXT NOT NULL UNIQUE,"
    " received_ms INTEGER NOT NULL,"
    " body_hash INTEGER NOT NULL,"
    " features BLOB NOT NULL,"
    " client TEXT NOT NULL,"
    " h_score REAL NOT NULL,"
    " h_verdict TEXT NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0,"
    " f_score REAL, f_verdict TEXT, batch_id INTEGER, processed_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS sessions_queue ON sessions(state, seq);"
    "CREATE INDEX IF NOT EXISTS sessions_done ON sessions(processed_ms) WHERE state = 1;"
    "CREATE TABLE IF NOT EXISTS session_batches("
    " batch_id INTEGER PRIMARY KEY, started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL,"
    " size INTEGER NOT NULL, reference_rows INTEGER NOT NULL, seed INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS session_reference(slot INTEGER PRIMARY KEY, features BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS session_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

int sessions_sql_schema(sqlite3 *db, void *arg, char *err, size_t errlen) {
    (void)arg;
    char *msg = NULL;
    if (sqlite3_exec(db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sessions: schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

const char *sessions_verdict_intern(const char *v) {
    if (!v) return "human";
    if (strcmp(v, "bot") == 0) return "bot";
    if (strcmp(v, "suspicious") == 0) return "suspicious";
    return "human";
}

static int meta_get(sqlite3 *db, const char *key, int64_t *out) {
    sqlite3_stmt *q = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM session_meta WHERE key = ?", -1, &q, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* add: value += v (a missing key counts as 0); else value = v. */
static int meta_put(sqlite3 *db, const char *key, int64_t v, int add) {
    sqlite3_stmt *q = NULL;
    const char *sql = add ? "INSERT INTO session_meta(key, value) VALUES(?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value"
                          : "INSERT INTO session_meta(key, value) VALUES(?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, v);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int count_queued(sqlite3 *db, long *out) {
    sqlite3_stmt *q = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sessions WHERE state = 0", -1, &q, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *out = (long)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : -1;
}

int sessions_sql_count_queued(sqlite3 *db, void *arg, char *err, size_t errlen) {
    if (count_queued(db, arg)) {
        snprintf(err, errlen, "sessions: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Reads the row of session_id into res; 1 found, 0 not, -1 error. Also gives its hash. */
static int get_row(sqlite3 *db, const char *session_id, sessions_result_t *res, int64_t *hash) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT received_ms, body_hash, h_score, h_verdict, state, f_score, f_verdict,"
                           " batch_id, processed_ms FROM sessions WHERE session_id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, session_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        memset(res, 0, sizeof *res);
        snprintf(res->session_id, sizeof res->session_id, "%s", session_id);
        res->received_ms = sqlite3_column_int64(q, 0);
        if (hash) *hash = sqlite3_column_int64(q, 1);
        res->h_score = sqlite3_column_double(q, 2);
        res->h_verdict = sessions_verdict_intern((const char *)sqlite3_column_text(q, 3));
        res->processed = sqlite3_column_int(q, 4) == 1;
        if (res->processed) {
            res->score = sqlite3_column_double(q, 5);
            res->verdict = sessions_verdict_intern((const char *)sqlite3_column_text(q, 6));
            res->batch_id = (long)sqlite3_column_int64(q, 7);
            res->processed_ms = sqlite3_column_int64(q, 8);
        } else {
            res->score = res->h_score;
            res->verdict = res->h_verdict;
        }
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int sessions_sql_get(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_get_arg_t *a = arg;
    int rc = get_row(db, a->session_id, a->res, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "sessions: %s", sqlite3_errmsg(db));
        return -1;
    }
    a->found = rc;
    return 0;
}

int sessions_sql_insert(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_insert_arg_t *a = arg;
    sqlite3_stmt *q = NULL;
    int64_t hash = 0;
    int rc = get_row(db, a->t->session_id, a->res, &hash);
    if (rc < 0) SQLFAIL(db, err, errlen);
    if (rc == 1) { /* the same id again: the same body is a repeat, another body a conflict */
        a->rc = hash == (int64_t)a->t->body_hash ? SESSIONS_DUPLICATE : SESSIONS_CONFLICT;
        return 0;
    }
    if (atomic_load(&a->s->queued) >= a->s->cfg.sessions_max_queued) {
        a->rc = SESSIONS_FULL;
        return 0;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO sessions(session_id, received_ms, body_hash, features, client, h_score,"
                           " h_verdict) VALUES(?, ?, ?, ?, ?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    sqlite3_bind_text(q, 1, a->t->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, a->now_ms);
    sqlite3_bind_int64(q, 3, (int64_t)a->t->body_hash);
    sqlite3_bind_blob(q, 4, a->f, (int)(NF * sizeof(double)), SQLITE_STATIC);
    sqlite3_bind_text(q, 5, a->t->client_json ? a->t->client_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 6, a->h_score);
    sqlite3_bind_text(q, 7, a->h_verdict, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) SQLFAIL(db, err, errlen);
    sqlite3_finalize(q);
    atomic_fetch_add(&a->s->queued, 1);
    sessions_result_t *r = a->res;
    memset(r, 0, sizeof *r);
    snprintf(r->session_id, sizeof r->session_id, "%s", a->t->session_id);
    r->score = r->h_score = a->h_score;
    r->verdict = r->h_verdict = a->h_verdict;
    r->received_ms = a->now_ms;
    a->rc = SESSIONS_NEW;
    return 0;
fail:
    sqlite3_finalize(q);
    return -1;
}

void sessions_batch_read_free(sessions_batch_read_t *r) {
    free(r->ids);
    free(r->X);
    r->ids = NULL;
    r->X = NULL;
}

/* Copies a features BLOB into row; -1 when its size is wrong (another build's rows). */
static int blob_row(sqlite3_stmt *q, int col, double *row) {
    if (sqlite3_column_bytes(q, col) != (int)(NF * sizeof(double))) return -1;
    memcpy(row, sqlite3_column_blob(q, col), NF * sizeof(double));
    return 0;
}

int sessions_sql_batch_read(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_batch_read_t *r = arg;
    sqlite3_stmt *q = NULL;
    r->n = r->n_ref = 0;
    if (meta_get(db, "reference_seen", &r->reference_seen) || meta_get(db, "batches", &r->batches))
        SQLFAIL(db, err, errlen);
    long cap = r->max + r->ref_max;
    r->ids = calloc((size_t)r->max, sizeof *r->ids);
    r->X = malloc((size_t)(cap > 0 ? cap : 1) * NF * sizeof(double));
    if (!r->ids || !r->X) {
        snprintf(err, errlen, "sessions: out of memory for a batch of %ld", r->max);
        goto fail;
    }
    if (sqlite3_prepare_v2(db, "SELECT session_id, features FROM sessions WHERE state = 0 ORDER BY seq LIMIT ?", -1,
                           &q, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    sqlite3_bind_int64(q, 1, r->max);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && r->n < r->max) {
        snprintf(r->ids[r->n], sizeof r->ids[r->n], "%s", (const char *)sqlite3_column_text(q, 0));
        if (blob_row(q, 1, r->X + (size_t)r->n * NF)) {
            snprintf(err, errlen, "sessions: session %s has a features row of the wrong size", r->ids[r->n]);
            goto fail;
        }
        r->n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) SQLFAIL(db, err, errlen);
    sqlite3_finalize(q);
    q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT features FROM session_reference ORDER BY slot LIMIT ?", -1, &q, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    sqlite3_bind_int64(q, 1, r->ref_max);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && r->n_ref < r->ref_max) {
        if (blob_row(q, 0, r->X + (size_t)(r->n + r->n_ref) * NF) == 0) r->n_ref++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) SQLFAIL(db, err, errlen);
    sqlite3_finalize(q);
    return 0;
fail:
    sqlite3_finalize(q);
    return -1;
}

/* One batch, all or nothing: the batch row, each queued session's forest answer (a session
 * no longer queued, cleared meanwhile, is skipped), the reservoir updates for the sessions
 * scored, and the counters. */
int sessions_sql_batch_commit(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_commit_arg_t *a = arg;
    const sessions_batch_read_t *rd = a->rd;
    sqlite3_stmt *q = NULL, *ref = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO session_batches(started_ms, finished_ms, size, reference_rows, seed)"
                               " VALUES(?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    sqlite3_bind_int64(q, 1, a->started_ms);
    sqlite3_bind_int64(q, 2, a->now_ms);
    sqlite3_bind_int64(q, 3, rd->n);
    sqlite3_bind_int64(q, 4, rd->n_ref);
    sqlite3_bind_int64(q, 5, (int64_t)a->forest_seed);
    if (sqlite3_step(q) != SQLITE_DONE) SQLFAIL(db, err, errlen);
    sqlite3_finalize(q);
    q = NULL;
    a->batch_id = (long)sqlite3_last_insert_rowid(db);
    if (sqlite3_prepare_v2(db, "UPDATE sessions SET state = 1, f_score = ?, f_verdict = ?, batch_id = ?,"
                               " processed_ms = ? WHERE session_id = ? AND state = 0", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO session_reference(slot, features) VALUES(?, ?)"
                               " ON CONFLICT(slot) DO UPDATE SET features = excluded.features", -1, &ref, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    /* Reservoir sampling (Vitter's algorithm R): the k-th row ever seen (k from 1) takes
     * slot k-1 while there is room; after that it replaces slot j, j uniform in [0, k), when
     * j < reference_max. Every row seen so far is then kept with the same probability. */
    rng_t rng;
    rng_seed(&rng, a->reservoir_seed);
    int64_t seen = rd->reference_seen;
    long ref_max = a->s->cfg.sessions_reference_max;
    a->updated = 0;
    for (long i = 0; i < rd->n; i++) {
        sqlite3_reset(q);
        sqlite3_bind_double(q, 1, a->scores[i]);
        sqlite3_bind_text(q, 2, a->verdicts[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, a->batch_id);
        sqlite3_bind_int64(q, 4, a->now_ms);
        sqlite3_bind_text(q, 5, rd->ids[i], -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE) SQLFAIL(db, err, errlen);
        if (sqlite3_changes(db) != 1) continue;
        a->updated++;
        seen++;
        int64_t slot = seen <= ref_max ? seen - 1 : (int64_t)rng_below(&rng, (uint64_t)seen);
        if (slot >= ref_max) continue;
        sqlite3_reset(ref);
        sqlite3_bind_int64(ref, 1, slot);
        sqlite3_bind_blob(ref, 2, rd->X + (size_t)i * NF, (int)(NF * sizeof(double)), SQLITE_STATIC);
        if (sqlite3_step(ref) != SQLITE_DONE) SQLFAIL(db, err, errlen);
    }
    long queued = 0;
    if (meta_put(db, "reference_seen", seen, 0) || meta_put(db, "batches", 1, 1) ||
        meta_put(db, "processed_total", a->updated, 1) || meta_put(db, "last_run_ms", a->now_ms, 0) ||
        meta_put(db, "last_batch_size", a->updated, 0) || count_queued(db, &queued))
        SQLFAIL(db, err, errlen);
    a->reference_size = (long)(seen < ref_max ? seen : ref_max);
    atomic_store(&a->s->queued, queued);
    sqlite3_finalize(q);
    sqlite3_finalize(ref);
    return 0;
fail:
    sqlite3_finalize(q);
    sqlite3_finalize(ref);
    return -1;
}

int sessions_sql_count_failure(sqlite3 *db, void *arg, char *err, size_t errlen) {
    (void)arg;
    if (meta_put(db, "failures", 1, 1)) {
        snprintf(err, errlen, "sessions: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "sessions: %s", msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
}

int sessions_sql_clear(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_delete_arg_t *a = arg;
    if (exec(db, a->all ? "DELETE FROM sessions" : "DELETE FROM sessions WHERE state = 0", err, errlen)) return -1;
    a->deleted = (long)sqlite3_changes(db);
    if (a->all && exec(db, "DELETE FROM session_reference; DELETE FROM session_batches; DELETE FROM session_meta;",
                       err, errlen))
        return -1;
    long queued = 0;
    if (count_queued(db, &queued)) {
        snprintf(err, errlen, "sessions: %s", sqlite3_errmsg(db));
        return -1;
    }
    atomic_store(&a->s->queued, queued);
    return 0;
}

int sessions_sql_retention(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_delete_arg_t *a = arg;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE seq IN (SELECT seq FROM sessions WHERE state = 1"
                               " AND processed_ms < ? LIMIT ?)", -1, &q, NULL) != SQLITE_OK)
        SQLFAIL(db, err, errlen);
    sqlite3_bind_int64(q, 1, a->older_than_ms);
    sqlite3_bind_int64(q, 2, a->limit);
    if (sqlite3_step(q) != SQLITE_DONE) SQLFAIL(db, err, errlen);
    a->deleted = (long)sqlite3_changes(db);
    sqlite3_finalize(q);
    return 0;
fail:
    sqlite3_finalize(q);
    return -1;
}

int sessions_sql_stats(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sessions_stats_arg_t *a = arg;
    sessions_stats_t *o = a->out;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*), COALESCE(SUM(state = 0), 0), COALESCE(SUM(state = 1), 0) FROM sessions",
                           -1, &q, NULL) != SQLITE_OK || sqlite3_step(q) != SQLITE_ROW)
        SQLFAIL(db, err, errlen);
    o->total = (long)sqlite3_column_int64(q, 0);
    o->queue_depth = (long)sqlite3_column_int64(q, 1);
    o->processed = (long)sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
    q = NULL;
    int64_t v[6];
    const char *keys[6] = {"processed_total", "batches", "failures", "reference_seen", "last_batch_size", "last_run_ms"};
    for (int i = 0; i < 6; i++)
        if (meta_get(db, keys[i], &v[i])) SQLFAIL(db, err, errlen);
    o->processed_total = (long)v[0];
    o->batches = (long)v[1];
    o->failures = (long)v[2];
    o->reference_seen = (long)v[3];
    o->last_batch_size = (long)v[4];
    a->last_run_ms = v[5];
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM session_reference", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        SQLFAIL(db, err, errlen);
    o->reference_size = (long)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return 0;
fail:
    sqlite3_finalize(q);
    return -1;
}
