/* jobs: the engine's promises, end to end on a real store in a temp dir.
 * Expected predictions come from the Ising closed form computed here from the test's own
 * copy of the graph (MODELS.md): m = sum_j J s_j + h, dE = 2 s m, w = nu/(1+exp(dE/T)),
 * p = 1 - exp(-w H). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "jobs/jobs.h"
#include "models/model.h"
#include "test.h"

/* ---- the test graph --------------------------------------------------------------- */

typedef struct { const char *id; double spin, field; } ent_t;
typedef struct { const char *a, *b; double w; } rel_t;
/* E has no spin: invalid_spin. */
static const ent_t ENTS[] = {{"A", 1, 0.5}, {"B", -1, 0}, {"C", 1, 0}, {"D", -1, -0.2},
                             {"E", NAN, 0}};
static const rel_t RELS[] = {{"A", "B", 1.0}, {"B", "C", 0.5}, {"A", "C", 2.0}, {"C", "D", 1.5},
                             {"A", "B", 0.25} /* parallel: weights add */};
#define N_ENTS 5
#define N_RELS 5
static const double T = 1.5, NU = 2.0, H_HOURS = 6.0;
static const char *PARAMS = "\"parameters\":{\"temperature\":1.5,\"attempt_rate\":2.0,\"time_horizon\":\"6h\"}";

static int ent_index(const char *id) {
    for (int i = 0; i < N_ENTS; i++)
        if (strcmp(ENTS[i].id, id) == 0) return i;
    return -1;
}

/* closed form: out = {p_flip, delta_e, local_field, rate_per_hour} */
static void expected(const char *id, double out[4]) {
    int i = ent_index(id);
    double m = ENTS[i].field;
    for (int r = 0; r < N_RELS; r++) {
        const char *other = NULL;
        if (strcmp(RELS[r].a, id) == 0) other = RELS[r].b;
        else if (strcmp(RELS[r].b, id) == 0) other = RELS[r].a;
        if (other) m += RELS[r].w * ENTS[ent_index(other)].spin;
    }
    double de = 2 * ENTS[i].spin * m;
    double w = NU / (1 + exp(de / T));
    out[0] = 1 - exp(-w * H_HOURS);
    out[1] = de;
    out[2] = m;
    out[3] = w;
}

static graph_t *make_graph(void) {
    graph_t *g = graph_new();
    for (int i = 0; i < N_ENTS; i++) {
        json_t *p = isnan(ENTS[i].spin)
                        ? json_pack("{s:f}", "field", ENTS[i].field)
                        : json_pack("{s:f, s:f}", "spin", ENTS[i].spin, "field", ENTS[i].field);
        graph_upsert_entity(g, ENTS[i].id, p, 1);
        json_decref(p);
    }
    for (int r = 0; r < N_RELS; r++) graph_add_relationship(g, RELS[r].a, RELS[r].b, RELS[r].w, 1);
    return g;
}

/* ---- fixture ---------------------------------------------------------------------- */

typedef struct {
    char dir[64];
    predictd_config_t cfg;
    store_t *st;
    graph_t *g;
    metrics_t *m;
    jobs_t *j;
} fx_t;

static void fx_config(fx_t *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/predictd-test-jobs-XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    config_defaults(&f->cfg);
    snprintf(f->cfg.data_dir, sizeof f->cfg.data_dir, "%s", f->dir);
    snprintf(f->cfg.store_synchronous, sizeof f->cfg.store_synchronous, "normal");
    f->cfg.workers = 2;
    f->cfg.chunk_size = 4;
    f->cfg.inline_max_entities = 0; /* these tests are about the queue; inline jobs have their own */
    f->cfg.backoff_base_ms = 1;
    f->cfg.backoff_max_ms = 5;
}

