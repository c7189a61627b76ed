/* The SQLite store's read side: every read runs on a pooled read connection of its own, so
 * reads never wait for the writer (WAL) and never touch the writer's connection. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store_sqlite_int.h"

/* ---- reads ----------------------------------------------------------------------------- */

#define READ_BEGIN(q)                              \
    conn_t *c = sq_rconn_get(st);                     \
    if (!c) return -1;                             \
    sqlite3_stmt *s = sq_stmt(c, q);                  \
    if (!s) { sq_rconn_put(st, c); return -1; }

#define READ_END() do { sq_done_stmt(s); sq_rconn_put(st, c); } while (0)

int store_entity_get(store_t *st, const char *id, char **props_json, uint64_t *version) {
    READ_BEGIN(Q_ENT_GET);
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW) {
        ret = 0;
        if (props_json && !(*props_json = strdup((const char *)sqlite3_column_text(s, 0)))) ret = -1;
        if (version) *version = (uint64_t)sqlite3_column_int64(s, 1);
    } else {
        ret = rc == SQLITE_DONE ? 1 : -1;
    }
    READ_END();
    return ret;
}

/* Entities first, remembering key -> id, then relationships by key (no join). */
int store_load_graph(store_t *st, graph_t *g, char *err, size_t errlen) {
    READ_BEGIN(Q_ENT_ALL);
    int rc, ret = 0;
    char **by_key = NULL;
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(s, 0);
        json_error_t je;
        json_t *props = json_loadb((const char *)sqlite3_column_text(s, 1), (size_t)sqlite3_column_bytes(s, 1), 0, &je);
        graph_upsert_entity(g, id, props, (uint64_t)sqlite3_column_int64(s, 2));
        json_decref(props);
        sqlite3_int64 k = sqlite3_column_int64(s, 3);
        if (k < 0) continue;
        if ((size_t)k >= cap) {
            size_t nc = cap ? cap : 1024;
            while (nc <= (size_t)k) nc *= 2;
            char **p = realloc(by_key, nc * sizeof *p);
            if (!p) { ret = -1; sq_seterr(err, errlen, "out of memory"); break; }
            memset(p + cap, 0, (nc - cap) * sizeof *p);
            by_key = p;
            cap = nc;
        }
        if (!(by_key[k] = strdup(id))) { ret = -1; sq_seterr(err, errlen, "out of memory"); break; }
    }
    if (!ret && rc != SQLITE_DONE) { sq_seterr(err, errlen, "store: loading entities: %s", sqlite3_errmsg(c->db)); ret = -1; }
    sq_done_stmt(s);
    if (!ret && (s = sq_stmt(c, Q_REL_ALL))) {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            sqlite3_int64 a = sqlite3_column_int64(s, 0), b = sqlite3_column_int64(s, 1);
            if (a >= 0 && b >= 0 && (size_t)a < cap && (size_t)b < cap && by_key[a] && by_key[b])
                graph_add_relationship(g, by_key[a], by_key[b], sqlite3_column_double(s, 2), 1);
        }
        if (rc != SQLITE_DONE) { sq_seterr(err, errlen, "store: loading relationships: %s", sqlite3_errmsg(c->db)); ret = -1; }
    } else if (!ret) {
        sq_seterr(err, errlen, "store: statement unavailable");
        ret = -1;
    }
    for (size_t i = 0; i < cap; i++) free(by_key[i]);
    free(by_key);
    READ_END();
    return ret;
}

static const char *const STATUS_NAMES[] = {"QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"};

const char *job_status_name(job_status_t s) {
    return (unsigned)s < 5 ? STATUS_NAMES[s] : "UNKNOWN";
}

int job_status_parse(const char *name, job_status_t *out) {
    for (int i = 0; name && i < 5; i++)
        if (!strcasecmp(name, STATUS_NAMES[i])) { *out = (job_status_t)i; return 0; }
    return -1;
}

int store_job_get(store_t *st, const char *id, store_job_t *out) {
    READ_BEGIN(Q_JOB_GET);
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s), ret = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
    if (rc == SQLITE_ROW) sq_read_job(s, out);
    READ_END();
    return ret;
}

int store_jobs_list(store_t *st, int status, const char *model, const char *cursor, int limit,
                    store_job_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit <= 0) limit = 100;
    READ_BEGIN(Q_JOB_LIST);
    store_job_t *jobs = malloc((size_t)limit * sizeof *jobs);
    if (!jobs) { READ_END(); return -1; }
    sqlite3_bind_int(s, 1, status);
    sq_bind_text(s, 2, model && model[0] ? model : NULL);
    sq_bind_text(s, 3, cursor && cursor[0] ? cursor : NULL);
    sqlite3_bind_int(s, 4, limit);
    int rc;
    size_t k = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < (size_t)limit) sq_read_job(s, &jobs[k++]);
    READ_END();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) { free(jobs); return -1; }
    *out = jobs;
    *n = k;
    return 0;
}

