/* CSV import (RFC 4180). One pass over the file: a reader splits records into fields
 * (quoted fields may hold commas, quotes as "" and newlines), then each kind turns the
 * fields into rows. Every bad row is reported by the line it starts on; parsing goes on to
 * collect up to max_errors reports, and any error means no rows are returned. */
#include "store/csv.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CSV_ID_MAX 256

/* ---- reader -------------------------------------------------------------------------- */

typedef struct {
    const char *data;
    size_t len, pos;
    long line;       /* line the reader is on (1-based) */
    buf_t scratch;   /* the current record's fields, each NUL-terminated */
    size_t *off, *flen;
    size_t nf, capf;
} csv_reader_t;

typedef struct {
    buf_t *out;
    int max;
    int count;
} csv_errs_t;

static void err_add(csv_errs_t *e, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_add(csv_errs_t *e, long line, const char *fmt, ...) {
    e->count++;
    if (!e->out || e->count > e->max) return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_printf(e->out, "line %ld: %s\n", line, msg);
}

static void err_finish(csv_errs_t *e) {
    if (e->out && e->count > e->max) buf_printf(e->out, "(%d more errors not shown)\n", e->count - e->max);
}

static int field_push(csv_reader_t *r, size_t off) {
    if (r->nf == r->capf) {
        size_t cap = r->capf ? r->capf * 2 : 16;
        size_t *o = realloc(r->off, cap * sizeof *o);
        if (!o) return -1;
        r->off = o;
        size_t *l = realloc(r->flen, cap * sizeof *l);
        if (!l) return -1;
        r->flen = l;
        r->capf = cap;
    }
    r->off[r->nf] = off;
    r->flen[r->nf] = r->scratch.len - off;
    r->nf++;
    buf_putc(&r->scratch, 0);
    return 0;
}

static void skip_line(csv_reader_t *r) {
    while (r->pos < r->len && r->data[r->pos] != '\n' && r->data[r->pos] != '\r') r->pos++;
    if (r->pos < r->len && r->data[r->pos] == '\r') r->pos++;
    if (r->pos < r->len && r->data[r->pos] == '\n') r->pos++;
    r->line++;
}

/* Reads one record. 1 read (fields in r), 0 end of input, -1 malformed (msg filled; the
 * reader has moved past the bad record). *line: the line the record starts on. */
static int csv_next(csv_reader_t *r, long *line, char *msg, size_t msglen) {
    const char *d = r->data;
    /* blank lines are skipped */
    while (r->pos < r->len) {
        if (d[r->pos] == '\n') { r->pos++; r->line++; continue; }
        if (d[r->pos] == '\r') {
            r->pos++;
            if (r->pos < r->len && d[r->pos] == '\n') r->pos++;
            r->line++;
            continue;
        }
        break;
    }
    if (r->pos >= r->len) return 0;
    *line = r->line;
    buf_reset(&r->scratch);
    r->nf = 0;
    for (;;) {
        size_t off = r->scratch.len;
        if (r->pos < r->len && d[r->pos] == '"') {
            r->pos++;
            for (;;) {
                if (r->pos >= r->len) {
                    snprintf(msg, msglen, "unterminated quoted field");
                    return -1;
                }
                char c = d[r->pos];
                if (c == '"') {
                    if (r->pos + 1 < r->len && d[r->pos + 1] == '"') { buf_putc(&r->scratch, '"'); r->pos += 2; continue; }
                    r->pos++;
                    break;
                }
                /* a run of plain bytes at once */
                size_t s = r->pos;
                while (r->pos < r->len && d[r->pos] != '"') {
                    if (d[r->pos] == '\n') r->line++;
                    r->pos++;
                }
                buf_append(&r->scratch, d + s, r->pos - s);
            }
            if (r->pos < r->len && d[r->pos] != ',' && d[r->pos] != '\n' && d[r->pos] != '\r') {
                snprintf(msg, msglen, "unexpected character after a closing quote");
                skip_line(r);
                return -1;
            }
        } else {
            size_t s = r->pos;
            while (r->pos < r->len && d[r->pos] != ',' && d[r->pos] != '\n' && d[r->pos] != '\r') r->pos++;
            buf_append(&r->scratch, d + s, r->pos - s);
        }
        if (field_push(r, off) || r->scratch.oom) {
            snprintf(msg, msglen, "out of memory");
            r->pos = r->len;
            return -1;
        }
        if (r->pos >= r->len) return 1;
        char c = d[r->pos++];
        if (c == ',') continue;
        if (c == '\r' && r->pos < r->len && d[r->pos] == '\n') r->pos++;
        r->line++;
        return 1;
    }
}

static const char *fld(const csv_reader_t *r, size_t i) { return r->scratch.data + r->off[i]; }
static size_t fld_len(const csv_reader_t *r, size_t i) { return r->flen[i]; }

static void reader_init(csv_reader_t *r, const char *data, size_t len) {
    memset(r, 0, sizeof *r);
    r->data = data;
    r->len = len;
    r->line = 1;
    if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB && (unsigned char)data[2] == 0xBF)
        r->pos = 3; /* UTF-8 byte order mark */
}

