#include "market/market_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store_sql.h"

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS market_features(symbol TEXT NOT NULL, ts INTEGER NOT NULL,"
    " price REAL NOT NULL, tech BLOB NOT NULL, earn BLOB, PRIMARY KEY(symbol, ts)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS market_calendar(symbol TEXT NOT NULL, date INTEGER NOT NULL,"
    " time TEXT NOT NULL, PRIMARY KEY(symbol, date)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS market_runs(run_id TEXT PRIMARY KEY, correlation_id TEXT NOT NULL,"
    " date INTEGER NOT NULL, trigger TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " finished_at INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, normal_ids TEXT NOT NULL,"
    " earnings_ids TEXT NOT NULL, jobs TEXT NOT NULL DEFAULT '[]', route_ms REAL NOT NULL DEFAULT 0,"
    " stages TEXT, succeeded INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS market_predictions(symbol TEXT PRIMARY KEY, run_id TEXT NOT NULL,"
    " ts INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS market_history(run_id TEXT NOT NULL, symbol TEXT NOT NULL,"
    " ts INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY(run_id, symbol));"
    "CREATE INDEX IF NOT EXISTS market_history_symbol ON market_history(symbol, ts);"
    "CREATE TABLE IF NOT EXISTS market_failures(run_id TEXT NOT NULL, symbol TEXT NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY(run_id, symbol)) WITHOUT ROWID;";

static int db_err(sqlite3 *db, char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db));
    return -1;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **s, char *err, size_t errlen) {
    if (sqlite3_prepare_v2(db, sql, -1, s, NULL) != SQLITE_OK) return db_err(db, err, errlen, "prepare");
    return 0;
}

static void text_col(sqlite3_stmt *s, int i, char *out, size_t outlen) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

static char *dup_col(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return strdup(t ? (const char *)t : "");
}

static int schema_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    (void)arg;
    char *msg = NULL;
    if (sqlite3_exec(db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "market schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int mstore_init(store_t *st, char *err, size_t errlen) { return store_sql_write(st, schema_fn, NULL, err, errlen); }

/* ---- features ------------------------------------------------------------------------------ */

typedef struct {
    const feat_row_t *rows;
    size_t n;
    int k;
} feat_put_t;

static int features_put_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    feat_put_t *a = arg;
    sqlite3_stmt *ins = NULL, *prune = NULL;
    int rc = -1;
    if (prep(db, "INSERT OR REPLACE INTO market_features(symbol, ts, price, tech, earn) VALUES(?,?,?,?,?)", &ins,
             err, errlen) ||
        prep(db,
             "DELETE FROM market_features WHERE symbol = ?1 AND ts < COALESCE((SELECT ts FROM market_features"
             " WHERE symbol = ?1 ORDER BY ts DESC LIMIT 1 OFFSET ?2), -1)",
             &prune, err, errlen))
        goto done;
    for (size_t i = 0; i < a->n; i++) {
        const feat_row_t *r = &a->rows[i];
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, r->symbol, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, r->ts_ms);
        sqlite3_bind_double(ins, 3, r->price);
        sqlite3_bind_blob(ins, 4, r->tech, sizeof r->tech, SQLITE_STATIC);
        if (r->has_earn) sqlite3_bind_blob(ins, 5, r->earn, sizeof r->earn, SQLITE_STATIC);
        else sqlite3_bind_null(ins, 5);
        if (sqlite3_step(ins) != SQLITE_DONE) { db_err(db, err, errlen, "insert feature"); goto done; }
    }
    for (size_t i = 0; i < a->n; i++) {
        /* once per symbol: rows of a symbol usually come together */
        if (i > 0 && !strcmp(a->rows[i - 1].symbol, a->rows[i].symbol)) continue;
        sqlite3_reset(prune);
        sqlite3_bind_text(prune, 1, a->rows[i].symbol, -1, SQLITE_STATIC);
        sqlite3_bind_int(prune, 2, a->k - 1);
        if (sqlite3_step(prune) != SQLITE_DONE) { db_err(db, err, errlen, "prune features"); goto done; }
    }
    rc = 0;
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(prune);
    return rc;
}

int mstore_features_put(store_t *st, const feat_row_t *rows, size_t n, int k, char *err, size_t errlen) {
    feat_put_t a = {rows, n, k};
    return store_sql_write(st, features_put_fn, &a, err, errlen);
}