static int fx_open_store(fx_t *f) {
    char err[256];
    if (store_open(&f->st, &f->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    return 0;
}

static int fx_start_jobs(fx_t *f) {
    char err[256];
    if (jobs_start(&f->j, &f->cfg, f->st, f->g, f->m, err, sizeof err) != 0) {
        fprintf(stderr, "jobs_start: %s\n", err);
        return -1;
    }
    return 0;
}

/* After fx_config and any cfg changes. */
static int fx_start(fx_t *f) {
    f->g = make_graph();
    f->m = metrics_new();
    if (fx_open_store(f) < 0) return -1;
    return fx_start_jobs(f);
}

static void fx_end(fx_t *f) {
    jobs_free(f->j);
    store_close(f->st);
    metrics_free(f->m);
    graph_free(f->g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
}

/* Submits body (JSON text); 0 ok with id, else the error's http status. */
static int submit(fx_t *f, const char *body, const char *idem, char id[32], int *existed,
                  jobs_error_t *err) {
    json_error_t je;
    json_t *req = json_loads(body, JSON_ALLOW_NUL, &je);
    if (!req) {
        fprintf(stderr, "bad test JSON: %s\n", je.text);
        abort();
    }
    store_job_t job;
    int ex = 0;
    int64_t est = 0;
    jobs_error_t e;
    int rc = jobs_submit(f->j, "ising", req, idem, &job, &ex, &est, err ? err : &e);
    json_decref(req);
    if (existed) *existed = ex;
    if (rc != 0) return (err ? err : &e)->http_status;
    if (id) snprintf(id, 32, "%s", job.id);
    if (est < job.created_at) return -1;
    return 0;
}

/* Waits for a final status; returns it (or -1 on timeout). */
static int wait_final(fx_t *f, const char *id, store_job_t *job) {
    for (int i = 0; i < 2000; i++) {
        if (store_job_get(f->st, id, job) == 0 &&
            (job->status == JOB_COMPLETED || job->status == JOB_FAILED || job->status == JOB_CANCELLED))
            return job->status;
        usleep(5000);
    }
    return -1;
}

/* Fetches every page with limit; returns the concatenated results array (new reference)
 * and the last page's metadata in *meta (new reference). */
static json_t *all_results(fx_t *f, const char *id, int limit, json_t **meta, int *pages) {
    json_t *all = json_array();
    char cursor[64] = "";
    *pages = 0;
    for (;;) {
        buf_t b = {0};
        jobs_error_t err;
        int rc = jobs_results_page(f->j, id, cursor, limit, &b, &err);
        if (rc != 0) { buf_free(&b); json_decref(all); return NULL; }
        json_error_t je;
        json_t *page = json_loads(b.data, 0, &je);
        buf_free(&b);
        if (!page) { fprintf(stderr, "page is not JSON: %s\n", je.text); json_decref(all); return NULL; }
        (*pages)++;
        json_array_extend(all, json_object_get(page, "results"));
        json_t *next = json_object_get(page, "next_cursor");
        if (json_is_null(next)) {
            if (meta) *meta = json_incref(json_object_get(page, "metadata"));
            json_decref(page);
            return all;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
        if (*pages > 10000) { json_decref(all); return NULL; }
    }
}

static long meta_int(const json_t *meta, const char *key) {
    return (long)json_integer_value(json_object_get(meta, key));
}

static double pred(const json_t *r, const char *key) {
    return json_number_value(json_object_get(json_object_get(r, "prediction"), key));
}

static const char *err_code(const json_t *r) {
    return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

/* ---- tests ------------------------------------------------------------------------ */

static void blob_encoding_is_the_documented_layout(void) {
    const char *ids[] = {"A", "xy"};
    const uint8_t codes[] = {0, 1};
    const double vals[] = {1.0, -2.0};
    buf_t b = {0};
    ASSERT_EQ_INT(jobs_blob_encode(&b, ids, 2, 1, codes, vals), 0);
    static const uint8_t want[] = {2, 0, 0, 0, 1, 0,
                                   0, 1, 0, 'A', 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
                                   1, 2, 0, 'x', 'y', 0, 0, 0, 0, 0, 0, 0, 0xc0};
    ASSERT_EQ_INT(b.len, sizeof want);
    ASSERT_TRUE(memcmp(b.data, want, sizeof want) == 0);
    buf_free(&b);
}

static void results_equal_the_ising_closed_form(void) {
    fx_t f;
    fx_config(&f);
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[512], id[32];
    /* "A" twice: computed once; "ZZ" unknown; "E" has no spin */
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\",\"D\",\"E\",\"ZZ\",\"A\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id, NULL, NULL), 0);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.n_entities, 6);
    ASSERT_EQ_INT(job.n_chunks, 2);
    ASSERT_TRUE(job.started_at > 0 && job.finished_at >= job.started_at);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 1000, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(pages, 1);
    ASSERT_EQ_INT(json_array_size(res), 6);
    const char *order[] = {"A", "B", "C", "D", "E", "ZZ"};
    for (int i = 0; i < 4; i++) {
        const json_t *r = json_array_get(res, i);
        ASSERT_EQ_STR(json_string_value(json_object_get(r, "entity_id")), order[i]);
        double want[4];
        expected(order[i], want);
        ASSERT_NEAR(pred(r, "p_flip"), want[0], 1e-12);
        ASSERT_NEAR(pred(r, "delta_e"), want[1], 1e-12);
        ASSERT_NEAR(pred(r, "local_field"), want[2], 1e-12);
        ASSERT_NEAR(pred(r, "rate_per_hour"), want[3], 1e-12);
    }
    /* A: m = 1.25*(-1) + 2*(+1) + 0.5 = 1.25, dE = 2.5 (hand check of the helper) */
    ASSERT_NEAR(pred(json_array_get(res, 0), "local_field"), 1.25, 1e-15);
    ASSERT_NEAR(pred(json_array_get(res, 0), "delta_e"), 2.5, 1e-15);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(res, 4), "entity_id")), "E");
    ASSERT_EQ_STR(err_code(json_array_get(res, 4)), "invalid_spin");
    ASSERT_EQ_STR(err_code(json_array_get(res, 5)), "unknown_entity");
    ASSERT_TRUE(strstr(json_string_value(json_object_get(json_object_get(json_array_get(res, 5), "error"), "message")), "ZZ") != NULL);
    ASSERT_EQ_INT(meta_int(meta, "total_entities"), 6);
    ASSERT_EQ_INT(meta_int(meta, "successful"), 4);
    ASSERT_EQ_INT(meta_int(meta, "failed"), 2);
    json_decref(res);
    json_decref(meta);
    /* the counters move in the store's commit callback, just after the job reads COMPLETED */
    for (int i = 0; i < 200; i++) {
        if (metrics_value(f.m, "predictd_predictions_total", "model=\"ising\",outcome=\"error\"") +
                metrics_value(f.m, "predictd_predictions_total", "model=\"ising\",outcome=\"ok\"") >= 6)
            break;
        usleep(5000);
    }
    ASSERT_NEAR(metrics_value(f.m, "predictd_predictions_total", "model=\"ising\",outcome=\"ok\""), 4, 0);
    ASSERT_NEAR(metrics_value(f.m, "predictd_predictions_total", "model=\"ising\",outcome=\"error\""), 2, 0);
    ASSERT_NEAR(metrics_value(f.m, "predictd_jobs_submitted_total", "model=\"ising\""), 1, 0);
    ASSERT_NEAR(metrics_value(f.m, "predictd_chunk_seconds", "model=\"ising\""), 2, 0);
    buf_t text = {0};
    metrics_render(f.m, &text);
    ASSERT_TRUE(strstr(text.data, "predictd_jobs{status=\"COMPLETED\"} 1\n") != NULL);
    ASSERT_TRUE(strstr(text.data, "predictd_workers 2\n") != NULL);
    ASSERT_TRUE(strstr(text.data, "predictd_queue_depth_chunks 0\n") != NULL);
    buf_free(&text);
    fx_end(&f);
}

/* A job bigger than max_chunks x chunk_size gets bigger chunks: 100 ids, chunk_size 1,
 * max_chunks 8 -> ceil(100 / 8) = 13 per chunk, ceil(100 / 13) = 8 chunks; every entity is
 * still computed exactly once. */
static void big_jobs_get_at_most_max_chunks(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.chunk_size = 1;
    f.cfg.max_chunks = 8;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    buf_t body = {0};
    buf_puts(&body, "{\"entity_ids\":[");
    for (int i = 0; i < 100; i++) buf_printf(&body, "%s\"N%d\"", i ? "," : "", i);
    buf_printf(&body, "],%s}", PARAMS);
    char id[32];
    ASSERT_EQ_INT(submit(&f, body.data, NULL, id, NULL, NULL), 0);
    buf_free(&body);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.chunk_size, 13);
    ASSERT_EQ_INT(job.n_chunks, 8);
    ASSERT_EQ_INT(job.chunks_done, 8);
    ASSERT_EQ_INT(job.successful + job.failed, 100);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 1000, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 100);
    json_decref(res);
    json_decref(meta);
    fx_end(&f);
}

