/* serving/: the model repository (index, bad models listed with their reason, load/unload,
 * config.yaml) and the dynamic batcher (concurrent requests get what they get alone, and
 * are batched). Models: tests/models/lstm_regressor.onnx (x: [B, 32, 20] -> y: [B, 1]). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serving/serving.h"
#include "test.h"

#define ROW (32 * 20)
#define LSTM "tests/models/lstm_regressor.onnx"

static char g_dir[256];

static void put_file(const char *rel, const char *src_path, const char *text) {
    char path[512], cmd[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd)) return;
    if (src_path) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src_path, path);
        if (system(cmd)) return;
    } else {
        FILE *f = fopen(path, "w");
        if (!f) return;
        fputs(text, f);
        fclose(f);
    }
}

/* A repository: lstm/1 bare, lstm/2 with a bad config.yaml, broken/1 an unsupported op,
 * empty/ without versions, fast/1 batching for 200 ms, scaled/1 with a scaler. */
static void make_repo(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/predictd-test-serving-%d", (int)getpid());
    put_file("lstm/1/model.onnx", LSTM, NULL);
    put_file("lstm/2/model.onnx", LSTM, NULL);
    put_file("lstm/2/config.yaml", NULL, "max_batch_size: 8\nnot_a_key: 1\n");
    put_file("broken/1/model.onnx", "tests/models/bad_unsupported_op.onnx", NULL);
    put_file("empty/README", NULL, "no versions here\n");
    put_file("fast/1/model.onnx", LSTM, NULL);
    put_file("fast/1/config.yaml", NULL, "type: lstm_regressor\nmax_batch_size: 64\nmax_queue_delay_ms: 200\nthreads: 2\n");
    char yaml[4096] = "inputs:\n  - name: x\n    scaler:\n      mean: [";
    for (int f = 0; f < 20; f++) snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml), "%s%g", f ? ", " : "", 0.1 * f);
    strcat(yaml, "]\n      scale: [");
    for (int f = 0; f < 20; f++) snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml), "%s%g", f ? ", " : "", 0.5 + 0.25 * f);
    strcat(yaml, "]\n");
    put_file("scaled/1/model.onnx", LSTM, NULL);
    put_file("scaled/1/config.yaml", NULL, yaml);
}

static void remove_repo(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
}

static void fill(float *x, int rows, int salt) {
    for (int i = 0; i < rows * ROW; i++) x[i] = (float)sin((i + 977 * salt) * 0.37);
}

typedef struct {
    char name[32], version[8], reason[256];
    int ready;
} seen_t;

typedef struct {
    seen_t e[16];
    int n;
} index_t;

static void collect(void *arg, const char *name, const char *version, int ready, const char *reason) {
    index_t *ix = arg;
    if (ix->n == 16) return;
    seen_t *s = &ix->e[ix->n++];
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->version, sizeof s->version, "%s", version);
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    s->ready = ready;
}

static const seen_t *find(const index_t *ix, const char *name, const char *version) {
    for (int i = 0; i < ix->n; i++)
        if (!strcmp(ix->e[i].name, name) && !strcmp(ix->e[i].version, version)) return &ix->e[i];
    return NULL;
}

