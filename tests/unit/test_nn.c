/* nn engine: loader errors, the test models against numpy (tests/models/gen_models.py),
 * fast kernels against the plain reference ones, row independence across batch sizes and
 * threads, dropout masks, the quantile rule, and MC dropout equal to the naive N-pass run. */
#include "nn/nn.h"
#include "nn/nn_ops.h"
#include "test.h"

#include <stdlib.h>

#define MODELS "tests/models/"

static char err[512];

static nn_model_t *load(const char *name) {
    nn_model_t *m = NULL;
    char path[256];
    snprintf(path, sizeof path, MODELS "%s.onnx", name);
    if (nn_model_load(path, &m, err, sizeof err)) fprintf(stderr, "load %s: %s\n", name, err);
    return m;
}

static int load_pb(const char *name, const char *suffix, nn_tensor_t *t) {
    char path[256];
    snprintf(path, sizeof path, MODELS "%s_%s.pb", name, suffix);
    int rc = nn_tensor_load_pb(path, t, NULL, 0, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

/* isa: NN_ISA_BEST (0) or the kernel set to cap the plan at */
static nn_plan_t *plan_isa(const nn_model_t *m, int64_t batch, int threads, int passes, int reference, int isa) {
    nn_plan_opts_t o = { .batch = batch, .threads = threads, .mc_passes = passes, .reference = reference, .isa = isa };
    nn_plan_t *p = NULL;
    if (nn_plan_create(m, &o, &p, err, sizeof err)) fprintf(stderr, "plan: %s\n", err);
    return p;
}

static nn_plan_t *plan(const nn_model_t *m, int64_t batch, int threads, int passes, int reference) {
    return plan_isa(m, batch, threads, passes, reference, NN_ISA_BEST);
}

/* The kernel sets this machine runs, from NN_ISA_PLAIN up: the tests go through each. */
static int n_isas(void) { return nn_isa_best() - NN_ISA_PLAIN + 1; }
static int isa_at(int i) { return NN_ISA_PLAIN + i; }

/* ---- loader ---- */

static void test_load_missing_file(void) {
    nn_model_t *m = (nn_model_t *)1;
    ASSERT_EQ_INT(nn_model_load(MODELS "no_such.onnx", &m, err, sizeof err), NN_ERR_IO);
    ASSERT_TRUE(m == NULL);
    ASSERT_TRUE(strstr(err, "no_such.onnx") != NULL);
}

static void test_load_garbage(void) {
    nn_model_t *m = NULL;
    const char junk[] = "\xff\xff\xff\xff this is not a protobuf";
    ASSERT_EQ_INT(nn_model_load_buffer(junk, sizeof junk, &m, err, sizeof err), NN_ERR_PARSE);
    ASSERT_TRUE(m == NULL);
}

/* Every prefix of a valid model (step 37 bytes) is rejected cleanly or loads; never a crash
 * or a leak (the sanitizer build checks). */
static void test_load_truncated(void) {
    FILE *f = fopen(MODELS "gru_regressor.onnx", "rb");
    ASSERT_TRUE(f != NULL);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ASSERT_TRUE(n > 1000 && n < sizeof buf);
    int rejected = 0;
    for (size_t len = 0; len < n; len += 37) {
        nn_model_t *m = NULL;
        int rc = nn_model_load_buffer(buf, len, &m, err, sizeof err);
        if (rc) { rejected++; ASSERT_TRUE(m == NULL); ASSERT_TRUE(err[0] != 0); }
        nn_model_free(m);
    }
    ASSERT_TRUE(rejected > 0);
    /* flipped bytes: also no crash */
    for (size_t i = 0; i < n; i += 53) {
        unsigned char save = buf[i];
        buf[i] ^= 0x5a;
        nn_model_t *m = NULL;
        if (nn_model_load_buffer(buf, n, &m, err, sizeof err) == 0) {
            nn_plan_opts_t o = { .batch = 2, .threads = 1 };
            nn_plan_t *p = NULL;
            if (nn_plan_create(m, &o, &p, err, sizeof err) == 0) nn_plan_free(p);
            nn_model_free(m);
        }
        buf[i] = save;
    }
}

static void test_load_unsupported_op_named(void) {
    nn_model_t *m = NULL;
    ASSERT_EQ_INT(nn_model_load(MODELS "bad_unsupported_op.onnx", &m, err, sizeof err), NN_ERR_UNSUPPORTED);
    ASSERT_TRUE(strstr(err, "'Celu'") != NULL);
    ASSERT_TRUE(strstr(err, "celu_1") != NULL);
}

/* For `model check`: the ops are listed, the unsupported one marked, planning names it. */
static void test_load_allowing_unsupported_ops(void) {
    nn_model_t *m = NULL;
    ASSERT_EQ_INT(nn_model_load_flags(MODELS "bad_unsupported_op.onnx", NN_LOAD_ALLOW_UNSUPPORTED, &m, err, sizeof err), 0);
    int n = nn_model_n_nodes(m), s0 = nn_model_node_supported(m, 0), s1 = nn_model_node_supported(m, 1);
    char op1[16];
    snprintf(op1, sizeof op1, "%s", nn_model_node_op(m, 1));
    nn_plan_opts_t o = { .batch = 1, .threads = 1 };
    nn_plan_t *p = NULL;
    int rc = nn_plan_create(m, &o, &p, err, sizeof err);
    nn_model_free(m);
    ASSERT_EQ_INT(n, 2);
    ASSERT_TRUE(s0 && !s1);
    ASSERT_EQ_STR(op1, "Celu");
    ASSERT_EQ_INT(rc, NN_ERR_UNSUPPORTED);
    ASSERT_TRUE(strstr(err, "'Celu'") && strstr(err, "celu_1"));
}

static void test_load_dangling_input(void) {
    nn_model_t *m = NULL;
    ASSERT_EQ_INT(nn_model_load(MODELS "bad_dangling_input.onnx", &m, err, sizeof err), NN_ERR_INVALID);
    ASSERT_TRUE(strstr(err, "'nowhere'") != NULL);
}

static void test_plan_shape_mismatch(void) {
    nn_model_t *m = load("bad_shape_mismatch");
    ASSERT_TRUE(m != NULL);
    nn_plan_opts_t o = { .batch = 2, .threads = 1 };
    nn_plan_t *p = NULL;
    int rc = nn_plan_create(m, &o, &p, err, sizeof err);
    nn_model_free(m);
    ASSERT_EQ_INT(rc, NN_ERR_SHAPE);
    ASSERT_TRUE(strstr(err, "add_c") != NULL);
}

static void test_plan_input_shape_mismatch(void) {
    nn_model_t *m = load("lstm_regressor");
    ASSERT_TRUE(m != NULL);
    nn_tensor_t t = { .dtype = NN_FLOAT, .ndim = 3, .dims = { 4, 32, 37 } };
    const nn_tensor_t *shapes[1] = { &t };
    nn_plan_opts_t o = { .input_shapes = shapes, .threads = 1 };
    nn_plan_t *p = NULL;
    int rc = nn_plan_create(m, &o, &p, err, sizeof err);
    nn_model_free(m);
    ASSERT_EQ_INT(rc, NN_ERR_SHAPE);
    ASSERT_TRUE(strstr(err, "dim 2 is 37, model says 20") != NULL);
}

/* The fused LSTM computes the input projection block by block: its plan holds no T x B x 4H
 * buffer (32 MiB at batch 1024 for this model); the reference plan, which projects every
 * step first, does. Before the scratch was sized per path both arenas were 45.7 MB. */
static void test_fused_lstm_arena_has_no_projection_buffer(void) {
    nn_model_t *m = load("lstm_regressor");
    ASSERT_TRUE(m != NULL);
    size_t arena[2] = {0, 0};
    for (int ref = 0; ref < 2; ref++) {
        nn_tensor_t t;
        nn_model_input_info(m, 0, &t);
        t.dims[0] = 1024;
        const nn_tensor_t *shapes[1] = { &t };
        nn_plan_opts_t o = { .input_shapes = shapes, .threads = 1, .reference = ref };
        nn_plan_t *p = NULL;
        ASSERT_EQ_INT(nn_plan_create(m, &o, &p, err, sizeof err), 0);
        arena[ref] = nn_plan_arena_bytes(p);
        nn_plan_free(p);
    }
    nn_model_free(m);
    const size_t gx = (size_t)32 * 1024 * 4 * 64 * sizeof(float); /* T B 4H */
    ASSERT_TRUE(arena[1] >= gx);
    ASSERT_TRUE(arena[0] + gx <= arena[1]);
}

static void test_model_info(void) {
    nn_model_t *m = load("lstm_regressor");
    ASSERT_TRUE(m != NULL);
    nn_tensor_t t;
    int ni = nn_model_n_inputs(m), no = nn_model_n_outputs(m), nodes = nn_model_n_nodes(m), drops = nn_model_n_dropouts(m);
    int64_t opset = nn_model_opset(m);
    nn_model_input_info(m, 0, &t);
    int has_lstm = 0;
    for (int i = 0; i < nodes; i++) has_lstm |= strcmp(nn_model_node_op(m, i), "LSTM") == 0;
    char in0[16];
    snprintf(in0, sizeof in0, "%s", nn_model_input_name(m, 0));
    nn_model_free(m);
    ASSERT_EQ_INT(ni, 1);
    ASSERT_EQ_INT(no, 1);
    ASSERT_EQ_STR(in0, "x");
    ASSERT_EQ_INT(opset, 17);
    ASSERT_EQ_INT(t.ndim, 3);
    ASSERT_EQ_INT(t.dims[0], -1);
    ASSERT_EQ_INT(t.dims[2], 20);
    ASSERT_EQ_INT(drops, 1);
    ASSERT_TRUE(has_lstm);
    ASSERT_TRUE(nn_op_supported("GRU") && !nn_op_supported("Conv"));
}

/* ---- models against numpy ---- */

static void check_model_isa(const char *name, int threads, int reference, int isa) {
    nn_model_t *m = load(name);
    ASSERT_TRUE(m != NULL);
    nn_tensor_t x, y;
    ASSERT_EQ_INT(load_pb(name, "input", &x), 0);
    ASSERT_EQ_INT(load_pb(name, "output", &y), 0);
    nn_plan_t *p = plan_isa(m, x.dims[0], threads, 0, reference, isa);
    float *out = calloc((size_t)nn_tensor_numel(&y), sizeof(float));
    size_t xbytes = sizeof(float) * (size_t)nn_tensor_numel(&x);
    void *x0 = malloc(xbytes);
    memcpy(x0, x.data, xbytes);
    int rc = p ? nn_run(p, (const void *const[]){ x.data }, (void *const[]){ out }, err, sizeof err) : -1;
    int x_kept = memcmp(x0, x.data, xbytes) == 0; /* the run reads the caller's input in place */
    free(x0);
    double worst = 0;
    for (int64_t i = 0; !rc && i < nn_tensor_numel(&y); i++) {
        double d = fabs(out[i] - ((float *)y.data)[i]);
        if (d > worst) worst = d;
    }
    nn_plan_free(p);
    nn_model_free(m);
    free(out);
    nn_tensor_free_data(&x);
    nn_tensor_free_data(&y);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_TRUE(x_kept);
    ASSERT_NEAR(worst, 0, 1e-4);
}

static void check_model(const char *name, int threads, int reference) { check_model_isa(name, threads, reference, NN_ISA_BEST); }

static void test_lstm_regressor_matches_numpy(void) { check_model("lstm_regressor", 2, 0); }
static void test_lstm_regressor_reference_kernels(void) { check_model("lstm_regressor", 1, 1); }
static void test_lstm_regressor_37_matches_numpy(void) { check_model("lstm_regressor_37", 2, 0); }
static void test_gru_regressor_matches_numpy(void) { check_model("gru_regressor", 2, 0); }
static void test_gru_regressor_reference_kernels(void) { check_model("gru_regressor", 1, 1); }
static void test_mlp_matches_numpy(void) { check_model("mlp", 1, 0); }
static void test_mlp_two_threads(void) { check_model("mlp", 2, 0); }
static void test_mc_transposed_matches_numpy(void) { check_model("mc_transposed", 1, 0); }

/* Rows are independent: a batch of 37 (odd, split across 2 threads) equals 37 runs of one. */
static void test_batch_rows_independent(void) {
    nn_model_t *m = load("lstm_regressor_37");
    ASSERT_TRUE(m != NULL);
    enum { B = 37, ROW = 32 * 37 };
    float *x = malloc(sizeof(float) * B * ROW), big[B], one[B];
    uint64_t s = 12345;
    for (int i = 0; i < B * ROW; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) / (double)(1 << 24) * 2 - 1);
    }
    nn_plan_t *pb = plan(m, B, 2, 0, 0), *p1 = plan(m, 1, 1, 0, 1);
    int rc = pb && p1 ? nn_run(pb, (const void *const[]){ x }, (void *const[]){ big }, err, sizeof err) : -1;
    for (int b = 0; !rc && b < B; b++)
        rc = nn_run(p1, (const void *const[]){ x + b * ROW }, (void *const[]){ one + b }, err, sizeof err);
    nn_plan_free(pb);
    nn_plan_free(p1);
    nn_model_free(m);
    free(x);
    ASSERT_EQ_INT(rc, 0);
    for (int b = 0; b < B; b++) ASSERT_NEAR(big[b], one[b], 1e-5);
}

