/* The SQLite store: what it promises about graph data, jobs, chunks, dead letters,
 * durability across close/open, and group commit. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/config.h"
#include "core/util.h"
#include "graph/graph.h"
#include "store/store.h"
#include "store/store_sql.h"
#include "test.h"

static char tmpdir[64];

static long wal_max_mb; /* store.wal_max_mb for the next open_fresh (0: the default) */

static store_t *open_fresh(graph_t **g) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/predictd-store-XXXXXX");
    if (!mkdtemp(tmpdir)) return NULL;
    predictd_config_t cfg;
    config_defaults(&cfg);
    if (wal_max_mb) cfg.store_wal_max_mb = wal_max_mb;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", tmpdir);
    store_t *st = NULL;
    char err[256];
    if (store_open(&st, &cfg, err, sizeof err)) { fprintf(stderr, "store_open: %s\n", err); return NULL; }
    if (g) {
        *g = graph_new();
        store_attach_graph(st, *g);
    }
    return st;
}

static store_t *reopen(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", tmpdir);
    store_t *st = NULL;
    char err[256];
    if (store_open(&st, &cfg, err, sizeof err)) { fprintf(stderr, "store_open: %s\n", err); return NULL; }
    return st;
}

static void cleanup(store_t *st, graph_t *g) {
    store_close(st);
    graph_free(g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* ---- graph helpers ---- */
static double g_weight(graph_t *g, const char *a, const char *b, uint32_t *count) {
    int64_t i = graph_find(g, a), j = graph_find(g, b);
    *count = 0;
    if (i < 0 || j < 0) return 0;
    for (uint32_t k = 0; k < g->adj[i].n; k++)
        if (g->adj[i].nbr[k] == (uint32_t)j) { *count = g->adj[i].count[k]; return g->adj[i].w[k]; }
    return 0;
}

static uint64_t g_version(graph_t *g, const char *id) {
    int64_t i = graph_find(g, id);
    return i < 0 ? 0 : g->version[i];
}

static uint64_t s_version(store_t *st, const char *id) {
    uint64_t v = 0;
    return store_entity_get(st, id, NULL, &v) == 0 ? v : 0;
}

static json_t *s_props(store_t *st, const char *id) {
    char *text = NULL;
    if (store_entity_get(st, id, &text, NULL) != 0) return NULL;
    json_t *p = json_loads(text, 0, NULL);
    free(text);
    return p;
}

/* Imports three entities A{spin:1,name:"a"}, B{spin:-1}, C{} as JSON rows (version 1). */
static int import_abc(store_t *st) {
    entity_row_t rows[3] = {
        {0, "A", json_pack("{s:i, s:s}", "spin", 1, "name", "a")},
        {0, "B", json_pack("{s:i}", "spin", -1)},
        {0, "C", json_object()},
    };
    char err[256] = "";
    int rc = store_import_entities(st, rows, 3, err, sizeof err);
    if (rc) fprintf(stderr, "import: %s\n", err);
    for (int i = 0; i < 3; i++) json_decref(rows[i].props);
    return rc;
}

static int add_rel(store_t *st, const char *a, const char *b, double w, const char *type) {
    rel_row_t r = {0, (char *)a, (char *)b, w, (char *)type};
    char err[256] = "";
    int rc = store_import_relationships(st, &r, 1, err, sizeof err);
    if (rc) fprintf(stderr, "rel import: %s\n", err);
    return rc;
}

/* ---- graph data ---- */

static void test_import_and_get(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);
    json_t *p = s_props(st, "A");
    ASSERT_TRUE(p);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "spin")), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(p, "name")), "a");
    ASSERT_EQ_INT(json_object_size(p), 2);
    json_decref(p);
    ASSERT_EQ_INT(s_version(st, "A"), 1); /* first write of the clock */
    ASSERT_EQ_INT(s_version(st, "C"), 1);
    ASSERT_EQ_INT(store_entity_get(st, "nope", NULL, NULL), 1);
    /* the graph saw the commit before the call returned */
    ASSERT_EQ_INT(g->live, 3);
    ASSERT_NEAR(g->spin[graph_find(g, "B")], -1, 0);
    ASSERT_EQ_INT(g_version(g, "A"), 1);
    /* an upsert replaces the properties */
    entity_row_t r = {0, "A", json_pack("{s:f}", "field", 0.25)};
    char err[256];
    ASSERT_EQ_INT(store_import_entities(st, &r, 1, err, sizeof err), 0);
    json_decref(r.props);
    p = s_props(st, "A");
    ASSERT_EQ_INT(json_object_size(p), 1);
    ASSERT_NEAR(json_real_value(json_object_get(p, "field")), 0.25, 0);
    json_decref(p);
    ASSERT_EQ_INT(s_version(st, "A"), 2);
    ASSERT_EQ_INT(s_version(st, "B"), 1);
    ASSERT_TRUE(isnan(g->spin[graph_find(g, "A")]));
    ASSERT_NEAR(g->field[graph_find(g, "A")], 0.25, 0);
    cleanup(st, g);
}

static void test_patch_merges_and_null_removes(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);
    char err[256] = "";
    json_t *patch = json_pack("{s:i, s:n, s:f}", "spin", -1, "name", "field", 0.5);
    ASSERT_EQ_INT(store_entity_patch(st, "A", patch, err, sizeof err), 0);
    json_decref(patch);
    json_t *p = s_props(st, "A");
    ASSERT_EQ_INT(json_object_size(p), 2); /* spin, field; name removed */
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "spin")), -1);
    ASSERT_NEAR(json_real_value(json_object_get(p, "field")), 0.5, 0);
    ASSERT_TRUE(json_object_get(p, "name") == NULL);
    json_decref(p);
    ASSERT_EQ_INT(s_version(st, "A"), 2);
    ASSERT_EQ_INT(s_version(st, "B"), 1);
    ASSERT_NEAR(g->spin[graph_find(g, "A")], -1, 0);
    ASSERT_NEAR(g->field[graph_find(g, "A")], 0.5, 0);
    ASSERT_EQ_INT(g_version(g, "A"), 2);
    /* unknown entity */
    patch = json_pack("{s:i}", "spin", 1);
    ASSERT_EQ_INT(store_entity_patch(st, "nope", patch, err, sizeof err), 1);
    json_decref(patch);
    /* a nested object is refused and changes nothing */
    patch = json_pack("{s:i, s:{s:i}}", "spin", 1, "bad", "x", 1);
    ASSERT_EQ_INT(store_entity_patch(st, "A", patch, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "properties.bad: must be a number, string, boolean or null");
    json_decref(patch);
    ASSERT_EQ_INT(s_version(st, "A"), 2);
    ASSERT_NEAR(g->spin[graph_find(g, "A")], -1, 0);
    cleanup(st, g);
}

