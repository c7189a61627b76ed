/* models/ising: parameter validation and the analytic Glauber closed form of MODELS.md,
 * recomputed here from the formula on hand-made graphs:
 *   m_i = sum_j J_ij s_j + h_i,  dE = 2 s m,  w = nu / (1 + exp(dE/T)),  p = 1 - exp(-w H_h) */
#include <stdlib.h>

#include "graph/graph.h"
#include "models/model.h"
#include "test.h"

#define REL_TOL 1e-12

static int near_rel(double a, double b) {
    if (a == b) return 1;
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b)) + 1e-300;
}
#define ASSERT_REL(a, b) do { double _x = (a), _y = (b); if (!near_rel(_x, _y)) { fprintf(stderr, "%s:%d: %s == %.17g, expected %.17g (rel %g)\n", __FILE__, __LINE__, #a, _x, _y, REL_TOL); t_failed_checks++; return; } } while (0)

/* ---- parsing ---- */

static json_t *params_of(const char *request_json, model_error_t *err, int *rc) {
    json_error_t je;
    json_t *req = json_loads(request_json, 0, &je);
    if (!req) { fprintf(stderr, "bad test JSON: %s\n", request_json); *rc = -99; return NULL; }
    json_t *params = NULL;
    memset(err, 0, sizeof *err);
    *rc = MODEL_ISING.xParse(req, &params, err);
    json_decref(req);
    return params;
}

static double num(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void test_registry(void) {
    ASSERT_TRUE(model_find("ising") == &MODEL_ISING);
    ASSERT_TRUE(model_find("nope") == NULL);
    ASSERT_EQ_STR(MODEL_ISING.name, "ising");
    ASSERT_EQ_INT(MODEL_ISING.n_outputs, 4);
    ASSERT_EQ_STR(MODEL_ISING.output_names[0], "p_flip");
    ASSERT_EQ_STR(MODEL_ISING.output_names[1], "delta_e");
    ASSERT_EQ_STR(MODEL_ISING.output_names[2], "local_field");
    ASSERT_EQ_STR(MODEL_ISING.output_names[3], "rate_per_hour");
    ASSERT_EQ_STR(model_error_name(MODEL_ERR_UNKNOWN_ENTITY), "unknown_entity");
    ASSERT_EQ_STR(model_error_name(MODEL_ERR_INVALID_SPIN), "invalid_spin");
    char msg[128];
    model_error_message(MODEL_ERR_UNKNOWN_ENTITY, "X-1", msg, sizeof msg);
    ASSERT_TRUE(strstr(msg, "X-1") != NULL);
}

static void test_parse_defaults(void) {
    model_error_t e;
    int rc;
    json_t *p = params_of("{\"entity_ids\":[\"a\"],\"parameters\":{\"temperature\":2}}", &e, &rc);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_TRUE(p != NULL);
    ASSERT_NEAR(num(p, "temperature"), 2.0, 0);
    ASSERT_NEAR(num(p, "time_horizon_s"), 24 * 3600.0, 0); /* default 24h */
    ASSERT_NEAR(num(p, "attempt_rate"), 1.0, 0);            /* default nu = 1/h */
    ASSERT_EQ_STR(json_string_value(json_object_get(p, "method")), "analytic");
    ASSERT_EQ_STR(json_string_value(json_object_get(p, "prediction_type")), "spin_flip_probability");
    json_decref(p);
}

static void test_parse_given_values(void) {
    model_error_t e;
    int rc;
    json_t *p = params_of("{\"prediction_type\":\"spin_flip_probability\",\"parameters\":"
                          "{\"temperature\":0.5,\"time_horizon\":\"90m\",\"attempt_rate\":3.5,"
                          "\"method\":\"analytic\"}}", &e, &rc);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(num(p, "temperature"), 0.5, 0);
    ASSERT_NEAR(num(p, "time_horizon_s"), 5400.0, 0);
    ASSERT_NEAR(num(p, "attempt_rate"), 3.5, 0);
    json_decref(p);
    p = params_of("{\"parameters\":{\"temperature\":1,\"time_horizon\":7200}}", &e, &rc);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(num(p, "time_horizon_s"), 7200.0, 0); /* a number is seconds */
    json_decref(p);
    p = params_of("{\"parameters\":{\"temperature\":1,\"time_horizon\":\"7d\"}}", &e, &rc);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(num(p, "time_horizon_s"), 7 * 86400.0, 0);
    json_decref(p);
}

/* Each bad request is refused and names the field. */
static void test_parse_rejects(void) {
    static const struct { const char *req, *field; } bad[] = {
        {"{\"entity_ids\":[\"a\"]}", "parameters"},
        {"{\"parameters\":[1]}", "parameters"},
        {"{\"parameters\":{}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":0}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":-1.5}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":\"hot\"}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":\"2\"}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":true}}", "parameters.temperature"},
        {"{\"parameters\":{\"temperature\":1,\"time_horizon\":\"abc\"}}", "parameters.time_horizon"},
        {"{\"parameters\":{\"temperature\":1,\"time_horizon\":\"-5s\"}}", "parameters.time_horizon"},
        {"{\"parameters\":{\"temperature\":1,\"time_horizon\":-5}}", "parameters.time_horizon"},
        {"{\"parameters\":{\"temperature\":1,\"time_horizon\":\"\"}}", "parameters.time_horizon"},
        {"{\"parameters\":{\"temperature\":1,\"time_horizon\":[1]}}", "parameters.time_horizon"},
        {"{\"parameters\":{\"temperature\":1,\"attempt_rate\":0}}", "parameters.attempt_rate"},
        {"{\"parameters\":{\"temperature\":1,\"attempt_rate\":\"x\"}}", "parameters.attempt_rate"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"exact\"}}", "parameters.method"},
        {"{\"parameters\":{\"temperature\":1,\"method\":3}}", "parameters.method"},
        {"{\"parameters\":{\"temperature\":1,\"tempreature\":1}}", "parameters.tempreature"},
        {"{\"prediction_type\":\"cascade\",\"parameters\":{\"temperature\":1}}", "prediction_type"},
        {"{\"prediction_type\":7,\"parameters\":{\"temperature\":1}}", "prediction_type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        model_error_t e;
        int rc;
        json_t *p = params_of(bad[i].req, &e, &rc);
        if (rc != -1 || strcmp(e.field, bad[i].field))
            fprintf(stderr, "request %s: rc %d field '%s' message '%s'\n", bad[i].req, rc, e.field, e.message);
        ASSERT_EQ_INT(rc, -1);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ_STR(e.field, bad[i].field);
        ASSERT_TRUE(strlen(e.message) > 0);
    }
}

