/* POST /api/v1/import/{entities|relationships|observations}: a CSV body (header row first),
 * parsed whole, then stored in one transaction. Bad rows are reported by line number and
 * nothing is stored. `predictd import --url` sends its file here. */
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "store/csv.h"

#define IMPORT_MAX_ERRORS 100

/* 422 {error:{code:"invalid_csv", message, field:null, lines:[...]}}, one line per report line. */
void api_csv_error(api_resp_t *rs, const char *report, size_t len, const char *message) {
    rs->status = 422;
    buf_reset(&rs->body);
    buf_puts(&rs->body, "{\"error\":{\"code\":\"invalid_csv\",\"message\":");
    buf_json_str(&rs->body, message, strlen(message));
    buf_puts(&rs->body, ",\"field\":null,\"lines\":[");
    const char *p = report, *end = report + len;
    int first = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n) {
            if (!first) buf_putc(&rs->body, ',');
            buf_json_str(&rs->body, p, n);
            first = 0;
        }
        p += n + 1;
    }
    buf_puts(&rs->body, "]}}");
}

/* After parsing: n rows (or -1 with the report in errors). Stores them and answers. */
static void finish(api_resp_t *rs, long n, buf_t *errors, int store_rc, const char *store_err) {
    if (n < 0) {
        api_csv_error(rs, errors->data ? errors->data : "", errors->len,
                  "the CSV has bad rows; nothing was imported");
    } else if (n == 0) {
        const char *line = "no data rows after the header";
        api_csv_error(rs, line, strlen(line), "the CSV has no data rows; nothing was imported");
    } else if (store_rc != 0) {
        if (store_err[0] == '[' || strncmp(store_err, "line ", 5) == 0) {
            api_csv_error(rs, store_err, strlen(store_err), "a row was refused by the store; nothing was imported");
        } else {
            api_error(rs, 503, "store_unavailable", NULL, "the store could not import: %s", store_err);
            rs->retry_after_s = 1;
        }
    } else {
        buf_printf(&rs->body, "{\"imported\":%ld}", n);
    }
}

void api_import_post(api_req_t *rq, api_resp_t *rs) {
    csv_kind_t kind;
    if (api_market_import(rq, rs)) return; /* features, calendar (api_market.c) */
    if (csv_kind_parse(rq->param, &kind) != 0) {
        api_error(rs, 404, "not_found", NULL,
                  "no import kind '%.64s'; use entities, relationships, observations, features or calendar",
                  rq->param);
        return;
    }
    if (!rq->app->store) {
        api_error(rs, 503, "store_unavailable", NULL, "the store is not open");
        return;
    }
    buf_t errors = {0};
    char err[512] = "";
    int rc = 0;
    long n;
    switch (kind) {
    case CSV_ENTITIES: {
        entity_row_t *rows = NULL;
        n = csv_parse_entities(rq->body, rq->body_len, &rows, &errors, IMPORT_MAX_ERRORS);
        if (n > 0) rc = store_import_entities(rq->app->store, rows, (size_t)n, err, sizeof err);
        if (rows) entity_rows_free(rows, n > 0 ? (size_t)n : 0);
        break;
    }
    case CSV_RELATIONSHIPS: {
        rel_row_t *rows = NULL;
        n = csv_parse_relationships(rq->body, rq->body_len, &rows, &errors, IMPORT_MAX_ERRORS);
        if (n > 0) rc = store_import_relationships(rq->app->store, rows, (size_t)n, err, sizeof err);
        if (rows) rel_rows_free(rows, n > 0 ? (size_t)n : 0);
        break;
    }
    case CSV_OBSERVATIONS:
    default: {
        obs_row_t *rows = NULL;
        n = csv_parse_observations(rq->body, rq->body_len, &rows, &errors, IMPORT_MAX_ERRORS);
        if (n > 0) rc = store_import_observations(rq->app->store, rows, (size_t)n, err, sizeof err);
        if (rows) obs_rows_free(rows, n > 0 ? (size_t)n : 0);
        break;
    }
    }
    finish(rs, n, &errors, rc, err);
    buf_free(&errors);
}