static void test_relationships_add_parallel_delete(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);                  /* v1 */
    ASSERT_EQ_INT(add_rel(st, "A", "B", 2.0, "t"), 0);  /* v2: A, B */
    ASSERT_EQ_INT(add_rel(st, "B", "A", 0.5, ""), 0);   /* v3: parallel, adds */
    uint32_t cnt;
    ASSERT_NEAR(g_weight(g, "A", "B", &cnt), 2.5, 1e-12);
    ASSERT_EQ_INT(cnt, 2);
    ASSERT_NEAR(g_weight(g, "B", "A", &cnt), 2.5, 1e-12);
    ASSERT_EQ_INT(s_version(st, "A"), 3);
    ASSERT_EQ_INT(s_version(st, "B"), 3);
    ASSERT_EQ_INT(s_version(st, "C"), 1);
    ASSERT_EQ_INT(g_version(g, "B"), 3);
    ASSERT_EQ_INT(g->edges, 1);
    /* delete by type, in the other direction: only the 't' one goes */
    rel_row_t del = {0, "B", "A", 0, "t"};
    long deleted = -1;
    char err[256] = "";
    ASSERT_EQ_INT(store_relationships_delete(st, &del, 1, 1, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 1);
    ASSERT_NEAR(g_weight(g, "A", "B", &cnt), 0.5, 1e-12);
    ASSERT_EQ_INT(cnt, 1);
    ASSERT_EQ_INT(s_version(st, "A"), 4);
    ASSERT_EQ_INT(g_version(g, "A"), 4);
    /* nothing matches: no change, no version bump */
    rel_row_t none = {0, "A", "C", 0, ""};
    ASSERT_EQ_INT(store_relationships_delete(st, &none, 1, 0, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 0);
    ASSERT_EQ_INT(s_version(st, "C"), 1);
    /* without type: the rest goes */
    rel_row_t all = {0, "A", "B", 0, NULL};
    ASSERT_EQ_INT(store_relationships_delete(st, &all, 1, 0, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 1);
    ASSERT_NEAR(g_weight(g, "A", "B", &cnt), 0, 0);
    ASSERT_EQ_INT(cnt, 0);
    ASSERT_EQ_INT(g->edges, 0);
    ASSERT_EQ_INT(s_version(st, "B"), 5);
    cleanup(st, g);
}

static void test_bad_row_changes_nothing(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);
    rel_row_t rows[3] = {
        {2, "A", "B", 1.0, ""},
        {3, "B", "C", 1.0, ""},
        {4, "A", "X", 1.0, ""},
    };
    char err[256] = "";
    ASSERT_EQ_INT(store_import_relationships(st, rows, 3, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "line 4: target 'X' does not exist");
    for (int i = 0; i < 3; i++) rows[i].line = 0;
    ASSERT_EQ_INT(store_import_relationships(st, rows, 3, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "[2].target: entity 'X' does not exist");
    ASSERT_EQ_INT(g->edges, 0);
    ASSERT_EQ_INT(s_version(st, "A"), 1);
    rel_row_t none = {0, "A", "B", 0, NULL};
    long deleted = -1;
    ASSERT_EQ_INT(store_relationships_delete(st, &none, 1, 0, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 0);
    /* a self-loop and a NaN weight are refused */
    rel_row_t loop = {7, "A", "A", 1.0, ""};
    ASSERT_EQ_INT(store_import_relationships(st, &loop, 1, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "line 7: target is the same entity as source");
    rel_row_t nanw = {0, "A", "B", NAN, ""};
    ASSERT_EQ_INT(store_import_relationships(st, &nanw, 1, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "[0].weight: must be a finite number");
    /* entities: the second row's empty id fails the whole import */
    entity_row_t er[2] = {{5, "D", json_object()}, {6, "", json_object()}};
    ASSERT_EQ_INT(store_import_entities(st, er, 2, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "line 6: entity_id is empty");
    json_decref(er[0].props);
    json_decref(er[1].props);
    ASSERT_EQ_INT(store_entity_get(st, "D", NULL, NULL), 1);
    ASSERT_EQ_INT(g->live, 3);
    /* observations need their entity */
    obs_row_t ob[2] = {{0, "A", "value", 1.0, 2.0}, {0, "Q", "value", 1.0, 2.0}};
    ASSERT_EQ_INT(store_import_observations(st, ob, 2, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "[1].entity_id: entity 'Q' does not exist");
    ASSERT_EQ_INT(s_version(st, "A"), 1);
    /* the version clock did not move for the failed writes */
    ASSERT_EQ_INT(add_rel(st, "A", "B", 1.0, ""), 0);
    ASSERT_EQ_INT(s_version(st, "A"), 2);
    cleanup(st, g);
}

static void test_delete_cascades(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);                 /* v1 */
    ASSERT_EQ_INT(add_rel(st, "A", "B", 1.0, ""), 0);  /* v2 */
    ASSERT_EQ_INT(add_rel(st, "B", "C", 3.0, ""), 0);  /* v3 */
    obs_row_t ob = {0, "B", NULL, 100.0, 7.0};
    char err[256] = "";
    ASSERT_EQ_INT(store_import_observations(st, &ob, 1, err, sizeof err), 0); /* v4: B */
    ASSERT_EQ_INT(s_version(st, "B"), 4);
    obs_row_t more[3] = {{0, "B", "value", 50.0, 1.0}, {0, "B", "value", 100.0, 8.0}, {0, "B", "temp", 60.0, 9.0}};
    ASSERT_EQ_INT(store_import_observations(st, more, 3, err, sizeof err), 0);  /* v5: B */
    double *ts, *vals;
    size_t n;
    ASSERT_EQ_INT(store_observations_get(st, "B", NULL, 0, 1e9, &ts, &vals, &n), 0);
    ASSERT_EQ_INT(n, 2); /* ts 100 replaced, not added; "temp" is another series */
    ASSERT_NEAR(ts[0], 50.0, 0);
    ASSERT_NEAR(vals[0], 1.0, 0);
    ASSERT_NEAR(ts[1], 100.0, 0);
    ASSERT_NEAR(vals[1], 8.0, 0);
    free(ts);
    free(vals);
    ASSERT_EQ_INT(store_observations_get(st, "B", "temp", 0, 59.5, &ts, &vals, &n), 0);
    ASSERT_EQ_INT(n, 0);
    free(ts);
    free(vals);
    ASSERT_EQ_INT(s_version(st, "A"), 2);
    ASSERT_EQ_INT(store_entity_delete(st, "B", err, sizeof err), 0);           /* v6: A, C */
    ASSERT_EQ_INT(store_entity_get(st, "B", NULL, NULL), 1);
    ASSERT_EQ_INT(s_version(st, "A"), 6);
    ASSERT_EQ_INT(s_version(st, "C"), 6);
    ASSERT_EQ_INT(g_version(g, "C"), 6);
    ASSERT_EQ_INT(store_observations_get(st, "B", NULL, 0, 1e9, &ts, &vals, &n), 0);
    ASSERT_EQ_INT(n, 0);
    free(ts);
    free(vals);
    ASSERT_TRUE(graph_find(g, "B") < 0);
    ASSERT_EQ_INT(g->edges, 0);
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 0);
    ASSERT_EQ_INT(store_entity_delete(st, "B", err, sizeof err), 1);
    /* B comes back with a fresh version, never an old one, and without old edges */
    entity_row_t r = {0, "B", json_object()};
    ASSERT_EQ_INT(store_import_entities(st, &r, 1, err, sizeof err), 0);
    json_decref(r.props);
    ASSERT_EQ_INT(s_version(st, "B"), 7);
    rel_row_t all = {0, "A", "B", 0, NULL};
    long deleted = -1;
    ASSERT_EQ_INT(store_relationships_delete(st, &all, 1, 0, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 0);
    cleanup(st, g);
}

/* ---- jobs ---- */

static int new_job(store_t *st, const char *id, long n_chunks, const char *idem, char existing[32]) {
    store_new_job_t nj;
    memset(&nj, 0, sizeof nj);
    snprintf(nj.job.id, sizeof nj.job.id, "%s", id);
    snprintf(nj.job.model, sizeof nj.job.model, "ising");
    nj.job.status = JOB_QUEUED;
    nj.job.chunk_size = 2;
    nj.job.n_entities = n_chunks * 2;
    nj.job.n_chunks = n_chunks;
    nj.job.created_at = 1000;
    nj.params_json = "{\"temperature\":1.5}";
    static const char ids[] = "A\0B\0C\0D\0E\0F\0G\0H";
    nj.ids = ids;
    nj.ids_len = (size_t)(n_chunks * 2 * 2);
    nj.idem_key = idem;
    char err[256] = "";
    int rc = store_job_insert(st, &nj, existing, err, sizeof err);
    if (rc < 0) fprintf(stderr, "job insert: %s\n", err);
    return rc;
}

typedef struct { int calls, rc; } cb_t;
static void on_done(void *arg, int rc) { cb_t *c = arg; c->calls++; c->rc = rc; }

/* Any synchronous call returns after every write queued before it committed. */
static void barrier(store_t *st) { store_job_cancel(st, "JOB-none", NULL); }

static void test_job_insert_and_idempotency(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    char existing[32] = "";
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, "key-1", existing), 0);
    ASSERT_EQ_INT(new_job(st, "JOB-2", 2, "key-1", existing), 1);
    ASSERT_EQ_STR(existing, "JOB-1");
    ASSERT_EQ_INT(new_job(st, "JOB-3", 3, NULL, existing), 0);
    ASSERT_EQ_INT(new_job(st, "JOB-4", 1, NULL, existing), 0);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 1, NULL, existing), -1); /* duplicate id */
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-2", &j), 1);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_STR(j.model, "ising");
    ASSERT_EQ_INT(j.status, JOB_QUEUED);
    ASSERT_EQ_INT(j.n_chunks, 2);
    ASSERT_EQ_INT(j.n_entities, 4);
    ASSERT_EQ_INT(j.created_at, 1000);
    ASSERT_EQ_INT(j.updated_at, 1000);
    char *params, *ids;
    size_t ids_len;
    ASSERT_EQ_INT(store_job_load_work(st, "JOB-1", &params, &ids, &ids_len), 0);
    ASSERT_EQ_STR(params, "{\"temperature\":1.5}");
    ASSERT_EQ_INT(ids_len, 8);
    ASSERT_EQ_STR(ids + 6, "D");
    free(params);
    free(ids);
    store_job_t *list;
    size_t n;
    ASSERT_EQ_INT(store_jobs_list(st, -1, NULL, NULL, 2, &list, &n), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_STR(list[0].id, "JOB-4");
    ASSERT_EQ_STR(list[1].id, "JOB-3");
    free(list);
    ASSERT_EQ_INT(store_jobs_list(st, -1, "ising", "JOB-3", 10, &list, &n), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_STR(list[0].id, "JOB-1");
    free(list);
    ASSERT_EQ_INT(store_jobs_list(st, JOB_COMPLETED, NULL, NULL, 10, &list, &n), 0);
    ASSERT_EQ_INT(n, 0);
    free(list);
    store_job_mark_started(st, "JOB-3", 5000);
    barrier(st);
    ASSERT_EQ_INT(store_job_get(st, "JOB-3", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_PROCESSING);
    ASSERT_EQ_INT(j.started_at, 5000);
    long counts[5];
    ASSERT_EQ_INT(store_job_counts(st, counts), 0);
    ASSERT_EQ_INT(counts[JOB_QUEUED], 2);
    ASSERT_EQ_INT(counts[JOB_PROCESSING], 1);
    char (*unf)[32];
    ASSERT_EQ_INT(store_jobs_unfinished(st, &unf, &n), 0);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_STR(unf[0], "JOB-1");
    free(unf);
    cleanup(st, NULL);
}

typedef struct { uint32_t chunks[8]; char data[8][16]; int n; } scan_t;
static void on_scan(void *arg, uint32_t chunk, const void *blob, size_t len) {
    scan_t *s = arg;
    if (s->n < 8) {
        s->chunks[s->n] = chunk;
        snprintf(s->data[s->n], 16, "%.*s", (int)len, (const char *)blob);
        s->n++;
    }
}

static void test_chunk_commit_exactly_once(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, NULL, NULL), 0);
    cb_t a = {0, 9}, b = {0, 9}, c = {0, 9};
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 3, 1, 10.0, on_done, &a);
    store_chunk_commit(st, "JOB-1", 0, "XX", 2, 3, 1, 10.0, on_done, &b);
    barrier(st);
    ASSERT_EQ_INT(a.calls, 1);
    ASSERT_EQ_INT(a.rc, 0);
    ASSERT_EQ_INT(b.calls, 1);
    ASSERT_EQ_INT(b.rc, 1);
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_PROCESSING);
    ASSERT_EQ_INT(j.successful, 3);
    ASSERT_EQ_INT(j.failed, 1);
    ASSERT_EQ_INT(j.chunks_done, 1);
    ASSERT_EQ_INT(j.finished_at, 0);
    ASSERT_TRUE(j.started_at > 0);
    uint8_t settled[2];
    ASSERT_EQ_INT(store_job_settled_chunks(st, "JOB-1", settled, 2), 0);
    ASSERT_EQ_INT(settled[0], 1);
    ASSERT_EQ_INT(settled[1], 0);
    store_chunk_commit(st, "JOB-1", 1, "r1", 2, 4, 0, 5.5, on_done, &c);
    barrier(st);
    ASSERT_EQ_INT(c.rc, 0);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_COMPLETED);
    ASSERT_EQ_INT(j.successful, 7);
    ASSERT_EQ_INT(j.failed, 1);
    ASSERT_EQ_INT(j.chunks_done, 2);
    ASSERT_NEAR(j.exec_ms, 15.5, 1e-9);
    ASSERT_TRUE(j.finished_at > 0);
    /* after completion every further commit is skipped */
    store_chunk_commit(st, "JOB-1", 1, "zz", 2, 4, 0, 5.5, on_done, &c);
    barrier(st);
    ASSERT_EQ_INT(c.rc, 1);
    /* a commit for an unknown job is an error */
    store_chunk_commit(st, "JOB-9", 0, "zz", 2, 1, 0, 1, on_done, &c);
    barrier(st);
    ASSERT_EQ_INT(c.rc, -1);
    scan_t sc = {0};
    ASSERT_EQ_INT(store_results_scan(st, "JOB-1", 0, 1, on_scan, &sc), 0);
    ASSERT_EQ_INT(sc.n, 2);
    ASSERT_EQ_INT(sc.chunks[1], 1);
    ASSERT_EQ_STR(sc.data[0], "r0");
    ASSERT_EQ_STR(sc.data[1], "r1");
    cleanup(st, NULL);
}

static void test_deadletter_failed_and_retry(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, NULL, NULL), 0);
    cb_t a = {0, 9}, b = {0, 9};
    store_chunk_deadletter(st, "JOB-1", 0, "boom", 3, on_done, &a);
    store_chunk_deadletter(st, "JOB-1", 0, "again", 3, on_done, &b);
    barrier(st);
    ASSERT_EQ_INT(a.rc, 0);
    ASSERT_EQ_INT(b.rc, 1); /* already dead */
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_PROCESSING);
    ASSERT_EQ_INT(j.chunks_dead, 1);
    uint8_t settled[2];
    ASSERT_EQ_INT(store_job_settled_chunks(st, "JOB-1", settled, 2), 0);
    ASSERT_EQ_INT(settled[0], 2);
    ASSERT_EQ_INT(settled[1], 0);
    store_chunk_commit(st, "JOB-1", 0, "late", 4, 2, 0, 1, on_done, &a);
    store_chunk_commit(st, "JOB-1", 1, "r1", 2, 2, 0, 1, on_done, &b);
    barrier(st);
    ASSERT_EQ_INT(a.rc, 1); /* a dead chunk is settled */
    ASSERT_EQ_INT(b.rc, 0);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_FAILED);
    ASSERT_TRUE(j.finished_at > 0);
    store_deadletter_t *dl;
    size_t n;
    ASSERT_EQ_INT(store_deadletters_list(st, 0, 10, &dl, &n), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_STR(dl[0].reason, "boom");
    ASSERT_EQ_STR(dl[0].job_id, "JOB-1");
    ASSERT_EQ_INT(dl[0].attempts, 3);
    ASSERT_EQ_INT(dl[0].chunk, 0);
    long dl_id = dl[0].id;
    free(dl);
    char job_id[32] = "";
    uint32_t chunk = 99;
    ASSERT_EQ_INT(store_deadletter_retry(st, dl_id, job_id, &chunk), 0);
    ASSERT_EQ_STR(job_id, "JOB-1");
    ASSERT_EQ_INT(chunk, 0);
    ASSERT_EQ_INT(store_deadletter_retry(st, dl_id, job_id, &chunk), 1);
    ASSERT_EQ_INT(store_deadletter_retry(st, 12345, job_id, &chunk), 1);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_PROCESSING);
    ASSERT_EQ_INT(j.finished_at, 0);
    ASSERT_EQ_INT(j.chunks_dead, 0);
    ASSERT_EQ_INT(store_deadletters_list(st, 0, 10, &dl, &n), 0);
    ASSERT_EQ_INT(n, 0);
    free(dl);
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 2, 0, 1, on_done, &a);
    barrier(st);
    ASSERT_EQ_INT(a.rc, 0);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_COMPLETED);
    ASSERT_EQ_INT(j.successful, 4);
    cleanup(st, NULL);
}