/* ---- computing ---- */

static void add(graph_t *g, const char *id, const char *props_json) {
    json_t *p = json_loads(props_json, 0, NULL);
    graph_upsert_entity(g, id, p, 1);
    json_decref(p);
}

/* The closed form, written the plain way (no overflow guard: the hand values are moderate). */
static void expect(double s, double m, double T, double nu, double H_h, double out[4]) {
    double de = 2 * s * m;
    double w = nu / (1 + exp(de / T));
    out[0] = 1 - exp(-w * H_h);
    out[1] = de;
    out[2] = m;
    out[3] = w;
}

static int run(graph_t *g, const char *req_json, const char *const *ids, uint32_t n,
               uint8_t *codes, double *out) {
    model_error_t e;
    int rc;
    json_t *params = params_of(req_json, &e, &rc);
    if (rc) { fprintf(stderr, "parse: %s %s\n", e.field, e.message); return -1; }
    model_env_t env = {.graph = g};
    char err[128] = "";
    rc = MODEL_ISING.xRunChunk(&env, params, ids, n, codes, out, err, sizeof err);
    json_decref(params);
    return rc;
}

/* A (+1, h=0.3) -- B (-1) with two parallel relationships 0.5 + 0.25; A -- C (+1, h=-0.2) 1.0;
 * A -- D (no spin) 2.0: D contributes nothing; B -- C -0.7. */
static graph_t *hand_graph(void) {
    graph_t *g = graph_new();
    add(g, "A", "{\"spin\":1,\"field\":0.3}");
    add(g, "B", "{\"spin\":-1}");
    add(g, "C", "{\"spin\":1,\"field\":-0.2,\"name\":\"c\"}");
    add(g, "D", "{\"colour\":\"red\"}");
    graph_add_relationship(g, "A", "B", 0.5, 1);
    graph_add_relationship(g, "B", "A", 0.25, 1);
    graph_add_relationship(g, "A", "C", 1.0, 1);
    graph_add_relationship(g, "A", "D", 2.0, 1);
    graph_add_relationship(g, "B", "C", -0.7, 1);
    return g;
}