int store_job_load_work(store_t *st, const char *id, char **params_json, char **ids, size_t *ids_len) {
    *params_json = NULL;
    *ids = NULL;
    *ids_len = 0;
    READ_BEGIN(Q_JOB_WORK);
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s), ret = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
    if (rc == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        const void *b = sqlite3_column_blob(s, 1);
        *params_json = strdup((const char *)sqlite3_column_text(s, 0));
        *ids = malloc(len + 1);
        if (!*params_json || !*ids) {
            free(*params_json);
            free(*ids);
            *params_json = *ids = NULL;
            ret = -1;
        } else {
            if (len) memcpy(*ids, b, len);
            (*ids)[len] = 0;
            *ids_len = len;
        }
    }
    READ_END();
    return ret;
}

int store_job_settled_chunks(store_t *st, const char *id, uint8_t *settled, long n_chunks) {
    memset(settled, 0, (size_t)(n_chunks > 0 ? n_chunks : 0));
    READ_BEGIN(Q_CHUNK_LIST);
    int rc, ret = 0;
    sq_bind_text(s, 1, id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 ch = sqlite3_column_int64(s, 0);
        if (ch >= 0 && ch < n_chunks) settled[ch] = 1;
    }
    if (rc != SQLITE_DONE) ret = -1;
    sq_done_stmt(s);
    s = sq_stmt(c, Q_DL_DEAD_LIST);
    if (!s) { sq_rconn_put(st, c); return -1; }
    sq_bind_text(s, 1, id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sqlite3_int64 ch = sqlite3_column_int64(s, 0);
        if (ch >= 0 && ch < n_chunks && !settled[ch]) settled[ch] = 2;
    }
    if (rc != SQLITE_DONE) ret = -1;
    READ_END();
    return ret;
}

int store_jobs_unfinished(store_t *st, char (**ids)[32], size_t *n) {
    *ids = NULL;
    *n = 0;
    READ_BEGIN(Q_JOB_UNFINISHED);
    size_t cap = 0, k = 0;
    char (*arr)[32] = NULL;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            cap = cap ? cap * 2 : 64;
            char (*a)[32] = realloc(arr, cap * sizeof *a);
            if (!a) { ret = -1; break; }
            arr = a;
        }
        snprintf(arr[k++], 32, "%s", (const char *)sqlite3_column_text(s, 0));
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) ret = -1;
    READ_END();
    if (ret) { free(arr); return -1; }
    *ids = arr;
    *n = k;
    return 0;
}

int store_results_scan(store_t *st, const char *job_id, uint32_t from, uint32_t to,
                       void (*fn)(void *arg, uint32_t chunk, const void *blob, size_t len), void *arg) {
    READ_BEGIN(Q_RESULTS_SCAN);
    sq_bind_text(s, 1, job_id);
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, to);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(arg, (uint32_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
    READ_END();
    return rc == SQLITE_DONE ? 0 : -1;
}

int store_deadletters_list(store_t *st, long after_id, int limit, store_deadletter_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (limit <= 0) limit = 100;
    READ_BEGIN(Q_DL_LIST);
    store_deadletter_t *d = calloc((size_t)limit, sizeof *d);
    if (!d) { READ_END(); return -1; }
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int(s, 2, limit);
    int rc;
    size_t k = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && k < (size_t)limit) {
        store_deadletter_t *x = &d[k++];
        x->id = (long)sqlite3_column_int64(s, 0);
        snprintf(x->job_id, sizeof x->job_id, "%s", (const char *)sqlite3_column_text(s, 1));
        x->chunk = (uint32_t)sqlite3_column_int64(s, 2);
        x->attempts = sqlite3_column_int(s, 3);
        x->created_at = sqlite3_column_int64(s, 4);
        snprintf(x->reason, sizeof x->reason, "%s", (const char *)sqlite3_column_text(s, 5));
    }
    READ_END();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) { free(d); return -1; }
    *out = d;
    *n = k;
    return 0;
}

int store_observations_get(store_t *st, const char *id, const char *series, double from_ts, double to_ts,
                           double **ts, double **values, size_t *n) {
    *ts = *values = NULL;
    *n = 0;
    READ_BEGIN(Q_OBS_GET);
    sq_bind_text(s, 1, id);
    sq_bind_text(s, 2, series && series[0] ? series : "value");
    sqlite3_bind_double(s, 3, from_ts);
    sqlite3_bind_double(s, 4, to_ts);
    size_t cap = 0, k = 0;
    double *t = NULL, *v = NULL;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            cap = cap ? cap * 2 : 256;
            double *t2 = realloc(t, cap * sizeof *t2);
            if (t2) t = t2;
            double *v2 = realloc(v, cap * sizeof *v2);
            if (v2) v = v2;
            if (!t2 || !v2) { ret = -1; break; }
        }
        t[k] = sqlite3_column_double(s, 0);
        v[k] = sqlite3_column_double(s, 1);
        k++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) ret = -1;
    READ_END();
    if (ret) { free(t); free(v); return -1; }
    *ts = t;
    *values = v;
    *n = k;
    return 0;
}

int store_job_counts(store_t *st, long counts[5]) {
    for (int i = 0; i < 5; i++) counts[i] = 0;
    READ_BEGIN(Q_JOB_COUNTS);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int k = sqlite3_column_int(s, 0);
        if (k >= 0 && k < 5) counts[k] = (long)sqlite3_column_int64(s, 1);
    }
    READ_END();
    return rc == SQLITE_DONE ? 0 : -1;
}