/* Every kernel set this machine runs (AVX-512, AVX2 forced, none: OpenBLAS and plain loops)
 * against numpy, on one and two threads; lstm_h24 and lstm_h12 have hidden sizes the fused
 * paths take only in part (24: product then cell; 12: no fused cell); lstm_bidir_seq reads
 * x batch-first, runs both directions and writes every step's h (Y is its output). */
static void test_models_match_numpy_every_isa(void) {
    static const char *const names[] = { "lstm_regressor", "lstm_regressor_37", "gru_regressor", "lstm_h24", "lstm_h12",
                                         "lstm_bidir_seq" };
    for (int i = 0; i < n_isas(); i++)
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            for (int threads = 1; threads <= 2; threads++) check_model_isa(names[k], threads, 0, isa_at(i));
}

/* The fused LSTM path (blocks of 64 rows per thread, one product per step for every gate)
 * against the reference kernels, with a batch that spans several blocks and a ragged last
 * one, rows not a multiple of the register block, for each kernel set. */
static void check_fused_blocks(const char *name, int64_t F, int isa) {
    nn_model_t *m = load(name);
    ASSERT_TRUE(m != NULL);
    enum { B = 301 };
    int64_t row = 32 * F;
    float *x = malloc(sizeof(float) * (size_t)(B * row)), fast[B], ref[B];
    uint64_t s = 777;
    for (int64_t i = 0; i < B * row; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) / (double)(1 << 24) * 4 - 2);
    }
    nn_plan_t *pf = plan_isa(m, B, 2, 0, 0, isa), *pr = plan(m, B, 1, 0, 1);
    int rc = pf && pr ? nn_run(pf, (const void *const[]){ x }, (void *const[]){ fast }, err, sizeof err) : -1;
    if (!rc) rc = nn_run(pr, (const void *const[]){ x }, (void *const[]){ ref }, err, sizeof err);
    nn_plan_free(pf);
    nn_plan_free(pr);
    nn_model_free(m);
    free(x);
    ASSERT_EQ_INT(rc, 0);
    for (int b = 0; b < B; b++) ASSERT_NEAR(fast[b], ref[b], 1e-5);
}

