/* Isolation forest: the normaliser c(n) from its formula (summed independently here), the
 * score on data with nothing to learn (exactly 0.5), ordering on synthetic data with known
 * outliers, and determinism for a seed. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "sessions/iforest.h"
#include "test.h"

/* c(n) = 2 H(n-1) - 2 (n-1) / n with H summed in long double, largest terms first (the
 * library sums in double, smallest first). */
static double c_ref(size_t n) {
    if (n <= 1) return 0;
    long double h = 0;
    for (size_t i = 1; i <= n - 1; i++) h += 1.0L / (long double)i;
    return (double)(2.0L * h - 2.0L * (long double)(n - 1) / (long double)n);
}

static void test_c_small_values_exact(void) {
    ASSERT_NEAR(iforest_c(0), 0.0, 0);
    ASSERT_NEAR(iforest_c(1), 0.0, 0);
    ASSERT_NEAR(iforest_c(2), 1.0, 1e-15);              /* 2*1 - 2*1/2 */
    ASSERT_NEAR(iforest_c(3), 5.0 / 3.0, 1e-15);        /* 2*(3/2) - 4/3 */
    ASSERT_NEAR(iforest_c(4), 13.0 / 6.0, 1e-15);       /* 2*(11/6) - 3/2 */
}

static void test_c_256_from_formula(void) {
    ASSERT_NEAR(iforest_c(256), c_ref(256), 1e-12);
    /* H(n) = ln n + gamma + 1/(2n) - ...: c(256) is close to the usual approximation */
    double approx = 2.0 * (log(255.0) + 0.57721566490153286) - 2.0 * 255.0 / 256.0;
    ASSERT_TRUE(fabs(iforest_c(256) - approx) < 0.005);
    ASSERT_TRUE(iforest_c(256) > approx); /* the first neglected term, 1/(n-1), is positive */
    ASSERT_NEAR(iforest_c(100000), c_ref(100000), 1e-10);
}

static void test_constant_rows_score_one_half(void) {
    enum { N = 300, D = 3 };
    double *X = malloc(N * D * sizeof *X);
    for (int i = 0; i < N * D; i++) X[i] = 2.5;
    iforest_t *f = NULL;
    char err[128];
    iforest_params_t p = {100, 256, 7};
    ASSERT_EQ_INT(iforest_fit(&f, X, N, D, &p, err, sizeof err), 0);
    /* every tree is one external node of 256 rows: h = 0 + c(256), s = 2^-1 */
    double x[D] = {2.5, 2.5, 2.5}, far[D] = {1e6, -1e6, 0};
    ASSERT_NEAR(iforest_path_length(f, x), c_ref(256), 1e-12);
    ASSERT_NEAR(iforest_score(f, x), 0.5, 1e-12);
    ASSERT_NEAR(iforest_score(f, far), 0.5, 1e-12);
    iforest_free(f);
    free(X);
}

static void test_one_row_scores_one_half(void) {
    double X[2] = {1, 2};
    iforest_t *f = NULL;
    char err[128];
    iforest_params_t p = {10, 256, 1};
    ASSERT_EQ_INT(iforest_fit(&f, X, 1, 2, &p, err, sizeof err), 0);
    ASSERT_NEAR(iforest_score(f, X), 0.5, 0);
    iforest_free(f);
    ASSERT_EQ_INT(iforest_fit(&f, X, 0, 2, &p, err, sizeof err), -1);
    ASSERT_TRUE(f == NULL);
}

/* Two rows: every tree splits them apart at depth 1 (height limit ceil(log2 2) = 1): each
 * reaches an external node of one row, h = 1 + c(1) = 1, s = 2^(-1/c(2)) = 1/2. */
static void test_two_rows_by_hand(void) {
    double X[4] = {0, 0, 1, 1};
    iforest_t *f = NULL;
    char err[128];
    iforest_params_t p = {50, 256, 3};
    ASSERT_EQ_INT(iforest_fit(&f, X, 2, 2, &p, err, sizeof err), 0);
    ASSERT_NEAR(iforest_path_length(f, X), 1.0, 1e-15);
    ASSERT_NEAR(iforest_score(f, X + 2), 0.5, 1e-15);
    iforest_free(f);
}

enum { NI = 1000, NO = 10, DIM = 4 };