static void test_cancel(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, NULL, NULL), 0);
    store_job_t j;
    ASSERT_EQ_INT(store_job_cancel(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_CANCELLED);
    ASSERT_TRUE(j.finished_at > 0);
    ASSERT_EQ_INT(store_job_cancel(st, "JOB-1", &j), 2);
    ASSERT_EQ_INT(j.status, JOB_CANCELLED);
    ASSERT_EQ_INT(store_job_cancel(st, "JOB-x", &j), 1);
    cb_t a = {0, 9}, b = {0, 9};
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 2, 0, 1, on_done, &a);
    store_chunk_deadletter(st, "JOB-1", 1, "x", 1, on_done, &b);
    store_job_mark_started(st, "JOB-1", 7);
    barrier(st);
    ASSERT_EQ_INT(a.rc, 1);
    ASSERT_EQ_INT(b.rc, 1);
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_CANCELLED);
    ASSERT_EQ_INT(j.chunks_done, 0);
    ASSERT_EQ_INT(j.started_at, 0);
    /* a finished job cannot be cancelled */
    ASSERT_EQ_INT(new_job(st, "JOB-2", 1, NULL, NULL), 0);
    store_chunk_commit(st, "JOB-2", 0, "r0", 2, 2, 0, 1, on_done, &a);
    barrier(st);
    ASSERT_EQ_INT(store_job_cancel(st, "JOB-2", &j), 2);
    ASSERT_EQ_INT(j.status, JOB_COMPLETED);
    ASSERT_EQ_STR(job_status_name(JOB_CANCELLED), "CANCELLED");
    job_status_t s;
    ASSERT_EQ_INT(job_status_parse("processing", &s), 0);
    ASSERT_EQ_INT(s, JOB_PROCESSING);
    ASSERT_EQ_INT(job_status_parse("nope", &s), -1);
    cleanup(st, NULL);
}