static void pages_cover_every_entity_exactly_once(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.chunk_size = 7;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    buf_t body = {0};
    buf_puts(&body, "{\"entity_ids\":[");
    for (int i = 0; i < 50; i++) {
        if (i) buf_putc(&body, ',');
        if (i % 5 == 0) buf_printf(&body, "\"%s\"", ENTS[(i / 5) % 4].id); /* A..D, repeats dropped */
        else buf_printf(&body, "\"N%d\"", i);
    }
    buf_printf(&body, "],%s}", PARAMS);
    char id[32];
    ASSERT_EQ_INT(submit(&f, body.data, NULL, id, NULL, NULL), 0);
    buf_free(&body);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    /* distinct: 40 N's + A, B, C, D = 44 */
    ASSERT_EQ_INT(job.n_entities, 44);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 6, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(pages, 8); /* ceil(44 / 6) */
    ASSERT_EQ_INT(json_array_size(res), 44);
    int k = 0;
    for (int i = 0; i < 50; i++) {
        char want[16];
        if (i % 5 == 0) {
            if (i >= 20) continue; /* repeat of an earlier id */
            snprintf(want, sizeof want, "%s", ENTS[i / 5].id);
        } else {
            snprintf(want, sizeof want, "N%d", i);
        }
        ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(res, k), "entity_id")), want);
        k++;
    }
    ASSERT_EQ_INT(meta_int(meta, "successful"), 4);
    ASSERT_EQ_INT(meta_int(meta, "failed"), 40);
    json_decref(res);
    json_decref(meta);
    /* a cursor past the end or not a number is refused; limit 0 is clamped to 1 */
    buf_t b = {0};
    jobs_error_t err;
    ASSERT_EQ_INT(jobs_results_page(f.j, id, "45", 10, &b, &err), -1);
    ASSERT_EQ_INT(err.http_status, 400);
    ASSERT_EQ_STR(err.code, "invalid_cursor");
    ASSERT_EQ_INT(jobs_results_page(f.j, id, "x1", 10, &b, &err), -1);
    ASSERT_EQ_INT(jobs_results_page(f.j, id, "-1", 10, &b, &err), -1);
    ASSERT_EQ_INT(jobs_results_page(f.j, "JOB-nope", NULL, 10, &b, &err), 1);
    ASSERT_EQ_INT(jobs_results_page(f.j, id, "43", 0, &b, &err), 0);
    json_t *page = json_loads(b.data, 0, NULL);
    ASSERT_EQ_INT(json_array_size(json_object_get(page, "results")), 1);
    ASSERT_TRUE(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);
    buf_free(&b);
    fx_end(&f);
}

