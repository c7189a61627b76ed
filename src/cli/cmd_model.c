/* predictd model check|bench FILE.onnx: what the engine makes of a model (inputs, outputs,
 * opset, ops and whether each runs, a test run on random input), and its speed on repeated
 * runs with the same input as ONNX Runtime's bench.js (x[i] = sin(0.37 i)), so the two can
 * be timed side by side. No server involved. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/rng.h"
#include "core/util.h"
#include "nn/nn.h"

static void model_usage(FILE *out) {
    fprintf(out,
            "usage: predictd model check FILE.onnx [--batch B]\n"
            "       predictd model bench FILE.onnx --shape B,32,20 [--threads N] [--batches 1,32,128,1024]\n"
            "                            [--runs R] [--passes P] [--rows N] [--print K]\n"
            "\n"
            "check: prints the model's inputs, outputs, opset and ops (each marked supported or\n"
            "not; the file is read even when some are not), plans it, runs it once on random\n"
            "input (batch B, default 4) and, when it has Dropout nodes, once with MC dropout.\n"
            "Exit 0 when the engine runs it, 1 when it does not.\n"
            "\n"
            "bench: times nn_run on input x[i] = sin(0.37 i) (the same as ONNX Runtime's bench.js)\n"
            "for each batch size: median and p99 ms over R runs (default: 20000/B, in [10, 200])\n"
            "after 5 warm-up runs. --shape names the input's dims, B standing for the batch.\n"
            "With --passes P: also the time for --rows N rows (default 5000) x P MC-dropout\n"
            "passes, in batches of 128, the shared part of the graph computed once per batch.\n"
            "--print K prints the first K output values of each batch (to compare engines).\n"
            "\n"
            "options:\n"
            "  -s, --shape DIMS     input shape, B for the batch (bench; required)\n"
            "  -t, --threads N      engine threads (default 2)\n"
            "  -b, --batches LIST   batch sizes (default 1,32,128,1024)\n"
            "  -r, --runs R         timed runs per batch size\n"
            "  -p, --passes P       MC passes for the rows x passes line (0: skip; default 0)\n"
            "  -n, --rows N         rows for the MC line (default 5000)\n"
            "  -k, --print K        print the first K outputs of each batch\n"
            "      --batch B        check: batch of the test run (default 4)\n"
            "  -h, --help           this help\n"
            "\n"
            "examples:\n"
            "  predictd model check tests/models/lstm_regressor.onnx\n"
            "  predictd model bench tests/models/lstm_regressor.onnx --shape B,32,20 --threads 2 --passes 20\n");
}

static void print_dims(const nn_tensor_t *t) {
    printf("[");
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0) printf("%s?", d ? ", " : "");
        else printf("%s%lld", d ? ", " : "", (long long)t->dims[d]);
    }
    printf("]");
}

static int model_check(const char *path, int64_t batch) {
    char err[512];
    nn_model_t *m = NULL;
    if (nn_model_load_flags(path, NN_LOAD_ALLOW_UNSUPPORTED, &m, err, sizeof err)) {
        printf("file: %s\nverdict: cannot be read: %s\n", path, err);
        return 1;
    }
    printf("file: %s\nopset: %lld\n", path, (long long)nn_model_opset(m));
    for (int i = 0; i < nn_model_n_inputs(m); i++) {
        nn_tensor_t t;
        nn_model_input_info(m, i, &t);
        printf("input:  %s %s ", nn_model_input_name(m, i), nn_dtype_name(t.dtype));
        print_dims(&t);
        printf("\n");
    }
    for (int i = 0; i < nn_model_n_outputs(m); i++) {
        nn_tensor_t t;
        nn_model_output_info(m, i, &t);
        printf("output: %s %s ", nn_model_output_name(m, i), nn_dtype_name(t.dtype));
        print_dims(&t);
        printf("\n");
    }
    int n = nn_model_n_nodes(m), unsupported = 0;
    printf("nodes: %d, dropout nodes: %d\nops:\n", n, nn_model_n_dropouts(m));
    for (int i = 0; i < n; i++) { /* one line per distinct op, with its count */
        const char *op = nn_model_node_op(m, i);
        int first = 1, count = 0;
        for (int j = 0; j < n; j++) {
            if (strcmp(nn_model_node_op(m, j), op)) continue;
            if (j < i) first = 0;
            count++;
        }
        if (!first) continue;
        int ok = nn_model_node_supported(m, i);
        if (!ok) unsupported++;
        printf("  %-20s x%-4d %s\n", op, count, ok ? "supported" : "NOT SUPPORTED");
    }
    int rc = 1;
    nn_plan_t *p = NULL, *pm = NULL;
    void *ins[8] = {0}, *outs[8] = {0};
    if (unsupported) {
        printf("verdict: not supported (%d op%s the engine does not run)\n", unsupported, unsupported > 1 ? "s" : "");
        goto done;
    }
    nn_plan_opts_t o = {.batch = batch, .threads = 1};
    if (nn_plan_create(m, &o, &p, err, sizeof err)) {
        printf("plan (batch %lld): failed: %s\nverdict: not supported\n", (long long)batch, err);
        goto done;
    }
    nn_plan_stats_t st;
    nn_plan_stats(p, &st);
    printf("plan (batch %lld): %d steps, arena %zu bytes (%zu without reuse)\n", (long long)batch, st.steps,
           st.arena_bytes, st.value_bytes);
    int n_in = nn_model_n_inputs(m), n_out = nn_model_n_outputs(m);
    if (n_in > 8 || n_out > 8) {
        printf("verdict: supported, test run skipped (more than 8 inputs or outputs)\n");
        rc = 0;
        goto done;
    }
    rng_t rng;
    rng_seed(&rng, 1);
    for (int i = 0; i < n_in; i++) {
        nn_tensor_t t;
        nn_plan_input_info(p, i, &t);
        int64_t k = nn_tensor_numel(&t);
        ins[i] = calloc((size_t)(k ? k : 1), nn_dtype_size(t.dtype) ? nn_dtype_size(t.dtype) : 1);
        if (!ins[i]) goto done;
        if (t.dtype == NN_FLOAT)
            for (int64_t e = 0; e < k; e++) ((float *)ins[i])[e] = (float)(2 * rng_uniform(&rng) - 1);
    }
    int64_t total = 0, bad = 0;
    for (int i = 0; i < n_out; i++) {
        nn_tensor_t t;
        nn_plan_output_info(p, i, &t);
        int64_t k = nn_tensor_numel(&t);
        outs[i] = calloc((size_t)(k ? k : 1), nn_dtype_size(t.dtype) ? nn_dtype_size(t.dtype) : 1);
        if (!outs[i]) goto done;
    }
    double t0 = mono_s();
    if (nn_run(p, (const void *const *)ins, outs, err, sizeof err)) {
        printf("test run: failed: %s\nverdict: not supported\n", err);
        goto done;
    }
    double ms = (mono_s() - t0) * 1000;
    for (int i = 0; i < n_out; i++) {
        nn_tensor_t t;
        nn_plan_output_info(p, i, &t);
        int64_t k = nn_tensor_numel(&t);
        if (t.dtype != NN_FLOAT) continue;
        total += k;
        printf("test run: %s =", nn_model_output_name(m, i));
        for (int64_t e = 0; e < k; e++) {
            float v = ((float *)outs[i])[e];
            if (!isfinite(v)) bad++;
            if (e < 6) printf(" %.6g", v);
        }
        printf("%s\n", k > 6 ? " ..." : "");
    }
    printf("test run: %.3f ms, %lld values, %lld not finite\n", ms, (long long)total, (long long)bad);
    if (nn_model_n_dropouts(m) > 0) {
        nn_plan_opts_t om = {.batch = batch, .threads = 1, .mc_passes = 4};
        if (nn_plan_create(m, &om, &pm, err, sizeof err)) {
            printf("mc dropout: not available: %s\n", err);
        } else {
            nn_plan_stats(pm, &st);
            printf("mc dropout: ok (%d steps shared by every pass, %d run on the stacked passes)\n",
                   st.shared_steps, st.stacked_steps);
        }
    }
    printf("verdict: %s\n", bad ? "runs, but produced values that are not finite" : "supported");
    rc = bad ? 1 : 0;