static void count_chunk(void *arg, uint32_t chunk, const void *blob, size_t len) {
    (void)chunk; (void)blob; (void)len;
    (*(int *)arg)++;
}

static long results_of(store_t *st, const char *id) {
    int n = 0;
    store_results_scan(st, id, 0, 100, count_chunk, &n);
    return n;
}

/* The integer the first row's first column of sql holds, read with a connection of its own
 * (WAL: beside the store's); -1 when it cannot be read. */
static long sqlite_scalar(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    long n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return n;
}

static long sqlite_has_index(const char *path, const char *name) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '%s'", name);
    return sqlite_scalar(path, sql);
}

/* Retention: finished jobs before the cutoff go, with their results, ids and dead letters,
 * oldest first and at most limit per call; unfinished and newer jobs stay whole. */
static void test_jobs_expire(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    cb_t a = {0, 9};
    /* JOB-1 completed, JOB-2 failed (a dead letter), JOB-3 cancelled: all before the cutoff */
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, NULL, NULL), 0);
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 2, 0, 1, on_done, &a);
    store_chunk_commit(st, "JOB-1", 1, "r1", 2, 2, 0, 1, on_done, &a);
    ASSERT_EQ_INT(new_job(st, "JOB-2", 2, NULL, NULL), 0);
    store_chunk_commit(st, "JOB-2", 0, "r0", 2, 2, 0, 1, on_done, &a);
    store_chunk_deadletter(st, "JOB-2", 1, "boom", 3, on_done, &a);
    ASSERT_EQ_INT(new_job(st, "JOB-3", 1, NULL, NULL), 0);
    barrier(st);
    ASSERT_EQ_INT(store_job_cancel(st, "JOB-3", NULL), 0);
    /* JOB-4 still running (a chunk of two done) */
    ASSERT_EQ_INT(new_job(st, "JOB-4", 2, NULL, NULL), 0);
    store_chunk_commit(st, "JOB-4", 0, "r0", 2, 2, 0, 1, on_done, &a);
    barrier(st);
    usleep(20000);
    const int64_t cutoff = now_ms();
    usleep(20000);
    /* JOB-5 completed after the cutoff */
    ASSERT_EQ_INT(new_job(st, "JOB-5", 1, NULL, NULL), 0);
    store_chunk_commit(st, "JOB-5", 0, "r0", 2, 2, 0, 1, on_done, &a);
    barrier(st);
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-2", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_FAILED);
    ASSERT_TRUE(j.finished_at < cutoff);
    ASSERT_EQ_INT(results_of(st, "JOB-1"), 2);

    ASSERT_EQ_INT(store_jobs_expire(st, cutoff, 0), 0);
    ASSERT_EQ_INT(store_jobs_expire(st, cutoff, 2), 2); /* the limit holds */
    ASSERT_EQ_INT(store_jobs_expire(st, cutoff, 10), 1);
    ASSERT_EQ_INT(store_jobs_expire(st, cutoff, 10), 0);
    for (int i = 1; i <= 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "JOB-%d", i);
        ASSERT_EQ_INT(store_job_get(st, id, &j), 1);
        ASSERT_EQ_INT(results_of(st, id), 0);
        char *params = NULL, *ids = NULL;
        size_t ids_len = 0;
        ASSERT_TRUE(store_job_load_work(st, id, &params, &ids, &ids_len) != 0);
        free(params);
        free(ids);
    }
    store_deadletter_t *dl;
    size_t n;
    ASSERT_EQ_INT(store_deadletters_list(st, 0, 10, &dl, &n), 0);
    ASSERT_EQ_INT(n, 0); /* JOB-2's went with it */
    free(dl);
    /* the running and the newer job are whole */
    ASSERT_EQ_INT(store_job_get(st, "JOB-4", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_PROCESSING);
    ASSERT_EQ_INT(results_of(st, "JOB-4"), 1);
    ASSERT_EQ_INT(store_job_get(st, "JOB-5", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_COMPLETED);
    ASSERT_EQ_INT(results_of(st, "JOB-5"), 1);
    long counts[5];
    ASSERT_EQ_INT(store_job_counts(st, counts), 0);
    ASSERT_EQ_INT(counts[JOB_COMPLETED], 1);
    ASSERT_EQ_INT(counts[JOB_FAILED], 0);
    ASSERT_EQ_INT(counts[JOB_CANCELLED], 0);
    ASSERT_EQ_INT(counts[JOB_PROCESSING], 1);
    /* JOB-4 finishing now is not past the cutoff either */
    store_chunk_commit(st, "JOB-4", 1, "r1", 2, 2, 0, 1, on_done, &a);
    barrier(st);
    ASSERT_EQ_INT(store_jobs_expire(st, cutoff, 10), 0);
    ASSERT_EQ_INT(store_jobs_expire(st, now_ms() + 1000, 10), 2);
    cleanup(st, NULL);
}

/* A version-2 database (jobs indexed by status alone) opens as version 3. */
static void test_schema_2_migrates(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 1, NULL, NULL), 0);
    store_close(st);
    char path[128];
    snprintf(path, sizeof path, "%s/data/predictd.db", tmpdir);
    sqlite3 *db = NULL;
    ASSERT_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ_INT(sqlite3_exec(db, "DROP INDEX jobs_status_finished; CREATE INDEX jobs_status ON jobs(status);"
                                   "PRAGMA user_version=2;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ_INT(sqlite_has_index(path, "jobs_status"), 1);
    st = reopen();
    ASSERT_TRUE(st);
    store_close(st);
    ASSERT_EQ_INT(sqlite_has_index(path, "jobs_status"), 0);
    ASSERT_EQ_INT(sqlite_has_index(path, "jobs_status_finished"), 1);
    st = reopen();
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    cleanup(st, NULL);
}

/* An import of at least 100,000 relationships into a table no bigger builds the two indexes
 * once after the rows (not row by row): the same rows, graph and indexes as the row-by-row
 * path; a bad row still changes nothing. */
static void test_big_relationship_import_rebuilds_indexes(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    enum { NE = 1000, NR = 100000 };
    static char names[NE][16];
    entity_row_t *er = calloc(NE, sizeof *er);
    rel_row_t *rr = calloc(NR, sizeof *rr);
    ASSERT_TRUE(er && rr);
    for (int i = 0; i < NE; i++) {
        snprintf(names[i], sizeof names[i], "E%d", i);
        er[i] = (entity_row_t){0, names[i], json_pack("{s:i}", "spin", i % 2 ? 1 : -1)};
    }
    char err[256] = "";
    ASSERT_EQ_INT(store_import_entities(st, er, NE, err, sizeof err), 0);
    uint64_t x = 12345;
    double wsum_01 = 0;
    for (int r = 0; r < NR; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int a = (int)(x % NE), b = (int)((x >> 20) % (NE - 1));
        if (b >= a) b++;
        rr[r] = (rel_row_t){0, names[a], names[b], 1.0 + (double)(r % 7), ""};
        if ((a == 0 && b == 1) || (a == 1 && b == 0)) wsum_01 += rr[r].weight;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/data/predictd.db", tmpdir);
    /* a bad last row: nothing written, the indexes as they were */
    char *last_target = rr[NR - 1].target;
    rr[NR - 1].target = "NOPE";
    ASSERT_EQ_INT(store_import_relationships(st, rr, NR, err, sizeof err), -1);
    ASSERT_EQ_INT(sqlite_scalar(path, "SELECT count(*) FROM relationships"), 0);
    ASSERT_EQ_INT(sqlite_has_index(path, "relationships_source"), 1);
    ASSERT_EQ_INT(sqlite_has_index(path, "relationships_target"), 1);
    ASSERT_EQ_INT(g->edges, 0);
    rr[NR - 1].target = last_target;
    ASSERT_EQ_INT(store_import_relationships(st, rr, NR, err, sizeof err), 0);
    ASSERT_EQ_INT(sqlite_scalar(path, "SELECT count(*) FROM relationships"), NR);
    ASSERT_EQ_INT(sqlite_has_index(path, "relationships_source"), 1);
    ASSERT_EQ_INT(sqlite_has_index(path, "relationships_target"), 1);
    /* the indexes hold every row: counted through each of them */
    ASSERT_EQ_INT(sqlite_scalar(path, "SELECT count(*) FROM relationships INDEXED BY relationships_source WHERE source > 0"), NR);
    ASSERT_EQ_INT(sqlite_scalar(path, "SELECT count(*) FROM relationships INDEXED BY relationships_target WHERE target > 0"), NR);
    ASSERT_EQ_INT(sqlite_scalar(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
    uint32_t cnt = 0;
    double w = g_weight(g, "E0", "E1", &cnt);
    ASSERT_TRUE(fabs(w - wsum_01) < 1e-9);
    for (int i = 0; i < NE; i++) json_decref(er[i].props);
    free(er);
    free(rr);
    cleanup(st, g);
}

static void test_persists_across_reopen(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);                 /* v1 */
    ASSERT_EQ_INT(add_rel(st, "A", "B", 2.0, ""), 0);  /* v2 */
    ASSERT_EQ_INT(add_rel(st, "A", "B", 1.0, ""), 0);  /* v3 */
    ASSERT_EQ_INT(add_rel(st, "B", "C", -0.5, ""), 0); /* v4 */
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, "k", NULL), 0);
    cb_t a = {0, 9};
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 2, 0, 1, on_done, &a);
    store_chunk_deadletter(st, "JOB-1", 1, "bad", 2, on_done, &a);
    store_close(st); /* flushes the queued writes */
    ASSERT_EQ_INT(a.calls, 2);
    graph_free(g);
    st = reopen();
    ASSERT_TRUE(st);
    g = graph_new();
    char err[256] = "";
    ASSERT_EQ_INT(store_load_graph(st, g, err, sizeof err), 0);
    store_attach_graph(st, g);
    uint32_t cnt;
    ASSERT_EQ_INT(g->live, 3);
    ASSERT_NEAR(g_weight(g, "A", "B", &cnt), 3.0, 1e-12);
    ASSERT_EQ_INT(cnt, 2);
    ASSERT_NEAR(g_weight(g, "C", "B", &cnt), -0.5, 1e-12);
    ASSERT_EQ_INT(g_version(g, "A"), 3);
    ASSERT_EQ_INT(g_version(g, "C"), 4);
    ASSERT_NEAR(g->spin[graph_find(g, "A")], 1, 0);
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_FAILED);
    ASSERT_EQ_INT(j.chunks_done, 1);
    ASSERT_EQ_INT(j.chunks_dead, 1);
    char existing[32] = "";
    ASSERT_EQ_INT(new_job(st, "JOB-2", 2, "k", existing), 1);
    ASSERT_EQ_STR(existing, "JOB-1");
    store_deadletter_t *dl;
    size_t n;
    ASSERT_EQ_INT(store_deadletters_list(st, 0, 10, &dl, &n), 0);
    ASSERT_EQ_INT(n, 1);
    free(dl);
    /* the version clock continues where it was */
    json_t *patch = json_pack("{s:i}", "spin", -1);
    ASSERT_EQ_INT(store_entity_patch(st, "C", patch, err, sizeof err), 0);
    json_decref(patch);
    ASSERT_EQ_INT(s_version(st, "C"), 5);
    ASSERT_EQ_INT(g_version(g, "C"), 5);
    cleanup(st, g);
}

