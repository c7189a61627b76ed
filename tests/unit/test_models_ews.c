/* models/ews and models/bifurcation: early-warning statistics against hand computations and
 * known processes.
 *  - Kendall's tau-b on small hand cases (ties included);
 *  - rolling variance / ar1 / skewness / excess kurtosis of 1..5 by hand;
 *  - a constant plus +-sigma alternation: variance sigma^2 w/(w-1), ar1 -(w-1)/w, no
 *    recovery rate (ar1 <= 0);
 *  - AR(1) with known phi: ar1 ~ phi, variance ~ 1/(1 - phi^2), lambda ~ -ln(phi)/dt;
 *  - a series whose spread grows monotonically: variance tau = 1;
 *  - detrending removes a line exactly (linear) and a constant (gaussian);
 *  - too few points fails the entity;
 *  - bifurcation: AR(1) whose recovery rate declines linearly at a known slope b: the fit
 *    finds b, lambda now and the time to transition -lambda_now / b. */
#include <pthread.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/rng.h"
#include "models/models_int.h"
#include "models_test.h"
#include "store/store.h"

static ews_opts_t opts(double rolling, int detrend, long min_points) {
    ews_opts_t o;
    memset(&o, 0, sizeof o);
    o.rolling = rolling;
    o.detrend = detrend;
    o.min_points = min_points;
    o.alert_tau = 0.7;
    o.metrics = 31;
    return o;
}

static void test_kendall_tau(void) {
    double up[] = {1, 2, 3, 4}, down[] = {4, 3, 2, 1}, mix[] = {1, 3, 2}, ties[] = {1, 1, 2}, flat[] = {5, 5, 5};
    ASSERT_NEAR(models_kendall_tau(up, 4), 1, 1e-15);
    ASSERT_NEAR(models_kendall_tau(down, 4), -1, 1e-15);
    ASSERT_NEAR(models_kendall_tau(mix, 3), 1.0 / 3.0, 1e-15);          /* C 2, D 1, 3 pairs */
    ASSERT_NEAR(models_kendall_tau(ties, 3), 2.0 / sqrt(3.0 * 2.0), 1e-15); /* tau-b: one tie in y */
    ASSERT_TRUE(isnan(models_kendall_tau(flat, 3)));
    ASSERT_TRUE(isnan(models_kendall_tau(up, 1)));
}

static void test_rolling_by_hand(void) {
    double r[] = {1, 2, 3, 4, 5}, v, a, s, k;
    ews_rolling(r, 5, 5, &v, &a, &s, &k);
    /* mean 3, deviations -2 -1 0 1 2: sum sq 10; lag-1 products 2 + 0 + 0 + 2 = 4 */
    ASSERT_NEAR(v, 10.0 / 4.0, 1e-15);
    ASSERT_NEAR(a, 4.0 / 10.0, 1e-15);
    ASSERT_NEAR(s, 0, 1e-15);
    ASSERT_NEAR(k, (34.0 / 5.0) / (2.0 * 2.0) - 3.0, 1e-14); /* m4 6.8, m2 2 */
    double r2[] = {0, 0, 0, 3}, sk[2];
    ews_rolling(r2, 4, 3, NULL, NULL, sk, NULL);
    ASSERT_TRUE(isnan(sk[0]));              /* constant window: skew 0/0 is undefined */
    /* {0, 0, 3}: mean 1, d = -1 -1 2: m2 2, m3 (−1 −1 + 8)/3 = 2: 2 / 2^1.5 */
    ASSERT_NEAR(sk[1], 2.0 / pow(2.0, 1.5), 1e-15);
}

static void test_alternating_known_variance(void) {
    enum { N = 100 };
    double t[N], x[N];
    for (int i = 0; i < N; i++) t[i] = i * 600.0, x[i] = 7.0 + 0.5 * (i % 2 ? 1 : -1);
    ews_opts_t o = opts(0.5, EWS_DETREND_NONE, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_OK);
    ASSERT_EQ_INT(r.w, 50);
    ASSERT_EQ_INT(r.L, 51);
    ASSERT_NEAR(r.var, 0.25 * 50.0 / 49.0, 1e-12);
    ASSERT_NEAR(r.ar1, -49.0 / 50.0, 1e-12);
    ASSERT_TRUE(isnan(r.var_tau));          /* every window the same: no trend */
    ASSERT_TRUE(isnan(r.lambda));           /* ar1 <= 0 */
    ASSERT_NEAR(r.dt_h, 600.0 / 3600.0, 1e-15);
    ASSERT_EQ_INT(r.alert, 0);
}

