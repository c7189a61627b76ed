/* Result blobs and result pages.
 *
 * A page walks entity offsets [cursor, cursor + limit) in submission order. Chunk c holds
 * entities [c * chunk_size, (c + 1) * chunk_size). A done chunk's entities come from its
 * blob; a dead chunk's (or, in a cancelled job, a never-run chunk's) come from the job's
 * ids with an error; a pending chunk ends the page there, so next_cursor lets a client poll
 * from exactly that entity. */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PAGE 10000

static void put_u16(buf_t *b, uint16_t v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_append(b, x, 2);
}

static void put_u32(buf_t *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_append(b, x, 4);
}

int jobs_blob_encode(buf_t *out, const char *const *ids, uint32_t n, int n_outputs,
                     const uint8_t *codes, const double *values) {
    if (n_outputs < 0 || n_outputs > 0xffff) return -1;
    put_u32(out, n);
    put_u16(out, (uint16_t)n_outputs);
    const size_t vbytes = (size_t)n_outputs * 8;
    for (uint32_t k = 0; k < n; k++) {
        size_t len = strlen(ids[k]);
        if (len > 0xffff) return -1;
        if (buf_reserve(out, 3 + len + vbytes) < 0) return -1;
        unsigned char *p = (unsigned char *)out->data + out->len;
        p[0] = codes[k];
        p[1] = (unsigned char)len;
        p[2] = (unsigned char)(len >> 8);
        memcpy(p + 3, ids[k], len);
        p += 3 + len;
        const double *v = values + (size_t)k * (size_t)n_outputs;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(p, v, vbytes); /* the blob is little-endian */
#else
        for (int o = 0; o < n_outputs; o++) {
            uint64_t x;
            memcpy(&x, &v[o], 8);
            for (int i = 0; i < 8; i++) p[8 * o + i] = (unsigned char)(x >> (8 * i));
        }
#endif
        out->len += 3 + len + vbytes;
    }
    if (buf_reserve(out, 0) < 0) return -1;
    out->data[out->len] = 0;
    return 0;
}

#define SUMMARY_MAGIC "PDSM"

void jobs_blob_add_summary(buf_t *blob, const model_t *md, const void *state) {
    buf_t js = {0};
    if (md->xSummary(state, &js) == 0 && !js.oom && js.len < 0xffffffffu) {
        buf_append(blob, SUMMARY_MAGIC, 4);
        put_u32(blob, (uint32_t)js.len);
        buf_append(blob, js.data, js.len);
    }
    buf_free(&js);
}

/* Reader over one blob. */
typedef struct {
    const uint8_t *p, *end;
    uint32_t n, next;
    uint16_t n_outputs;
} blob_reader_t;

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int reader_init(blob_reader_t *r, const void *blob, size_t len) {
    r->p = blob;
    r->end = r->p + len;
    r->next = 0;
    if (len < 6) return -1;
    r->n = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->n_outputs = get_u16(r->p + 4);
    r->p += 6;
    return 0;
}

/* The next entity: 0 ok, -1 end or corrupt. values: n_outputs doubles. */
static int reader_next(blob_reader_t *r, uint8_t *code, const char **id, size_t *id_len,
                       double *values, int max_values) {
    if (r->next >= r->n || r->end - r->p < 3) return -1;
    *code = r->p[0];
    *id_len = get_u16(r->p + 1);
    r->p += 3;
    size_t need = *id_len + (size_t)r->n_outputs * 8;
    if ((size_t)(r->end - r->p) < need) return -1;
    *id = (const char *)r->p;
    r->p += *id_len;
    for (int o = 0; o < r->n_outputs; o++) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (o < max_values) memcpy(&values[o], r->p, 8); /* the blob is little-endian */
#else
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--) v = v << 8 | r->p[i];
        if (o < max_values) memcpy(&values[o], &v, 8);
#endif
        r->p += 8;
    }
    r->next++;
    return 0;
}

typedef struct {
    uint32_t from;
    long n;
    char **blobs;   /* [chunk - from] copies (borrowed: pointers into a recent entry) */
    size_t *lens;
    int borrowed;
} scan_t;

