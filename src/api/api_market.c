/* The market pipeline over HTTP (docs/pipeline.md): features, the earnings calendar and
 * their CSV imports, runs, predictions and their history, the consistency check and the
 * failure-injection knob. Validation of the rows lives in market/market_input.c; every bad
 * input is a 4xx naming the field, with nothing stored. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/app.h"
#include "market/market_input.h"
#include "market/pipeline.h"

#define IMPORT_MAX_ERRORS 100
#define SYMBOLS_QUERY_MAX 10000
#define HISTORY_LIMIT_DEFAULT 1000
#define HISTORY_LIMIT_MAX 10000

static pipeline_t *require_pipeline(const api_req_t *rq, api_resp_t *rs) {
    if (rq->app->pipeline) return rq->app->pipeline;
    api_error(rs, 503, "unavailable", NULL, "the market pipeline is not running");
    rs->retry_after_s = 5;
    return NULL;
}

static void store_failed(api_resp_t *rs, const char *err) {
    api_error(rs, 503, "store_unavailable", NULL, "the store could not write: %s", err);
    rs->retry_after_s = 1;
}

static void input_failed(api_resp_t *rs, const mkt_input_error_t *e) {
    api_invalid(rs, e->field[0] ? e->field : NULL, "%s%s%s", e->field[0] ? e->field : "", e->field[0] ? " " : "",
                e->message);
}

void api_features_post(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    json_t *doc;
    if (!p || api_parse_body(rq, rs, &doc)) return;
    feat_row_t *rows = NULL;
    size_t n = 0, symbols = 0;
    mkt_input_error_t e;
    char err[256];
    if (mkt_features_from_json(doc, &rows, &n, &e) != 0) input_failed(rs, &e);
    else if (pipeline_features_put(p, rows, n, &symbols, err, sizeof err) != 0) store_failed(rs, err);
    else buf_printf(&rs->body, "{\"accepted\":%zu,\"symbols\":%zu}", n, symbols);
    free(rows);
    json_decref(doc);
}

void api_calendar_post(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    json_t *doc;
    if (!p || api_parse_body(rq, rs, &doc)) return;
    cal_row_t *rows = NULL;
    size_t n = 0;
    mkt_input_error_t e;
    char err[256];
    if (mkt_calendar_from_json(doc, &rows, &n, &e) != 0) input_failed(rs, &e);
    else if (pipeline_calendar_put(p, rows, n, err, sizeof err) != 0) store_failed(rs, err);
    else buf_printf(&rs->body, "{\"accepted\":%zu}", n);
    free(rows);
    json_decref(doc);
}

int api_market_import(api_req_t *rq, api_resp_t *rs) {
    int features = !strcmp(rq->param, "features");
    if (!features && strcmp(rq->param, "calendar")) return 0;
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return 1;
    buf_t errors = {0};
    char err[256];
    long n;
    size_t symbols = 0;
    int rc = 0;
    if (features) {
        feat_row_t *rows = NULL;
        n = mkt_features_from_csv(rq->body, rq->body_len, &rows, &errors, IMPORT_MAX_ERRORS);
        if (n > 0) rc = pipeline_features_put(p, rows, (size_t)n, &symbols, err, sizeof err);
        free(rows);
    } else {
        cal_row_t *rows = NULL;
        n = mkt_calendar_from_csv(rq->body, rq->body_len, &rows, &errors, IMPORT_MAX_ERRORS);
        if (n > 0) rc = pipeline_calendar_put(p, rows, (size_t)n, err, sizeof err);
        free(rows);
    }
    if (n < 0) {
        api_csv_error(rs, errors.data ? errors.data : "", errors.len, "the CSV has bad rows; nothing was imported");
    } else if (n == 0) {
        const char *line = "no data rows after the header";
        api_csv_error(rs, line, strlen(line), "the CSV has no data rows; nothing was imported");
    } else if (rc != 0) {
        store_failed(rs, err);
    } else if (features) {
        buf_printf(&rs->body, "{\"imported\":%ld,\"symbols\":%zu}", n, symbols);
    } else {
        buf_printf(&rs->body, "{\"imported\":%ld}", n);
    }
    buf_free(&errors);
    return 1;
}

static int correlation_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 47) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == ':'))
            return 0;
    }
    return 1;
}

void api_pipeline_run_post(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    json_t *doc;
    if (!p || api_parse_body(rq, rs, &doc)) return;
    const char **syms = NULL;
    if (!json_is_object(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON object: {\"symbols\": [...]} or {\"all\": true}");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (strcmp(key, "symbols") && strcmp(key, "all") && strcmp(key, "date") && strcmp(key, "correlation_id")) {
            char f[64];
            snprintf(f, sizeof f, "%.60s", key);
            api_invalid(rs, f, "unknown field (expected symbols or all, date, correlation_id)");
            goto done;
        }
    }
    const json_t *symbols = json_object_get(doc, "symbols"), *all = json_object_get(doc, "all");
    if (symbols && all) {
        api_invalid(rs, "all", "give symbols or all, not both");
        goto done;
    }
    if (!symbols && !all) {
        api_invalid(rs, "symbols", "symbols (an array) or all: true is required");
        goto done;
    }
    if (all && !json_is_true(all)) {
        api_invalid(rs, "all", "all must be true (or give symbols)");
        goto done;
    }
    size_t n = 0;
    if (symbols) {
        if (!json_is_array(symbols) || json_array_size(symbols) == 0) {
            api_invalid(rs, "symbols", "symbols must be a non-empty array of symbol strings");
            goto done;
        }
        n = json_array_size(symbols);
        syms = calloc(n, sizeof *syms);
        if (!syms) {
            api_error(rs, 503, "out_of_memory", NULL, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_array_get(symbols, i);
            if (!json_is_string(s) || !mkt_symbol_ok(json_string_value(s)) ||
                strlen(json_string_value(s)) != json_string_length(s)) {
                char f[32];
                snprintf(f, sizeof f, "symbols[%zu]", i);
                api_invalid(rs, f, "a symbol is 1..32 characters of A-Z a-z 0-9 . _ -");
                goto done;
            }
            syms[i] = json_string_value(s);
        }
    }
    int32_t date = mkt_today();
    const json_t *d = json_object_get(doc, "date");
    if (d && (!json_is_string(d) || mkt_date_parse(json_string_value(d), &date) != 0)) {
        api_invalid(rs, "date", "date must be a YYYY-MM-DD date (the trading day to route for)");
        goto done;
    }
    const json_t *c = json_object_get(doc, "correlation_id");
    if (c && (!json_is_string(c) || !correlation_ok(json_string_value(c)))) {
        api_invalid(rs, "correlation_id", "correlation_id must be 1..47 characters of A-Z a-z 0-9 . _ - :");
        goto done;
    }
    char run_id[40], corr[48];
    jobs_error_t e;
    if (pipeline_run_start(p, syms, n, all != NULL, date, "api", c ? json_string_value(c) : NULL, run_id, corr, &e) !=
        0) {
        int status = e.http_status >= 400 && e.http_status < 600 ? e.http_status : 422;
        api_error(rs, status, e.code[0] ? e.code : "invalid_field", e.field[0] ? e.field : NULL, "%s", e.message);
        if (e.retry_after_s > 0) rs->retry_after_s = e.retry_after_s;
        goto done;
    }
    rs->status = 202;
    buf_printf(&rs->body, "{\"run_id\":\"%s\",\"correlation_id\":", run_id);
    buf_json_str(&rs->body, corr, strlen(corr));
    buf_puts(&rs->body, ",\"status\":\"QUEUED\"}");
done:
    free(syms);
    json_decref(doc);
}

void api_pipeline_run_get(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return;
    int rc = strlen(rq->param) < 40 ? pipeline_run_render(p, rq->param, &rs->body) : 1;
    if (rc == 1) api_error(rs, 404, "run_not_found", NULL, "no run with id '%.64s'", rq->param);
    else if (rc < 0) {
        api_error(rs, 503, "store_unavailable", NULL, "the run could not be read");
        rs->retry_after_s = 1;
    }
}

void api_prediction_get(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return;
    if (!mkt_symbol_ok(rq->param)) {
        api_invalid(rs, "symbol", "a symbol is 1..32 characters of A-Z a-z 0-9 . _ -");
        return;
    }
    int rc = pipeline_prediction_get(p, rq->param, &rs->body);
    if (rc == 1) api_error(rs, 404, "not_found", NULL, "no prediction for '%s'", rq->param);
    else if (rc < 0) {
        api_error(rs, 503, "unavailable", NULL, "neither the fast layer nor the store could answer");
        rs->retry_after_s = 1;
    }
}

void api_predictions_get(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return;
    size_t cap = (size_t)SYMBOLS_QUERY_MAX * (MKT_SYMBOL_MAX + 1) + 1;
    char *q = malloc(cap);
    buf_t missing = {0}, item = {0};
    if (!q) {
        api_error(rs, 503, "out_of_memory", NULL, "out of memory");
        return;
    }
    int qr = api_query(rq, rs, "symbols", q, cap);
    if (qr < 0) goto done;
    if (qr == 1 || !q[0]) {
        api_invalid(rs, "symbols", "symbols=A,B,C is required");
        goto done;
    }
    buf_puts(&rs->body, "{\"predictions\":[");
    long found = 0, n_missing = 0, k = 0;
    for (char *save = NULL, *s = strtok_r(q, ",", &save); s; s = strtok_r(NULL, ",", &save), k++) {
        if (!mkt_symbol_ok(s) || k >= SYMBOLS_QUERY_MAX) {
            api_invalid(rs, "symbols", k >= SYMBOLS_QUERY_MAX ? "at most 10000 symbols per request"
                                                              : "a symbol is 1..32 characters of A-Z a-z 0-9 . _ -");
            goto done;
        }
        buf_reset(&item);
        int rc = pipeline_prediction_get(p, s, &item);
        if (rc < 0) {
            api_error(rs, 503, "unavailable", NULL, "neither the fast layer nor the store could answer");
            rs->retry_after_s = 1;
            goto done;
        }
        if (rc == 0) {
            if (found++) buf_putc(&rs->body, ',');
            buf_append(&rs->body, item.data, item.len);
        } else {
            if (n_missing++) buf_putc(&missing, ',');
            buf_json_str(&missing, s, strlen(s));
        }
    }
    buf_puts(&rs->body, "],\"missing\":[");
    if (missing.data) buf_append(&rs->body, missing.data, missing.len);
    buf_puts(&rs->body, "]}");
done:
    buf_free(&missing);
    buf_free(&item);
    free(q);
}

/* ?name= as ISO 8601 or epoch seconds, into ms; def when absent. 0 ok, -1 422 in rs. */
static int query_time_ms(const api_req_t *rq, api_resp_t *rs, const char *name, int64_t def, int64_t *out) {
    char v[64];
    int rc = api_query(rq, rs, name, v, sizeof v);
    if (rc < 0) return -1;
    if (rc == 1 || !v[0]) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (errno || *end || end == v || !isfinite(s)) {
        if (api_parse_iso8601(v, &s) != 0) {
            api_invalid(rs, name, "%s must be ISO 8601 or epoch seconds, got '%s'", name, v);
            return -1;
        }
    }
    *out = (int64_t)llround(s * 1000.0);
    return 0;
}