static void test_lstm_fused_blocks_match_reference(void) {
    for (int i = 0; i < n_isas(); i++) {
        check_fused_blocks("lstm_regressor", 20, isa_at(i));
        check_fused_blocks("lstm_regressor_37", 37, isa_at(i));
    }
}

/* The fused cell of each kernel set against the formula in double precision (H = 24: the
 * AVX-512 cell's masked tail). */
static void check_cell(const nn_kern_t *ks, int H) {
    float g[4 * 64], g0[4 * 64], c[64], c0[64], h[64];
    uint64_t s = 99;
    for (int rep = 0; rep < 200; rep++) {
        for (int i = 0; i < 4 * H; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            g[i] = g0[i] = (float)((s >> 40) / (double)(1 << 24) * 24 - 12); /* [-12, 12) */
        }
        for (int i = 0; i < H; i++) c[i] = c0[i] = (float)(((int)(i * 37 + rep) % 41) - 20) / 10.0f;
        ks->lstm_cell(g, c, h, H);
        for (int k = 0; k < H; k++) {
            double ig = 1 / (1 + exp(-(double)g0[k])), og = 1 / (1 + exp(-(double)g0[H + k]));
            double fg = 1 / (1 + exp(-(double)g0[2 * H + k])), cc = tanh((double)g0[3 * H + k]);
            double cn = fg * c0[k] + ig * cc;
            ASSERT_NEAR(c[k], cn, 2e-6 * (1 + fabs(cn)));
            ASSERT_NEAR(h[k], og * tanh(cn), 2e-6);
        }
    }
}

