/* The market pipeline's tables, kept through the store's SQL extension point
 * (store/store_sql.h): features (the last K vectors per symbol), the earnings calendar,
 * runs, the latest prediction per symbol, the append-only history (one row per run and
 * symbol: its primary key makes a chunk redone after a crash write nothing twice) and the
 * per-run failures. Writes are durable when a function returns 0. Thread-safe. */
#ifndef PREDICTD_MARKET_STORE_H
#define PREDICTD_MARKET_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "market/calendar.h"
#include "market/features.h"
#include "store/store.h"

int mstore_init(store_t *st, char *err, size_t errlen);

/* Upserts the rows (on symbol, timestamp) and keeps the newest k per symbol, in one
 * transaction. */
int mstore_features_put(store_t *st, const feat_row_t *rows, size_t n, int k, char *err, size_t errlen);
/* Loads every stored vector into f. */
int mstore_features_load(store_t *st, features_t *f, char *err, size_t errlen);

/* Upserts on (symbol, date). */
int mstore_calendar_put(store_t *st, const cal_row_t *rows, size_t n, char *err, size_t errlen);
/* Every row; *rows malloc'd (caller frees). */
int mstore_calendar_load(store_t *st, cal_row_t **rows, size_t *n, char *err, size_t errlen);

typedef struct {
    char run_id[40];
    char correlation_id[48];
    int32_t date;
    char trigger[16];         /* api | window | interval */
    int64_t created_at, finished_at;  /* ms since the epoch; finished 0 = not yet */
    char status[16];          /* SUBMITTING | SUBMITTED | COMPLETED | FAILED */
    char *normal_ids;         /* JSON array of symbols */
    char *earnings_ids;
    char *jobs;               /* JSON array of job ids */
    double route_ms;
    char *stages;             /* JSON object, set when finished */
    long succeeded, failed;
} mstore_run_t;
void mstore_run_clear(mstore_run_t *r);

int mstore_run_insert(store_t *st, const mstore_run_t *r, char *err, size_t errlen);
int mstore_run_set_jobs(store_t *st, const char *run_id, const char *jobs_json, char *err, size_t errlen);
/* Sets finished_at, status, stages, succeeded, failed; first records every symbol of the
 * run with neither a history row nor a failure as failed with dead_reason. */
int mstore_run_finish(store_t *st, const mstore_run_t *r, const char *dead_reason, char *err, size_t errlen);
int mstore_run_delete(store_t *st, const char *run_id, char *err, size_t errlen);
/* 0 found (caller mstore_run_clear), 1 not found, -1 error. */
int mstore_run_get(store_t *st, const char *run_id, mstore_run_t *out, char *err, size_t errlen);
/* Ids of runs not finished, oldest first. *ids: n * 40 bytes (caller frees). */
int mstore_runs_unfinished(store_t *st, char (**ids)[40], size_t *n, char *err, size_t errlen);

/* A computed prediction: the JSON object without "source". */
typedef struct {
    char symbol[MKT_SYMBOL_MAX + 1];
    int64_t ts_ms;
    char *json;
} mstore_pred_t;
typedef struct {
    char symbol[MKT_SYMBOL_MAX + 1];
    char reason[200];
} mstore_fail_t;
/* One chunk's outcome in one transaction: the latest prediction per symbol (upserted unless
 * a later run's is there), a history row per (run_id, symbol) (kept if already there) and
 * the failures of the run. */
int mstore_chunk_write(store_t *st, const char *run_id, const mstore_pred_t *preds, size_t n_preds,
                       const mstore_fail_t *fails, size_t n_fails, char *err, size_t errlen);

/* The latest prediction's JSON (caller frees) and its run. 0 ok, 1 none, -1 error. */
int mstore_latest_get(store_t *st, const char *symbol, char **json, char run_id[40], int64_t *ts_ms);
/* fn for every latest prediction. */
typedef void (*mstore_latest_fn)(void *arg, const char *symbol, const char *run_id, int64_t ts_ms,
                                 const char *json);
int mstore_latest_scan(store_t *st, mstore_latest_fn fn, void *arg, char *err, size_t errlen);
/* Appends the history rows of symbol with from_ms <= ts <= to_ms, oldest first, as JSON
 * objects separated by commas (at most limit). */
int mstore_history(store_t *st, const char *symbol, int64_t from_ms, int64_t to_ms, long limit, buf_t *out,
                   long *count, char *err, size_t errlen);
/* The run's outcome so far: history rows written, and its failures appended to failures
 * (may be NULL) as {symbol, reason} objects separated by commas (failed = their count). */
int mstore_run_outcome(store_t *st, const char *run_id, long *succeeded, long *failed, buf_t *failures,
                       char *err, size_t errlen);

#endif
