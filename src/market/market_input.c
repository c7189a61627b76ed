#include "market/market_input.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/csv.h"

static int set_err(mkt_input_error_t *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(mkt_input_error_t *e, const char *field, const char *fmt, ...) {
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int float_ok(double v) { return isfinite(v) && fabs(v) <= FLT_MAX; }

static int numbers(const json_t *arr, size_t want, float *out, const char *field, mkt_input_error_t *e) {
    if (!json_is_array(arr)) return set_err(e, field, "must be an array of %zu numbers", want);
    if (json_array_size(arr) != want)
        return set_err(e, field, "must have exactly %zu numbers, has %zu", want, json_array_size(arr));
    for (size_t i = 0; i < want; i++) {
        const json_t *v = json_array_get(arr, i);
        char f[64];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!json_is_number(v)) return set_err(e, f, "must be a number");
        double d = json_number_value(v);
        if (!float_ok(d)) return set_err(e, f, "must be finite and within float range");
        out[i] = (float)d;
    }
    return 0;
}

static int body_array(const json_t *body, mkt_input_error_t *e) {
    if (!json_is_array(body)) return set_err(e, "", "the body must be a JSON array of objects");
    if (json_array_size(body) == 0) return set_err(e, "", "the array is empty: nothing to store");
    return 0;
}

int mkt_features_from_json(const json_t *body, feat_row_t **rows_out, size_t *n_out, mkt_input_error_t *e) {
    *rows_out = NULL;
    *n_out = 0;
    if (body_array(body, e)) return -1;
    size_t n = json_array_size(body);
    feat_row_t *rows = calloc(n, sizeof *rows);
    if (!rows) return set_err(e, "", "out of memory");
    char f[64];
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(body, i);
        feat_row_t *r = &rows[i];
        snprintf(f, sizeof f, "[%zu]", i);
        if (!json_is_object(o)) { set_err(e, f, "must be an object"); goto fail; }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)o, key, v) {
            if (strcmp(key, "symbol") && strcmp(key, "timestamp") && strcmp(key, "price") &&
                strcmp(key, "technical") && strcmp(key, "earnings")) {
                snprintf(f, sizeof f, "[%zu].%.40s", i, key);
                set_err(e, f, "unknown field (expected symbol, timestamp, price, technical, earnings)");
                goto fail;
            }
        }
        snprintf(f, sizeof f, "[%zu].symbol", i);
        v = json_object_get(o, "symbol");
        if (!json_is_string(v) || !mkt_symbol_ok(json_string_value(v)) || strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(e, f, v ? "must be 1..32 characters of A-Z a-z 0-9 . _ -" : "is required");
            goto fail;
        }
        snprintf(r->symbol, sizeof r->symbol, "%s", json_string_value(v));
        snprintf(f, sizeof f, "[%zu].timestamp", i);
        v = json_object_get(o, "timestamp");
        double ts = 0;
        if (json_is_string(v)) {
            if (csv_parse_time(json_string_value(v), &ts) != 0) {
                set_err(e, f, "must be ISO 8601 (2026-11-24T15:30:00Z) or epoch seconds");
                goto fail;
            }
        } else if (json_is_number(v)) {
            ts = json_number_value(v);
        } else {
            set_err(e, f, v ? "must be an ISO 8601 string or epoch seconds" : "is required");
            goto fail;
        }
        if (!isfinite(ts) || ts < 0 || ts > 253402300799.0) {
            set_err(e, f, "must be between 1970 and 9999");
            goto fail;
        }
        r->ts_ms = (int64_t)llround(ts * 1000.0);
        snprintf(f, sizeof f, "[%zu].price", i);
        v = json_object_get(o, "price");
        if (!json_is_number(v) || !float_ok(json_number_value(v)) || json_number_value(v) <= 0) {
            set_err(e, f, v ? "must be a finite number > 0" : "is required");
            goto fail;
        }
        r->price = json_number_value(v);
        snprintf(f, sizeof f, "[%zu].technical", i);
        v = json_object_get(o, "technical");
        if (!v) { set_err(e, f, "is required"); goto fail; }
        if (numbers(v, MKT_TECH, r->tech, f, e)) goto fail;
        v = json_object_get(o, "earnings");
        if (v && !json_is_null(v)) {
            snprintf(f, sizeof f, "[%zu].earnings", i);
            if (numbers(v, MKT_EARN, r->earn, f, e)) goto fail;
            r->has_earn = 1;
        }
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
fail:
    free(rows);
    return -1;
}

