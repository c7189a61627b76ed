/* models/ising, method monte_carlo: continuous-time Glauber dynamics.
 *  - with its neighbours frozen (radius 0) a spin's p_flip is the analytic 1 - exp(-w H)
 *    within sampling error (4 standard errors);
 *  - on a periodic L x L square lattice (J = 1, h = 0) started all up below
 *    Tc = 2 / ln(1 + sqrt 2) the magnetisation after a long run is Onsager's
 *    M = (1 - sinh(2/T)^-4)^(1/8);
 *  - probabilities lie in [0, 1]; flipping every spin and field changes nothing (the same
 *    random stream sees the same energies); p_flip grows with T when dE > 0; a seed gives
 *    the same numbers whatever the chunking. */
#include "models_test.h"

static double analytic_p(double s, double m, double T, double nu, double H_h) {
    double de = 2 * s * m;
    return 1 - exp(-nu / (1 + exp(de / T)) * H_h);
}

static void test_parse(void) {
    model_error_t e;
    json_t *p = mt_parse(&MODEL_ISING, "{\"parameters\":{\"temperature\":2,\"method\":\"monte_carlo\"}}", &e);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "samples")), 1000);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "radius")), 2);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "seed")), 0);
    json_decref(p);
    p = mt_parse(&MODEL_ISING, "{\"parameters\":{\"temperature\":2,\"method\":\"monte_carlo\","
                               "\"radius\":\"all\",\"samples\":7,\"seed\":42}}", &e);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "radius")), -1);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "samples")), 7);
    ASSERT_EQ_INT(json_integer_value(json_object_get(p, "seed")), 42);
    json_decref(p);
    static const struct { const char *req, *field; } bad[] = {
        {"{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\",\"samples\":0}}", "parameters.samples"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\",\"samples\":1.5}}", "parameters.samples"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\",\"radius\":-1}}", "parameters.radius"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\",\"radius\":\"some\"}}", "parameters.radius"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\",\"seed\":-3}}", "parameters.seed"},
        {"{\"parameters\":{\"temperature\":1,\"samples\":10}}", "parameters.samples"},
        {"{\"parameters\":{\"temperature\":1,\"method\":\"montecarlo\"}}", "parameters.method"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = mt_parse(&MODEL_ISING, bad[i].req, &e);
        if (p || strcmp(e.field, bad[i].field)) fprintf(stderr, "%s: field '%s'\n", bad[i].req, e.field);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ_STR(e.field, bad[i].field);
    }
}

/* A (+1, h 0.3) with neighbours B (-1, J 0.75), C (+1, J 1.0), D (no spin); E (-1, h -0.4)
 * alone with F (+1, J 0.5). Radius 0: only A and E move. */
static graph_t *frozen_graph(void) {
    graph_t *g = graph_new();
    mt_add(g, "A", "{\"spin\":1,\"field\":0.3}");
    mt_add(g, "B", "{\"spin\":-1}");
    mt_add(g, "C", "{\"spin\":1}");
    mt_add(g, "D", "{}");
    mt_add(g, "E", "{\"spin\":-1,\"field\":-0.4}");
    mt_add(g, "F", "{\"spin\":1}");
    graph_add_relationship(g, "A", "B", 0.75, 1);
    graph_add_relationship(g, "A", "C", 1.0, 1);
    graph_add_relationship(g, "A", "D", 2.0, 1);
    graph_add_relationship(g, "E", "F", 0.5, 1);
    return g;
}

static void test_frozen_neighbours_match_analytic(void) {
    graph_t *g = frozen_graph();
    const char *ids[] = {"A", "E", "D", "Z"};
    uint8_t codes[4];
    double out[16];
    /* T 1.5, H 3 h, nu 0.8: p_flip of A and E well inside (0, 1) */
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, "{\"parameters\":{\"temperature\":1.5,\"time_horizon\":\"3h\","
                         "\"attempt_rate\":0.8,\"method\":\"monte_carlo\",\"radius\":0,\"samples\":40000,"
                         "\"seed\":7}}", ids, 4, 4, codes, out), 0);
    ASSERT_EQ_INT(codes[0], MODEL_OK);
    ASSERT_EQ_INT(codes[1], MODEL_OK);
    ASSERT_EQ_INT(codes[2], MODEL_ERR_INVALID_SPIN);
    ASSERT_EQ_INT(codes[3], MODEL_ERR_UNKNOWN_ENTITY);
    double pa = analytic_p(1, -0.75 + 1.0 + 0.3, 1.5, 0.8, 3);
    double pe = analytic_p(-1, 0.5 - 0.4, 1.5, 0.8, 3);
    double sa = sqrt(pa * (1 - pa) / 40000), se = sqrt(pe * (1 - pe) / 40000);
    ASSERT_NEAR(out[0], pa, 4 * sa);
    ASSERT_NEAR(out[4], pe, 4 * se);
    ASSERT_NEAR(out[2], sqrt(out[0] * (1 - out[0]) / 40000), 1e-15); /* stderr */
    ASSERT_TRUE(out[3] < 0);                                          /* Monte Carlo row mark */
    /* with frozen neighbours a spin is a two-state chain: away at w+ = nu / (1 + e^{dE/T}),
     * back at w- = nu / (1 + e^{-dE/T}), w+ + w- = nu: P(changed at H) = w+/nu (1 - e^{-nu H}) */
    double wa = 0.8 / (1 + exp(2 * (-0.75 + 1.0 + 0.3) / 1.5));
    double pc = wa / 0.8 * (1 - exp(-0.8 * 3));
    ASSERT_NEAR(out[1], pc, 4 * sqrt(pc * (1 - pc) / 40000));
    graph_free(g);
}