void api_prediction_history(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return;
    if (!mkt_symbol_ok(rq->param)) {
        api_invalid(rs, "symbol", "a symbol is 1..32 characters of A-Z a-z 0-9 . _ -");
        return;
    }
    int64_t from, to;
    long limit;
    if (query_time_ms(rq, rs, "from", INT64_MIN, &from) || query_time_ms(rq, rs, "to", INT64_MAX, &to) ||
        api_query_long(rq, rs, "limit", HISTORY_LIMIT_DEFAULT, 1, HISTORY_LIMIT_MAX, &limit))
        return;
    if (from > to) {
        api_invalid(rs, "from", "from must not be after to");
        return;
    }
    buf_puts(&rs->body, "{\"symbol\":");
    buf_json_str(&rs->body, rq->param, strlen(rq->param));
    buf_puts(&rs->body, ",\"history\":[");
    long count = 0;
    if (pipeline_history(p, rq->param, from, to, limit, &rs->body, &count) != 0) {
        api_error(rs, 503, "store_unavailable", NULL, "the history could not be read");
        rs->retry_after_s = 1;
        return;
    }
    buf_printf(&rs->body, "],\"count\":%ld}", count);
}

void api_pipeline_consistency_post(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    if (!p) return;
    if (pipeline_consistency_check(p, &rs->body) != 0) {
        api_error(rs, 503, "store_unavailable", NULL, "the store could not be read");
        rs->retry_after_s = 1;
    }
}