static void reader_free(csv_reader_t *r) {
    buf_free(&r->scratch);
    free(r->off);
    free(r->flen);
}

/* ---- values ---------------------------------------------------------------------------- */


/* An id: 1..256 bytes of UTF-8. NULL when fine, else the reason. */
static const char *id_problem(const char *s, size_t n) {
    if (n == 0) return "is empty";
    if (n > CSV_ID_MAX) return "is longer than 256 bytes";
    if (!utf8_valid((const char *)s, n)) return "is not valid UTF-8";
    return NULL;
}

/* Decimal number grammar: [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?, surrounding blanks
 * allowed. 0 not a number, 1 integer literal, 2 other number. Words like nan/inf and hex
 * are not numbers here. */
static int number_kind(const char *s, size_t n, const char **start, size_t *slen) {
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
    size_t i = a;
    int kind = 1;
    if (i < b && (s[i] == '+' || s[i] == '-')) i++;
    size_t d0 = i;
    while (i < b && s[i] >= '0' && s[i] <= '9') i++;
    size_t nint = i - d0, nfrac = 0;
    if (i < b && s[i] == '.') {
        kind = 2;
        i++;
        size_t f0 = i;
        while (i < b && s[i] >= '0' && s[i] <= '9') i++;
        nfrac = i - f0;
    }
    if (nint + nfrac == 0) return 0;
    if (i < b && (s[i] == 'e' || s[i] == 'E')) {
        kind = 2;
        i++;
        if (i < b && (s[i] == '+' || s[i] == '-')) i++;
        size_t e0 = i;
        while (i < b && s[i] >= '0' && s[i] <= '9') i++;
        if (i == e0) return 0;
    }
    if (i != b) return 0;
    *start = s + a;
    *slen = b - a;
    return kind;
}