static int features_load_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    features_t *f = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT symbol, ts, price, tech, earn FROM market_features ORDER BY symbol, ts", &s, err, errlen))
        return -1;
    enum { BATCH = 1024 };
    feat_row_t *rows = malloc(BATCH * sizeof *rows);
    size_t n = 0;
    int rc = rows ? 0 : -1, step;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        feat_row_t *r = &rows[n];
        memset(r, 0, sizeof *r);
        text_col(s, 0, r->symbol, sizeof r->symbol);
        r->ts_ms = sqlite3_column_int64(s, 1);
        r->price = sqlite3_column_double(s, 2);
        if (sqlite3_column_bytes(s, 3) == (int)sizeof r->tech) memcpy(r->tech, sqlite3_column_blob(s, 3), sizeof r->tech);
        if (sqlite3_column_bytes(s, 4) == (int)sizeof r->earn) {
            memcpy(r->earn, sqlite3_column_blob(s, 4), sizeof r->earn);
            r->has_earn = 1;
        }
        if (++n == BATCH) {
            if (features_apply(f, rows, n)) rc = -1;
            n = 0;
        }
    }
    if (rc == 0 && n && features_apply(f, rows, n)) rc = -1;
    if (rc) snprintf(err, errlen, "out of memory loading features");
    free(rows);
    sqlite3_finalize(s);
    return rc;
}

int mstore_features_load(store_t *st, features_t *f, char *err, size_t errlen) {
    return store_sql_read(st, features_load_fn, f, err, errlen);
}

/* ---- calendar ------------------------------------------------------------------------------ */

typedef struct {
    const cal_row_t *rows;
    size_t n;
} cal_put_t;

static int calendar_put_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    cal_put_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "INSERT OR REPLACE INTO market_calendar(symbol, date, time) VALUES(?,?,?)", &s, err, errlen)) return -1;
    int rc = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, a->rows[i].symbol, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, a->rows[i].date);
        sqlite3_bind_text(s, 3, earn_time_name(a->rows[i].time), -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) rc = db_err(db, err, errlen, "insert calendar row");
    }
    sqlite3_finalize(s);
    return rc;
}

int mstore_calendar_put(store_t *st, const cal_row_t *rows, size_t n, char *err, size_t errlen) {
    cal_put_t a = {rows, n};
    return store_sql_write(st, calendar_put_fn, &a, err, errlen);
}

typedef struct {
    cal_row_t *rows;
    size_t n;
} cal_load_t;

static int calendar_load_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    cal_load_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT symbol, date, time FROM market_calendar", &s, err, errlen)) return -1;
    size_t cap = 0;
    int rc = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (a->n == cap) {
            cap = cap ? cap * 2 : 256;
            cal_row_t *p = realloc(a->rows, cap * sizeof *p);
            if (!p) { rc = -1; snprintf(err, errlen, "out of memory"); break; }
            a->rows = p;
        }
        cal_row_t *r = &a->rows[a->n++];
        memset(r, 0, sizeof *r);
        text_col(s, 0, r->symbol, sizeof r->symbol);
        r->date = sqlite3_column_int(s, 1);
        char t[16];
        text_col(s, 2, t, sizeof t);
        if (earn_time_parse(t, &r->time)) r->time = EARN_UNKNOWN;
    }
    sqlite3_finalize(s);
    return rc;
}

int mstore_calendar_load(store_t *st, cal_row_t **rows, size_t *n, char *err, size_t errlen) {
    cal_load_t a = {0};
    int rc = store_sql_read(st, calendar_load_fn, &a, err, errlen);
    if (rc) {
        free(a.rows);
        a.rows = NULL, a.n = 0;
    }
    *rows = a.rows;
    *n = a.n;
    return rc;
}

/* ---- runs ---------------------------------------------------------------------------------- */

void mstore_run_clear(mstore_run_t *r) {
    free(r->normal_ids);
    free(r->earnings_ids);
    free(r->jobs);
    free(r->stages);
    memset(r, 0, sizeof *r);
}

static int run_insert_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    const mstore_run_t *r = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db,
             "INSERT INTO market_runs(run_id, correlation_id, date, trigger, created_at, status, normal_ids,"
             " earnings_ids, jobs, route_ms) VALUES(?,?,?,?,?,?,?,?,?,?)",
             &s, err, errlen))
        return -1;
    sqlite3_bind_text(s, 1, r->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->correlation_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, r->date);
    sqlite3_bind_text(s, 4, r->trigger, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, r->created_at);
    sqlite3_bind_text(s, 6, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, r->normal_ids ? r->normal_ids : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, r->earnings_ids ? r->earnings_ids : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, r->jobs ? r->jobs : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 10, r->route_ms);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_err(db, err, errlen, "insert run");
    sqlite3_finalize(s);
    return rc;
}