static void test_lstm_cell_matches_formula(void) {
    for (int i = 0; i < n_isas(); i++)
        for (int H = 24; H <= 64; H += 40) {
            const nn_kern_t *ks = nn_kern_for(isa_at(i));
            if (!ks) continue; /* no kernels in this set: the cell is never used */
            check_cell(ks, H);
        }
}

/* ---- dropout and MC ---- */

static void test_quantile_linear_interpolation(void) {
    /* numpy.quantile([1, 2, 3, 4, 5], q): 0.1 -> 1.4, 0.5 -> 3, 0.9 -> 4.6 */
    float x[5] = { 5, 3, 1, 4, 2 };
    nn_sort_floats(x, 5);
    ASSERT_NEAR(nn_quantile_sorted(x, 5, 0.1), 1.4, 1e-6);
    ASSERT_NEAR(nn_quantile_sorted(x, 5, 0.5), 3.0, 1e-6);
    ASSERT_NEAR(nn_quantile_sorted(x, 5, 0.9), 4.6, 1e-6);
    ASSERT_NEAR(nn_quantile_sorted(x, 5, 1.0), 5.0, 1e-6);
    float y[2] = { 10, 20 };  /* h = 0.9 -> 19 */
    ASSERT_NEAR(nn_quantile_sorted(y, 2, 0.9), 19.0, 1e-5);
    float z[1] = { 7 };
    ASSERT_NEAR(nn_quantile_sorted(z, 1, 0.1), 7.0, 0);
    /* the heapsort path (more than 64 values): a permutation of 0..199 sorts to 0..199 */
    float big[200];
    for (int i = 0; i < 200; i++) big[i] = (float)((i * 73) % 200);
    nn_sort_floats(big, 200);
    for (int i = 0; i < 200; i++) ASSERT_NEAR(big[i], i, 0);
    ASSERT_NEAR(nn_quantile_sorted(big, 200, 0.9), 179.1, 1e-4);   /* h = 199 * 0.9 = 179.1 */
}

/* A pass's dropout in the MLP: about ratio of a layer dropped; passes differ; seeds repeat. */
static void test_dropout_pass_is_seeded(void) {
    nn_model_t *m = load("mlp");
    ASSERT_TRUE(m != NULL);
    nn_tensor_t x;
    ASSERT_EQ_INT(load_pb("mlp", "input", &x), 0);
    nn_plan_t *p = plan(m, x.dims[0], 1, 0, 0);
    float a[7], b[7], c[7], inf[7];
    const void *in[1] = { x.data };
    int rc = p ? nn_run_pass(p, 42, 0, in, (void *const[]){ a }, err, sizeof err) : -1;
    if (!rc) rc = nn_run_pass(p, 42, 0, in, (void *const[]){ b }, err, sizeof err);
    if (!rc) rc = nn_run_pass(p, 42, 1, in, (void *const[]){ c }, err, sizeof err);
    if (!rc) rc = nn_run(p, in, (void *const[]){ inf }, err, sizeof err);
    nn_plan_free(p);
    nn_model_free(m);
    nn_tensor_free_data(&x);
    ASSERT_EQ_INT(rc, 0);
    int same_ac = 1, same_a_inf = 1;
    for (int i = 0; i < 7; i++) {
        ASSERT_NEAR(a[i], b[i], 0);
        same_ac &= a[i] == c[i];
        same_a_inf &= a[i] == inf[i];
    }
    ASSERT_TRUE(!same_ac);
    ASSERT_TRUE(!same_a_inf);
}