static void test_closed_form_on_hand_graph(void) {
    graph_t *g = hand_graph();
    const char *ids[] = {"A", "B", "C", "D", "Z"};
    uint8_t codes[5];
    double out[5 * 4];
    const double T = 1.5, nu = 2.0, H = 6.0; /* 6h */
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":1.5,\"attempt_rate\":2,\"time_horizon\":\"6h\"}}",
                      ids, 5, codes, out), 0);
    double e[4];
    /* A: m = 0.75*(-1) + 1.0*(+1) + 0.3 = 0.55 */
    ASSERT_EQ_INT(codes[0], MODEL_OK);
    expect(1, 0.75 * -1 + 1.0 * 1 + 0.3, T, nu, H, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[k], e[k]);
    /* B: m = 0.75*(+1) + (-0.7)*(+1) + 0 = 0.05, s = -1 */
    ASSERT_EQ_INT(codes[1], MODEL_OK);
    expect(-1, 0.75 - 0.7, T, nu, H, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[4 + k], e[k]);
    /* C: m = 1.0*(+1) + (-0.7)*(-1) - 0.2 = 1.5 */
    ASSERT_EQ_INT(codes[2], MODEL_OK);
    expect(1, 1.0 + 0.7 - 0.2, T, nu, H, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[8 + k], e[k]);
    ASSERT_EQ_INT(codes[3], MODEL_ERR_INVALID_SPIN);
    ASSERT_EQ_INT(codes[4], MODEL_ERR_UNKNOWN_ENTITY);
    /* a few values by hand as well: A's dE = 1.1, B's local field 0.05 */
    ASSERT_REL(out[1], 1.1);
    ASSERT_REL(out[6], 0.05);
    ASSERT_REL(out[7], 2.0 / (1 + exp(-0.1 / 1.5)));
    graph_free(g);
}

static void test_isolated_entity_and_zero_horizon(void) {
    graph_t *g = graph_new();
    add(g, "solo", "{\"spin\":-1}");
    const char *ids[] = {"solo"};
    uint8_t code;
    double out[4];
    /* m = 0 -> dE = 0 -> w = nu/2 exactly; p = 1 - exp(-0.5 * 24) */
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":3}}", ids, 1, &code, out), 0);
    ASSERT_EQ_INT(code, MODEL_OK);
    ASSERT_REL(out[3], 0.5);
    ASSERT_REL(out[0], 1 - exp(-12.0));
    ASSERT_NEAR(out[1], 0, 0);
    ASSERT_NEAR(out[2], 0, 0);
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":3,\"time_horizon\":\"0s\"}}", ids, 1, &code, out), 0);
    ASSERT_NEAR(out[0], 0, 0);
    graph_free(g);
}

static void test_tiny_rate_keeps_precision(void) {
    graph_t *g = graph_new();
    add(g, "a", "{\"spin\":1,\"field\":20}");
    const char *ids[] = {"a"};
    uint8_t code;
    double out[4];
    /* dE/T = 40: w = 1/(1+e^40) ~ 4.2e-18; p = 1 - exp(-w) ~ w, which the naive 1 - exp() loses */
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":1,\"time_horizon\":\"1h\"}}", ids, 1, &code, out), 0);
    double w = 1 / (1 + exp(40.0));
    ASSERT_REL(out[3], w);
    ASSERT_TRUE(out[0] > 0);
    ASSERT_REL(out[0], w - w * w / 2);
    graph_free(g);
}

static void test_large_energy_no_overflow(void) {
    graph_t *g = graph_new();
    add(g, "up", "{\"spin\":1,\"field\":1000}");      /* flipping costs 2000: never flips */
    add(g, "down", "{\"spin\":1,\"field\":-1000}");   /* flipping gains 2000: rate -> nu */
    const char *ids[] = {"up", "down"};
    uint8_t codes[2];
    double out[8];
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":0.001,\"attempt_rate\":1.5,\"time_horizon\":\"2h\"}}",
                      ids, 2, codes, out), 0);
    for (int k = 0; k < 8; k++) ASSERT_TRUE(isfinite(out[k]));
    ASSERT_EQ_INT(codes[0], MODEL_OK);
    ASSERT_NEAR(out[0], 0, 0);
    ASSERT_NEAR(out[3], 0, 0);
    ASSERT_NEAR(out[1], 2000, 0);
    ASSERT_REL(out[3 + 4], 1.5);
    ASSERT_REL(out[0 + 4], 1 - exp(-3.0));
    ASSERT_NEAR(out[1 + 4], -2000, 0);
    graph_free(g);
}