/* ---- group commit ---- */

#define N_THREADS 8
#define N_PER_THREAD 25

typedef struct { store_t *st; int t; int ok, dup; } worker_t;

static void *insert_worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < N_PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "JOB-%02d-%03d", w->t, i);
        if (new_job(w->st, id, 1, NULL, NULL) == 0) w->ok++;
    }
    char existing[32], id[32];
    for (int k = 1; k <= 2; k++) {
        snprintf(id, sizeof id, "JOB-s%d-%d", k, w->t);
        int rc = new_job(w->st, id, 1, k == 1 ? "shared-1" : "shared-2", existing);
        if (rc == 0) w->ok++;
        else if (rc == 1) w->dup++;
    }
    return NULL;
}

/* Holds the writer busy for a moment so that every thread's first insert is queued. */
static void slow_done(void *arg, int rc) {
    (void)arg;
    (void)rc;
    usleep(200 * 1000);
}

static void test_group_commit_concurrent_inserts(void) {
    store_t *st = open_fresh(NULL);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(new_job(st, "JOB-0", 1, NULL, NULL), 0);
    uint64_t g0, o0;
    store_write_stats(st, &g0, &o0);
    store_job_mark_started(st, "JOB-0", 1);
    store_chunk_commit(st, "JOB-0", 0, "x", 1, 1, 0, 1, slow_done, NULL);
    pthread_t th[N_THREADS];
    worker_t w[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        w[t] = (worker_t){st, t, 0, 0};
        pthread_create(&th[t], NULL, insert_worker, &w[t]);
    }
    int ok = 0, dup = 0;
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        ok += w[t].ok;
        dup += w[t].dup;
    }
    ASSERT_EQ_INT(ok, N_THREADS * N_PER_THREAD + 2);
    ASSERT_EQ_INT(dup, 2 * (N_THREADS - 1));
    long counts[5];
    ASSERT_EQ_INT(store_job_counts(st, counts), 0);
    /* JOB-0 completed; per thread 25 + one of the "shared" key + one of "shared-2" */
    ASSERT_EQ_INT(counts[JOB_QUEUED], N_THREADS * N_PER_THREAD + 2);
    ASSERT_EQ_INT(counts[JOB_COMPLETED], 1);
    uint64_t g1, o1;
    store_write_stats(st, &g1, &o1);
    ASSERT_EQ_INT(o1 - o0, 2 + N_THREADS * (N_PER_THREAD + 2));
    /* while the writer was held, all eight threads queued: fewer commits than writes */
    ASSERT_TRUE(g1 - g0 < (o1 - o0) - N_THREADS + 1);
    cleanup(st, NULL);
}