static void ar1_series(double *x, long n, double phi, uint64_t seed) {
    rng_t g;
    rng_seed(&g, seed);
    double v = 0;
    for (long i = 0; i < n; i++) x[i] = v = phi * v + rng_normal(&g);
}

static void test_ar1_known_phi(void) {
    enum { N = 20000 };
    double *t = malloc(N * sizeof *t), *x = malloc(N * sizeof *x);
    for (long i = 0; i < N; i++) t[i] = 1e9 + 3600.0 * (double)i;
    ar1_series(x, N, 0.8, 42);
    ews_opts_t o = opts(1.0, EWS_DETREND_NONE, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_OK);
    /* se(ar1) ~ sqrt((1 - phi^2) / N) = 0.0042; var = 1/(1 - 0.64) = 2.78, se ~ 2% */
    ASSERT_NEAR(r.ar1, 0.8, 4 * sqrt(0.36 / N));
    ASSERT_NEAR(r.var, 1.0 / 0.36, 0.08 * (1.0 / 0.36));
    ASSERT_NEAR(r.dt_h, 1.0, 0);
    ASSERT_NEAR(r.lambda, -log(r.ar1), 1e-15);
    ASSERT_NEAR(r.lambda, -log(0.8), 0.03);
    ASSERT_NEAR(fabs(r.skew), 0, 0.1);
    ASSERT_NEAR(r.kurt, 0, 0.2);
    free(t);
    free(x);
}

static void test_growing_spread_tau_one(void) {
    enum { N = 60 };
    double t[N], x[N];
    for (int i = 0; i < N; i++) t[i] = i, x[i] = (double)(i + 1) * (double)(i + 1); /* convex: spread grows */
    ews_opts_t o = opts(0.5, EWS_DETREND_NONE, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_OK);
    ASSERT_NEAR(r.var_tau, 1.0, 1e-15);
}

static void test_detrending(void) {
    enum { N = 40 };
    double t[N], x[N], res[N];
    for (int i = 0; i < N; i++) t[i] = 100.0 * i, x[i] = 3.0 - 0.02 * t[i];
    ews_detrend(t, x, N, EWS_DETREND_LINEAR, res);
    for (int i = 0; i < N; i++) ASSERT_NEAR(res[i], 0, 1e-12);
    ews_opts_t o = opts(0.5, EWS_DETREND_LINEAR, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_ERR_NO_VARIANCE);
    for (int i = 0; i < N; i++) x[i] = 5.0;
    ews_detrend(t, x, N, EWS_DETREND_GAUSSIAN, res);
    for (int i = 0; i < N; i++) ASSERT_NEAR(res[i], 0, 1e-12);
    ews_detrend(t, x, N, EWS_DETREND_NONE, res);
    ASSERT_NEAR(res[7], 5.0, 0);
    /* gaussian smoother of a line in the interior is the line (symmetric kernel) */
    for (int i = 0; i < N; i++) x[i] = 2.0 * i;
    ews_detrend(t, x, N, EWS_DETREND_GAUSSIAN, res);
    ASSERT_NEAR(res[N / 2], 0, 0.15); /* the cut at the ends makes the centre nearly symmetric */
}

static void test_too_few_points(void) {
    double t[25], x[25];
    for (int i = 0; i < 25; i++) t[i] = i, x[i] = i % 3;
    ews_opts_t o = opts(0.5, EWS_DETREND_NONE, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, 19, &o, &r, NULL), MODEL_ERR_TOO_FEW_POINTS);
    ASSERT_EQ_INT(ews_compute(t, x, 20, &o, &r, NULL), MODEL_OK);
    o.rolling = 0.1; /* 2 points per window */
    ASSERT_EQ_INT(ews_compute(t, x, 25, &o, &r, NULL), MODEL_ERR_TOO_FEW_POINTS);
    ASSERT_EQ_INT(MODEL_ERR_TOO_FEW_POINTS, 3);
    ASSERT_EQ_STR(model_error_name(MODEL_ERR_TOO_FEW_POINTS), "too_few_points");
}

