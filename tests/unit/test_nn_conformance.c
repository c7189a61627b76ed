/* ONNX conformance: runs every test of Debian's libonnx-testdata whose ops the engine
 * supports (model.onnx, test_data_set_N/input_K.pb and output_K.pb) three ways (fast kernels;
 * plain reference kernels; fast kernels with every input fixed at plan time, so the graph is
 * folded and constant weights take the packed paths) and compares with ONNX's tolerances
 * (rtol 1e-3, atol 1e-7; integers and bools exactly). Prints pass / fail / unsupported
 * counts; any failing supported test fails the binary. Otherwise integer and bool inputs are
 * fixed at plan time (they are shapes, axes and indices: the engine folds them) and float
 * inputs are fed at run time. The data directories are node, simple, pytorch-operator and
 * pytorch-converted under /usr/share/libonnx-testdata/data (or the one directory
 * $NN_ONNX_TESTDATA); without them the suite says so and counts nothing.
 * NN_CONFORMANCE_VERBOSE=1 also says why each unsupported test is. */
#include "nn/nn.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Tests whose ops we run but whose expected output cannot be reproduced: random masks. */
static const char *const SKIP[] = {
    "test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask",
    "test_training_dropout_mask", "test_training_dropout_zero_ratio", "test_training_dropout_zero_ratio_mask",
};

static int n_pass, n_fail, n_unsup, n_skip;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int compare(const char *test, int oi, const nn_tensor_t *got, const nn_tensor_t *want) {
    if (got->dtype != want->dtype) {
        printf("  %s: output %d is %s, expected %s\n", test, oi, nn_dtype_name(got->dtype), nn_dtype_name(want->dtype));
        return -1;
    }
    if (got->ndim != want->ndim) {
        printf("  %s: output %d has rank %d, expected %d\n", test, oi, got->ndim, want->ndim);
        return -1;
    }
    for (int d = 0; d < got->ndim; d++)
        if (got->dims[d] != want->dims[d]) {
            printf("  %s: output %d dim %d is %lld, expected %lld\n", test, oi, d, (long long)got->dims[d], (long long)want->dims[d]);
            return -1;
        }
    int64_t n = nn_tensor_numel(got);
    for (int64_t i = 0; i < n; i++) {
        double a, b;
        switch (got->dtype) {
        case NN_FLOAT: a = ((float *)got->data)[i], b = ((float *)want->data)[i]; break;
        case NN_DOUBLE: a = ((double *)got->data)[i], b = ((double *)want->data)[i]; break;
        case NN_INT64: a = (double)((int64_t *)got->data)[i], b = (double)((int64_t *)want->data)[i]; break;
        case NN_INT32: a = ((int32_t *)got->data)[i], b = ((int32_t *)want->data)[i]; break;
        case NN_INT8: a = ((int8_t *)got->data)[i], b = ((int8_t *)want->data)[i]; break;
        default: a = ((uint8_t *)got->data)[i], b = ((uint8_t *)want->data)[i];
        }
        int fl = got->dtype == NN_FLOAT || got->dtype == NN_DOUBLE;
        int ok = fl ? ((isnan(a) && isnan(b)) || (isinf(b) && a == b) || fabs(a - b) <= 1e-7 + 1e-3 * fabs(b)) : a == b;
        if (!ok) {
            printf("  %s: output %d element %lld is %.9g, expected %.9g\n", test, oi, (long long)i, a, b);
            return -1;
        }
    }
    return 0;
}

/* mode 0: fast kernels, float inputs fed at run time; 1: reference kernels; 2: fast kernels,
 * every input fixed at plan time (the whole graph is folded: constant weights take the
 * packed paths). 1 pass, 0 unsupported, -1 fail */