/* The WAL is checkpointed and starts over while writes go on and a reader keeps reading:
 * 96 MB written in 1 MB jobs leave a WAL file of at most 1.5 times the restart threshold (32 MB:
 * a restart may wait for readers) (the checkpointer's connection once did nothing at all, and the WAL grew
 * with every write: 96 MB here). */
typedef struct { store_t *st; volatile int stop; long reads; } reader_t;

static void *wal_reader(void *arg) {
    reader_t *r = arg;
    store_job_t job;
    while (!r->stop) {
        store_job_get(r->st, "JOB-w-0", &job);
        r->reads++;
    }
    return NULL;
}

static long wal_bytes(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/data/predictd.db-wal", tmpdir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void test_wal_stays_bounded_under_reads_and_writes(void) {
    wal_max_mb = 16; /* 96 MB written: the WAL starts over about five times */
    store_t *st = open_fresh(NULL);
    wal_max_mb = 0;
    ASSERT_TRUE(st);
    enum { BLOB = 1 << 20, JOBS = 96 };
    char *ids = malloc(BLOB);
    ASSERT_TRUE(ids != NULL);
    for (int i = 0; i < BLOB; i++) ids[i] = (i % 11 == 10) ? '\0' : (char)('a' + i % 26);
    reader_t r = {st, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, wal_reader, &r);
    long peak = 0;
    for (int k = 0; k < JOBS; k++) {
        store_new_job_t nj;
        memset(&nj, 0, sizeof nj);
        snprintf(nj.job.id, sizeof nj.job.id, "JOB-w-%d", k);
        snprintf(nj.job.model, sizeof nj.job.model, "ising");
        nj.job.status = JOB_QUEUED;
        nj.job.chunk_size = 1;
        nj.job.n_entities = nj.job.n_chunks = 1;
        nj.params_json = "{}";
        nj.ids = ids;
        nj.ids_len = BLOB;
        char err[256] = "", existing[32];
        ASSERT_EQ_INT(store_job_insert(st, &nj, existing, err, sizeof err), 0);
        long w = wal_bytes();
        if (w > peak) peak = w;
    }
    r.stop = 1;
    pthread_join(th, NULL);
    free(ids);
    /* the limit, plus the group that crossed it and one more if a reader delayed the restart */
    if (peak > 24L << 20) fprintf(stderr, "WAL peaked at %ld bytes (reads %ld)\n", peak, r.reads);
    ASSERT_TRUE(r.reads > 0);
    ASSERT_TRUE(peak > 0 && peak <= 24L << 20);
    cleanup(st, NULL);
}