/* Parses a required finite number. 0 ok, -1 not a number, -2 not finite. */
static int parse_finite(const char *s, size_t n, double *out) {
    const char *p;
    size_t len;
    if (!number_kind(s, n, &p, &len)) return -1;
    char tmp[128];
    if (len >= sizeof tmp) return -1;
    memcpy(tmp, p, len);
    tmp[len] = 0;
    double v = strtod(tmp, NULL);
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, size_t *i, int count, int *out) {
    int v = 0;
    for (int k = 0; k < count; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') return -1;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return 0;
}

/* ISO 8601: YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|(+|-)hh[:mm]]; no offset = UTC. */
static int parse_iso8601(const char *s, size_t n, double *out) {
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    double frac = 0, off_s = 0;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || digits(s, n, &i, 2, &d))
        return -1;
    if (mo < 1 || mo > 12) return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi)) return -1;
        if (i < n && s[i] == ':') {
            i++;
            if (digits(s, n, &i, 2, &sec)) return -1;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                double scale = 0.1;
                size_t f0 = i;
                while (i < n && s[i] >= '0' && s[i] <= '9') { frac += (s[i] - '0') * scale; scale /= 10; i++; }
                if (i == f0) return -1;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) return -1;
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) i++;
        else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
            if (digits(s, n, &i, 2, &oh)) return -1;
            if (i < n && s[i] == ':') i++;
            if (i < n && digits(s, n, &i, 2, &om)) return -1;
            if (oh > 23 || om > 59) return -1;
            off_s = sign * (oh * 3600.0 + om * 60.0);
        }
    }
    if (i != n) return -1;
    *out = (double)days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec + frac - off_s;
    return 0;
}

/* ---- header ---------------------------------------------------------------------------- */

typedef struct {
    char **names;
    size_t n;
} csv_header_t;

static void header_free(csv_header_t *h) {
    for (size_t i = 0; i < h->n; i++) free(h->names[i]);
    free(h->names);
    h->names = NULL;
    h->n = 0;
}

/* Reads the header row: names trimmed of blanks, non-empty, unique. 0 ok, -1 reported. */
static int header_read(csv_reader_t *r, csv_header_t *h, csv_errs_t *e) {
    char msg[128];
    long line = 1;
    int rc = csv_next(r, &line, msg, sizeof msg);
    if (rc == 0) { err_add(e, 1, "missing header row"); return -1; }
    if (rc < 0) { err_add(e, line, "%s", msg); return -1; }
    h->names = calloc(r->nf, sizeof *h->names);
    if (!h->names) { err_add(e, line, "out of memory"); return -1; }
    for (size_t i = 0; i < r->nf; i++) {
        const char *s = fld(r, i);
        size_t n = fld_len(r, i);
        while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        h->names[i] = strndup(s, n);
        h->n = i + 1;
        if (!h->names[i]) { err_add(e, line, "out of memory"); return -1; }
        if (n == 0) { err_add(e, line, "column %zu has no name", i + 1); return -1; }
        if (!utf8_valid((const char *)s, n)) { err_add(e, line, "column %zu name is not valid UTF-8", i + 1); return -1; }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(h->names[j], h->names[i])) { err_add(e, line, "duplicate column '%s'", h->names[i]); return -1; }
    }
    return 0;
}

static long header_find(const csv_header_t *h, const char *name) {
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->names[i], name)) return (long)i;
    return -1;
}

/* Grows a row array by one slot. */
static void *grow(void *rows, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return rows;
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(rows, c * size);
    if (p) *cap = c;
    return p;
}

static int record_width_ok(const csv_reader_t *r, const csv_header_t *h, long line, csv_errs_t *e) {
    if (r->nf == h->n) return 1;
    err_add(e, line, "expected %zu fields, got %zu", h->n, r->nf);
    return 0;
}

static int check_id(const csv_reader_t *r, size_t col, const char *what, long line, csv_errs_t *e) {
    const char *p = id_problem(fld(r, col), fld_len(r, col));
    if (!p) return 1;
    err_add(e, line, "%s %s", what, p);
    return 0;
}

int csv_kind_parse(const char *name, csv_kind_t *kind) {
    if (!name) return -1;
    if (!strcmp(name, "entities")) *kind = CSV_ENTITIES;
    else if (!strcmp(name, "relationships")) *kind = CSV_RELATIONSHIPS;
    else if (!strcmp(name, "observations")) *kind = CSV_OBSERVATIONS;
    else return -1;
    return 0;
}

/* ---- entities -------------------------------------------------------------------------- */

