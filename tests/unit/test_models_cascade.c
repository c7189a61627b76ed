/* models/cascade: Granovetter threshold cascades, synchronous generations (MODELS.md).
 * Granovetter's riot (1978): 100 people with thresholds 0, 1, ..., 99 (counts) who all see
 * each other riot one after another; give the threshold-1 person a threshold of 2 and only
 * the instigator riots. Small graphs computed by hand; fraction vs count; direction;
 * sampled thresholds against their probabilities; one seed, one answer. */
#include "models_test.h"

static const char *const *names_of(int n, char (**store)[16]) {
    char (*s)[16] = malloc((size_t)n * sizeof *s);
    const char **ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) { snprintf(s[i], 16, "p%d", i); ids[i] = s[i]; }
    *store = s;
    return ids;
}

static graph_t *riot(int threshold_of_p1) {
    graph_t *g = graph_new();
    char id[16], props[64];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "p%d", i);
        snprintf(props, sizeof props, "{\"threshold\":%d}", i == 1 ? threshold_of_p1 : i);
        mt_add(g, id, props);
    }
    char a[16], b[16];
    for (int i = 0; i < 100; i++)
        for (int j = i + 1; j < 100; j++) {
            snprintf(a, sizeof a, "p%d", i);
            snprintf(b, sizeof b, "p%d", j);
            graph_add_relationship(g, a, b, 1, 1);
        }
    return g;
}

#define RIOT_REQ "{\"seed_entities\":[\"p0\"],\"max_generations\":200,\"threshold_type\":\"count\"," \
                 "\"threshold_distribution\":\"fixed\",\"value\":1000}"

static void test_granovetter_riot(void) {
    graph_t *g = riot(1);
    char (*s)[16];
    const char *const *ids = names_of(100, &s);
    uint8_t codes[100];
    double out[200];
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, RIOT_REQ, ids, 100, 7, codes, out), 0);
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ_INT(codes[i], MODEL_OK);
        ASSERT_NEAR(out[2 * i], 1.0, 0);        /* everyone riots */
        ASSERT_NEAR(out[2 * i + 1], i, 0);      /* person i joins at generation i */
    }
    graph_free(g);
    g = riot(2);
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, RIOT_REQ, ids, 100, 100, codes, out), 0);
    ASSERT_NEAR(out[0], 1.0, 0);
    ASSERT_NEAR(out[1], 0, 0);
    for (int i = 1; i < 100; i++) {
        ASSERT_NEAR(out[2 * i], 0.0, 0);        /* only the instigator */
        ASSERT_TRUE(isnan(out[2 * i + 1]));     /* never active: no generation */
    }
    graph_free(g);
    free((void *)ids);
    free(s);
}

static void test_riot_summary(void) {
    graph_t *g = riot(1);
    model_error_t e;
    json_t *params = mt_parse(&MODEL_CASCADE, RIOT_REQ, &e);
    ASSERT_TRUE(params != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(params, "samples")), 1); /* fixed: one sample */
    model_env_t env = {.graph = g};
    void *state = NULL;
    char err[128];
    ASSERT_EQ_INT(MODEL_CASCADE.xPrepare(&env, params, NULL, 0, &state, err, sizeof err), 0);
    buf_t b = {0};
    ASSERT_EQ_INT(MODEL_CASCADE.xSummary(state, &b), 0);
    json_t *sum = json_loadb(b.data, b.len, 0, NULL);
    ASSERT_TRUE(sum != NULL);
    json_t *gens = json_object_get(sum, "generations");
    ASSERT_EQ_INT(json_array_size(gens), 100); /* generations 0..99 grow by one each */
    for (size_t k = 0; k < 100; k++) {
        json_t *x = json_array_get(gens, k);
        ASSERT_EQ_INT(json_integer_value(json_object_get(x, "generation")), (long long)k);
        ASSERT_NEAR(json_number_value(json_object_get(x, "mean")), (double)k + 1, 0);
        ASSERT_NEAR(json_number_value(json_object_get(x, "p90")), (double)k + 1, 0);
    }
    json_t *fin = json_object_get(sum, "final_size");
    ASSERT_NEAR(json_number_value(json_object_get(fin, "p50")), 100, 0);
    ASSERT_EQ_INT(json_array_size(json_object_get(fin, "distribution")), 1);
    json_decref(sum);
    buf_free(&b);
    MODEL_CASCADE.xFreeState(state);
    json_decref(params);
    graph_free(g);
}