int mkt_calendar_from_json(const json_t *body, cal_row_t **rows_out, size_t *n_out, mkt_input_error_t *e) {
    *rows_out = NULL;
    *n_out = 0;
    if (body_array(body, e)) return -1;
    size_t n = json_array_size(body);
    cal_row_t *rows = calloc(n, sizeof *rows);
    if (!rows) return set_err(e, "", "out of memory");
    char f[64];
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(body, i);
        cal_row_t *r = &rows[i];
        snprintf(f, sizeof f, "[%zu]", i);
        if (!json_is_object(o)) { set_err(e, f, "must be an object"); goto fail; }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)o, key, v) {
            if (strcmp(key, "symbol") && strcmp(key, "date") && strcmp(key, "time")) {
                snprintf(f, sizeof f, "[%zu].%.40s", i, key);
                set_err(e, f, "unknown field (expected symbol, date, time)");
                goto fail;
            }
        }
        snprintf(f, sizeof f, "[%zu].symbol", i);
        v = json_object_get(o, "symbol");
        if (!json_is_string(v) || !mkt_symbol_ok(json_string_value(v)) || strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(e, f, v ? "must be 1..32 characters of A-Z a-z 0-9 . _ -" : "is required");
            goto fail;
        }
        snprintf(r->symbol, sizeof r->symbol, "%s", json_string_value(v));
        snprintf(f, sizeof f, "[%zu].date", i);
        v = json_object_get(o, "date");
        if (!json_is_string(v) || mkt_date_parse(json_string_value(v), &r->date) != 0) {
            set_err(e, f, v ? "must be a YYYY-MM-DD date" : "is required");
            goto fail;
        }
        snprintf(f, sizeof f, "[%zu].time", i);
        v = json_object_get(o, "time");
        if (!json_is_string(v) || earn_time_parse(json_string_value(v), &r->time) != 0) {
            set_err(e, f, v ? "must be bmo, amc or unknown" : "is required");
            goto fail;
        }
    }
    *rows_out = rows;
    *n_out = n;
    return 0;
fail:
    free(rows);
    return -1;
}

/* ---- CSV ---------------------------------------------------------------------------------- */

typedef struct {
    int col_symbol, col_ts, col_price, col_tech[MKT_TECH], col_earn[MKT_EARN];
    int has_earn_cols;
    feat_row_t *rows;
    size_t n, cap;
} feat_csv_t;

static int feat_header(void *arg, const char *const *h, size_t nh, char *msg, size_t msglen) {
    feat_csv_t *c = arg;
    c->col_symbol = c->col_ts = c->col_price = -1;
    for (int i = 0; i < MKT_TECH; i++) c->col_tech[i] = -1;
    for (int i = 0; i < MKT_EARN; i++) c->col_earn[i] = -1;
    int n_earn = 0;
    for (size_t i = 0; i < nh; i++) {
        const char *s = h[i];
        int k;
        char tail;
        if (!strcmp(s, "symbol")) c->col_symbol = (int)i;
        else if (!strcmp(s, "timestamp")) c->col_ts = (int)i;
        else if (!strcmp(s, "price")) c->col_price = (int)i;
        else if (sscanf(s, "t%d%c", &k, &tail) == 1 && k >= 0 && k < MKT_TECH && s[1] >= '0' && s[1] <= '9')
            c->col_tech[k] = (int)i;
        else if (sscanf(s, "e%d%c", &k, &tail) == 1 && k >= 0 && k < MKT_EARN && s[1] >= '0' && s[1] <= '9')
            c->col_earn[k] = (int)i, n_earn++;
        else {
            snprintf(msg, msglen, "unknown column '%.40s' (expected symbol,timestamp,price,t0..t19[,e0..e16])", s);
            return -1;
        }
    }
    if (c->col_symbol < 0 || c->col_ts < 0 || c->col_price < 0) {
        snprintf(msg, msglen, "the header needs symbol, timestamp and price columns");
        return -1;
    }
    for (int i = 0; i < MKT_TECH; i++)
        if (c->col_tech[i] < 0) {
            snprintf(msg, msglen, "missing column t%d (t0..t19 are required)", i);
            return -1;
        }
    if (n_earn && n_earn != MKT_EARN) {
        snprintf(msg, msglen, "the earnings columns are e0..e16, all or none (found %d)", n_earn);
        return -1;
    }
    c->has_earn_cols = n_earn == MKT_EARN;
    return 0;
}

/* Room for row n in *rows (capacity *cap, elements of elem bytes), doubling. 0 ok, -1 with msg. */
static int grow_rows(void **rows, size_t *cap, size_t n, size_t elem, char *msg, size_t msglen) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 256;
    void *p = realloc(*rows, c * elem);
    if (!p) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    *rows = p;
    *cap = c;
    return 0;
}

static int cell_number(const char *s, double *out) {
    if (!*s) return -1;
    char *end;
    *out = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    return *end || !float_ok(*out) ? -1 : 0;
}