static void bad_requests_get_field_and_code_and_store_nothing(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.max_entities = 5;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char long_id[300];
    memset(long_id, 'x', 257);
    long_id[257] = 0;
    char body_long[512];
    snprintf(body_long, sizeof body_long, "{\"entity_ids\":[\"A\",\"%s\"],%s}", long_id, PARAMS);
    char body_nul[256];
    snprintf(body_nul, sizeof body_nul, "{\"entity_ids\":[\"A\",\"B\",\"a\\u0000b\"],%s}", PARAMS);
    struct { const char *body; int status; const char *code, *field; } cases[] = {
        {"[1,2]", 422, "invalid_field", ""},
        {"{\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "entity_ids"},
        {"{\"entity_ids\":\"A\",\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "entity_ids"},
        {"{\"entity_ids\":[],\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "entity_ids"},
        {"{\"entity_ids\":[\"A\",7],\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "entity_ids[1]"},
        {"{\"entity_ids\":[\"A\",\"\"],\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "entity_ids[1]"},
        {body_long, 422, "invalid_field", "entity_ids[1]"},
        {body_nul, 422, "invalid_field", "entity_ids[2]"},
        {"{\"entity_ids\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\"],\"parameters\":{\"temperature\":1}}", 422, "too_many_entities", "entity_ids"},
        {"{\"entity_ids\":[\"A\"],\"priority\":10,\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "priority"},
        {"{\"entity_ids\":[\"A\"],\"priority\":\"1\",\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "priority"},
        {"{\"entity_ids\":[\"A\"],\"priority\":1.5,\"parameters\":{\"temperature\":1}}", 422, "invalid_field", "priority"},
        {"{\"entity_ids\":[\"A\"]}", 422, "invalid_field", "parameters"},
        {"{\"entity_ids\":[\"A\"],\"parameters\":{\"temperature\":0}}", 422, "invalid_field", "parameters.temperature"},
        {"{\"entity_ids\":[\"A\"],\"parameters\":{\"temperature\":1,\"time_horizon\":\"soon\"}}", 422, "invalid_field", "parameters.time_horizon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jobs_error_t err;
        int rc = submit(&f, cases[i].body, NULL, NULL, NULL, &err);
        if (rc != cases[i].status) fprintf(stderr, "case %zu: %s\n", i, err.message);
        ASSERT_EQ_INT(rc, cases[i].status);
        ASSERT_EQ_STR(err.code, cases[i].code);
        ASSERT_EQ_STR(err.field, cases[i].field);
        ASSERT_TRUE(err.message[0] != 0);
    }
    /* unknown model: 404 */
    json_t *req = json_loads("{\"entity_ids\":[\"A\"],\"parameters\":{\"temperature\":1}}", 0, NULL);
    store_job_t job;
    int existed;
    int64_t est;
    jobs_error_t err;
    ASSERT_EQ_INT(jobs_submit(f.j, "nosuch", req, NULL, &job, &existed, &est, &err), -1);
    json_decref(req);
    ASSERT_EQ_INT(err.http_status, 404);
    ASSERT_EQ_STR(err.code, "unknown_model");
    long counts[5];
    ASSERT_EQ_INT(store_job_counts(f.st, counts), 0);
    ASSERT_EQ_INT(counts[0] + counts[1] + counts[2] + counts[3] + counts[4], 0);
    fx_end(&f);
}

static void idempotency_key_returns_the_same_job(void) {
    fx_t f;
    fx_config(&f);
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id1[32], id2[32], id3[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\"],%s}", PARAMS);
    int existed = -1;
    ASSERT_EQ_INT(submit(&f, body, "key-1", id1, &existed, NULL), 0);
    ASSERT_EQ_INT(existed, 0);
    ASSERT_EQ_INT(submit(&f, body, "key-1", id2, &existed, NULL), 0);
    ASSERT_EQ_INT(existed, 1);
    ASSERT_EQ_STR(id2, id1);
    ASSERT_EQ_INT(submit(&f, body, "key-2", id3, &existed, NULL), 0);
    ASSERT_EQ_INT(existed, 0);
    ASSERT_TRUE(strcmp(id3, id1) != 0);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id1, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(wait_final(&f, id3, &job), JOB_COMPLETED);
    ASSERT_NEAR(metrics_value(f.m, "predictd_jobs_submitted_total", "model=\"ising\""), 2, 0);
    fx_end(&f);
}

/* A queue that holds its chunks: every attempt fails and waits a minute. */
static void fx_config_stuck(fx_t *f) {
    fx_config(f);
    f->cfg.workers = 1;
    f->cfg.chunk_size = 1;
    f->cfg.fault_chunk_failures = 1000000;
    f->cfg.backoff_base_ms = 60000;
    f->cfg.backoff_max_ms = 60000;
}

/* Waits (up to 1 s) until want chunks are queued or leased; returns the last stats in *s. */
static void wait_chunks_held(fx_t *f, long want, jobs_stats_t *s) {
    for (int i = 0; i < 200; i++) {
        jobs_stats(f->j, s);
        if (s->queued_chunks + s->leased_chunks == want) return;
        usleep(5000);
    }
}

static void cancel_drops_waiting_chunks(void) {
    fx_t f;
    fx_config_stuck(&f);
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id, NULL, NULL), 0);
    store_job_t job;
    ASSERT_EQ_INT(jobs_cancel(f.j, id, &job), 0);
    ASSERT_EQ_INT(job.status, JOB_CANCELLED);
    ASSERT_EQ_INT(jobs_cancel(f.j, id, &job), 2);
    ASSERT_EQ_INT(jobs_cancel(f.j, "JOB-nope", &job), 1);
    jobs_stats_t s;
    wait_chunks_held(&f, 0, &s);
    ASSERT_EQ_INT(s.queued_chunks, 0);
    ASSERT_EQ_INT(s.leased_chunks, 0);
    ASSERT_EQ_INT(s.jobs_by_status[JOB_CANCELLED], 1);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 100, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 3);
    for (int i = 0; i < 3; i++) ASSERT_EQ_STR(err_code(json_array_get(res, i)), "cancelled");
    ASSERT_EQ_INT(meta_int(meta, "failed"), 3);
    json_decref(res);
    json_decref(meta);
    fx_end(&f);
}

/* Hundreds of jobs waiting at once: each cancel finds its own job's runtime record (they
 * are looked up by id in a table that grows and loses entries as jobs go) and drops exactly
 * that job's chunks from the queue. */
static void cancel_finds_each_of_many_waiting_jobs(void) {
    fx_t f;
    fx_config_stuck(&f);
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    enum { JOBS = 300 };
    static char ids[JOBS][32];
    char body[256];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\"],%s}", PARAMS);
    for (int i = 0; i < JOBS; i++) ASSERT_EQ_INT(submit(&f, body, NULL, ids[i], NULL, NULL), 0);
    jobs_stats_t s;
    jobs_stats(f.j, &s);
    ASSERT_EQ_INT(s.queued_chunks + s.leased_chunks, 3 * JOBS);
    /* every 7th job first (7 and 300 are coprime: each once), so records go from the middle
     * of chains as well as their heads */
    long left = 3 * JOBS;
    for (int k = 0; k < JOBS; k++) {
        int i = (k * 7) % JOBS;
        store_job_t job;
        ASSERT_EQ_INT(jobs_cancel(f.j, ids[i], &job), 0);
        left -= 3;
        wait_chunks_held(&f, left, &s);
        ASSERT_EQ_INT(s.queued_chunks + s.leased_chunks, left);
    }
    ASSERT_EQ_INT(s.jobs_by_status[JOB_CANCELLED], JOBS);
    fx_end(&f);
}

/* ---- waiting status reads (jobs_job_wait) ---- */

typedef struct {
    fx_t *f;
    const char *id;
    long wait_ms;
    int rc;
    store_job_t job;
    double took_s;
} waiter_t;

static void *waiter_main(void *arg) {
    waiter_t *w = arg;
    double t0 = mono_s();
    w->rc = jobs_job_wait(w->f->j, w->id, w->wait_ms, &w->job);
    w->took_s = mono_s() - t0;
    return NULL;
}

/* A job that does not move: the read waits its whole wait_ms, then answers as it is. A
 * cancel, and the engine stopping, wake a waiting read at once. */
static void a_waiting_status_read_ends_at_its_deadline_a_cancel_or_stop(void) {
    fx_t f;
    fx_config_stuck(&f);
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id1[32], id2[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id1, NULL, NULL), 0);
    ASSERT_EQ_INT(submit(&f, body, NULL, id2, NULL, NULL), 0);
    waiter_t w = {.f = &f, .id = id1, .wait_ms = 300, .rc = -9};
    waiter_main(&w);
    ASSERT_EQ_INT(w.rc, 0);
    ASSERT_TRUE(w.job.status == JOB_QUEUED || w.job.status == JOB_PROCESSING);
    ASSERT_TRUE(w.took_s >= 0.29); /* a condition wait never ends before its deadline unasked */
    /* cancel: the waiter on that job wakes with CANCELLED, long before its 20 s */
    waiter_t c = {.f = &f, .id = id1, .wait_ms = 20000, .rc = -9};
    pthread_t th;
    pthread_create(&th, NULL, waiter_main, &c);
    usleep(100000);
    store_job_t job;
    ASSERT_EQ_INT(jobs_cancel(f.j, id1, &job), 0);
    pthread_join(th, NULL);
    ASSERT_EQ_INT(c.rc, 0);
    ASSERT_EQ_INT(c.job.status, JOB_CANCELLED);
    ASSERT_TRUE(c.took_s < 10);
    /* a finished job and an unknown one answer at once */
    waiter_t d = {.f = &f, .id = id1, .wait_ms = 20000, .rc = -9};
    waiter_main(&d);
    ASSERT_EQ_INT(d.job.status, JOB_CANCELLED);
    ASSERT_TRUE(d.took_s < 10);
    waiter_t u = {.f = &f, .id = "JOB-nope", .wait_ms = 20000, .rc = -9};
    waiter_main(&u);
    ASSERT_EQ_INT(u.rc, 1);
    /* stop: the waiter on the other job wakes and answers */
    waiter_t s = {.f = &f, .id = id2, .wait_ms = 20000, .rc = -9};
    pthread_create(&th, NULL, waiter_main, &s);
    usleep(100000);
    jobs_stop(f.j, 0);
    pthread_join(th, NULL);
    ASSERT_EQ_INT(s.rc, 0);
    ASSERT_TRUE(s.took_s < 10);
    ASSERT_NEAR(metrics_value(f.m, "predictd_jobs_status_waits_total", NULL), 3, 0);
    fx_end(&f);
}

/* A running job: each waiting read returns when some of its chunks settle, so a reader
 * follows the job step by step (200 one-entity chunks commit in many groups: more than one
 * step), never backwards, and the last read says COMPLETED. */
static void a_waiting_status_read_returns_when_a_chunk_settles(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.workers = 1;
    f.cfg.chunk_size = 1;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    buf_t body = {0};
    buf_puts(&body, "{\"entity_ids\":[");
    for (int i = 0; i < 200; i++) buf_printf(&body, "%s\"X%d\"", i ? "," : "", i); /* unknown: errors */
    buf_printf(&body, "],%s}", PARAMS);
    char id[32];
    ASSERT_EQ_INT(submit(&f, body.data, NULL, id, NULL, NULL), 0);
    buf_free(&body);
    int reads = 0;
    long done = -1;
    waiter_t w = {.f = &f, .id = id, .wait_ms = 20000, .rc = -9};
    do {
        waiter_main(&w);
        ASSERT_EQ_INT(w.rc, 0);
        ASSERT_TRUE(w.took_s < 10); /* woken by a settle, not by the 20 s deadline */
        ASSERT_TRUE(w.job.chunks_done >= done); /* never backwards */
        done = w.job.chunks_done;
        reads++;
    } while (w.job.status != JOB_COMPLETED && reads < 1000);
    ASSERT_EQ_INT(w.job.status, JOB_COMPLETED);
    ASSERT_EQ_INT(w.job.chunks_done, 200);
    ASSERT_EQ_INT(w.job.failed, 200);
    ASSERT_TRUE(reads >= 3); /* it saw the job part done: woken by settles, not only the end */
    ASSERT_TRUE(reads <= 201); /* the first read, then one per settle at most */
    fx_end(&f);
}

static void injected_faults_are_retried_until_success(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.chunk_size = 2;
    f.cfg.fault_chunk_failures = 3;
    f.cfg.max_attempts = 5;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\",\"D\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id, NULL, NULL), 0);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.successful, 4);
    ASSERT_NEAR(metrics_value(f.m, "predictd_chunk_retries_total", NULL), 3, 0);
    ASSERT_NEAR(metrics_value(f.m, "predictd_deadletters_total", NULL), 0, 0);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 3, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 4);
    double want[4];
    expected("D", want);
    ASSERT_NEAR(pred(json_array_get(res, 3), "p_flip"), want[0], 1e-12);
    json_decref(res);
    json_decref(meta);
    fx_end(&f);
}

static void exhausted_attempts_dead_letter_then_retry_completes(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.workers = 1;
    f.cfg.chunk_size = 2;
    f.cfg.fault_chunk_failures = 2;
    f.cfg.max_attempts = 2;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id, NULL, NULL), 0);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_FAILED);
    ASSERT_EQ_INT(job.chunks_dead, 1);
    for (int i = 0; i < 200 && metrics_value(f.m, "predictd_deadletters_total", NULL) < 1; i++) usleep(5000);
    ASSERT_NEAR(metrics_value(f.m, "predictd_deadletters_total", NULL), 1, 0);
    ASSERT_NEAR(metrics_value(f.m, "predictd_chunk_retries_total", NULL), 1, 0);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 100, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 2);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(res, 1), "entity_id")), "B");
    ASSERT_EQ_STR(err_code(json_array_get(res, 1)), "chunk_failed");
    ASSERT_EQ_STR(json_string_value(json_object_get(json_object_get(json_array_get(res, 0), "error"), "message")),
                  "injected fault");
    ASSERT_EQ_INT(meta_int(meta, "failed"), 2);
    json_decref(res);
    json_decref(meta);
    store_deadletter_t *dl = NULL;
    size_t n = 0;
    ASSERT_EQ_INT(store_deadletters_list(f.st, 0, 10, &dl, &n), 0);
    ASSERT_EQ_INT(n, 1);
    long dl_id = dl[0].id;
    ASSERT_EQ_STR(dl[0].job_id, id);
    ASSERT_EQ_INT(dl[0].attempts, 2);
    free(dl);
    char jid[32];
    ASSERT_EQ_INT(jobs_deadletter_retry(f.j, dl_id, jid), 0);
    ASSERT_EQ_STR(jid, id);
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.successful, 2);
    ASSERT_EQ_INT(jobs_deadletter_retry(f.j, dl_id, jid), 1);
    res = all_results(&f, id, 100, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 2);
    double want[4];
    expected("B", want);
    ASSERT_NEAR(pred(json_array_get(res, 1), "p_flip"), want[0], 1e-12);
    ASSERT_EQ_INT(meta_int(meta, "failed"), 0);
    json_decref(res);
    json_decref(meta);
    fx_end(&f);
}