/* chain a - b - c - d (+ e alone, threshold 0) */
static graph_t *chain(void) {
    graph_t *g = graph_new();
    mt_add(g, "a", "{}");
    mt_add(g, "b", "{}");
    mt_add(g, "c", "{}");
    mt_add(g, "d", "{}");
    mt_add(g, "e", "{\"threshold\":0}");
    graph_add_relationship(g, "a", "b", 1, 1);
    graph_add_relationship(g, "b", "c", 1, 1);
    graph_add_relationship(g, "c", "d", 1, 1);
    return g;
}

static void run5(graph_t *g, const char *req, uint8_t codes[5], double out[10]) {
    static const char *const ids[] = {"a", "b", "c", "d", "e"};
    if (mt_job(&MODEL_CASCADE, g, req, ids, 5, 2, codes, out) != 0) out[0] = NAN;
}

static void test_hand_computed_fraction_and_count(void) {
    graph_t *g = chain();
    uint8_t c[5];
    double o[10];
    /* fraction 0.5: b sees 1/2 -> gen 1, c 1/2 -> gen 2, d 1/1 -> gen 3; e has no neighbours */
    run5(g, "{\"seed_entities\":[\"a\"],\"threshold_distribution\":\"fixed\",\"value\":0.5}", c, o);
    double want[10] = {1, 0, 1, 1, 1, 2, 1, 3, 0, NAN};
    for (int k = 0; k < 8; k++) ASSERT_NEAR(o[k], want[k], 0);
    ASSERT_NEAR(o[8], 0, 0);
    ASSERT_TRUE(isnan(o[9]));
    /* fraction 0.6: b sees 0.5 < 0.6: nothing moves */
    run5(g, "{\"seed_entities\":[\"a\"],\"threshold_distribution\":\"fixed\",\"value\":0.6}", c, o);
    ASSERT_NEAR(o[0], 1, 0);
    ASSERT_NEAR(o[2], 0, 0);
    /* count 1, but only 2 generations: d stays out */
    run5(g, "{\"seed_entities\":[\"a\"],\"threshold_type\":\"count\",\"threshold_distribution\":\"fixed\","
            "\"value\":1,\"max_generations\":2}", c, o);
    ASSERT_NEAR(o[2], 1, 0);
    ASSERT_NEAR(o[4], 1, 0);
    ASSERT_NEAR(o[6], 0, 0);
    /* count 2: b has only one active neighbour */
    run5(g, "{\"seed_entities\":[\"a\"],\"threshold_type\":\"count\",\"threshold_distribution\":\"fixed\","
            "\"value\":2}", c, o);
    ASSERT_NEAR(o[2], 0, 0);
    /* seeds a and c, count 2: b sees both -> gen 1; d sees c only */
    run5(g, "{\"seed_entities\":[\"a\",\"c\"],\"threshold_type\":\"count\",\"threshold_distribution\":"
            "\"fixed\",\"value\":2}", c, o);
    ASSERT_NEAR(o[2], 1, 0);
    ASSERT_NEAR(o[3], 1, 0);
    ASSERT_NEAR(o[6], 0, 0);
    /* entity thresholds ignored when use_entity_thresholds is false: e (threshold 0, alone)
     * is inactive either way: no neighbours */
    run5(g, "{\"seed_entities\":[\"a\"],\"use_entity_thresholds\":false,\"threshold_distribution\":"
            "\"fixed\",\"value\":0}", c, o);
    for (int k = 0; k < 4; k++) ASSERT_NEAR(o[2 * k], 1, 0); /* threshold 0: all at gen 1 */
    ASSERT_NEAR(o[3], 1, 0);
    ASSERT_NEAR(o[5], 1, 0);
    ASSERT_NEAR(o[7], 1, 0);
    ASSERT_NEAR(o[8], 0, 0);
    graph_free(g);
}