/* NI rows from N(0, I) and NO outliers at distance 8 in random directions (rows NI..). */
static double *synthetic(uint64_t seed) {
    double *X = malloc((NI + NO) * DIM * sizeof *X);
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < NI * DIM; i++) X[i] = rng_normal(&r);
    for (int i = NI; i < NI + NO; i++) {
        double v[DIM], n = 0;
        for (int j = 0; j < DIM; j++) {
            v[j] = rng_normal(&r);
            n += v[j] * v[j];
        }
        for (int j = 0; j < DIM; j++) X[i * DIM + j] = 8.0 * v[j] / sqrt(n);
    }
    return X;
}

static void test_outliers_score_higher(void) {
    double *X = synthetic(11);
    iforest_t *f = NULL;
    char err[128];
    iforest_params_t p = {100, 256, 42};
    ASSERT_EQ_INT(iforest_fit(&f, X, NI + NO, DIM, &p, err, sizeof err), 0);
    double *s = malloc((NI + NO) * sizeof *s);
    iforest_score_rows(f, X, NI + NO, s);
    double max_core = 0, min_out = 1, mean_in = 0, mean_out = 0;
    for (int i = 0; i < NI; i++) {
        double r2 = 0;
        for (int j = 0; j < DIM; j++) r2 += X[i * DIM + j] * X[i * DIM + j];
        if (r2 < 4.0 && s[i] > max_core) max_core = s[i]; /* within 2 sigma of the centre */
        mean_in += s[i] / NI;
    }
    for (int i = NI; i < NI + NO; i++) {
        if (s[i] < min_out) min_out = s[i];
        mean_out += s[i] / NO;
    }
    for (int i = 0; i < NI + NO; i++) ASSERT_TRUE(s[i] > 0 && s[i] <= 1);
    ASSERT_TRUE(min_out > max_core);
    ASSERT_TRUE(mean_out > 0.6);
    ASSERT_TRUE(mean_in < 0.5);
    /* the centre is the least anomalous place */
    double centre[DIM] = {0};
    ASSERT_TRUE(iforest_score(f, centre) < mean_in);
    iforest_free(f);
    free(s);
    free(X);
}

static void test_deterministic_for_a_seed(void) {
    double *X = synthetic(5);
    char err[128];
    iforest_t *a = NULL, *b = NULL, *c = NULL;
    iforest_params_t p = {100, 256, 99}, q = {100, 256, 100};
    ASSERT_EQ_INT(iforest_fit(&a, X, NI + NO, DIM, &p, err, sizeof err), 0);
    ASSERT_EQ_INT(iforest_fit(&b, X, NI + NO, DIM, &p, err, sizeof err), 0);
    ASSERT_EQ_INT(iforest_fit(&c, X, NI + NO, DIM, &q, err, sizeof err), 0);
    double sa[NI + NO], sb[NI + NO], sc[NI + NO];
    iforest_score_rows(a, X, NI + NO, sa);
    iforest_score_rows(b, X, NI + NO, sb);
    iforest_score_rows(c, X, NI + NO, sc);
    ASSERT_TRUE(memcmp(sa, sb, sizeof sa) == 0);
    ASSERT_TRUE(memcmp(sa, sc, sizeof sa) != 0); /* another seed, another forest */
    /* the tree-by-tree loop of iforest_score_rows gives the bits of the plain per-row walk */
    for (int i = 0; i < NI + NO; i++) ASSERT_TRUE(sa[i] == iforest_score(a, X + i * DIM));
    iforest_free(a);
    iforest_free(b);
    iforest_free(c);
    free(X);
}

/* Path lengths are bounded by the height limit plus c() of the largest possible external node,
 * and never below 1 when the subsample has two distinct rows. */
static void test_path_length_bounds(void) {
    double *X = synthetic(8);
    char err[128];
    iforest_t *f = NULL;
    iforest_params_t p = {20, 64, 1};
    ASSERT_EQ_INT(iforest_fit(&f, X, NI + NO, DIM, &p, err, sizeof err), 0);
    for (int i = 0; i < NI + NO; i += 7) {
        double h = iforest_path_length(f, X + i * DIM);
        ASSERT_TRUE(h >= 1.0);
        ASSERT_TRUE(h <= 6.0 + iforest_c(64)); /* ceil(log2 64) = 6 */
    }
    iforest_free(f);
    free(X);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_c_small_values_exact), TEST_CASE(test_c_256_from_formula),
        TEST_CASE(test_constant_rows_score_one_half), TEST_CASE(test_one_row_scores_one_half),
        TEST_CASE(test_two_rows_by_hand), TEST_CASE(test_outliers_score_higher),
        TEST_CASE(test_deterministic_for_a_seed), TEST_CASE(test_path_length_bounds),
    };
    return test_main("iforest", cases, (int)(sizeof cases / sizeof cases[0]));
}