done:
    for (int i = 0; i < 8; i++) {
        free(ins[i]);
        free(outs[i]);
    }
    nn_plan_free(p);
    nn_plan_free(pm);
    nn_model_free(m);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Input of shape dims (B replaced by batch), x[i] = sin(0.37 i) as bench.js fills it. */
static float *bench_input(const int64_t *dims, int nd, int64_t batch, int64_t *numel) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= dims[d] < 0 ? batch : dims[d];
    float *x = malloc((size_t)n * sizeof *x);
    if (x)
        for (int64_t i = 0; i < n; i++) x[i] = (float)sin((double)i * 0.37);
    *numel = n;
    return x;
}

static int bench_batch(nn_model_t *m, const int64_t *dims, int nd, int64_t b, int threads, int runs, int print) {
    char err[512];
    nn_plan_t *p = NULL;
    nn_tensor_t shape = {.dtype = NN_FLOAT, .ndim = nd};
    for (int d = 0; d < nd; d++) shape.dims[d] = dims[d] < 0 ? b : dims[d];
    const nn_tensor_t *shapes[1] = {&shape};
    nn_plan_opts_t o = {.batch = b, .threads = threads, .input_shapes = shapes};
    if (nn_plan_create(m, &o, &p, err, sizeof err)) {
        fprintf(stderr, "error: batch %lld: %s\n", (long long)b, err);
        return -1;
    }
    int64_t n;
    float *x = bench_input(dims, nd, b, &n);
    nn_tensor_t oi;
    nn_plan_output_info(p, 0, &oi);
    float *y = malloc((size_t)nn_tensor_numel(&oi) * sizeof *y);
    int n_out = nn_model_n_outputs(m);
    void **outs = calloc((size_t)n_out, sizeof *outs);
    double *ts = calloc((size_t)runs, sizeof *ts);
    int rc = -1;
    if (!x || !y || !outs || !ts) goto done;
    outs[0] = y;
    for (int i = 1; i < n_out; i++) {
        nn_tensor_t t;
        nn_plan_output_info(p, i, &t);
        outs[i] = malloc((size_t)nn_tensor_numel(&t) * (nn_dtype_size(t.dtype) ? nn_dtype_size(t.dtype) : 1));
        if (!outs[i]) goto done;
    }
    const void *ins[1] = {x};
    for (int i = 0; i < 5; i++)
        if (nn_run(p, ins, outs, err, sizeof err)) goto fail;
    for (int i = 0; i < runs; i++) {
        double t0 = mono_s();
        if (nn_run(p, ins, outs, err, sizeof err)) goto fail;
        ts[i] = (mono_s() - t0) * 1000;
    }
    qsort(ts, (size_t)runs, sizeof *ts, cmp_double);
    double med = ts[runs / 2], p99 = ts[(int)(runs * 0.99)];
    printf("batch %lld: median %.3f ms  p99 %.3f ms  rows/s %.0f\n", (long long)b, med, p99, b / med * 1000);
    if (print > 0) {
        int64_t k = nn_tensor_numel(&oi);
        printf("output batch %lld:", (long long)b);
        for (int64_t i = 0; i < k && i < print; i++) printf(" %.9g", y[i]);
        printf("\n");
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: batch %lld: %s\n", (long long)b, err);
done:
    if (outs)
        for (int i = 1; i < n_out; i++) free(outs[i]);
    free(outs);
    free(ts);
    free(x);
    free(y);
    nn_plan_free(p);
    return rc;
}

/* rows x passes MC dropout, in batches of 128 (a last smaller batch for the rest). */
static int bench_mc(nn_model_t *m, const int64_t *dims, int nd, int64_t rows, int passes, int threads) {
    const int64_t B = 128;
    int64_t tail = rows % B;
    char err[512];
    nn_plan_t *pb[2] = {0};
    float *x[2] = {0}, *st[2][5] = {{0}};
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        int64_t b = k ? (tail ? tail : B) : B, n;
        nn_tensor_t shape = {.dtype = NN_FLOAT, .ndim = nd};
        for (int d = 0; d < nd; d++) shape.dims[d] = dims[d] < 0 ? b : dims[d];
        const nn_tensor_t *shapes[1] = {&shape};
        nn_plan_opts_t o = {.batch = b, .threads = threads, .mc_passes = passes, .input_shapes = shapes};
        if (nn_plan_create(m, &o, &pb[k], err, sizeof err)) goto fail;
        x[k] = bench_input(dims, nd, b, &n);
        nn_tensor_t oi;
        nn_plan_output_info(pb[k], 0, &oi);
        for (int s = 0; s < 5; s++) st[k][s] = malloc((size_t)nn_tensor_numel(&oi) * sizeof(float));
        if (!x[k] || !st[k][4]) goto done;
    }
    nn_mc_stats_t ms[2];
    for (int k = 0; k < 2; k++) ms[k] = (nn_mc_stats_t){st[k][0], st[k][1], st[k][2], st[k][3], st[k][4]};
    if (nn_model_n_outputs(m) != 1) {
        snprintf(err, sizeof err, "the MC line needs a model with one output");
        goto fail;
    }
    {
        const void *in0[1] = {x[0]};
        if (nn_run_mc(pb[0], 1, in0, &ms[0], err, sizeof err)) goto fail; /* warm-up */
    }
    double t0 = mono_s();
    for (int64_t off = 0; off < rows; off += B) {
        int k = rows - off >= B ? 0 : 1;
        const void *in[1] = {x[k]};
        if (nn_run_mc(pb[k], (uint64_t)off, in, &ms[k], err, sizeof err)) goto fail;
    }
    printf("%lld rows x %d passes (MC, batch 128): %.1f ms\n", (long long)rows, passes, (mono_s() - t0) * 1000);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: MC: %s\n", err);
done:
    for (int k = 0; k < 2; k++) {
        nn_plan_free(pb[k]);
        free(x[k]);
        for (int s = 0; s < 5; s++) free(st[k][s]);
    }
    return rc;
}