static void test_alert_on_rising_memory_and_variance(void) {
    /* AR(1) whose phi rises 0.1 -> 0.95: variance and ar1 both trend up */
    enum { N = 4000 };
    double *t = malloc(N * sizeof *t), *x = malloc(N * sizeof *x);
    rng_t g;
    rng_seed(&g, 9);
    double v = 0;
    for (long i = 0; i < N; i++) {
        double phi = 0.1 + 0.85 * (double)i / (N - 1);
        t[i] = 60.0 * (double)i;
        x[i] = v = phi * v + rng_normal(&g);
    }
    ews_opts_t o = opts(0.5, EWS_DETREND_GAUSSIAN, 20);
    ews_result_t r;
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_OK);
    ASSERT_TRUE(r.var_tau >= 0.7);
    ASSERT_TRUE(r.ar1_tau >= 0.7);
    ASSERT_EQ_INT(r.alert, 1);
    o.alert_tau = 1.0; /* cannot be reached with noise */
    ASSERT_EQ_INT(ews_compute(t, x, N, &o, &r, NULL), MODEL_OK);
    ASSERT_EQ_INT(r.alert, 0);
    free(t);
    free(x);
}

static void test_parse(void) {
    model_error_t e;
    json_t *p = mt_parse(&MODEL_EWS, "{\"entity_ids\":[\"a\"]}", &e);
    ASSERT_TRUE(p != NULL);
    ews_opts_t o;
    ews_opts_from_params(p, &o);
    ASSERT_EQ_INT(o.metrics, EWS_M_VARIANCE | EWS_M_AUTOCORRELATION | EWS_M_CRITICAL_DISTANCE);
    ASSERT_NEAR(o.window_s, 7 * 86400.0, 0);
    ASSERT_NEAR(o.rolling, 0.5, 0);
    ASSERT_EQ_INT(o.detrend, EWS_DETREND_GAUSSIAN);
    ASSERT_EQ_INT(o.min_points, 20);
    ASSERT_NEAR(o.alert_tau, 0.7, 0);
    ASSERT_EQ_STR(o.series, "value");
    ASSERT_TRUE(isnan(o.as_of));
    json_decref(p);
    p = mt_parse(&MODEL_BIFURCATION, "{\"metrics\":[\"kurtosis\"],\"time_window\":\"2d\",\"parameters\":"
                 "{\"detrend\":\"linear\",\"as_of\":\"2026-01-01T00:00:00Z\",\"series\":\"price\"}}", &e);
    ASSERT_TRUE(p != NULL);
    ews_opts_from_params(p, &o);
    ASSERT_EQ_INT(o.metrics, EWS_M_KURTOSIS);
    ASSERT_NEAR(o.window_s, 2 * 86400.0, 0);
    ASSERT_NEAR(o.as_of, 1767225600.0, 0);
    ASSERT_EQ_INT(o.detrend, EWS_DETREND_LINEAR);
    ASSERT_EQ_STR(o.series, "price");
    json_decref(p);
    static const struct { const char *req, *field; } bad[] = {
        {"{\"metrics\":[\"mean\"]}", "parameters.metrics[0]"},
        {"{\"metrics\":[]}", "parameters.metrics"},
        {"{\"time_window\":\"soon\"}", "parameters.time_window"},
        {"{\"rolling_window\":0}", "parameters.rolling_window"},
        {"{\"rolling_window\":1.5}", "parameters.rolling_window"},
        {"{\"detrend\":\"loess\"}", "parameters.detrend"},
        {"{\"min_points\":2}", "parameters.min_points"},
        {"{\"alert_tau\":2}", "parameters.alert_tau"},
        {"{\"as_of\":\"yesterday\"}", "parameters.as_of"},
        {"{\"parameters\":{\"window\":3}}", "parameters.window"},
        {"{\"parameters\":[1]}", "parameters"},
        {"{\"prediction_type\":\"cascade\"}", "prediction_type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = mt_parse(&MODEL_EWS, bad[i].req, &e);
        if (p || strcmp(e.field, bad[i].field)) fprintf(stderr, "%s: field '%s'\n", bad[i].req, e.field);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ_STR(e.field, bad[i].field);
    }
}

/* AR(1) with phi(t) = exp(-lambda(t) dt), lambda(t) = l0 + b t (t hours, dt = 1 h) */
static void test_bifurcation_linear_decline(void) {
    enum { N = 8000 };
    const double l0 = 0.6, b = -0.5 / N; /* lambda from 0.6 down to 0.1 at the end */
    double *t = malloc(N * sizeof *t), *x = malloc(N * sizeof *x);
    rng_t g;
    rng_seed(&g, 2024);
    double v = 0;
    for (long i = 0; i < N; i++) {
        t[i] = 3600.0 * (double)i;
        x[i] = v = exp(-(l0 + b * (double)i)) * v + rng_normal(&g);
    }
    ews_opts_t o = opts(0.5, EWS_DETREND_NONE, 20);
    double out[8];
    ASSERT_EQ_INT(bifurcation_compute(t, x, N, &o, out), MODEL_OK);
    const double lnow = l0 + b * (N - 1);
    ASSERT_NEAR(out[2], b, 0.25 * fabs(b));          /* slope */
    ASSERT_NEAR(out[1], lnow, 0.04);                 /* lambda now */
    ASSERT_NEAR(out[0], -out[1] / out[2], 1e-9);     /* time to transition = -lambda_now / b */
    ASSERT_NEAR(out[0], -lnow / b, 0.4 * (-lnow / b));
    ASSERT_TRUE(out[3] > 0.5 && out[3] <= 1);        /* r2 */
    ASSERT_TRUE(out[4] > 0.99);                      /* confidence that b < 0 */
    ASSERT_NEAR(out[5], 0, 0);                       /* no reason: a transition ahead */
    ASSERT_NEAR(out[6], N / 2, 0);                   /* the last w = N/2 windows */
    /* stationary AR(1): slope ~ 0; either a small time or not declining, never confident */
    ar1_series(x, N, 0.7, 5);
    ASSERT_EQ_INT(bifurcation_compute(t, x, N, &o, out), MODEL_OK);
    ASSERT_TRUE(fabs(out[2]) < 0.25 * fabs(b) * 4);
    /* rising recovery rate: not declining, null with the reason */
    for (long i = 0; i < N; i++) x[i] = 0;
    v = 0;
    rng_seed(&g, 77);
    for (long i = 0; i < N; i++) x[i] = v = exp(-(0.1 - b * (double)i)) * v + rng_normal(&g);
    ASSERT_EQ_INT(bifurcation_compute(t, x, N, &o, out), MODEL_OK);
    ASSERT_TRUE(out[2] > 0);
    ASSERT_TRUE(isnan(out[0]));
    ASSERT_NEAR(out[5], 1, 0);
    ASSERT_EQ_INT(bifurcation_compute(t, x, 10, &o, out), MODEL_ERR_TOO_FEW_POINTS);
    free(t);
    free(x);
}

/* ews through the model interface on a real store: per-entity codes, the rendered
 * prediction, and on_alert called for exactly the entities whose alert fired. */
typedef struct {
    pthread_mutex_t mu;
    char ids[8][32];
    int n;
} alerts_t;

static void on_alert(void *arg, const model_alert_t *al) {
    alerts_t *a = arg;
    const char *id = al->entity_id;
    pthread_mutex_lock(&a->mu);
    if (a->n < 8) snprintf(a->ids[a->n++], 32, "%s", id);
    pthread_mutex_unlock(&a->mu);
}

static void test_ews_model_on_store_calls_on_alert(void) {
    char dir[64] = "/tmp/predictd-ews-XXXXXX", err[256] = "";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    predictd_config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    store_t *st = NULL;
    ASSERT_EQ_INT(store_open(&st, &cfg, err, sizeof err), 0);
    graph_t *g = graph_new();
    store_attach_graph(st, g);
    entity_row_t er[3] = {{0, "RISE", json_object()}, {0, "FLAT", json_object()}, {0, "FEW", json_object()}};
    ASSERT_EQ_INT(store_import_entities(st, er, 3, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) json_decref(er[i].props);
    enum { N = 2000 };
    obs_row_t *ob = calloc(2 * N + 5, sizeof *ob);
    rng_t r;
    rng_seed(&r, 3);
    double v = 0, u = 0;
    for (int i = 0; i < N; i++) {
        double phi = 0.1 + 0.85 * i / (N - 1);
        v = phi * v + rng_normal(&r);
        u = 0.3 * u + rng_normal(&r);
        ob[2 * i] = (obs_row_t){0, "RISE", "value", 1e9 + 60.0 * i, v};
        ob[2 * i + 1] = (obs_row_t){0, "FLAT", "value", 1e9 + 60.0 * i, u};
    }
    for (int i = 0; i < 5; i++) ob[2 * N + i] = (obs_row_t){0, "FEW", "value", 1e9 + 60.0 * i, i};
    ASSERT_EQ_INT(store_import_observations(st, ob, 2 * N + 5, err, sizeof err), 0);
    free(ob);
    alerts_t al = {.n = 0};
    pthread_mutex_init(&al.mu, NULL);
    model_env_t env = {.graph = g, .store = st, .on_alert = on_alert, .alert_arg = &al};
    model_error_t me;
    json_t *params = mt_parse(&MODEL_EWS, "{\"as_of\":1000200000,\"time_window\":\"7d\",\"detrend\":\"none\","
                              "\"metrics\":[\"variance\",\"critical_distance\"]}", &me);
    ASSERT_TRUE(params != NULL);
    const char *ids[] = {"RISE", "FLAT", "FEW", "NONE"};
    uint8_t codes[4];
    double out[4 * 14];
    ASSERT_EQ_INT(mt_run(&MODEL_EWS, &env, params, ids, 4, 3, codes, out), 0);
    ASSERT_EQ_INT(codes[0], MODEL_OK);
    ASSERT_EQ_INT(codes[1], MODEL_OK);
    ASSERT_EQ_INT(codes[2], MODEL_ERR_TOO_FEW_POINTS);
    ASSERT_EQ_INT(codes[3], MODEL_ERR_UNKNOWN_ENTITY);
    ASSERT_NEAR(out[0], N, 0);                 /* n_points */
    ASSERT_NEAR(out[11], 1, 0);                /* RISE alerts */
    ASSERT_NEAR(out[14 + 11], 0, 0);           /* FLAT does not */
    ASSERT_EQ_INT(al.n, 1);
    ASSERT_EQ_STR(al.ids[0], "RISE");
    /* the rendered prediction: asked-for metrics, alert as a boolean */
    buf_t b = {0};
    MODEL_EWS.xRender(out, 14, &b);
    json_t *pred = json_loadb(b.data, b.len, 0, NULL);
    ASSERT_TRUE(pred != NULL);
    ASSERT_TRUE(json_is_true(json_object_get(pred, "alert")));
    ASSERT_TRUE(json_object_get(pred, "variance_tau") != NULL);
    ASSERT_TRUE(json_object_get(pred, "critical_distance") != NULL);
    ASSERT_TRUE(json_object_get(pred, "skewness") == NULL);
    json_decref(pred);
    buf_free(&b);
    json_decref(params);
    store_close(st);
    graph_free(g);
    pthread_mutex_destroy(&al.mu);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_kendall_tau),
        TEST_CASE(test_rolling_by_hand),
        TEST_CASE(test_alternating_known_variance),
        TEST_CASE(test_ar1_known_phi),
        TEST_CASE(test_growing_spread_tau_one),
        TEST_CASE(test_detrending),
        TEST_CASE(test_too_few_points),
        TEST_CASE(test_alert_on_rising_memory_and_variance),
        TEST_CASE(test_parse),
        TEST_CASE(test_bifurcation_linear_decline),
        TEST_CASE(test_ews_model_on_store_calls_on_alert),
    };
    return test_main("models_ews", cases, (int)(sizeof cases / sizeof cases[0]));
}