/* MC statistics equal the naive computation: `passes` full runs with the same masks. */
static void check_mc(const char *name, int64_t batch, int passes, int threads) {
    nn_model_t *m = load(name);
    ASSERT_TRUE(m != NULL);
    nn_tensor_t x;
    ASSERT_EQ_INT(load_pb(name, "input", &x), 0);
    ASSERT_TRUE(batch <= x.dims[0]);
    nn_plan_t *pn = plan(m, batch, threads, 0, 0), *pm = plan(m, batch, threads, passes, 0);
    ASSERT_TRUE(pn && pm);
    nn_tensor_t oi;
    nn_plan_output_info(pn, 0, &oi);
    int64_t n = nn_tensor_numel(&oi);   /* per pass: batch rows of the output, any layout */
    float *naive = calloc((size_t)(passes * n), sizeof(float));
    float *st = calloc((size_t)(5 * n), sizeof(float));
    nn_mc_stats_t stats = { st, st + n, st + 2 * n, st + 3 * n, st + 4 * n };
    const void *in[1] = { x.data };
    int rc = 0;
    for (int q = 0; !rc && q < passes; q++) rc = nn_run_pass(pn, 7, q, in, (void *const[]){ naive + q * n }, err, sizeof err);
    if (!rc) rc = nn_run_mc(pm, 7, in, &stats, err, sizeof err);
    int wrong = rc != 0;
    float *col = calloc((size_t)passes, sizeof(float));
    double spread = 0;
    for (int64_t b = 0; !wrong && b < n; b++) {
        double sum = 0, sq = 0;
        for (int q = 0; q < passes; q++) sum += col[q] = naive[q * n + b];
        double mean = sum / passes;
        for (int q = 0; q < passes; q++) sq += (col[q] - mean) * (col[q] - mean);
        nn_sort_floats(col, passes);
        double want[5] = { mean, sqrt(sq / passes), nn_quantile_sorted(col, passes, 0.1), nn_quantile_sorted(col, passes, 0.5), nn_quantile_sorted(col, passes, 0.9) };
        for (int k = 0; k < 5; k++)
            if (fabs(st[k * n + b] - want[k]) > 1e-5 + 1e-4 * fabs(want[k])) {
                fprintf(stderr, "%s element %lld stat %d: mc %.9g naive %.9g\n", name, (long long)b, k, st[k * n + b], want[k]);
                wrong = 1;
            }
        spread += want[1];
    }
    free(col);
    free(naive);
    free(st);
    nn_plan_free(pn);
    nn_plan_free(pm);
    nn_model_free(m);
    nn_tensor_free_data(&x);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_TRUE(!wrong);
    ASSERT_TRUE(passes == 1 ? spread == 0 : spread > 0);
}

static void test_mc_lstm_equals_naive(void) { check_mc("lstm_regressor", 6, 20, 2); }
static void test_mc_lstm37_equals_naive(void) { check_mc("lstm_regressor_37", 3, 7, 1); }
static void test_mc_gru_equals_naive(void) { check_mc("gru_regressor", 5, 20, 2); }
static void test_mc_mlp_two_dropouts_equals_naive(void) { check_mc("mlp", 7, 11, 2); }
static void test_mc_one_pass(void) { check_mc("mlp", 4, 1, 1); }
static void test_mc_batch_of_one(void) { check_mc("lstm_regressor", 1, 20, 2); }
static void test_mc_batch_axis_moved_by_transpose(void) { check_mc("mc_transposed", 4, 9, 1); }

/* Ops after a Dropout that mix rows cannot run on stacked passes: a clear error, not wrong
 * statistics. Without MC the same models plan. */
static void test_mc_refuses_row_mixing(void) {
    static const char *const names[] = { "bad_mc_reshape_merges_batch", "bad_mc_softmax_over_batch" };
    for (int i = 0; i < 2; i++) {
        nn_model_t *m = load(names[i]);
        ASSERT_TRUE(m != NULL);
        nn_plan_opts_t o = { .batch = 3, .threads = 1, .mc_passes = 4 };
        nn_plan_t *p = NULL, *q = NULL;
        int rc = nn_plan_create(m, &o, &p, err, sizeof err);
        char e1[512];
        snprintf(e1, sizeof e1, "%s", err);
        o.mc_passes = 0;
        int rc0 = nn_plan_create(m, &o, &q, err, sizeof err);
        nn_plan_free(p);
        nn_plan_free(q);
        nn_model_free(m);
        ASSERT_EQ_INT(rc, NN_ERR_UNSUPPORTED);
        ASSERT_TRUE(strstr(e1, "batch rows") != NULL);
        ASSERT_EQ_INT(rc0, 0);
    }
}