/* Onsager: periodic L x L lattice, all up, T < Tc; M = mean over sites of 1 - 2 p_changed. */
static double lattice_magnetisation(int L, double T, double H_h, int samples) {
    graph_t *g = graph_new();
    char id[32], id2[32];
    for (int i = 0; i < L * L; i++) {
        snprintf(id, sizeof id, "s%d", i);
        mt_add(g, id, "{\"spin\":1}");
    }
    for (int y = 0; y < L; y++)
        for (int x = 0; x < L; x++) {
            snprintf(id, sizeof id, "s%d", y * L + x);
            snprintf(id2, sizeof id2, "s%d", y * L + (x + 1) % L);
            graph_add_relationship(g, id, id2, 1.0, 1);
            snprintf(id2, sizeof id2, "s%d", ((y + 1) % L) * L + x);
            graph_add_relationship(g, id, id2, 1.0, 1);
        }
    const char **ids = malloc((size_t)L * L * sizeof *ids);
    char (*names)[16] = malloc((size_t)L * L * sizeof *names);
    for (int i = 0; i < L * L; i++) { snprintf(names[i], 16, "s%d", i); ids[i] = names[i]; }
    uint8_t *codes = malloc((size_t)L * L);
    double *out = malloc((size_t)L * L * 4 * sizeof *out);
    char req[256];
    snprintf(req, sizeof req, "{\"parameters\":{\"temperature\":%g,\"time_horizon\":%g,\"method\":"
             "\"monte_carlo\",\"radius\":\"all\",\"samples\":%d,\"seed\":1}}", T, H_h * 3600, samples);
    double M = NAN;
    if (mt_job(&MODEL_ISING, g, req, ids, (long)L * L, 1000, codes, out) == 0) {
        M = 0;
        for (int i = 0; i < L * L; i++) M += 1 - 2 * out[(size_t)i * 4 + 1];
        M /= L * L;
    }
    free(ids); free(names); free(codes); free(out);
    graph_free(g);
    return M;
}

static double onsager(double T) { return pow(1 - pow(sinh(2 / T), -4), 0.125); }

static void test_onsager_magnetisation(void) {
    /* 400 attempts per spin: far past equilibration at these temperatures */
    double m15 = lattice_magnetisation(32, 1.5, 400, 16);
    ASSERT_NEAR(m15, onsager(1.5), 0.02 * onsager(1.5)); /* 0.9866 */
    double m20 = lattice_magnetisation(32, 2.0, 400, 16);
    ASSERT_NEAR(m20, onsager(2.0), 0.04 * onsager(2.0)); /* 0.9113 */
}