static void scan_fn(void *arg, uint32_t chunk, const void *blob, size_t len) {
    scan_t *s = arg;
    if (chunk < s->from || (long)(chunk - s->from) >= s->n) return;
    size_t k = chunk - s->from;
    if (s->blobs[k]) return;
    s->blobs[k] = malloc(len ? len : 1);
    if (!s->blobs[k]) return;
    memcpy(s->blobs[k], blob, len);
    s->lens[k] = len;
}

/* The dead letter's reason for (job, chunk): the newest one. */
static void dead_reason(jobs_t *j, const char *job_id, uint32_t chunk, char *out, size_t outlen) {
    snprintf(out, outlen, "chunk failed after retries");
    long after = 0;
    for (;;) {
        store_deadletter_t *dl = NULL;
        size_t n = 0;
        if (store_deadletters_list(j->st, after, 1000, &dl, &n) != 0 || n == 0) {
            free(dl);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(dl[i].job_id, job_id) == 0 && dl[i].chunk == chunk)
                snprintf(out, outlen, "%s", dl[i].reason);
            if (dl[i].id > after) after = dl[i].id;
        }
        free(dl);
        if (n < 1000) return;
    }
}

static void put_error(buf_t *out, const char *id, size_t id_len, const char *code, const char *msg) {
    buf_puts(out, "{\"entity_id\":");
    buf_json_str(out, id, id_len);
    buf_puts(out, ",\"error\":{\"code\":");
    buf_json_str(out, code, strlen(code));
    buf_puts(out, ",\"message\":");
    buf_json_str(out, msg, strlen(msg));
    buf_puts(out, "}}");
}

int jobs_job_get(jobs_t *j, const char *id, store_job_t *job) {
    const jobs_recent_entry_t *rec = jobs_recent_get(j->recent, id, job);
    if (rec) {
        jobs_recent_release(j->recent, rec);
        return 0;
    }
    return store_job_get(j->st, id, job);
}

