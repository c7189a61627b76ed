/* Input of the market pipeline, validated whole before anything is stored: feature vectors
 * and earnings-calendar rows, from JSON (POST /api/v1/features, /api/v1/calendar) or CSV
 * (import). Pure functions: no state, thread-safe.
 *
 * Features: [{symbol, timestamp, price, technical: [20 numbers], earnings?: [17 numbers]}]
 *   symbol 1..32 of [A-Za-z0-9._-]; timestamp ISO 8601 or epoch seconds (>= 0); price > 0;
 *   every number finite and within float range; no other field.
 *   CSV header: symbol,timestamp,price,t0..t19[,e0..e16] (any order; the e columns all or
 *   none; a row may leave all its e cells empty: no earnings features).
 * Calendar: [{symbol, date: "YYYY-MM-DD", time: "bmo"|"amc"|"unknown"}]; CSV symbol,date,time. */
#ifndef PREDICTD_MARKET_INPUT_H
#define PREDICTD_MARKET_INPUT_H

#include <stddef.h>

#include <jansson.h>

#include "core/util.h"
#include "market/calendar.h"
#include "market/features.h"

typedef struct {
    char field[64];     /* "[3].technical[5]"; "" for the whole body */
    char message[256];
} mkt_input_error_t;

/* 0 ok: *rows (malloc'd, caller frees) and *n; -1 with err (nothing returned). */
int mkt_features_from_json(const json_t *body, feat_row_t **rows, size_t *n, mkt_input_error_t *err);
int mkt_calendar_from_json(const json_t *body, cal_row_t **rows, size_t *n, mkt_input_error_t *err);
/* CSV: the number of rows (>= 0, *rows caller frees), or -1 with the report in errors
 * ("line N: ..." per line, up to max_errors). */
long mkt_features_from_csv(const char *data, size_t len, feat_row_t **rows, buf_t *errors, int max_errors);
long mkt_calendar_from_csv(const char *data, size_t len, cal_row_t **rows, buf_t *errors, int max_errors);

#endif