static void test_directed(void) {
    /* a -> b, c -> b, b -> d */
    graph_t *g = graph_new();
    const char *const names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) mt_add(g, names[i], "{}");
    graph_add_relationship(g, "a", "b", 1, 1);
    graph_add_relationship(g, "c", "b", 1, 1);
    graph_add_relationship(g, "b", "d", 1, 1);
    uint8_t c[4];
    double o[8];
    const char *fix = ",\"threshold_type\":\"count\",\"threshold_distribution\":\"fixed\",\"value\":1}";
    char req[256];
    snprintf(req, sizeof req, "{\"seed_entities\":[\"d\"],\"directed\":true%s", fix);
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, names, 4, 4, c, o), 0);
    ASSERT_NEAR(o[0] + o[2] + o[4], 0, 0); /* d influences no one */
    snprintf(req, sizeof req, "{\"seed_entities\":[\"a\"],\"directed\":true%s", fix);
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, names, 4, 4, c, o), 0);
    ASSERT_NEAR(o[2], 1, 0); ASSERT_NEAR(o[3], 1, 0); /* b at 1 */
    ASSERT_NEAR(o[6], 1, 0); ASSERT_NEAR(o[7], 2, 0); /* d at 2 */
    ASSERT_NEAR(o[4], 0, 0);                          /* c: nothing points at it */
    /* directed fraction: b's in-neighbours are a and c: 1/2 */
    snprintf(req, sizeof req, "{\"seed_entities\":[\"a\"],\"directed\":true,\"threshold_distribution\":"
             "\"fixed\",\"value\":0.75}");
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, names, 4, 4, c, o), 0);
    ASSERT_NEAR(o[2], 0, 0);
    /* undirected, seed d: b at 1, a and c at 2 */
    snprintf(req, sizeof req, "{\"seed_entities\":[\"d\"]%s", fix);
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, names, 4, 4, c, o), 0);
    ASSERT_NEAR(o[3], 1, 0);
    ASSERT_NEAR(o[1], 2, 0);
    ASSERT_NEAR(o[5], 2, 0);
    /* removing the relationship b -> d undoes its direction too */
    graph_add_relationship(g, "b", "d", 1, -1);
    snprintf(req, sizeof req, "{\"seed_entities\":[\"a\"],\"directed\":true%s", fix);
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, names, 4, 4, c, o), 0);
    ASSERT_NEAR(o[6], 0, 0);
    graph_free(g);
}

static void test_sampled_thresholds(void) {
    /* uniform fraction thresholds on the chain, seed a: b activates iff theta_b <= 1/2
     * (P 1/2); c then iff theta_c <= 1/2 (P 1/4); d follows c surely (1/1 >= theta). */
    graph_t *g = chain();
    uint8_t c[5];
    double o[10], o2[10];
    const char *req = "{\"seed_entities\":[\"a\"],\"samples\":20000,\"seed\":11}";
    run5(g, req, c, o);
    double S = 20000;
    ASSERT_NEAR(o[2], 0.5, 4 * sqrt(0.25 / S));
    ASSERT_NEAR(o[4], 0.25, 4 * sqrt(0.25 * 0.75 / S));
    ASSERT_NEAR(o[6], o[4], 0);           /* d exactly when c */
    ASSERT_NEAR(o[7], 3, 0);
    for (int k = 0; k < 5; k++) ASSERT_TRUE(o[2 * k] >= 0 && o[2 * k] <= 1);
    /* reproducible; another seed differs */
    static const char *const ids[] = {"a", "b", "c", "d", "e"};
    ASSERT_EQ_INT(mt_job(&MODEL_CASCADE, g, req, ids, 5, 1, c, o2), 0);
    for (int k = 0; k < 10; k++) ASSERT_TRUE(o2[k] == o[k] || (isnan(o2[k]) && isnan(o[k])));
    /* 1 thread or 3: the same numbers */
    model_error_t me;
    json_t *params = mt_parse(&MODEL_CASCADE, req, &me);
    ASSERT_TRUE(params != NULL);
    for (int th = 1; th <= 3; th += 2) {
        model_env_t env = {.graph = g, .threads = th};
        ASSERT_EQ_INT(mt_run(&MODEL_CASCADE, &env, params, ids, 5, 3, c, o2), 0);
        for (int k = 0; k < 10; k++) ASSERT_TRUE(o2[k] == o[k] || (isnan(o2[k]) && isnan(o[k])));
    }
    json_decref(params);
    run5(g, "{\"seed_entities\":[\"a\"],\"samples\":20000,\"seed\":12}", c, o2);
    ASSERT_TRUE(o2[2] != o[2]);
    /* normal(0.5, 0) clipped is the fixed 0.5 case: b at 1, c at 2, d at 3 */
    run5(g, "{\"seed_entities\":[\"a\"],\"threshold_distribution\":{\"type\":\"normal\",\"mean\":0.5,"
            "\"std\":0},\"samples\":3}", c, o);
    ASSERT_NEAR(o[6], 1, 0);
    ASSERT_NEAR(o[7], 3, 0);
    graph_free(g);
}