static void test_index_lists_bad_models_with_their_reason(void) {
    serving_t *s = NULL;
    char err[512];
    ASSERT_EQ_INT(serving_open(&s, g_dir, NULL, err, sizeof err), 0);
    index_t ix = {0};
    serving_index(s, collect, &ix);
    const seen_t *e = find(&ix, "lstm", "1");
    ASSERT_TRUE(e && e->ready);
    e = find(&ix, "lstm", "2");
    ASSERT_TRUE(e && !e->ready && strstr(e->reason, "not_a_key"));
    e = find(&ix, "broken", "1");
    ASSERT_TRUE(e && !e->ready && strstr(e->reason, "Celu"));
    e = find(&ix, "empty", "");
    ASSERT_TRUE(e && !e->ready && strstr(e->reason, "no version"));
    ASSERT_EQ_INT(serving_n_ready(s), 3); /* lstm/1, fast/1, scaled/1 */

    int rc;
    serving_model_t *m = serving_get(s, "lstm", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    ASSERT_EQ_STR(serving_model_version(m), "1"); /* version 2 is not ready */
    ASSERT_EQ_INT(serving_model_max_batch(m), 128);  /* defaults for a bare model */
    ASSERT_EQ_INT(serving_model_mc_passes(m), 20);
    nn_tensor_t t;
    int ax;
    serving_model_output_info(m, 0, &t, &ax);
    ASSERT_EQ_INT(ax, 0);
    ASSERT_EQ_INT(serving_model_output_row(m, 0), 1);
    ASSERT_EQ_INT(serving_model_input_row(m, 0), ROW);
    serving_release(m);
    ASSERT_TRUE(serving_get(s, "lstm", "2", &rc, err, sizeof err) == NULL);
    ASSERT_EQ_INT(rc, SERVING_ERR_UNAVAILABLE);
    ASSERT_TRUE(serving_get(s, "lstm", "7", &rc, err, sizeof err) == NULL);
    ASSERT_EQ_INT(rc, SERVING_ERR_NOT_FOUND);
    ASSERT_TRUE(serving_get(s, "nope", NULL, &rc, err, sizeof err) == NULL);
    ASSERT_EQ_INT(rc, SERVING_ERR_NOT_FOUND);
    serving_model_t *fast = serving_get(s, "fast", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(fast != NULL);
    ASSERT_EQ_STR(serving_model_type(fast), "lstm_regressor");
    ASSERT_EQ_INT(serving_model_max_batch(fast), 64);
    serving_release(fast);
    serving_free(s);
}

static void test_unload_then_load(void) {
    serving_t *s = NULL;
    char err[512];
    int rc;
    ASSERT_EQ_INT(serving_open(&s, g_dir, NULL, err, sizeof err), 0);
    serving_model_t *held = serving_get(s, "lstm", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(held != NULL);
    ASSERT_EQ_INT(serving_unload(s, "lstm", err, sizeof err), 0);
    ASSERT_TRUE(serving_get(s, "lstm", NULL, &rc, err, sizeof err) == NULL);
    ASSERT_EQ_INT(rc, SERVING_ERR_UNAVAILABLE);
    ASSERT_TRUE(serving_get(s, "lstm", "1", &rc, err, sizeof err) == NULL);
    ASSERT_TRUE(strstr(err, "unloaded") != NULL);
    /* a reference taken before the unload still runs */
    float x[ROW], y[1];
    fill(x, 1, 1);
    float *in[1] = {x}, *out[1] = {y};
    serving_req_t rq = {.rows = 1, .inputs = in, .outputs = out};
    ASSERT_EQ_INT(serving_infer(held, &rq, err, sizeof err), 0);
    serving_release(held);
    ASSERT_EQ_INT(serving_load(s, "lstm", err, sizeof err), 0);
    serving_model_t *m = serving_get(s, "lstm", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    serving_release(m);
    ASSERT_EQ_INT(serving_load(s, "nope", err, sizeof err), SERVING_ERR_NOT_FOUND);
    ASSERT_EQ_INT(serving_unload(s, "nope", err, sizeof err), SERVING_ERR_NOT_FOUND);
    ASSERT_EQ_INT(serving_load(s, "broken", err, sizeof err), SERVING_ERR_UNAVAILABLE);
    ASSERT_TRUE(strstr(err, "Celu") != NULL);
    serving_free(s);
}

/* The oracle: the engine alone, one plan at exactly the request's rows. */
static int engine_alone(const float *x, int rows, float *y, const float *mean, const float *scale) {
    nn_model_t *nn = NULL;
    nn_plan_t *p = NULL;
    char err[256];
    if (nn_model_load(LSTM, &nn, err, sizeof err)) return -1;
    nn_plan_opts_t o = {.batch = rows, .threads = 1, .reference = 1};
    int rc = nn_plan_create(nn, &o, &p, err, sizeof err);
    float *xs = malloc((size_t)rows * ROW * sizeof *xs);
    for (int i = 0; !rc && i < rows * ROW; i++) xs[i] = mean ? (x[i] - mean[i % 20]) / scale[i % 20] : x[i];
    const void *in[1] = {xs};
    void *out[1] = {y};
    if (!rc) rc = nn_run(p, in, out, err, sizeof err);
    free(xs);
    nn_plan_free(p);
    nn_model_free(nn);
    return rc;
}

typedef struct {
    serving_model_t *m;
    pthread_barrier_t *go;
    int rows, salt, rc;
    float x[7 * ROW], y[7];
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    char err[256];
    fill(w->x, w->rows, w->salt);
    float *in[1] = {w->x}, *out[1] = {w->y};
    serving_req_t rq = {.rows = w->rows, .inputs = in, .outputs = out};
    pthread_barrier_wait(w->go);
    w->rc = serving_infer(w->m, &rq, err, sizeof err);
    return NULL;
}

static void test_concurrent_requests_are_batched_and_get_their_own_rows(void) {
    serving_t *s = NULL;
    metrics_t *mx = metrics_new();
    char err[512];
    int rc;
    ASSERT_EQ_INT(serving_open(&s, g_dir, mx, err, sizeof err), 0);
    serving_model_t *m = serving_get(s, "fast", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    enum { N = 12 };
    static worker_t w[N];
    pthread_t th[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        w[i] = (worker_t){.m = m, .go = &go, .rows = 1 + i % 7, .salt = i};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    double runs = metrics_value(mx, "predictd_nn_batch_size", "model=\"fast\"");
    /* 12 requests arriving together within a 200 ms window: far fewer runs than requests */
    ASSERT_TRUE(runs >= 1 && runs <= N / 2);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(w[i].rc, 0);
        float want[7];
        float x[7 * ROW];
        fill(x, w[i].rows, w[i].salt);
        ASSERT_EQ_INT(engine_alone(x, w[i].rows, want, NULL, NULL), 0);
        for (int r = 0; r < w[i].rows; r++) ASSERT_NEAR(w[i].y[r], want[r], 1e-5);
    }
    serving_release(m);
    serving_free(s);
    metrics_free(mx);
}

static void test_scaler_from_config_is_applied(void) {
    serving_t *s = NULL;
    char err[512];
    int rc;
    ASSERT_EQ_INT(serving_open(&s, g_dir, NULL, err, sizeof err), 0);
    serving_model_t *m = serving_get(s, "scaled", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    float x[3 * ROW], x0[3 * ROW], y[3], want[3], mean[20], scale[20];
    fill(x, 3, 5);
    memcpy(x0, x, sizeof x);
    for (int f = 0; f < 20; f++) mean[f] = 0.1f * f, scale[f] = 0.5f + 0.25f * f;
    float *in[1] = {x}, *out[1] = {y};
    serving_req_t rq = {.rows = 3, .inputs = in, .outputs = out};
    ASSERT_EQ_INT(serving_infer(m, &rq, err, sizeof err), 0);
    ASSERT_EQ_INT(engine_alone(x0, 3, want, mean, scale), 0);
    for (int r = 0; r < 3; r++) ASSERT_NEAR(y[r], want[r], 1e-5);
    serving_release(m);
    serving_free(s);
}

static void test_bad_requests_are_refused(void) {
    serving_t *s = NULL;
    char err[512];
    int rc;
    ASSERT_EQ_INT(serving_open(&s, g_dir, NULL, err, sizeof err), 0);
    serving_model_t *m = serving_get(s, "fast", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    float x[ROW], y[1];
    fill(x, 1, 2);
    x[17] = NAN;
    float *in[1] = {x}, *out[1] = {y};
    serving_req_t rq = {.rows = 1, .inputs = in, .outputs = out};
    ASSERT_EQ_INT(serving_infer(m, &rq, err, sizeof err), SERVING_ERR_INPUT);
    ASSERT_TRUE(strstr(err, "element 17") != NULL);
    x[17] = 0;
    rq.rows = 65; /* max_batch_size 64 */
    ASSERT_EQ_INT(serving_infer(m, &rq, err, sizeof err), SERVING_ERR_INPUT);
    rq.rows = 1;
    rq.mc_passes = 1;
    ASSERT_EQ_INT(serving_infer(m, &rq, err, sizeof err), SERVING_ERR_INPUT);
    serving_release(m);
    serving_free(s);
}

/* MC through the batcher equals nn_run_mc on the model directly (same seed, same rows). */
static void test_mc_request_equals_engine_mc(void) {
    serving_t *s = NULL;
    char err[512];
    int rc;
    ASSERT_EQ_INT(serving_open(&s, g_dir, NULL, err, sizeof err), 0);
    serving_model_t *m = serving_get(s, "lstm", NULL, &rc, err, sizeof err);
    ASSERT_TRUE(m != NULL);
    enum { R = 4, P = 6 };
    float x[R * ROW], st[5][R], want[5][R];
    fill(x, R, 9);
    float *in[1] = {x}, *out[5] = {st[0], st[1], st[2], st[3], st[4]};
    serving_req_t rq = {.rows = R, .inputs = in, .outputs = out, .mc_passes = P, .seed = 42};
    ASSERT_EQ_INT(serving_infer(m, &rq, err, sizeof err), 0);
    nn_model_t *nn = NULL;
    nn_plan_t *p = NULL;
    ASSERT_EQ_INT(nn_model_load(LSTM, &nn, err, sizeof err), 0);
    nn_plan_opts_t o = {.batch = R, .threads = 1, .mc_passes = P};
    ASSERT_EQ_INT(nn_plan_create(nn, &o, &p, err, sizeof err), 0);
    const void *ins[1] = {x};
    nn_mc_stats_t ms = {want[0], want[1], want[2], want[3], want[4]};
    ASSERT_EQ_INT(nn_run_mc(p, 42, ins, &ms, err, sizeof err), 0);
    nn_plan_free(p);
    nn_model_free(nn);
    for (int k = 0; k < 5; k++)
        for (int r = 0; r < R; r++) ASSERT_NEAR(st[k][r], want[k][r], 1e-5);
    ASSERT_TRUE(st[1][0] > 0); /* dropout is active: the passes differ */
    serving_release(m);
    serving_free(s);
}

int main(void) {
    make_repo();
    static const test_case_t cases[] = {
        TEST_CASE(test_index_lists_bad_models_with_their_reason),
        TEST_CASE(test_unload_then_load),
        TEST_CASE(test_concurrent_requests_are_batched_and_get_their_own_rows),
        TEST_CASE(test_scaler_from_config_is_applied),
        TEST_CASE(test_bad_requests_are_refused),
        TEST_CASE(test_mc_request_equals_engine_mc),
    };
    int rc = test_main("serving", cases, (int)(sizeof cases / sizeof cases[0]));
    remove_repo();
    return rc;
}