static void a_full_queue_answers_429_with_retry_after(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.workers = 1;
    f.cfg.chunk_size = 1;
    f.cfg.max_queue_chunks = 3;
    f.cfg.fault_chunk_failures = 1000; /* nothing drains */
    f.cfg.backoff_base_ms = 60000;
    f.cfg.backoff_max_ms = 60000;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char body[256], id[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\"],%s}", PARAMS);
    ASSERT_EQ_INT(submit(&f, body, NULL, id, NULL, NULL), 0);
    /* wait until the first attempt failed and every chunk waits again */
    jobs_stats_t s;
    for (int i = 0; i < 200; i++) {
        jobs_stats(f.j, &s);
        if (s.queued_chunks == 3 && s.leased_chunks == 0 &&
            metrics_value(f.m, "predictd_chunk_retries_total", NULL) == 3)
            break;
        usleep(5000);
    }
    ASSERT_EQ_INT(s.queued_chunks, 3);
    snprintf(body, sizeof body, "{\"entity_ids\":[\"D\"],%s}", PARAMS);
    jobs_error_t err;
    ASSERT_EQ_INT(submit(&f, body, NULL, NULL, NULL, &err), 429);
    ASSERT_EQ_STR(err.code, "queue_full");
    ASSERT_TRUE(err.retry_after_s >= 1);
    long counts[5];
    ASSERT_EQ_INT(store_job_counts(f.st, counts), 0);
    ASSERT_EQ_INT(counts[0] + counts[1], 1);
    /* stop does not wait for the retry delays */
    double t0 = mono_s();
    ASSERT_EQ_INT(jobs_stop(f.j, 1000), 0);
    ASSERT_TRUE(mono_s() - t0 < 1.0);
    fx_end(&f);
}