void api_pipeline_debug_post(api_req_t *rq, api_resp_t *rs) {
    pipeline_t *p = require_pipeline(rq, rs);
    json_t *doc;
    if (!p) return;
    if (!pipeline_debug_enabled(p)) {
        api_error(rs, 404, "not_found", NULL, "failure injection is off (pipeline.debug = 0)");
        return;
    }
    if (api_parse_body(rq, rs, &doc)) return;
    /* {"fast_layer_down"?: bool, "events_down"?: bool}, at least one; nothing changes on an error */
    const json_t *fast = json_object_get(doc, "fast_layer_down"), *events = json_object_get(doc, "events_down");
    const char *key;
    json_t *v;
    const char *bad = NULL;
    if (!json_is_object(doc) || (!fast && !events)) bad = "fast_layer_down";
    else
        json_object_foreach(doc, key, v) {
            if ((strcmp(key, "fast_layer_down") && strcmp(key, "events_down")) || !json_is_boolean(v)) {
                bad = key;
                break;
            }
        }
    if (bad) {
        api_invalid(rs, bad, "the body must be {\"fast_layer_down\"?: true|false, \"events_down\"?: true|false}");
    } else {
        if (fast) pipeline_set_fast_layer_down(p, json_is_true(fast));
        if (events) pipeline_set_events_down(p, json_is_true(events));
        json_t *out = json_object();
        if (fast) json_object_set(out, "fast_layer_down", (json_t *)fast);
        if (events) json_object_set(out, "events_down", (json_t *)events);
        api_reply_json(rs, 200, out);
    }
    json_decref(doc);
}