long csv_parse_entities(const char *data, size_t len, entity_row_t **rows_out, buf_t *errors, int max_errors) {
    csv_reader_t r;
    csv_header_t h = {0};
    csv_errs_t e = {errors, max_errors < 1 ? 1 : max_errors, 0};
    entity_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    char msg[128];
    long line;
    *rows_out = NULL;
    reader_init(&r, data, len);
    if (header_read(&r, &h, &e)) goto done;
    long idc = header_find(&h, "entity_id");
    if (idc < 0) { err_add(&e, 1, "missing column 'entity_id'"); goto done; }
    int rc;
    while ((rc = csv_next(&r, &line, msg, sizeof msg)) != 0) {
        if (rc < 0) { err_add(&e, line, "%s", msg); continue; }
        if (!record_width_ok(&r, &h, line, &e) || !check_id(&r, (size_t)idc, "entity_id", line, &e)) continue;
        json_t *props = json_object();
        int bad = !props;
        for (size_t c = 0; c < h.n && !bad; c++) {
            if ((long)c == idc || fld_len(&r, c) == 0) continue;
            const char *s = fld(&r, c), *p;
            size_t sl = fld_len(&r, c), pl;
            json_t *v = NULL;
            int kind = number_kind(s, sl, &p, &pl);
            if (kind) {
                char tmp[128];
                if (pl >= sizeof tmp) { err_add(&e, line, "property '%s' value is too long for a number", h.names[c]); bad = 1; break; }
                memcpy(tmp, p, pl);
                tmp[pl] = 0;
                double d = strtod(tmp, NULL);
                if (!isfinite(d)) { err_add(&e, line, "property '%s' value '%s' is not a finite number", h.names[c], tmp); bad = 1; break; }
                if (kind == 1) {
                    errno = 0;
                    long long ll = strtoll(tmp, NULL, 10);
                    v = errno == ERANGE ? json_real(d) : json_integer(ll);
                } else {
                    v = json_real(d);
                }
            } else {
                if (!utf8_valid((const char *)s, sl)) { err_add(&e, line, "property '%s' is not valid UTF-8", h.names[c]); bad = 1; break; }
                v = json_stringn_nocheck(s, sl);
            }
            if (!v || json_object_set_new_nocheck(props, h.names[c], v)) { err_add(&e, line, "out of memory"); bad = 1; }
        }
        if (bad || e.count) { json_decref(props); continue; }
        entity_row_t *g = grow(rows, &cap, n, sizeof *rows);
        char *id = strndup(fld(&r, (size_t)idc), fld_len(&r, (size_t)idc));
        if (!g || !id) { free(id); json_decref(props); err_add(&e, line, "out of memory"); if (g) rows = g; continue; }
        rows = g;
        rows[n].line = line;
        rows[n].entity_id = id;
        rows[n].props = props;
        n++;
    }
done:
    reader_free(&r);
    header_free(&h);
    if (e.count) { err_finish(&e); entity_rows_free(rows, n); return -1; }
    *rows_out = rows;
    return (long)n;
}

/* The fixed columns of a kind: col[i] = the position of names[i] (-1 absent); the first
 * n_required must be there, and no other column may. 0 ok, -1 with the errors added. */
static int header_columns(const csv_header_t *h, csv_errs_t *e, const char *const *names, int n_names,
                          int n_required, long *col, const char *expected) {
    int before = e->count;
    for (int i = 0; i < n_names; i++) {
        col[i] = header_find(h, names[i]);
        if (i < n_required && col[i] < 0) err_add(e, 1, "missing column '%s'", names[i]);
    }
    for (size_t c = 0; c < h->n; c++) {
        int i = 0;
        while (i < n_names && col[i] != (long)c) i++;
        if (i == n_names) err_add(e, 1, "unknown column '%s' (expected %s)", h->names[c], expected);
    }
    return e->count > before ? -1 : 0;
}

/* ---- relationships --------------------------------------------------------------------- */