int mstore_run_insert(store_t *st, const mstore_run_t *r, char *err, size_t errlen) {
    return store_sql_write(st, run_insert_fn, (void *)r, err, errlen);
}

typedef struct {
    const char *run_id, *jobs;
} run_jobs_t;

static int run_jobs_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    run_jobs_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "UPDATE market_runs SET jobs = ?2, status = 'SUBMITTED' WHERE run_id = ?1", &s, err, errlen)) return -1;
    sqlite3_bind_text(s, 1, a->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->jobs, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_err(db, err, errlen, "update run");
    sqlite3_finalize(s);
    return rc;
}

int mstore_run_set_jobs(store_t *st, const char *run_id, const char *jobs_json, char *err, size_t errlen) {
    run_jobs_t a = {run_id, jobs_json};
    return store_sql_write(st, run_jobs_fn, &a, err, errlen);
}

typedef struct {
    const mstore_run_t *r;
    const char *dead_reason;
} run_finish_t;

static int run_finish_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    run_finish_t *a = arg;
    const mstore_run_t *r = a->r;
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (prep(db,
             "INSERT OR IGNORE INTO market_failures(run_id, symbol, reason) SELECT ?1, j.value, ?2"
             " FROM market_runs AS r, json_each(r.normal_ids) AS j WHERE r.run_id = ?1"
             " AND j.value NOT IN (SELECT symbol FROM market_history WHERE run_id = ?1)"
             " UNION ALL SELECT ?1, j.value, ?2"
             " FROM market_runs AS r, json_each(r.earnings_ids) AS j WHERE r.run_id = ?1"
             " AND j.value NOT IN (SELECT symbol FROM market_history WHERE run_id = ?1)",
             &s, err, errlen))
        return -1;
    sqlite3_bind_text(s, 1, r->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->dead_reason ? a->dead_reason : "not computed", -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) { db_err(db, err, errlen, "record dead symbols"); goto done; }
    sqlite3_finalize(s);
    s = NULL;
    if (prep(db,
             "UPDATE market_runs SET finished_at = ?2, status = ?3, stages = ?4,"
             " succeeded = (SELECT count(*) FROM market_history WHERE run_id = ?1),"
             " failed = (SELECT count(*) FROM market_failures WHERE run_id = ?1) WHERE run_id = ?1",
             &s, err, errlen))
        goto done;
    sqlite3_bind_text(s, 1, r->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, r->finished_at);
    sqlite3_bind_text(s, 3, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->stages ? r->stages : "{}", -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) { db_err(db, err, errlen, "finish run"); goto done; }
    rc = 0;
done:
    sqlite3_finalize(s);
    return rc;
}

int mstore_run_finish(store_t *st, const mstore_run_t *r, const char *dead_reason, char *err, size_t errlen) {
    run_finish_t a = {r, dead_reason};
    return store_sql_write(st, run_finish_fn, &a, err, errlen);
}

static int run_delete_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    if (prep(db, "DELETE FROM market_runs WHERE run_id = ?", &s, err, errlen)) return -1;
    sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_err(db, err, errlen, "delete run");
    sqlite3_finalize(s);
    return rc;
}

int mstore_run_delete(store_t *st, const char *run_id, char *err, size_t errlen) {
    return store_sql_write(st, run_delete_fn, (void *)run_id, err, errlen);
}

typedef struct {
    const char *run_id;
    mstore_run_t *out;
    int found;
} run_get_t;

static int run_get_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    run_get_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db,
             "SELECT run_id, correlation_id, date, trigger, created_at, finished_at, status, normal_ids,"
             " earnings_ids, jobs, route_ms, stages, succeeded, failed FROM market_runs WHERE run_id = ?",
             &s, err, errlen))
        return -1;
    sqlite3_bind_text(s, 1, a->run_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) {
        mstore_run_t *r = a->out;
        text_col(s, 0, r->run_id, sizeof r->run_id);
        text_col(s, 1, r->correlation_id, sizeof r->correlation_id);
        r->date = sqlite3_column_int(s, 2);
        text_col(s, 3, r->trigger, sizeof r->trigger);
        r->created_at = sqlite3_column_int64(s, 4);
        r->finished_at = sqlite3_column_int64(s, 5);
        text_col(s, 6, r->status, sizeof r->status);
        r->normal_ids = dup_col(s, 7);
        r->earnings_ids = dup_col(s, 8);
        r->jobs = dup_col(s, 9);
        r->route_ms = sqlite3_column_double(s, 10);
        r->stages = sqlite3_column_type(s, 11) == SQLITE_NULL ? NULL : dup_col(s, 11);
        r->succeeded = sqlite3_column_int64(s, 12);
        r->failed = sqlite3_column_int64(s, 13);
        a->found = 1;
    }
    sqlite3_finalize(s);
    return 0;
}