int jobs_results_page(jobs_t *j, const char *id, const char *cursor, int limit, buf_t *out,
                      jobs_error_t *err) {
    store_job_t job;
    /* a job done in its submission is usually still at hand (jobs_recent.c) */
    const jobs_recent_entry_t *rec = jobs_recent_get(j->recent, id, &job);
    if (!rec && store_job_get(j->st, id, &job) != 0) return 1;
    long off = 0;
    if (cursor && *cursor) {
        char *end = NULL;
        long long v = strtoll(cursor, &end, 10);
        if (cursor[0] < '0' || cursor[0] > '9' || *end || v > job.n_entities) {
            if (err) {
                memset(err, 0, sizeof *err);
                err->http_status = 400;
                snprintf(err->code, sizeof err->code, "invalid_cursor");
                snprintf(err->field, sizeof err->field, "cursor");
                snprintf(err->message, sizeof err->message,
                         "cursor must be a next_cursor returned by this endpoint");
            }
            jobs_recent_release(j->recent, rec);
            return -1;
        }
        off = (long)v;
    }
    if (limit < 1) limit = 1;
    if (limit > MAX_PAGE) limit = MAX_PAGE;
    const model_t *md = jobs_model_find(j, job.model);
    const long cs = job.chunk_size > 0 ? job.chunk_size : 1;
    const long n_ent = job.n_entities;
    uint8_t *settled = calloc((size_t)(job.n_chunks > 0 ? job.n_chunks : 1), 1);
    long end_e = off + limit < n_ent ? off + limit : n_ent;
    scan_t sc = {0};
    job_work_t *work = NULL;
    long dead_entities = 0; /* a cancelled job's never-run ones (the store counts dead chunks') */
    int rc = 0;
    if (settled && rec) {
        memset(settled, 1, (size_t)job.n_chunks); /* every chunk, with its blob */
    } else if (!settled || store_job_settled_chunks(j->st, job.id, settled, job.n_chunks) != 0) {
        rc = -2;
        goto done;
    }
    if (job.status == JOB_QUEUED || job.status == JOB_PROCESSING) {
        /* The job row was read before the chunk marks: when the last chunk settled in between,
         * its commit (the same transaction) already made the job final; read it again so a
         * page with every result never says it is still running. */
        long k = 0;
        while (k < job.n_chunks && settled[k]) k++;
        if (k == job.n_chunks && store_job_get(j->st, id, &job) != 0) {
            rc = -2;
            goto done;
        }
    }
    for (long c = 0; c < job.n_chunks; c++) {
        if (!(settled[c] == 0 && job.status == JOB_CANCELLED)) continue;
        long size = n_ent - c * cs < cs ? n_ent - c * cs : cs;
        dead_entities += size;
    }
    if (end_e > off) {
        sc.from = (uint32_t)(off / cs);
        sc.n = (end_e - 1) / cs - sc.from + 1;
        sc.blobs = calloc((size_t)sc.n, sizeof *sc.blobs);
        sc.lens = calloc((size_t)sc.n, sizeof *sc.lens);
        if (!sc.blobs || !sc.lens) { rc = -2; goto done; }
        if (rec) {
            sc.borrowed = 1;
            for (long k = 0; k < sc.n; k++) {
                const void *b;
                jobs_recent_blob(rec, sc.from + (uint32_t)k, &b, &sc.lens[k]);
                sc.blobs[k] = (char *)b;
            }
        } else if (store_results_scan(j->st, job.id, sc.from, (uint32_t)(sc.from + sc.n - 1), scan_fn, &sc) != 0) {
            rc = -2;
            goto done;
        }
    }

    /* room for the whole page at once: ~170 bytes an entity for the models' outputs */
    buf_reserve(out, (size_t)(end_e > off ? end_e - off : 0) * 192 + 256);
    buf_puts(out, "{\"job_id\":");
    buf_json_str(out, job.id, strlen(job.id));
    buf_puts(out, ",\"status\":");
    const char *st = job_status_name(job.status);
    buf_json_str(out, st, strlen(st));
    buf_puts(out, ",\"results\":[");
    long e = off;
    int first = 1;
    double vals[64];
    char msg[512];
    while (e < end_e) {
        long c = e / cs;
        long c_end = (c + 1) * cs < end_e ? (c + 1) * cs : end_e;
        char *blob = sc.blobs ? sc.blobs[c - sc.from] : NULL;
        if (settled[c] == 1 && blob) {
            blob_reader_t r;
            uint8_t code;
            const char *eid;
            size_t eid_len;
            if (reader_init(&r, blob, sc.lens[c - sc.from]) < 0) break;
            long k = c * cs, ok = 1;
            for (; k < e && ok; k++) ok = reader_next(&r, &code, &eid, &eid_len, vals, 64) == 0;
            for (; e < c_end && ok; e++) {
                if (reader_next(&r, &code, &eid, &eid_len, vals, 64) < 0) { ok = 0; break; }
                if (!first) buf_putc(out, ',');
                first = 0;
                if (code == MODEL_OK && md && md->xRender) {
                    buf_puts(out, "{\"entity_id\":");
                    buf_json_str(out, eid, eid_len);
                    buf_puts(out, ",\"prediction\":");
                    md->xRender(vals, r.n_outputs < 64 ? r.n_outputs : 64, out);
                    buf_putc(out, '}');
                } else if (code == MODEL_OK) {
                    buf_puts(out, "{\"entity_id\":");
                    buf_json_str(out, eid, eid_len);
                    buf_puts(out, ",\"prediction\":{");
                    for (int o = 0; o < r.n_outputs && o < 64; o++) {
                        if (o) buf_putc(out, ',');
                        char name[24];
                        const char *nm = md && o < md->n_outputs ? md->output_names[o] : NULL;
                        if (!nm) { snprintf(name, sizeof name, "output_%d", o); nm = name; }
                        buf_json_str(out, nm, strlen(nm));
                        buf_putc(out, ':');
                        buf_json_double(out, vals[o]);
                    }
                    buf_puts(out, "}}");
                } else {
                    char idz[260];
                    snprintf(idz, sizeof idz, "%.*s", (int)eid_len, eid);
                    model_error_message(code, idz, msg, sizeof msg);
                    put_error(out, eid, eid_len, model_error_name(code), msg);
                }
            }
            if (!ok) break; /* corrupt blob: stop here rather than guess */
            continue;
        }
        int dead = settled[c] == 2;
        if (!dead && !(settled[c] == 0 && job.status == JOB_CANCELLED)) break; /* pending */
        if (!work) {
            char *pj = NULL, *ids = NULL;
            size_t len = 0;
            if (store_job_load_work(j->st, job.id, &pj, &ids, &len) != 0) {
                free(pj);
                free(ids);
                break;
            }
            free(pj);
            work = calloc(1, sizeof *work);
            if (!work) { free(ids); break; }
            work->ids_blob = ids;
            work->ids = malloc((size_t)(n_ent > 0 ? n_ent : 1) * sizeof *work->ids);
            if (!work->ids) break;
            size_t p = 0;
            for (long i = 0; i < n_ent; i++) {
                work->ids[i] = p < len ? ids + p : "";
                if (p < len) p += strlen(ids + p) + 1;
            }
        }
        if (dead) dead_reason(j, job.id, (uint32_t)c, msg, sizeof msg);
        else snprintf(msg, sizeof msg, "the job was cancelled before this entity was computed");
        for (; e < c_end; e++) {
            if (!first) buf_putc(out, ',');
            first = 0;
            put_error(out, work->ids[e], strlen(work->ids[e]), dead ? "chunk_failed" : "cancelled", msg);
        }
    }
    buf_puts(out, "],\"next_cursor\":");
    if (e < n_ent) {
        char cur[32];
        snprintf(cur, sizeof cur, "%ld", e);
        buf_json_str(out, cur, strlen(cur));
    } else {
        buf_puts(out, "null");
    }
    buf_printf(out, ",\"metadata\":{\"total_entities\":%ld,\"successful\":%ld,\"failed\":%ld,"
                    "\"execution_time_ms\":",
               job.n_entities, job.successful, job.failed + dead_entities);
    buf_json_double(out, job.exec_ms);
    buf_puts(out, "}}");
done:
    if (sc.blobs && !sc.borrowed)
        for (long k = 0; k < sc.n; k++) free(sc.blobs[k]);
    jobs_recent_release(j->recent, rec);
    free(sc.blobs);
    free(sc.lens);
    if (work) {
        free(work->ids_blob);
        free(work->ids);
        free(work);
    }
    free(settled);
    if (rc == -2) {
        if (err) {
            memset(err, 0, sizeof *err);
            err->http_status = 503;
            snprintf(err->code, sizeof err->code, "store_unavailable");
            snprintf(err->message, sizeof err->message, "results could not be read from the store");
            err->retry_after_s = 5;
        }
        return -1;
    }
    return 0;
}