long csv_parse_relationships(const char *data, size_t len, rel_row_t **rows_out, buf_t *errors, int max_errors) {
    csv_reader_t r;
    csv_header_t h = {0};
    csv_errs_t e = {errors, max_errors < 1 ? 1 : max_errors, 0};
    rel_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    char msg[128];
    long line;
    *rows_out = NULL;
    reader_init(&r, data, len);
    if (header_read(&r, &h, &e)) goto done;
    static const char *const COLS[] = {"source", "target", "weight", "type"};
    long col[4];
    if (header_columns(&h, &e, COLS, 4, 2, col, "source,target[,weight][,type]")) goto done;
    const long sc = col[0], tc = col[1], wc = col[2], yc = col[3];
    int rc;
    while ((rc = csv_next(&r, &line, msg, sizeof msg)) != 0) {
        if (rc < 0) { err_add(&e, line, "%s", msg); continue; }
        if (!record_width_ok(&r, &h, line, &e)) continue;
        int ok = check_id(&r, (size_t)sc, "source", line, &e);
        ok &= check_id(&r, (size_t)tc, "target", line, &e);
        double w = 1.0;
        if (wc >= 0 && fld_len(&r, (size_t)wc) > 0) {
            int pr = parse_finite(fld(&r, (size_t)wc), fld_len(&r, (size_t)wc), &w);
            if (pr) {
                err_add(&e, line, "weight '%.64s' is not %s", fld(&r, (size_t)wc), pr == -2 ? "a finite number" : "a number");
                ok = 0;
            }
        }
        if (yc >= 0) {
            size_t yl = fld_len(&r, (size_t)yc);
            if (yl > CSV_ID_MAX || !utf8_valid((const char *)fld(&r, (size_t)yc), yl)) {
                err_add(&e, line, "type %s", yl > CSV_ID_MAX ? "is longer than 256 bytes" : "is not valid UTF-8");
                ok = 0;
            }
        }
        if (!ok || e.count) continue;
        rel_row_t *g = grow(rows, &cap, n, sizeof *rows);
        if (!g) { err_add(&e, line, "out of memory"); continue; }
        rows = g;
        rel_row_t *row = &rows[n];
        row->line = line;
        row->weight = w;
        row->source = strndup(fld(&r, (size_t)sc), fld_len(&r, (size_t)sc));
        row->target = strndup(fld(&r, (size_t)tc), fld_len(&r, (size_t)tc));
        row->type = yc >= 0 ? strndup(fld(&r, (size_t)yc), fld_len(&r, (size_t)yc)) : strdup("");
        n++;
        if (!row->source || !row->target || !row->type) err_add(&e, line, "out of memory");
    }
done:
    reader_free(&r);
    header_free(&h);
    if (e.count) { err_finish(&e); rel_rows_free(rows, n); return -1; }
    *rows_out = rows;
    return (long)n;
}

/* ---- observations ---------------------------------------------------------------------- */