int mstore_run_get(store_t *st, const char *run_id, mstore_run_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    run_get_t a = {run_id, out, 0};
    if (store_sql_read(st, run_get_fn, &a, err, errlen)) {
        mstore_run_clear(out);
        return -1;
    }
    if (!a.found) return 1;
    if (!out->normal_ids || !out->earnings_ids || !out->jobs) {
        mstore_run_clear(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

typedef struct {
    char (*ids)[40];
    size_t n, cap;
} ids_t;

static int unfinished_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    ids_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT run_id FROM market_runs WHERE finished_at = 0 ORDER BY created_at, run_id", &s, err, errlen))
        return -1;
    int rc = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 16;
            void *p = realloc(a->ids, a->cap * sizeof *a->ids);
            if (!p) { rc = -1; snprintf(err, errlen, "out of memory"); break; }
            a->ids = p;
        }
        text_col(s, 0, a->ids[a->n++], 40);
    }
    sqlite3_finalize(s);
    return rc;
}

int mstore_runs_unfinished(store_t *st, char (**ids)[40], size_t *n, char *err, size_t errlen) {
    ids_t a = {0};
    int rc = store_sql_read(st, unfinished_fn, &a, err, errlen);
    if (rc) free(a.ids), a.ids = NULL, a.n = 0;
    *ids = a.ids;
    *n = a.n;
    return rc;
}

/* ---- predictions ---------------------------------------------------------------------------- */

typedef struct {
    const char *run_id;
    const mstore_pred_t *preds;
    size_t n_preds;
    const mstore_fail_t *fails;
    size_t n_fails;
} chunk_write_t;

static int chunk_write_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    chunk_write_t *a = arg;
    sqlite3_stmt *latest = NULL, *hist = NULL, *fail = NULL;
    int rc = -1;
    if (prep(db,
             "INSERT INTO market_predictions(symbol, run_id, ts, json) VALUES(?1, ?2, ?3, ?4)"
             " ON CONFLICT(symbol) DO UPDATE SET run_id = excluded.run_id, ts = excluded.ts, json = excluded.json"
             " WHERE excluded.run_id >= market_predictions.run_id",
             &latest, err, errlen) ||
        prep(db, "INSERT OR IGNORE INTO market_history(run_id, symbol, ts, json) VALUES(?1, ?2, ?3, ?4)", &hist, err,
             errlen) ||
        prep(db, "INSERT OR IGNORE INTO market_failures(run_id, symbol, reason) VALUES(?1, ?2, ?3)", &fail, err,
             errlen))
        goto done;
    for (size_t i = 0; i < a->n_preds; i++) {
        const mstore_pred_t *p = &a->preds[i];
        sqlite3_reset(latest);
        sqlite3_bind_text(latest, 1, p->symbol, -1, SQLITE_STATIC);
        sqlite3_bind_text(latest, 2, a->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(latest, 3, p->ts_ms);
        sqlite3_bind_text(latest, 4, p->json, -1, SQLITE_STATIC);
        if (sqlite3_step(latest) != SQLITE_DONE) { db_err(db, err, errlen, "upsert prediction"); goto done; }
        sqlite3_reset(hist);
        sqlite3_bind_text(hist, 1, a->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(hist, 2, p->symbol, -1, SQLITE_STATIC);
        sqlite3_bind_int64(hist, 3, p->ts_ms);
        sqlite3_bind_text(hist, 4, p->json, -1, SQLITE_STATIC);
        if (sqlite3_step(hist) != SQLITE_DONE) { db_err(db, err, errlen, "append history"); goto done; }
    }
    for (size_t i = 0; i < a->n_fails; i++) {
        sqlite3_reset(fail);
        sqlite3_bind_text(fail, 1, a->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(fail, 2, a->fails[i].symbol, -1, SQLITE_STATIC);
        sqlite3_bind_text(fail, 3, a->fails[i].reason, -1, SQLITE_STATIC);
        if (sqlite3_step(fail) != SQLITE_DONE) { db_err(db, err, errlen, "record failure"); goto done; }
    }
    rc = 0;
done:
    sqlite3_finalize(latest);
    sqlite3_finalize(hist);
    sqlite3_finalize(fail);
    return rc;
}

int mstore_chunk_write(store_t *st, const char *run_id, const mstore_pred_t *preds, size_t n_preds,
                       const mstore_fail_t *fails, size_t n_fails, char *err, size_t errlen) {
    chunk_write_t a = {run_id, preds, n_preds, fails, n_fails};
    return store_sql_write(st, chunk_write_fn, &a, err, errlen);
}

typedef struct {
    const char *symbol;
    char *json;
    char run_id[40];
    int64_t ts;
    int found;
} latest_get_t;

static int latest_get_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    latest_get_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT json, run_id, ts FROM market_predictions WHERE symbol = ?", &s, err, errlen)) return -1;
    sqlite3_bind_text(s, 1, a->symbol, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        a->json = dup_col(s, 0);
        text_col(s, 1, a->run_id, sizeof a->run_id);
        a->ts = sqlite3_column_int64(s, 2);
        a->found = 1;
        if (!a->json) rc = -1;
    }
    sqlite3_finalize(s);
    return rc;
}

int mstore_latest_get(store_t *st, const char *symbol, char **json, char run_id[40], int64_t *ts_ms) {
    latest_get_t a = {.symbol = symbol};
    char err[256];
    *json = NULL;
    if (store_sql_read(st, latest_get_fn, &a, err, sizeof err)) {
        free(a.json);
        return -1;
    }
    if (!a.found) return 1;
    *json = a.json;
    if (run_id) memcpy(run_id, a.run_id, 40);
    if (ts_ms) *ts_ms = a.ts;
    return 0;
}

typedef struct {
    mstore_latest_fn fn;
    void *arg;
} scan_t;

static int latest_scan_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    scan_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT symbol, run_id, ts, json FROM market_predictions", &s, err, errlen)) return -1;
    while (sqlite3_step(s) == SQLITE_ROW)
        a->fn(a->arg, (const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
              sqlite3_column_int64(s, 2), (const char *)sqlite3_column_text(s, 3));
    sqlite3_finalize(s);
    return 0;
}

int mstore_latest_scan(store_t *st, mstore_latest_fn fn, void *arg, char *err, size_t errlen) {
    scan_t a = {fn, arg};
    return store_sql_read(st, latest_scan_fn, &a, err, errlen);
}

typedef struct {
    const char *symbol;
    int64_t from, to;
    long limit, count;
    buf_t *out;
} hist_t;

static int history_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    hist_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db,
             "SELECT json FROM market_history WHERE symbol = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts, run_id LIMIT ?4",
             &s, err, errlen))
        return -1;
    sqlite3_bind_text(s, 1, a->symbol, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->from);
    sqlite3_bind_int64(s, 3, a->to);
    sqlite3_bind_int64(s, 4, a->limit);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (a->count++) buf_putc(a->out, ',');
        buf_append(a->out, sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    }
    sqlite3_finalize(s);
    return 0;
}