/* Ops that fail inside a group roll back alone: the others in the same commit stand. */
static void test_failed_op_rolls_back_alone(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    ASSERT_EQ_INT(import_abc(st), 0);
    ASSERT_EQ_INT(new_job(st, "JOB-1", 2, NULL, NULL), 0);
    ASSERT_EQ_INT(new_job(st, "JOB-2", 2, NULL, NULL), 0);
    uint64_t g0, o0, g1, o1;
    store_write_stats(st, &g0, &o0);
    cb_t a = {0, 9}, b = {0, 9}, c = {0, 9};
    store_chunk_commit(st, "JOB-1", 0, "r0", 2, 2, 0, 1, slow_done, NULL); /* holds the writer */
    store_chunk_commit(st, "JOB-1", 1, "r1", 2, 2, 0, 1, on_done, &a);
    store_chunk_commit(st, "JOB-X", 0, "zz", 2, 2, 0, 1, on_done, &b);      /* unknown job */
    store_chunk_deadletter(st, "JOB-2", 5, "x", 1, on_done, &c);            /* no chunk 5 */
    rel_row_t rows[2] = {{2, "A", "B", 1.0, ""}, {3, "A", "Z", 1.0, ""}};
    char err[256] = "";
    ASSERT_EQ_INT(store_import_relationships(st, rows, 2, err, sizeof err), -1);
    ASSERT_EQ_STR(err, "line 3: target 'Z' does not exist");
    store_write_stats(st, &g1, &o1);
    ASSERT_TRUE(g1 - g0 <= 2); /* a, b, c and the import were committed together */
    ASSERT_EQ_INT(o1 - o0, 5);
    ASSERT_EQ_INT(a.rc, 0);
    ASSERT_EQ_INT(b.rc, -1);
    ASSERT_EQ_INT(c.rc, -1);
    store_job_t j;
    ASSERT_EQ_INT(store_job_get(st, "JOB-1", &j), 0);
    ASSERT_EQ_INT(j.status, JOB_COMPLETED);
    ASSERT_EQ_INT(j.chunks_done, 2);
    ASSERT_EQ_INT(j.chunks_dead, 0);
    ASSERT_EQ_INT(g->edges, 0);
    ASSERT_EQ_INT(s_version(st, "A"), 1);
    cleanup(st, g);
}