long csv_parse_observations(const char *data, size_t len, obs_row_t **rows_out, buf_t *errors, int max_errors) {
    csv_reader_t r;
    csv_header_t h = {0};
    csv_errs_t e = {errors, max_errors < 1 ? 1 : max_errors, 0};
    obs_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    char msg[128];
    long line;
    *rows_out = NULL;
    reader_init(&r, data, len);
    if (header_read(&r, &h, &e)) goto done;
    static const char *const COLS[] = {"entity_id", "timestamp", "value", "series"};
    long col[4];
    if (header_columns(&h, &e, COLS, 4, 3, col, "entity_id,timestamp,value[,series]")) goto done;
    const long ic = col[0], tc = col[1], vc = col[2], sc = col[3];
    int rc;
    while ((rc = csv_next(&r, &line, msg, sizeof msg)) != 0) {
        if (rc < 0) { err_add(&e, line, "%s", msg); continue; }
        if (!record_width_ok(&r, &h, line, &e)) continue;
        int ok = check_id(&r, (size_t)ic, "entity_id", line, &e);
        double ts = 0, v = 0;
        const char *ts_s = fld(&r, (size_t)tc);
        size_t ts_l = fld_len(&r, (size_t)tc);
        int pr = parse_finite(ts_s, ts_l, &ts);
        if (pr == -2 || (pr == -1 && parse_iso8601(ts_s, ts_l, &ts))) {
            err_add(&e, line, "timestamp '%.64s' is neither epoch seconds nor ISO 8601", ts_s);
            ok = 0;
        }
        pr = parse_finite(fld(&r, (size_t)vc), fld_len(&r, (size_t)vc), &v);
        if (pr) {
            err_add(&e, line, "value '%.64s' is not %s", fld(&r, (size_t)vc), pr == -2 ? "a finite number" : "a number");
            ok = 0;
        }
        const char *series = "value";
        size_t series_l = 5;
        if (sc >= 0 && fld_len(&r, (size_t)sc) > 0) {
            series = fld(&r, (size_t)sc);
            series_l = fld_len(&r, (size_t)sc);
            const char *p = id_problem(series, series_l);
            if (p) { err_add(&e, line, "series %s", p); ok = 0; }
        }
        if (!ok || e.count) continue;
        obs_row_t *g = grow(rows, &cap, n, sizeof *rows);
        if (!g) { err_add(&e, line, "out of memory"); continue; }
        rows = g;
        obs_row_t *row = &rows[n];
        row->line = line;
        row->ts = ts;
        row->value = v;
        row->entity_id = strndup(fld(&r, (size_t)ic), fld_len(&r, (size_t)ic));
        row->series = strndup(series, series_l);
        n++;
        if (!row->entity_id || !row->series) err_add(&e, line, "out of memory");
    }
done:
    reader_free(&r);
    header_free(&h);
    if (e.count) { err_finish(&e); obs_rows_free(rows, n); return -1; }
    *rows_out = rows;
    return (long)n;
}

/* ---- generic records (csv_parse_records) ------------------------------------------------ */

int csv_parse_time(const char *s, double *out) {
    size_t n = strlen(s);
    int pr = parse_finite(s, n, out);
    if (pr == 0) return 0;
    if (pr == -2) return -1;
    return parse_iso8601(s, n, out) ? -1 : 0;
}

long csv_parse_records(const char *data, size_t len, csv_header_fn on_header, csv_record_fn fn, void *arg,
                       buf_t *errors, int max_errors) {
    csv_reader_t r;
    csv_header_t h = {0};
    csv_errs_t e = {errors, max_errors < 1 ? 1 : max_errors, 0};
    const char **fields = NULL;
    long n = 0, line;
    char msg[256];
    reader_init(&r, data, len);
    if (header_read(&r, &h, &e)) goto done;
    msg[0] = 0;
    if (on_header && on_header(arg, (const char *const *)h.names, h.n, msg, sizeof msg)) {
        err_add(&e, 1, "%s", msg);
        goto done;
    }
    fields = calloc(h.n ? h.n : 1, sizeof *fields);
    if (!fields) { err_add(&e, 1, "out of memory"); goto done; }
    int rc;
    while ((rc = csv_next(&r, &line, msg, sizeof msg)) != 0) {
        if (rc < 0) { err_add(&e, line, "%s", msg); continue; }
        if (!record_width_ok(&r, &h, line, &e)) continue;
        for (size_t i = 0; i < h.n; i++) fields[i] = fld(&r, i);
        msg[0] = 0;
        if (fn(arg, line, (const char *const *)h.names, h.n, fields, msg, sizeof msg)) {
            err_add(&e, line, "%s", msg[0] ? msg : "bad row");
            continue;
        }
        n++;
    }
done:
    free(fields);
    reader_free(&r);
    header_free(&h);
    if (e.count) { err_finish(&e); return -1; }
    return n;
}