static int parse_list(const char *s, int64_t *out, int max, int allow_b) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *p = buf, *tok; (tok = strsep(&p, ","));) {
        if (n == max) return -1;
        if (allow_b && strcmp(tok, "B") == 0) {
            out[n++] = -1;
            continue;
        }
        char *end;
        long long v = strtoll(tok, &end, 10);
        if (end == tok || *end || v < 1) return -1;
        out[n++] = v;
    }
    return n;
}

int cmd_model(int argc, char **argv) {
    static const struct option opts[] = {
        {"shape", required_argument, 0, 's'}, {"threads", required_argument, 0, 't'},
        {"batches", required_argument, 0, 'b'}, {"runs", required_argument, 0, 'r'},
        {"passes", required_argument, 0, 'p'}, {"rows", required_argument, 0, 'n'},
        {"print", required_argument, 0, 'k'}, {"batch", required_argument, 0, 'B'},
        {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *shape = NULL, *batches = "1,32,128,1024";
    int threads = 2, runs = 0, passes = 0, print = 0, c;
    long rows = 5000, check_batch = 4;
    while ((c = getopt_long(argc, argv, "s:t:b:r:p:n:k:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': shape = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'b': batches = optarg; break;
        case 'r': runs = atoi(optarg); break;
        case 'p': passes = atoi(optarg); break;
        case 'n': rows = atol(optarg); break;
        case 'k': print = atoi(optarg); break;
        case 'B': check_batch = atol(optarg); break;
        case 'c': break; /* the global --config: nothing to read here */
        case 'h': model_usage(stdout); return 0;
        default: model_usage(stderr); return 2;
        }
    }
    if (argc - optind != 2 || (strcmp(argv[optind], "check") && strcmp(argv[optind], "bench"))) {
        model_usage(stderr);
        return 2;
    }
    const char *path = argv[optind + 1];
    if (strcmp(argv[optind], "check") == 0) {
        if (check_batch < 1) {
            fprintf(stderr, "predictd model: --batch must be at least 1\n");
            return 2;
        }
        return model_check(path, check_batch);
    }
    int64_t dims[NN_MAX_DIMS], bl[32];
    int nd = shape ? parse_list(shape, dims, NN_MAX_DIMS, 1) : -1;
    int nb = parse_list(batches, bl, 32, 0);
    if (nd < 1 || nb < 1 || threads < 1 || runs < 0 || passes < 0 || passes == 1 || rows < 1 || print < 0) {
        fprintf(stderr, "predictd model bench: needs --shape like B,32,20; --batches, --threads, --runs, "
                        "--passes (0 or >= 2), --rows positive\n\n");
        model_usage(stderr);
        return 2;
    }
    char err[512];
    nn_model_t *m = NULL;
    if (nn_model_load(path, &m, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    if (nn_model_n_inputs(m) != 1) {
        fprintf(stderr, "error: model bench takes models with one input (this one has %d)\n", nn_model_n_inputs(m));
        nn_model_free(m);
        return 1;
    }
    printf("model %s, input [%s], %d threads\n", path, shape, threads);
    int rc = 0;
    for (int i = 0; i < nb && !rc; i++) {
        int r = runs ? runs : (int)(20000 / bl[i]);
        if (!runs) r = r < 10 ? 10 : r > 200 ? 200 : r;
        if (bench_batch(m, dims, nd, bl[i], threads, r, print)) rc = 1;
    }
    if (!rc && passes && bench_mc(m, dims, nd, rows, passes, threads)) rc = 1;
    nn_model_free(m);
    return rc;
}