static int feat_record(void *arg, long line, const char *const *h, size_t nh, const char *const *fl, char *msg,
                       size_t msglen) {
    (void)line, (void)h, (void)nh;
    feat_csv_t *c = arg;
    feat_row_t r;
    memset(&r, 0, sizeof r);
    const char *sym = fl[c->col_symbol];
    if (!mkt_symbol_ok(sym)) {
        snprintf(msg, msglen, "symbol '%.40s' must be 1..32 characters of A-Z a-z 0-9 . _ -", sym);
        return -1;
    }
    snprintf(r.symbol, sizeof r.symbol, "%s", sym);
    double ts;
    if (csv_parse_time(fl[c->col_ts], &ts) != 0 || ts < 0 || ts > 253402300799.0) {
        snprintf(msg, msglen, "timestamp '%.40s' is neither epoch seconds nor ISO 8601", fl[c->col_ts]);
        return -1;
    }
    r.ts_ms = (int64_t)llround(ts * 1000.0);
    if (cell_number(fl[c->col_price], &r.price) != 0 || r.price <= 0) {
        snprintf(msg, msglen, "price '%.40s' is not a finite number > 0", fl[c->col_price]);
        return -1;
    }
    for (int i = 0; i < MKT_TECH; i++) {
        double v;
        if (cell_number(fl[c->col_tech[i]], &v) != 0) {
            snprintf(msg, msglen, "t%d '%.40s' is not a finite number", i, fl[c->col_tech[i]]);
            return -1;
        }
        r.tech[i] = (float)v;
    }
    if (c->has_earn_cols) {
        int empty = 0;
        for (int i = 0; i < MKT_EARN; i++) empty += fl[c->col_earn[i]][0] == 0;
        if (empty && empty != MKT_EARN) {
            snprintf(msg, msglen, "earnings cells e0..e16 must be all filled or all empty");
            return -1;
        }
        for (int i = 0; !empty && i < MKT_EARN; i++) {
            double v;
            if (cell_number(fl[c->col_earn[i]], &v) != 0) {
                snprintf(msg, msglen, "e%d '%.40s' is not a finite number", i, fl[c->col_earn[i]]);
                return -1;
            }
            r.earn[i] = (float)v;
        }
        r.has_earn = !empty;
    }
    if (grow_rows((void **)&c->rows, &c->cap, c->n, sizeof *c->rows, msg, msglen)) return -1;
    c->rows[c->n++] = r;
    return 0;
}

long mkt_features_from_csv(const char *data, size_t len, feat_row_t **rows, buf_t *errors, int max_errors) {
    feat_csv_t c;
    memset(&c, 0, sizeof c);
    long n = csv_parse_records(data, len, feat_header, feat_record, &c, errors, max_errors);
    if (n < 0) {
        free(c.rows);
        *rows = NULL;
        return -1;
    }
    *rows = c.rows;
    return (long)c.n;
}

typedef struct {
    int col[3];
    cal_row_t *rows;
    size_t n, cap;
} cal_csv_t;

static int cal_header(void *arg, const char *const *h, size_t nh, char *msg, size_t msglen) {
    cal_csv_t *c = arg;
    static const char *const NAMES[3] = {"symbol", "date", "time"};
    c->col[0] = c->col[1] = c->col[2] = -1;
    for (size_t i = 0; i < nh; i++) {
        int k = -1;
        for (int j = 0; j < 3; j++)
            if (!strcmp(h[i], NAMES[j])) k = j;
        if (k < 0) {
            snprintf(msg, msglen, "unknown column '%.40s' (expected symbol,date,time)", h[i]);
            return -1;
        }
        c->col[k] = (int)i;
    }
    for (int j = 0; j < 3; j++)
        if (c->col[j] < 0) {
            snprintf(msg, msglen, "missing column %s (expected symbol,date,time)", NAMES[j]);
            return -1;
        }
    return 0;
}

static int cal_record(void *arg, long line, const char *const *h, size_t nh, const char *const *fl, char *msg,
                      size_t msglen) {
    (void)line, (void)h, (void)nh;
    cal_csv_t *c = arg;
    cal_row_t r;
    memset(&r, 0, sizeof r);
    if (!mkt_symbol_ok(fl[c->col[0]])) {
        snprintf(msg, msglen, "symbol '%.40s' must be 1..32 characters of A-Z a-z 0-9 . _ -", fl[c->col[0]]);
        return -1;
    }
    snprintf(r.symbol, sizeof r.symbol, "%s", fl[c->col[0]]);
    if (mkt_date_parse(fl[c->col[1]], &r.date) != 0) {
        snprintf(msg, msglen, "date '%.40s' is not a YYYY-MM-DD date", fl[c->col[1]]);
        return -1;
    }
    if (earn_time_parse(fl[c->col[2]], &r.time) != 0) {
        snprintf(msg, msglen, "time '%.40s' is not bmo, amc or unknown", fl[c->col[2]]);
        return -1;
    }
    if (grow_rows((void **)&c->rows, &c->cap, c->n, sizeof *c->rows, msg, msglen)) return -1;
    c->rows[c->n++] = r;
    return 0;
}

long mkt_calendar_from_csv(const char *data, size_t len, cal_row_t **rows, buf_t *errors, int max_errors) {
    cal_csv_t c;
    memset(&c, 0, sizeof c);
    long n = csv_parse_records(data, len, cal_header, cal_record, &c, errors, max_errors);
    if (n < 0) {
        free(c.rows);
        *rows = NULL;
        return -1;
    }
    *rows = c.rows;
    return (long)c.n;
}