static void test_mc_needs_mc_plan(void) {
    nn_model_t *m = load("mlp");
    ASSERT_TRUE(m != NULL);
    nn_plan_t *p = plan(m, 2, 1, 0, 0), *q = plan(m, 2, 1, 3, 0);
    float x[20] = { 0 }, y[2], st[10];
    nn_mc_stats_t s = { st, st + 2, st + 4, st + 6, st + 8 };
    int r1 = nn_run_mc(p, 1, (const void *const[]){ x }, &s, err, sizeof err);
    int r2 = nn_run(q, (const void *const[]){ x }, (void *const[]){ y }, err, sizeof err);
    int r3 = nn_run_mc(q, 1, (const void *const[]){ x }, &s, err, sizeof err);
    nn_plan_free(p);
    nn_plan_free(q);
    nn_model_free(m);
    ASSERT_EQ_INT(r1, NN_ERR_ARG);
    ASSERT_EQ_INT(r2, NN_ERR_ARG);
    ASSERT_EQ_INT(r3, 0);
}

/* Plan options out of range are refused with the option named, not taken as a default. */
static void test_plan_refuses_options_out_of_range(void) {
    nn_model_t *m = load("mlp");
    ASSERT_TRUE(m != NULL);
    nn_plan_t *p = NULL;
    nn_plan_opts_t o = { .batch = 2, .threads = 1, .isa = NN_ISA_AVX512 + 1 };
    int r1 = nn_plan_create(m, &o, &p, err, sizeof err);
    ASSERT_TRUE(p == NULL && strstr(err, "isa") != NULL);
    o.isa = -1;
    int r2 = nn_plan_create(m, &o, &p, err, sizeof err);
    ASSERT_TRUE(p == NULL);
    o.isa = NN_ISA_PLAIN;
    o.mc_passes = -1;
    int r3 = nn_plan_create(m, &o, &p, err, sizeof err);
    ASSERT_TRUE(p == NULL && strstr(err, "mc_passes") != NULL);
    nn_model_free(m);
    ASSERT_EQ_INT(r1, NN_ERR_ARG);
    ASSERT_EQ_INT(r2, NN_ERR_ARG);
    ASSERT_EQ_INT(r3, NN_ERR_ARG);
}

/* The part of the graph no Dropout reaches runs once; only the head runs on stacked passes.
 * The Transpose before the LSTM is folded into it (the LSTM reads x batch-first). */
static void test_mc_plan_shares_the_lstm(void) {
    nn_model_t *m = load("lstm_regressor");
    ASSERT_TRUE(m != NULL);
    nn_plan_t *pm = plan(m, 16, 1, 20, 0), *pn = plan(m, 16, 1, 0, 0);
    nn_plan_stats_t sm, sn;
    if (pm) nn_plan_stats(pm, &sm);
    if (pn) nn_plan_stats(pn, &sn);
    nn_plan_free(pm);
    nn_plan_free(pn);
    nn_model_free(m);
    ASSERT_TRUE(pm && pn);
    ASSERT_EQ_INT(sn.steps, 6);          /* LSTM Squeeze Dropout Gemm Relu Gemm */
    ASSERT_EQ_INT(sm.shared_steps, 2);   /* LSTM Squeeze, once per batch */
    ASSERT_EQ_INT(sm.tiles, 1);          /* h repeated for the passes */
    ASSERT_EQ_INT(sm.stacked_steps, 4);  /* Dropout Gemm Relu Gemm on [20*16, ...] */
    ASSERT_TRUE(sn.arena_bytes < sn.value_bytes);
}

/* OpenBLAS path against the plain loop, all transpose combinations, odd sizes. */
static void test_gemm_blas_matches_reference(void) {
    enum { M = 37, N = 29, K = 53 };
    static float A[M * K], B[K * N], C1[M * N], C2[M * N];
    uint64_t s = 99;
    for (int i = 0; i < M * K; i++) { s = s * 6364136223846793005ULL + 1; A[i] = (float)((s >> 40) % 2001) / 1000.0f - 1; }
    for (int i = 0; i < K * N; i++) { s = s * 6364136223846793005ULL + 1; B[i] = (float)((s >> 40) % 2001) / 1000.0f - 1; }
    nn_exec_t fast = { 0 }, ref = { 0 };
    ref.reference = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * N; i++) C1[i] = C2[i] = (float)i / (M * N);
            nn_gemm(&fast, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 2.0f, C1, N);
            nn_gemm(&ref, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 2.0f, C2, N);
            for (int i = 0; i < M * N; i++) ASSERT_NEAR(C1[i], C2[i], 1e-4);
        }
}

/* The packed-panel kernel of the recurrent products of each kernel set against the plain
 * loop: row counts around the 6-row block, column windows (1 to 5 panels: the AVX-512 set
 * takes 4 at a time), K odd, accumulate or not, with and without bias. */