/* Checks the job completed with every entity exactly once (from a fresh jobs_t). */
static void check_exactly_once(fx_t *f, const char *id, long n) {
    store_job_t job;
    ASSERT_EQ_INT(wait_final(f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.successful + job.failed, n);
    ASSERT_EQ_INT(job.chunks_done, job.n_chunks);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(f, id, 1000, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), n);
    for (long i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "R%ld", i);
        ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(res, i), "entity_id")), want);
    }
    json_decref(res);
    json_decref(meta);
}

static void recovery_finishes_accepted_jobs_exactly_once(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.chunk_size = 1;
    f.cfg.workers = 2;
    f.g = make_graph();
    f.m = metrics_new();
    if (fx_open_store(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    /* 1: a job committed by a process that died before running any of it */
    buf_t ids = {0};
    for (int i = 0; i < 30; i++) buf_printf(&ids, "R%d%c", i, 0);
    json_t *req = json_loads("{\"parameters\":{\"temperature\":1}}", 0, NULL), *params = NULL;
    model_error_t me;
    ASSERT_EQ_INT(MODEL_ISING.xParse(req, &params, &me), 0);
    char *pj = json_dumps(params, JSON_COMPACT);
    store_new_job_t nj;
    memset(&nj, 0, sizeof nj);
    make_job_id(nj.job.id);
    snprintf(nj.job.model, sizeof nj.job.model, "ising");
    nj.job.chunk_size = 1;
    nj.job.n_entities = 30;
    nj.job.n_chunks = 30;
    nj.job.created_at = nj.job.updated_at = now_ms();
    nj.params_json = pj;
    nj.ids = ids.data;
    nj.ids_len = ids.len;
    char existing[32], err[256];
    ASSERT_EQ_INT(store_job_insert(f.st, &nj, existing, err, sizeof err), 0);
    free(pj);
    json_decref(params);
    json_decref(req);
    buf_free(&ids);
    char id1[32];
    snprintf(id1, sizeof id1, "%s", nj.job.id);
    if (fx_start_jobs(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    check_exactly_once(&f, id1, 30);
    if (t_failed_checks) { fx_end(&f); return; }

    /* 2: a job stopped mid-way, then the store closed and opened again */
    buf_t body = {0};
    buf_puts(&body, "{\"entity_ids\":[");
    for (int i = 0; i < 400; i++) buf_printf(&body, "%s\"R%d\"", i ? "," : "", i);
    buf_printf(&body, "],%s}", PARAMS);
    char id2[32];
    ASSERT_EQ_INT(submit(&f, body.data, NULL, id2, NULL, NULL), 0);
    buf_free(&body);
    int released = jobs_stop(f.j, 0);
    ASSERT_TRUE(released >= 0);
    jobs_free(f.j);
    f.j = NULL;
    store_close(f.st);
    f.st = NULL;
    if (fx_open_store(&f) < 0 || fx_start_jobs(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    check_exactly_once(&f, id2, 400);
    fx_end(&f);
}

static void higher_priority_runs_first(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.workers = 1;
    f.cfg.chunk_size = 1;
    f.g = make_graph();
    f.m = metrics_new();
    if (fx_open_store(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    /* both jobs wait in the store; recovery queues them together */
    char ids_low[32], ids_high[32];
    json_t *req = json_loads("{\"parameters\":{\"temperature\":1}}", 0, NULL), *params = NULL;
    model_error_t me;
    ASSERT_EQ_INT(MODEL_ISING.xParse(req, &params, &me), 0);
    char *pj = json_dumps(params, JSON_COMPACT);
    for (int k = 0; k < 2; k++) {
        store_new_job_t nj;
        memset(&nj, 0, sizeof nj);
        make_job_id(nj.job.id);
        snprintf(nj.job.model, sizeof nj.job.model, "ising");
        nj.job.priority = k == 0 ? 0 : 9;
        nj.job.chunk_size = 1;
        nj.job.n_entities = 4;
        nj.job.n_chunks = 4;
        nj.job.created_at = nj.job.updated_at = now_ms();
        nj.params_json = pj;
        nj.ids = "A\0B\0C\0D";
        nj.ids_len = 8;
        char existing[32], err[256];
        ASSERT_EQ_INT(store_job_insert(f.st, &nj, existing, err, sizeof err), 0);
        snprintf(k == 0 ? ids_low : ids_high, 32, "%s", nj.job.id);
    }
    free(pj);
    json_decref(params);
    json_decref(req);
    if (fx_start_jobs(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    store_job_t lo, hi;
    ASSERT_EQ_INT(wait_final(&f, ids_low, &lo), JOB_COMPLETED);
    ASSERT_EQ_INT(wait_final(&f, ids_high, &hi), JOB_COMPLETED);
    ASSERT_TRUE(hi.finished_at <= lo.started_at || hi.finished_at <= lo.finished_at);
    ASSERT_TRUE(hi.started_at <= lo.started_at);
    fx_end(&f);
}

static void an_expired_lease_is_taken_back_and_results_stay_exactly_once(void) {
    fx_t f;
    fx_config(&f);
    f.cfg.workers = 3;
    f.cfg.chunk_size = 4;
    f.cfg.lease_ms = 100;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    /* the model reads the graph under its read lock: holding the write lock stalls the
     * worker inside the model run, past its lease */
    pthread_rwlock_wrlock(&f.g->lock);
    char body[256], id[32];
    snprintf(body, sizeof body, "{\"entity_ids\":[\"A\",\"B\",\"C\",\"D\"],%s}", PARAMS);
    int rc = submit(&f, body, NULL, id, NULL, NULL);
    for (int i = 0; i < 400 && metrics_value(f.m, "predictd_lease_expired_total", NULL) < 1; i++)
        usleep(5000);
    pthread_rwlock_unlock(&f.g->lock);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_TRUE(metrics_value(f.m, "predictd_lease_expired_total", NULL) >= 1);
    store_job_t job;
    ASSERT_EQ_INT(wait_final(&f, id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(job.successful, 4);
    ASSERT_EQ_INT(job.chunks_done, 1);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, id, 100, &meta, &pages);
    ASSERT_TRUE(res != NULL);
    ASSERT_EQ_INT(json_array_size(res), 4);
    ASSERT_EQ_INT(meta_int(meta, "successful"), 4);
    json_decref(res);
    json_decref(meta);
    fx_end(&f);
}

/* ---- models added at run time (jobs_add_model) ---- */

typedef struct {
    pthread_mutex_t mu;
    int calls;
    uint32_t max_n;
} added_ctx_t;

static int added_parse(const json_t *req, json_t **params, model_error_t *err) {
    (void)req, (void)err;
    *params = json_object();
    return 0;
}

static int added_run(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                     uint8_t *codes, double *out, char *err, size_t errlen) {
    (void)params, (void)err, (void)errlen;
    added_ctx_t *c = env->model_ctx;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    if (n > c->max_n) c->max_n = n;
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        codes[i] = MODEL_OK;
        out[i] = (double)strlen(ids[i]);
    }
    return 0;
}

static void a_model_added_at_run_time_has_its_context_chunk_size_and_recovery(void) {
    static const char *const OUT[] = {"len"};
    added_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    pthread_mutex_init(&ctx.mu, NULL);
    model_t md = {.name = "added.test", .n_outputs = 1, .output_names = OUT, .xParse = added_parse,
                  .xRunChunk = added_run, .ctx = &ctx, .chunk_size = 3};
    model_t clash = md;
    clash.name = "ising";
    fx_t f;
    fx_config(&f);
    f.cfg.chunk_size = 100;
    if (fx_start(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    char err[256];
    /* a job of the model stored before the model exists: left as is until it is added */
    buf_t ids = {0};
    for (int i = 0; i < 5; i++) buf_printf(&ids, "R%d%c", i, 0);
    store_new_job_t nj;
    memset(&nj, 0, sizeof nj);
    make_job_id(nj.job.id);
    snprintf(nj.job.model, sizeof nj.job.model, "added.test");
    nj.job.chunk_size = 2;
    nj.job.n_entities = 5;
    nj.job.n_chunks = 3;
    nj.job.created_at = nj.job.updated_at = now_ms();
    nj.params_json = "{}";
    nj.ids = ids.data;
    nj.ids_len = ids.len;
    char existing[32];
    ASSERT_EQ_INT(store_job_insert(f.st, &nj, existing, err, sizeof err), 0);
    buf_free(&ids);
    jobs_free(f.j);
    if (fx_start_jobs(&f) < 0) { fx_end(&f); ASSERT_TRUE(0); }
    store_job_t job;
    ASSERT_EQ_INT(store_job_get(f.st, nj.job.id, &job), 0);
    ASSERT_EQ_INT(job.status, JOB_QUEUED);
    ASSERT_EQ_INT(jobs_add_model(f.j, &md, err, sizeof err), 0);
    ASSERT_EQ_INT(jobs_add_model(f.j, &md, err, sizeof err), -1);    /* the name is taken */
    ASSERT_EQ_INT(jobs_add_model(f.j, &clash, err, sizeof err), -1); /* a built-in's name */
    ASSERT_EQ_INT(wait_final(&f, nj.job.id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(ctx.calls, 3); /* recovered: 3 chunks of 2 */
    /* a new job: chunks of the model's own size, the context reaches the model */
    json_t *req = json_loads("{\"entity_ids\":[\"a\",\"bb\",\"ccc\",\"dddd\",\"e\",\"f\",\"g\"]}", 0, NULL);
    int existed = 0;
    int64_t est = 0;
    jobs_error_t je;
    ASSERT_EQ_INT(jobs_submit(f.j, "added.test", req, NULL, &job, &existed, &est, &je), 0);
    json_decref(req);
    ASSERT_EQ_INT(job.chunk_size, 3);
    ASSERT_EQ_INT(job.n_chunks, 3);
    ASSERT_EQ_INT(wait_final(&f, job.id, &job), JOB_COMPLETED);
    ASSERT_EQ_INT(ctx.calls, 6);
    ASSERT_EQ_INT(ctx.max_n, 3);
    json_t *meta = NULL;
    int pages = 0;
    json_t *res = all_results(&f, job.id, 100, &meta, &pages);
    ASSERT_EQ_INT(json_array_size(res), 7);
    ASSERT_NEAR(pred(json_array_get(res, 3), "len"), 4.0, 0);
    json_decref(res);
    json_decref(meta);
    fx_end(&f); /* the engine goes before md and ctx */
    pthread_mutex_destroy(&ctx.mu);
}

int main(void) {
    log_set_level(LOG_ERROR);
    static const test_case_t cases[] = {
        TEST_CASE(blob_encoding_is_the_documented_layout),
        TEST_CASE(results_equal_the_ising_closed_form),
        TEST_CASE(pages_cover_every_entity_exactly_once),
        TEST_CASE(big_jobs_get_at_most_max_chunks),
        TEST_CASE(bad_requests_get_field_and_code_and_store_nothing),
        TEST_CASE(idempotency_key_returns_the_same_job),
        TEST_CASE(cancel_drops_waiting_chunks),
        TEST_CASE(cancel_finds_each_of_many_waiting_jobs),
        TEST_CASE(a_waiting_status_read_ends_at_its_deadline_a_cancel_or_stop),
        TEST_CASE(a_waiting_status_read_returns_when_a_chunk_settles),
        TEST_CASE(injected_faults_are_retried_until_success),
        TEST_CASE(exhausted_attempts_dead_letter_then_retry_completes),
        TEST_CASE(a_full_queue_answers_429_with_retry_after),
        TEST_CASE(recovery_finishes_accepted_jobs_exactly_once),
        TEST_CASE(higher_priority_runs_first),
        TEST_CASE(an_expired_lease_is_taken_back_and_results_stay_exactly_once),
        TEST_CASE(a_model_added_at_run_time_has_its_context_chunk_size_and_recovery),
    };
    return test_main("jobs", cases, (int)(sizeof cases / sizeof cases[0]));
}