/* ---- store_sql.h: a subsystem's own table, written and read through the extension point */

static int sql_run(sqlite3 *db, void *arg, char *err, size_t errlen) {
    if (sqlite3_exec(db, (const char *)arg, NULL, NULL, NULL) == SQLITE_OK) return 0;
    snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    return -1;
}

static int sql_count(sqlite3 *db, void *arg, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(v), 0) FROM ext", -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    long *out = arg;
    if (sqlite3_step(s) == SQLITE_ROW) { out[0] = sqlite3_column_int64(s, 0); out[1] = sqlite3_column_int64(s, 1); }
    sqlite3_finalize(s);
    return 0;
}

static int freed;
static void sql_free(void *arg) { (void)arg; freed++; }

static void test_sql_extension(void) {
    graph_t *g;
    store_t *st = open_fresh(&g);
    ASSERT_TRUE(st);
    char err[256] = "";
    ASSERT_EQ_INT(store_sql_write(st, sql_run, "CREATE TABLE IF NOT EXISTS ext(v INTEGER)", err, sizeof err), 0);
    ASSERT_EQ_INT(store_sql_write(st, sql_run, "INSERT INTO ext VALUES (1), (2)", err, sizeof err), 0);
    /* a failing write rolls back alone and says why */
    ASSERT_EQ_INT(store_sql_write(st, sql_run, "INSERT INTO ext VALUES (40); INSERT INTO nope VALUES (1)", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "nope") != NULL);
    cb_t a = {0, 9};
    freed = 0;
    ASSERT_EQ_INT(store_sql_write_async(st, sql_run, "INSERT INTO ext VALUES (4)", sql_free, on_done, &a), 0);
    barrier(st);
    ASSERT_EQ_INT(a.calls, 1);
    ASSERT_EQ_INT(a.rc, 0);
    ASSERT_EQ_INT(freed, 1);
    long n[2] = {-1, -1};
    ASSERT_EQ_INT(store_sql_read(st, sql_count, n, err, sizeof err), 0);
    ASSERT_EQ_INT(n[0], 3);
    ASSERT_EQ_INT(n[1], 7);
    ASSERT_EQ_INT(store_sql_read(st, sql_run, "SELECT * FROM missing", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "missing") != NULL);
    store_close(st);
    /* durable: the rows are there after a reopen */
    st = reopen();
    ASSERT_TRUE(st);
    n[0] = -1;
    ASSERT_EQ_INT(store_sql_read(st, sql_count, n, err, sizeof err), 0);
    ASSERT_EQ_INT(n[0], 3);
    cleanup(st, g);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_import_and_get),
        TEST_CASE(test_wal_stays_bounded_under_reads_and_writes),
        TEST_CASE(test_patch_merges_and_null_removes),
        TEST_CASE(test_relationships_add_parallel_delete),
        TEST_CASE(test_bad_row_changes_nothing),
        TEST_CASE(test_delete_cascades),
        TEST_CASE(test_big_relationship_import_rebuilds_indexes),
        TEST_CASE(test_job_insert_and_idempotency),
        TEST_CASE(test_chunk_commit_exactly_once),
        TEST_CASE(test_deadletter_failed_and_retry),
        TEST_CASE(test_cancel),
        TEST_CASE(test_jobs_expire),
        TEST_CASE(test_schema_2_migrates),
        TEST_CASE(test_persists_across_reopen),
        TEST_CASE(test_group_commit_concurrent_inserts),
        TEST_CASE(test_failed_op_rolls_back_alone),
        TEST_CASE(test_sql_extension),
    };
    return test_main("store", cases, (int)(sizeof cases / sizeof cases[0]));
}