static void check_kern_mm(const nn_kern_t *ks) {
    enum { K = 37, N = 80 };
    static float A[13 * K], B[K * N], P[K * N], C1[13 * N], C2[13 * N], bias[N];
    uint64_t s = 5;
    for (int i = 0; i < 13 * K; i++) { s = s * 6364136223846793005ULL + 1; A[i] = (float)((s >> 40) % 2001) / 1000.0f - 1; }
    for (int i = 0; i < K * N; i++) { s = s * 6364136223846793005ULL + 1; B[i] = (float)((s >> 40) % 2001) / 1000.0f - 1; }
    for (int i = 0; i < N; i++) bias[i] = 0.01f * i;
    nn_pack_b(P, B, N, 0, K, N);
    nn_exec_t ref = { 0 };
    ref.reference = 1;
    for (int M = 1; M <= 13; M++)
        for (int col0 = 0; col0 < N; col0 += 16)
            for (int w = 0; w < 4; w++) /* to the right edge, or a window of one panel */
                for (int acc = w & 1, wb = w >> 1, once = 1; once; once = 0) {
                    int nc = (acc ^ wb) ? 16 : N - col0;
                    for (int i = 0; i < 13 * N; i++) C1[i] = C2[i] = (float)(i % 7);
                    ks->mm(P, K, col0, nc, M, A, K, C1, N, acc, wb ? bias : NULL);
                    nn_gemm(&ref, 0, 0, M, nc, K, 1.0f, A, K, B + col0, N, acc ? 1.0f : 0.0f, C2, N);
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < nc; n++)
                            ASSERT_NEAR(C1[m * N + n], C2[m * N + n] + (wb ? bias[col0 + n] : 0.0f), 1e-4);
                    for (int i = M * N; i < 13 * N; i++) ASSERT_NEAR(C1[i], (float)(i % 7), 0);  /* rows past M untouched */
                }
}

static void test_kern_matches_reference(void) {
    for (int i = 0; i < n_isas(); i++)
        if (nn_kern_for(isa_at(i))) check_kern_mm(nn_kern_for(isa_at(i)));
}

/* The register-fused LSTM step (product and cell together) against the formula in double:
 * rows around the 6-row block, I odd or even, one to four 16-unit slices of H, x rows
 * further apart than I, with and without the copy into y. */
static void check_lstm_rows(const nn_kern_t *ks, int I, int H) {
    enum { MAXM = 13, MAXI = 37, MAXH = 64, LDY = MAXH + 5 };
    const int K = I + H, GH = 4 * H, ldx = I + 3;
    static float W[(MAXI + MAXH) * 4 * MAXH], P[(MAXI + MAXH) * 4 * MAXH], bias[4 * MAXH];
    static float x[MAXM * (MAXI + 3)], hin[MAXM * MAXH], c[MAXM * MAXH], c0[MAXM * MAXH], hout[MAXM * MAXH], y[MAXM * LDY];
    uint64_t s = 4242 + (uint64_t)(I * 100 + H);
#define RND(scale) (s = s * 6364136223846793005ULL + 1442695040888963407ULL, (float)(((s >> 40) / (double)(1 << 24) * 2 - 1) * (scale)))
    for (int i = 0; i < K * GH; i++) W[i] = RND(0.3);   /* [W^T; R^T]: [K, 4H] */
    for (int i = 0; i < GH; i++) bias[i] = RND(0.5);
    for (int i = 0; i < MAXM * ldx; i++) x[i] = RND(2.0);
    for (int i = 0; i < MAXM * H; i++) { hin[i] = RND(1.0); c0[i] = RND(3.0); }
#undef RND
    nn_pack_b(P, W, GH, 0, K, GH);
    for (int M = 1; M <= MAXM; M++)
        for (int wy = 0; wy < 2; wy++) {
            memcpy(c, c0, sizeof c);
            for (int i = 0; i < MAXM * LDY; i++) y[i] = -7.0f;
            nn_lstm_rows_t a = { P, bias, I, H, x, ldx, hin, c, hout, wy ? y : NULL, LDY };
            ks->lstm_rows(&a, M);
            for (int m = 0; m < M; m++)
                for (int k = 0; k < H; k++) {
                    double g[4];
                    for (int q = 0; q < 4; q++) {
                        int col = q * H + k;
                        g[q] = bias[col];
                        for (int i = 0; i < I; i++) g[q] += (double)x[m * ldx + i] * W[i * GH + col];
                        for (int i = 0; i < H; i++) g[q] += (double)hin[m * H + i] * W[(I + i) * GH + col];
                    }
                    double ig = 1 / (1 + exp(-g[0])), og = 1 / (1 + exp(-g[1])), fg = 1 / (1 + exp(-g[2]));
                    double cn = fg * c0[m * H + k] + ig * tanh(g[3]), hn = og * tanh(cn);
                    ASSERT_NEAR(c[m * H + k], cn, 2e-6 * (1 + fabs(cn)));
                    ASSERT_NEAR(hout[m * H + k], hn, 2e-6);
                    ASSERT_NEAR(y[m * LDY + k], wy ? hn : -7.0, wy ? 2e-6 : 0);
                }
            for (int i = M * H; i < MAXM * H; i++) ASSERT_NEAR(c[i], c0[i], 0); /* rows past M untouched */
        }
}