static void test_properties(void) {
    graph_t *g = frozen_graph(), *h = graph_new();
    /* h: g with every spin and field reversed */
    mt_add(h, "A", "{\"spin\":-1,\"field\":-0.3}");
    mt_add(h, "B", "{\"spin\":1}");
    mt_add(h, "C", "{\"spin\":-1}");
    mt_add(h, "D", "{}");
    mt_add(h, "E", "{\"spin\":1,\"field\":0.4}");
    mt_add(h, "F", "{\"spin\":-1}");
    graph_add_relationship(h, "A", "B", 0.75, 1);
    graph_add_relationship(h, "A", "C", 1.0, 1);
    graph_add_relationship(h, "A", "D", 2.0, 1);
    graph_add_relationship(h, "E", "F", 0.5, 1);
    const char *ids[] = {"A", "B", "C", "E", "F"};
    uint8_t c1[5], c2[5];
    double o1[20], o2[20];
    const char *req = "{\"parameters\":{\"temperature\":0.9,\"method\":\"monte_carlo\",\"samples\":3000,\"seed\":5}}";
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, req, ids, 5, 2, c1, o1), 0);
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, h, req, ids, 5, 5, c2, o2), 0);
    for (int k = 0; k < 5; k++) {
        ASSERT_EQ_INT(c1[k], MODEL_OK);
        for (int o = 0; o < 2; o++) {
            ASSERT_TRUE(o1[k * 4 + o] >= 0 && o1[k * 4 + o] <= 1);
            ASSERT_NEAR(o1[k * 4 + o], o2[k * 4 + o], 0); /* symmetry, exactly */
        }
    }
    /* same seed, other chunking: identical; other seed: different */
    double o3[20];
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, req, ids, 5, 1, c2, o3), 0);
    for (int k = 0; k < 20; k++) ASSERT_NEAR(o3[k], o1[k], 0);
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, "{\"parameters\":{\"temperature\":0.9,\"method\":\"monte_carlo\","
                         "\"samples\":3000,\"seed\":6}}", ids, 5, 5, c2, o3), 0);
    int differ = 0;
    for (int k = 0; k < 20; k++) differ |= o3[k] != o1[k];
    ASSERT_TRUE(differ);
    /* 1 thread or 3: the same numbers (sample k always uses the stream (seed, k)) */
    model_error_t me;
    json_t *params = mt_parse(&MODEL_ISING, req, &me);
    ASSERT_TRUE(params != NULL);
    for (int th = 1; th <= 3; th += 2) {
        model_env_t env = {.graph = g, .threads = th};
        ASSERT_EQ_INT(mt_run(&MODEL_ISING, &env, params, ids, 5, 2, c2, o3), 0);
        for (int k = 0; k < 20; k++) ASSERT_NEAR(o3[k], o1[k], 0);
    }
    json_decref(params);
    /* monotone in T for dE > 0 (A: dE = 2 * 0.55 > 0), frozen neighbours, common random
     * numbers: a higher T accepts every attempt a lower T accepts */
    double prev = -1;
    for (double T = 0.25; T <= 8; T *= 2) {
        char r[256];
        snprintf(r, sizeof r, "{\"parameters\":{\"temperature\":%g,\"method\":\"monte_carlo\",\"radius\":0,"
                 "\"samples\":2000,\"seed\":3}}", T);
        ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, r, ids, 1, 1, c2, o3), 0);
        ASSERT_TRUE(o3[0] >= prev);
        prev = o3[0];
    }
    ASSERT_TRUE(prev > 0.5);
    graph_free(g);
    graph_free(h);
}

static void test_radius_limits_the_simulation(void) {
    /* chain a - b - c - d, all up, strong coupling; only d's neighbour c is within radius 1
     * of d. With radius 0 d sees c frozen; with radius 1 c moves too: the answers differ
     * only through the simulated set, and a and b stay out (their rows: not requested). */
    graph_t *g = graph_new();
    mt_add(g, "a", "{\"spin\":1}");
    mt_add(g, "b", "{\"spin\":1}");
    mt_add(g, "c", "{\"spin\":-1}");
    mt_add(g, "d", "{\"spin\":1}");
    graph_add_relationship(g, "a", "b", 1, 1);
    graph_add_relationship(g, "b", "c", 1, 1);
    graph_add_relationship(g, "c", "d", 1, 1);
    const char *ids[] = {"d"};
    uint8_t c;
    double o0[4], o1[4];
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, "{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\","
                         "\"radius\":0,\"samples\":20000,\"seed\":2}}", ids, 1, 1, &c, o0), 0);
    ASSERT_EQ_INT(mt_job(&MODEL_ISING, g, "{\"parameters\":{\"temperature\":1,\"method\":\"monte_carlo\","
                         "\"radius\":1,\"samples\":20000,\"seed\":2}}", ids, 1, 1, &c, o1), 0);
    /* radius 0: c frozen at -1, d's dE = 2*1*(-1) = -2: p = 1 - exp(-24/(1+e^-2)) ~ 1 */
    ASSERT_NEAR(o0[0], analytic_p(1, -1, 1, 1, 24), 4 * sqrt(1e-4 / 20000) + 1e-12);
    ASSERT_TRUE(o1[0] >= 0 && o1[0] <= 1);
    graph_free(g);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_parse),
        TEST_CASE(test_frozen_neighbours_match_analytic),
        TEST_CASE(test_onsager_magnetisation),
        TEST_CASE(test_properties),
        TEST_CASE(test_radius_limits_the_simulation),
    };
    return test_main("models_ising_mc", cases, (int)(sizeof cases / sizeof cases[0]));
}