static int run_set(const char *test, const nn_model_t *m, const char *set, int mode) {
    int reference = mode == 1;
    int ni = nn_model_n_inputs(m), no = nn_model_n_outputs(m), rc = -1;
    nn_tensor_t *in = calloc((size_t)ni + 1, sizeof *in), *want = calloc((size_t)no + 1, sizeof *want), *got = calloc((size_t)no + 1, sizeof *got);
    const nn_tensor_t **shapes = calloc((size_t)ni + 1, sizeof *shapes);
    const void **feeds = calloc((size_t)ni + 1, sizeof *feeds);
    void **outs = calloc((size_t)no + 1, sizeof *outs);
    nn_plan_t *plan = NULL;
    char path[1200], err[512], name[256];
    int n_files = 0;
    while (1) {
        snprintf(path, sizeof path, "%s/input_%d.pb", set, n_files);
        if (!file_exists(path)) break;
        n_files++;
    }
    if (n_files != ni) {
        /* optional inputs given as files but absent from the graph (or the reverse) */
        if (getenv("NN_CONFORMANCE_VERBOSE")) printf("  %s: %d input files for %d graph inputs: unsupported\n", test, n_files, ni);
        rc = 0;
        goto done;
    }
    for (int i = 0; i < ni; i++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", set, i);
        int e = nn_tensor_load_pb(path, &in[i], name, sizeof name, err, sizeof err);
        if (e) {
            if (e != NN_ERR_UNSUPPORTED || getenv("NN_CONFORMANCE_VERBOSE")) printf("  %s: %s\n", test, err);
            rc = e == NN_ERR_UNSUPPORTED ? 0 : -1;
            goto done;
        }
        shapes[i] = &in[i];
        if (in[i].dtype == NN_FLOAT && mode != 2) {
            feeds[i] = in[i].data;
            in[i].data = NULL;   /* shape only: fed at run time */
        }
    }
    for (int i = 0; i < no; i++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", set, i);
        int e = nn_tensor_load_pb(path, &want[i], name, sizeof name, err, sizeof err);
        if (e) {
            if (e != NN_ERR_UNSUPPORTED || getenv("NN_CONFORMANCE_VERBOSE")) printf("  %s: %s\n", test, err);
            rc = e == NN_ERR_UNSUPPORTED ? 0 : -1;
            goto done;
        }
    }
    nn_plan_opts_t o = { .input_shapes = shapes, .threads = 2, .reference = reference };
    int e = nn_plan_create(m, &o, &plan, err, sizeof err);
    if (e) {
        if (e != NN_ERR_UNSUPPORTED || getenv("NN_CONFORMANCE_VERBOSE")) printf("  %s: plan: %s\n", test, err);
        rc = e == NN_ERR_UNSUPPORTED ? 0 : -1;
        goto done;
    }
    for (int i = 0; i < no; i++) {
        nn_plan_output_info(plan, i, &got[i]);
        got[i].data = calloc(1, (size_t)nn_tensor_numel(&got[i]) * nn_dtype_size(got[i].dtype) + 8);
        outs[i] = got[i].data;
    }
    if (nn_run(plan, feeds, outs, err, sizeof err)) {
        printf("  %s: run: %s\n", test, err);
        goto done;
    }
    rc = 1;
    for (int i = 0; i < no; i++)
        if (compare(test, i, &got[i], &want[i])) rc = -1;
done:
    nn_plan_free(plan);
    for (int i = 0; i < ni; i++) {
        free(in[i].data);
        free((void *)feeds[i]);
    }
    for (int i = 0; i < no; i++) {
        free(want[i].data);
        free(got[i].data);
    }
    free(in), free(want), free(got), free(shapes), free(feeds), free(outs);
    return rc;
}

static void run_test(const char *dir, const char *test) {
    char path[1024], err[512];
    for (size_t i = 0; i < sizeof SKIP / sizeof SKIP[0]; i++)
        if (strcmp(test, SKIP[i]) == 0) { n_skip++; return; }
    snprintf(path, sizeof path, "%s/%s/model.onnx", dir, test);
    nn_model_t *m = NULL;
    int e = nn_model_load(path, &m, err, sizeof err);
    if (e == NN_ERR_UNSUPPORTED) {
        if (getenv("NN_CONFORMANCE_VERBOSE")) printf("  unsupported %s\n", err);
        n_unsup++;
        return;
    }
    if (e) {
        printf("FAIL %s: load: %s\n", test, err);
        n_fail++;
        return;
    }
    int result = 1, sets = 0;
    for (int k = 0; result == 1; k++) {
        snprintf(path, sizeof path, "%s/%s/test_data_set_%d", dir, test, k);
        if (!is_dir(path)) break;
        sets++;
        for (int mode = 0; mode < 3 && result == 1; mode++) {
            int r = run_set(test, m, path, mode);
            if (r < result) result = r;
        }
    }
    nn_model_free(m);
    if (!sets) result = 0;
    if (result == 1) n_pass++;
    else if (result == 0) n_unsup++;
    else {
        printf("FAIL %s\n", test);
        n_fail++;
    }
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every test directory under dir; returns -1 when dir cannot be read. */
static int run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "test_", 5) != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) break;
            names = nn;
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    int p0 = n_pass, f0 = n_fail, u0 = n_unsup, s0 = n_skip;
    for (size_t i = 0; i < n; i++) {
        run_test(dir, names[i]);
        free(names[i]);
    }
    free(names);
    printf("conformance %s: %d pass, %d fail, %d unsupported, %d skipped\n", dir, n_pass - p0, n_fail - f0, n_unsup - u0, n_skip - s0);
    return 0;
}

int main(void) {
    /* node: one test per operator feature; simple, pytorch-operator, pytorch-converted: small
     * graphs; "real" (large CNNs) ships without its models in Debian and is not walked. */
    static const char *const SUBDIRS[] = { "node", "simple", "pytorch-operator", "pytorch-converted" };
    const char *one = getenv("NN_ONNX_TESTDATA");
    int found = 0;
    if (one) {
        found = run_dir(one) == 0;
    } else {
        for (size_t i = 0; i < sizeof SUBDIRS / sizeof SUBDIRS[0]; i++) {
            char dir[256];
            snprintf(dir, sizeof dir, "/usr/share/libonnx-testdata/data/%s", SUBDIRS[i]);
            found += run_dir(dir) == 0;
        }
    }
    if (!found) {
        printf("conformance skipped: %s not found (install libonnx-testdata)\n", one ? one : "/usr/share/libonnx-testdata/data");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    printf("conformance total: %d pass, %d fail, %d unsupported, %d skipped (training-mode Dropout: random masks)\n", n_pass, n_fail, n_unsup, n_skip);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