static void test_lstm_rows_matches_formula(void) {
    static const int sizes[][2] = { { 20, 64 }, { 37, 64 }, { 1, 16 }, { 7, 32 }, { 8, 48 } };
    int ran = 0;
    for (int i = 0; i < n_isas(); i++) {
        const nn_kern_t *ks = nn_kern_for(isa_at(i));
        if (!ks || !ks->lstm_rows) continue;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) check_lstm_rows(ks, sizes[k][0], sizes[k][1]);
        ran++;
    }
    if (nn_isa_best() >= NN_ISA_AVX512) ASSERT_TRUE(ran > 0);
}

/* The activations of one kernel set (isa): NN_ISA_PLAIN the portable loops, NN_ISA_AVX2 the
 * vector ones where the CPU has them. */
static void check_fast_activations(int isa) {
    enum { N = 4001 };
    static float x[N], y[N], z[N];
    for (int i = 0; i < N; i++) x[i] = -100.0f + 200.0f * i / (N - 1);
    x[2000] = 0.0f;
    nn_vsigmoid(y, x, N, isa);
    nn_vtanh(z, x, N, isa);
    for (int i = 0; i < N; i++) {
        ASSERT_NEAR(y[i], 1.0 / (1.0 + exp(-(double)x[i])), 1e-6);
        ASSERT_NEAR(z[i], tanh((double)x[i]), 1e-6);
    }
    ASSERT_NEAR(y[2000], 0.5, 1e-7);
    ASSERT_NEAR(z[2000], 0.0, 0);
    for (int i = 0; i < N; i++) x[i] = -0.3f + 0.6f * i / (N - 1);   /* near 0: relative error */
    nn_vtanh(z, x, N, isa);
    for (int i = 0; i < N; i++) ASSERT_NEAR(z[i], tanh((double)x[i]), 1e-7 + 1e-6 * fabs(tanh((double)x[i])));
    nn_vtanh(z, x, 5, isa);   /* a tail shorter than a vector */
    for (int i = 0; i < 5; i++) ASSERT_NEAR(z[i], tanh((double)x[i]), 1e-7);
    float nan_in[2] = { NAN, INFINITY }, out[2];   /* found by the fuzz test: NaN overflowed 2^k */
    nn_vtanh(out, nan_in, 2, isa);
    ASSERT_TRUE(isnan(out[0]));
    ASSERT_NEAR(out[1], 1.0, 0);
    nn_vsigmoid(out, nan_in, 2, isa);
    ASSERT_TRUE(isnan(out[0]));
    ASSERT_NEAR(out[1], 1.0, 0);
}

static void test_fast_activations_close_to_libm(void) {
    check_fast_activations(NN_ISA_PLAIN);
    check_fast_activations(NN_ISA_AVX2);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_load_missing_file),
        TEST_CASE(test_load_garbage),
        TEST_CASE(test_plan_refuses_options_out_of_range),
        TEST_CASE(test_load_truncated),
        TEST_CASE(test_load_unsupported_op_named),
        TEST_CASE(test_load_allowing_unsupported_ops),
        TEST_CASE(test_load_dangling_input),
        TEST_CASE(test_plan_shape_mismatch),
        TEST_CASE(test_plan_input_shape_mismatch),
        TEST_CASE(test_model_info),
        TEST_CASE(test_fused_lstm_arena_has_no_projection_buffer),
        TEST_CASE(test_lstm_regressor_matches_numpy),
        TEST_CASE(test_lstm_regressor_reference_kernels),
        TEST_CASE(test_lstm_regressor_37_matches_numpy),
        TEST_CASE(test_gru_regressor_matches_numpy),
        TEST_CASE(test_gru_regressor_reference_kernels),
        TEST_CASE(test_mlp_matches_numpy),
        TEST_CASE(test_mlp_two_threads),
        TEST_CASE(test_mc_transposed_matches_numpy),
        TEST_CASE(test_batch_rows_independent),
        TEST_CASE(test_lstm_fused_blocks_match_reference),
        TEST_CASE(test_lstm_cell_matches_formula),
        TEST_CASE(test_quantile_linear_interpolation),
        TEST_CASE(test_dropout_pass_is_seeded),
        TEST_CASE(test_mc_lstm_equals_naive),
        TEST_CASE(test_mc_lstm37_equals_naive),
        TEST_CASE(test_mc_gru_equals_naive),
        TEST_CASE(test_mc_mlp_two_dropouts_equals_naive),
        TEST_CASE(test_mc_one_pass),
        TEST_CASE(test_mc_batch_of_one),
        TEST_CASE(test_mc_batch_axis_moved_by_transpose),
        TEST_CASE(test_mc_refuses_row_mixing),
        TEST_CASE(test_mc_needs_mc_plan),
        TEST_CASE(test_mc_plan_shares_the_lstm),
        TEST_CASE(test_gemm_blas_matches_reference),
        TEST_CASE(test_kern_matches_reference),
        TEST_CASE(test_lstm_rows_matches_formula),
        TEST_CASE(test_models_match_numpy_every_isa),
        TEST_CASE(test_fast_activations_close_to_libm),
    };
    return test_main("nn", cases, (int)(sizeof cases / sizeof cases[0]));
}