int mstore_history(store_t *st, const char *symbol, int64_t from_ms, int64_t to_ms, long limit, buf_t *out,
                   long *count, char *err, size_t errlen) {
    hist_t a = {symbol, from_ms, to_ms, limit, 0, out};
    int rc = store_sql_read(st, history_fn, &a, err, errlen);
    *count = a.count;
    return rc;
}

typedef struct {
    const char *run_id;
    long ok, failed;
    buf_t *failures;
} outcome_t;

static int outcome_fn(sqlite3 *db, void *arg, char *err, size_t errlen) {
    outcome_t *a = arg;
    sqlite3_stmt *s = NULL;
    if (prep(db, "SELECT count(*) FROM market_history WHERE run_id = ?", &s, err, errlen)) return -1;
    sqlite3_bind_text(s, 1, a->run_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW) a->ok = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (prep(db, "SELECT symbol, reason FROM market_failures WHERE run_id = ? ORDER BY symbol", &s, err, errlen))
        return -1;
    sqlite3_bind_text(s, 1, a->run_id, -1, SQLITE_STATIC);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (a->failures) {
            if (a->failed) buf_putc(a->failures, ',');
            buf_puts(a->failures, "{\"symbol\":");
            buf_json_str(a->failures, (const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0));
            buf_puts(a->failures, ",\"reason\":");
            buf_json_str(a->failures, (const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1));
            buf_putc(a->failures, '}');
        }
        a->failed++;
    }
    sqlite3_finalize(s);
    return 0;
}

int mstore_run_outcome(store_t *st, const char *run_id, long *succeeded, long *failed, buf_t *failures, char *err,
                       size_t errlen) {
    outcome_t a = {run_id, 0, 0, failures};
    int rc = store_sql_read(st, outcome_fn, &a, err, errlen);
    *succeeded = a.ok;
    *failed = a.failed;
    return rc;
}