/* The summary trailer of chunk 0's blob: skip the entities, then "PDSM" u32 len JSON. */
typedef struct {
    buf_t *out;
    int found;
} summary_scan_t;

static void summary_fn(void *arg, uint32_t chunk, const void *blob, size_t len) {
    summary_scan_t *s = arg;
    blob_reader_t r;
    if (chunk != 0 || s->found || reader_init(&r, blob, len) < 0) return;
    uint8_t code;
    const char *eid;
    size_t eid_len;
    double v;
    while (r.next < r.n)
        if (reader_next(&r, &code, &eid, &eid_len, &v, 0) < 0) return;
    if (r.end - r.p < 8 || memcmp(r.p, SUMMARY_MAGIC, 4) != 0) return;
    uint32_t n = (uint32_t)r.p[4] | (uint32_t)r.p[5] << 8 | (uint32_t)r.p[6] << 16 | (uint32_t)r.p[7] << 24;
    if ((size_t)(r.end - r.p) - 8 < n || n == 0) return;
    buf_append(s->out, r.p + 8, n);
    s->found = 1;
}

int jobs_summary(jobs_t *j, const char *id, const char *model, buf_t *out) {
    const model_t *md = jobs_model_find(j, model);
    if (!md || !md->xSummary) return 1; /* no summary to look for (reading chunk 0 costs a copy of it) */
    summary_scan_t s = {out, 0};
    if (store_results_scan(j->st, id, 0, 0, summary_fn, &s) != 0) return 1;
    return s.found ? 0 : 1;
}
