/* Loader fuzzing, bounded: mutates the committed test models (bit flips, interesting bytes,
 * truncation, chunk copies, inserted bytes) with a seeded generator, and feeds each result
 * to the loader, the planner (small memory cap) and, when it plans small, a run and an MC
 * run on zero inputs. The promise: never a crash, a hang or a leak (the sanitizer build
 * checks): every bad file is a clean error. Time budget: $NN_FUZZ_SECONDS (default 3);
 * generator seed: $NN_FUZZ_SEED (default fixed, so a run is repeatable). */
#include "nn/nn.h"
#include "nn_exercise.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static const char *const SEEDS[] = {
    "tests/models/mlp.onnx", "tests/models/gru_regressor.onnx", "tests/models/lstm_regressor.onnx",
    "tests/models/bad_shape_mismatch.onnx",
    "tests/fuzz/regress/reshape-dims-overflow.onnx", /* found by the libFuzzer target */
    "tests/fuzz/regress/tensor-shape-too-big.onnx",  /* ditto (asked for 35 GB before checking) */
};

/* More seeds when Debian's ONNX test data is installed: other ops and attributes. */
static const char *const EXTRA[] = {
    "test_lstm_with_peepholes", "test_gru_seq_length", "test_rnn_seq_length", "test_lstm_batchwise",
    "test_slice_neg_steps", "test_gather_negative_indices", "test_reshape_negative_dim",
    "test_concat_3d_axis_1", "test_transpose_all_permutations_3", "test_layer_normalization_3d_axis1_epsilon",
    "test_reduce_mean_keepdims_random", "test_softmax_axis_1", "test_constantofshape_int_zeros",
    "test_unsqueeze_negative_axes", "test_squeeze", "test_cast_FLOAT_to_DOUBLE", "test_gemm_all_attributes",
    "test_matmul_4d", "test_batchnorm_epsilon", "test_flatten_negative_axis1", "test_shape_start_1_end_negative_1",
};
#define TESTDATA "/usr/share/libonnx-testdata/data/node/"

typedef struct { unsigned char *b; size_t n; } buf_t;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int read_all(const char *path, buf_t *out) {
    out->b = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    out->b = malloc((size_t)n + 1);
    out->n = out->b ? fread(out->b, 1, (size_t)n, f) : 0;
    fclose(f);
    return out->b && out->n == (size_t)n ? 0 : -1;
}

static size_t mutate(const buf_t *src, unsigned char *dst, size_t cap) {
    size_t n = src->n < cap ? src->n : cap;
    memcpy(dst, src->b, n);
    int rounds = 1 + (int)(rnd() % 4);
    for (int r = 0; r < rounds && n > 0; r++) {
        size_t at = (size_t)(rnd() % n);
        switch (rnd() % 6) {
        case 0: dst[at] ^= (unsigned char)(1u << (rnd() % 8)); break;
        case 1: { static const unsigned char v[] = { 0, 1, 0x7f, 0x80, 0xff, 0x08, 0x12 }; dst[at] = v[rnd() % sizeof v]; break; }
        case 2: n = at; break;                                    /* truncate */
        case 3: {                                                 /* copy a chunk elsewhere */
            size_t len = 1 + (size_t)(rnd() % 64), from = (size_t)(rnd() % n);
            if (from + len > n) len = n - from;
            if (at + len > n) len = n - at;
            memmove(dst + at, dst + from, len);
            break;
        }
        case 4:                                                   /* insert a byte */
            if (n < cap) {
                memmove(dst + at + 1, dst + at, n - at);
                dst[at] = (unsigned char)rnd();
                n++;
            }
            break;
        default: dst[at] = (unsigned char)rnd();
        }
    }
    return n;
}

static void test_fuzz_loader_planner(void) {
    const char *env = getenv("NN_FUZZ_SECONDS");
    double budget = env ? atof(env) : 3.0;
    const char *seed = getenv("NN_FUZZ_SEED");   /* default: the same inputs every run */
    if (seed) rng_state = strtoull(seed, NULL, 0) | 1;
    buf_t seeds[sizeof SEEDS / sizeof SEEDS[0] + sizeof EXTRA / sizeof EXTRA[0]];
    int ns = 0;
    for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++)
        if (read_all(SEEDS[i], &seeds[ns]) == 0) ns++;
    ASSERT_EQ_INT(ns, (int)(sizeof SEEDS / sizeof SEEDS[0]));
    for (size_t i = 0; i < sizeof EXTRA / sizeof EXTRA[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, TESTDATA "%s/model.onnx", EXTRA[i]);
        if (read_all(path, &seeds[ns]) == 0) ns++;
        else free(seeds[ns].b);
    }
    for (int i = 0; i < ns; i++) exercise(seeds[i].b, seeds[i].n); /* each seed as it is, first */
    size_t cap = 0;
    for (int i = 0; i < ns; i++) cap = seeds[i].n > cap ? seeds[i].n : cap;
    cap += 64;
    unsigned char *b = malloc(cap);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long iters = 0;
    for (;; iters++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > budget) break;
        const buf_t *src = &seeds[iters % ns];
        exercise(b, mutate(src, b, cap));
    }
    for (int i = 0; i < ns; i++) free(seeds[i].b);
    free(b);
    printf("fuzz: %ld inputs from %d seed models in %.1f s: %d loaded, %d plans, %d runs\n", iters, ns, budget, n_loaded, n_planned, n_ran);
    ASSERT_TRUE(iters > 0);
}

int main(void) {
    static const test_case_t cases[] = { TEST_CASE(test_fuzz_loader_planner) };
    return test_main("nn_fuzz", cases, 1);
}