/* Flipping every spin and every field leaves dE, the rate and p_flip unchanged (m -> -m). */
static void test_spin_reversal_symmetry(void) {
    graph_t *g1 = hand_graph();
    graph_t *g2 = graph_new();
    add(g2, "A", "{\"spin\":-1,\"field\":-0.3}");
    add(g2, "B", "{\"spin\":1}");
    add(g2, "C", "{\"spin\":-1,\"field\":0.2}");
    add(g2, "D", "{}");
    graph_add_relationship(g2, "A", "B", 0.5, 1);
    graph_add_relationship(g2, "B", "A", 0.25, 1);
    graph_add_relationship(g2, "A", "C", 1.0, 1);
    graph_add_relationship(g2, "A", "D", 2.0, 1);
    graph_add_relationship(g2, "B", "C", -0.7, 1);
    const char *ids[] = {"A", "B", "C"};
    uint8_t c1[3], c2[3];
    double o1[12], o2[12];
    const char *req = "{\"parameters\":{\"temperature\":0.8,\"time_horizon\":\"30m\"}}";
    ASSERT_EQ_INT(run(g1, req, ids, 3, c1, o1), 0);
    ASSERT_EQ_INT(run(g2, req, ids, 3, c2, o2), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(c1[i], MODEL_OK);
        ASSERT_EQ_INT(c2[i], MODEL_OK);
        ASSERT_REL(o2[i * 4 + 0], o1[i * 4 + 0]);
        ASSERT_REL(o2[i * 4 + 1], o1[i * 4 + 1]);
        ASSERT_REL(o2[i * 4 + 2], -o1[i * 4 + 2]);
        ASSERT_REL(o2[i * 4 + 3], o1[i * 4 + 3]);
    }
    graph_free(g1);
    graph_free(g2);
}

/* Glauber detailed balance: w(dE) / w(-dE) = exp(-dE/T). */
static void test_detailed_balance(void) {
    graph_t *g = graph_new();
    add(g, "a", "{\"spin\":1,\"field\":0.7}");
    add(g, "b", "{\"spin\":-1,\"field\":0.7}");
    const char *ids[] = {"a", "b"};
    uint8_t codes[2];
    double out[8];
    ASSERT_EQ_INT(run(g, "{\"parameters\":{\"temperature\":2}}", ids, 2, codes, out), 0);
    ASSERT_REL(out[1], 1.4);
    ASSERT_REL(out[5], -1.4);
    ASSERT_REL(out[3] / out[7], exp(-1.4 / 2));
    ASSERT_REL(out[3] + out[7], 1.0); /* 1/(1+e^x) + 1/(1+e^-x) = 1 */
    graph_free(g);
}

static void test_results_follow_graph_changes(void) {
    graph_t *g = hand_graph();
    const char *ids[] = {"A"};
    uint8_t code;
    double out[4], e[4];
    const char *req = "{\"parameters\":{\"temperature\":1}}";
    graph_add_relationship(g, "A", "B", 0.25, -1); /* one parallel relationship removed */
    ASSERT_EQ_INT(run(g, req, ids, 1, &code, out), 0);
    expect(1, 0.5 * -1 + 1.0 + 0.3, 1, 1, 24, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[k], e[k]);
    graph_delete_entity(g, "C");
    ASSERT_EQ_INT(run(g, req, ids, 1, &code, out), 0);
    expect(1, -0.5 + 0.3, 1, 1, 24, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[k], e[k]);
    add(g, "D", "{\"spin\":-1}"); /* D gains a spin: its relationship now counts */
    ASSERT_EQ_INT(run(g, req, ids, 1, &code, out), 0);
    expect(1, -0.5 - 2.0 + 0.3, 1, 1, 24, e);
    for (int k = 0; k < 4; k++) ASSERT_REL(out[k], e[k]);
    graph_free(g);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_registry),
        TEST_CASE(test_parse_defaults),
        TEST_CASE(test_parse_given_values),
        TEST_CASE(test_parse_rejects),
        TEST_CASE(test_closed_form_on_hand_graph),
        TEST_CASE(test_isolated_entity_and_zero_horizon),
        TEST_CASE(test_tiny_rate_keeps_precision),
        TEST_CASE(test_large_energy_no_overflow),
        TEST_CASE(test_spin_reversal_symmetry),
        TEST_CASE(test_detailed_balance),
        TEST_CASE(test_results_follow_graph_changes),
    };
    return test_main("ising", cases, (int)(sizeof cases / sizeof cases[0]));
}