static void test_parse_and_validate(void) {
    static const struct { const char *req, *field; } bad[] = {
        {"{}", "parameters.seed_entities"},
        {"{\"seed_entities\":[]}", "parameters.seed_entities"},
        {"{\"seed_entities\":[3]}", "parameters.seed_entities[0]"},
        {"{\"seed_entities\":[\"a\"],\"threshold_type\":\"share\"}", "parameters.threshold_type"},
        {"{\"seed_entities\":[\"a\"],\"threshold_distribution\":\"beta\"}", "parameters.threshold_distribution"},
        {"{\"seed_entities\":[\"a\"],\"threshold_distribution\":\"fixed\"}", "parameters.value"},
        {"{\"seed_entities\":[\"a\"],\"max_generations\":-1}", "parameters.max_generations"},
        {"{\"seed_entities\":[\"a\"],\"samples\":0}", "parameters.samples"},
        {"{\"seed_entities\":[\"a\"],\"directed\":\"yes\"}", "parameters.directed"},
        {"{\"parameters\":{\"seed_entities\":[\"a\"],\"sample\":3}}", "parameters.sample"},
        {"{\"seed_entities\":[\"a\"],\"threshold_distribution\":\"normal\",\"std\":-1}", "parameters.std"},
        {"{\"seed_entities\":[\"a\"],\"parameters\":\"x\"}", "parameters"},
        {"{\"seed_entities\":[\"a\"],\"prediction_type\":\"ews\"}", "prediction_type"},
    };
    model_error_t e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *p = mt_parse(&MODEL_CASCADE, bad[i].req, &e);
        if (p || strcmp(e.field, bad[i].field)) fprintf(stderr, "%s: field '%s'\n", bad[i].req, e.field);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ_STR(e.field, bad[i].field);
    }
    json_t *p = mt_parse(&MODEL_CASCADE, "{\"parameters\":{\"seed_entities\":[\"a\",\"zz\"]}}", &e);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "samples")), 100);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "max_generations")), 5);
    ASSERT_EQ_STR(json_string_value(json_object_get(p, "threshold_type")), "fraction");
    graph_t *g = chain();
    model_env_t env = {.graph = g};
    ASSERT_EQ_INT(MODEL_CASCADE.xValidate(&env, p, &e), -1);
    ASSERT_EQ_STR(e.field, "parameters.seed_entities[1]");
    buf_t b = {0};
    long n = 0;
    ASSERT_EQ_INT(MODEL_CASCADE.xDefaultEntities(&env, p, &b, &n, &e), 0);
    ASSERT_EQ_INT(n, 5);
    ASSERT_EQ_STR(b.data, "a");
    buf_free(&b);
    json_decref(p);
    graph_free(g);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_granovetter_riot),
        TEST_CASE(test_riot_summary),
        TEST_CASE(test_hand_computed_fraction_and_count),
        TEST_CASE(test_directed),
        TEST_CASE(test_sampled_thresholds),
        TEST_CASE(test_parse_and_validate),
    };
    return test_main("models_cascade", cases, (int)(sizeof cases / sizeof cases[0]));
}
