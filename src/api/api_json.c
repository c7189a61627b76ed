/* JSON in and out for the API: error bodies, body parsing, query arguments, time formats. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "api/api_internal.h"

void api_error(api_resp_t *rs, int status, const char *code, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rs->status = status;
    rs->content_type = NULL;
    buf_reset(&rs->body);
    buf_puts(&rs->body, "{\"error\":{\"code\":");
    buf_json_str(&rs->body, code, strlen(code));
    buf_puts(&rs->body, ",\"message\":");
    buf_json_str(&rs->body, msg, strlen(msg));
    buf_puts(&rs->body, ",\"field\":");
    if (field && *field) buf_json_str(&rs->body, field, strlen(field));
    else buf_puts(&rs->body, "null");
    buf_puts(&rs->body, "}}");
}

int api_parse_body(const api_req_t *rq, api_resp_t *rs, json_t **out) {
    *out = NULL;
    if (rq->body_len == 0) {
        api_error(rs, 400, "invalid_json", NULL, "the request body is empty; a JSON document is expected");
        return -1;
    }
    json_error_t e;
    json_t *v = json_loadb(rq->body, rq->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        api_error(rs, 400, "invalid_json", NULL, "malformed JSON at line %d, column %d: %s",
                  e.line, e.column, e.text);
        return -1;
    }
    *out = v;
    return 0;
}

void api_reply_json(api_resp_t *rs, int status, json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s) {
        api_error(rs, 500, "internal", NULL, "could not encode the response");
        return;
    }
    rs->status = status;
    buf_reset(&rs->body);
    buf_puts(&rs->body, s);
    free(s);
}

void api_put_time(buf_t *b, int64_t ms) {
    if (ms <= 0) {
        buf_puts(b, "null");
        return;
    }
    char t[40];
    iso8601_ms(ms, t, sizeof t);
    buf_json_str(b, t, strlen(t));
}

void api_put_job(buf_t *b, const store_job_t *job) {
    long settled = job->chunks_done + job->chunks_dead;
    int finished = job->status == JOB_COMPLETED || job->status == JOB_FAILED;
    double progress = job->n_chunks > 0 ? (double)settled / (double)job->n_chunks : (finished ? 1.0 : 0.0);
    if (progress > 1.0) progress = 1.0;
    if (progress < 0.0) progress = 0.0;
    const char *status = job_status_name(job->status);
    buf_puts(b, "{\"job_id\":");
    buf_json_str(b, job->id, strlen(job->id));
    buf_puts(b, ",\"model\":");
    buf_json_str(b, job->model, strlen(job->model));
    buf_puts(b, ",\"status\":");
    buf_json_str(b, status ? status : "UNKNOWN", strlen(status ? status : "UNKNOWN"));
    buf_printf(b, ",\"priority\":%d,\"progress\":", job->priority);
    buf_json_double(b, progress);
    buf_printf(b, ",\"results_ready\":%s,\"total_entities\":%ld,\"successful\":%ld,\"failed\":%ld",
               finished ? "true" : "false", job->n_entities, job->successful, job->failed);
    buf_puts(b, ",\"created_at\":");
    api_put_time(b, job->created_at);
    buf_puts(b, ",\"started_at\":");
    api_put_time(b, job->started_at);
    buf_puts(b, ",\"finished_at\":");
    api_put_time(b, job->finished_at);
    buf_puts(b, ",\"updated_at\":");
    api_put_time(b, job->updated_at);
    buf_putc(b, '}');
}

const char *api_header(const api_req_t *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

int api_query(const api_req_t *rq, api_resp_t *rs, const char *name, char *out, size_t outlen) {
    /* The daemon leaves %-escapes in place (see api_server.c), so decode here. */
    const char *raw = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw) return 1;
    size_t n = strlen(raw);
    if (n >= outlen) {
        api_invalid(rs, name, "query argument '%s' is too long (at most %zu bytes)", name, outlen - 1);
        return -1;
    }
    memcpy(out, raw, n + 1);
    size_t len = MHD_http_unescape(out);
    if (len != strlen(out)) {
        api_invalid(rs, name, "query argument '%s' contains a NUL byte", name);
        return -1;
    }
    return 0;
}

int api_query_long(const api_req_t *rq, api_resp_t *rs, const char *name, long def, long min,
                   long max, long *out) {
    char v[32];
    int rc = api_query(rq, rs, name, v, sizeof v);
    if (rc < 0) return -1;
    if (rc == 1 || !v[0]) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || !(isdigit((unsigned char)v[0]) || v[0] == '-')) {
        api_invalid(rs, name, "query argument '%s' must be an integer, got '%s'", name, v);
        return -1;
    }
    if (x < min || x > max) {
        api_invalid(rs, name, "query argument '%s' must be between %ld and %ld, got %ld", name, min, max, x);
        return -1;
    }
    *out = x;
    return 0;
}

/* Reads exactly n digits into *out; returns the position after them or NULL. */
static const char *digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) return NULL;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return p + n;
}

int api_parse_iso8601(const char *s, double *out) {
    int Y, M, D, h = 0, m = 0, sec = 0;
    double frac = 0.0;
    long offset_s = 0;
    const char *p = s;
    if (!(p = digits(p, 4, &Y)) || *p++ != '-' || !(p = digits(p, 2, &M)) || *p++ != '-' ||
        !(p = digits(p, 2, &D)))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!(p = digits(p, 2, &h)) || *p++ != ':' || !(p = digits(p, 2, &m))) return -1;
        if (*p == ':') {
            p++;
            if (!(p = digits(p, 2, &sec))) return -1;
            if (*p == '.' || *p == ',') {
                p++;
                double scale = 0.1;
                if (!isdigit((unsigned char)*p)) return -1;
                while (isdigit((unsigned char)*p)) {
                    frac += (*p++ - '0') * scale;
                    scale /= 10;
                }
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!(p = digits(p, 2, &oh))) return -1;
            if (*p == ':') p++;
            if (*p && !(p = digits(p, 2, &om))) return -1;
            if (oh > 23 || om > 59) return -1;
            offset_s = sign * (oh * 3600L + om * 60L);
        }
    }
    if (*p) return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (tm.tm_mday != D && sec != 60) return -1; /* 2026-02-30 normalised into March */
    *out = (double)t + frac - (double)offset_s;
    return 0;
}

int api_scalar_ok(const json_t *v, int allow_null) {
    return json_is_number(v) || json_is_string(v) || json_is_boolean(v) || (allow_null && json_is_null(v));
}
