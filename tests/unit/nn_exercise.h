/* One fuzz input through the whole engine: load it from memory, plan it (small memory cap)
 * for a plain and an MC-dropout run, and when the plan is small, run both on zero inputs.
 * Shared by the bounded mutation test (tests/unit/test_nn_fuzz.c) and the libFuzzer target
 * (tests/fuzz/fuzz_nn_load.c). Every failure must be a clean error: a crash, a hang or a
 * leak is what the callers' sanitizers catch. */
#ifndef PREDICTD_NN_EXERCISE_H
#define PREDICTD_NN_EXERCISE_H

#include <stdlib.h>

#include "nn/nn.h"

static int n_loaded, n_planned, n_ran;

static void exercise(const unsigned char *b, size_t n) {
    char err[256];
    nn_model_t *m = NULL;
    if (nn_model_load_buffer(b, n, &m, err, sizeof err)) return;
    n_loaded++;
    for (int mc = 0; mc < 2; mc++) {
        nn_plan_opts_t o = { .batch = 2, .threads = 1, .max_bytes = 8u << 20, .mc_passes = mc ? 3 : 0 };
        nn_plan_t *p = NULL;
        if (nn_plan_create(m, &o, &p, err, sizeof err)) continue;
        n_planned++;
        int ni = nn_model_n_inputs(m), no = nn_model_n_outputs(m);
        void **in = calloc((size_t)ni + 1, sizeof *in), **out = calloc((size_t)no + 1, sizeof *out);
        float **st = calloc((size_t)no + 1, sizeof *st);
        nn_mc_stats_t *stats = calloc((size_t)no + 1, sizeof *stats);
        if (nn_plan_arena_bytes(p) <= (1u << 20)) {
            for (int i = 0; i < ni; i++) {
                nn_tensor_t t;
                nn_plan_input_info(p, i, &t);
                in[i] = calloc(1, (size_t)nn_tensor_numel(&t) * nn_dtype_size(t.dtype) + 8);
            }
            for (int i = 0; i < no; i++) {
                nn_tensor_t t;
                nn_plan_output_info(p, i, &t);
                size_t bytes = (size_t)nn_tensor_numel(&t) * 8 + 8;
                out[i] = calloc(1, bytes);
                st[i] = calloc(5, bytes);
                size_t k = bytes / sizeof(float);
                stats[i] = (nn_mc_stats_t){ st[i], st[i] + k, st[i] + 2 * k, st[i] + 3 * k, st[i] + 4 * k };
            }
            if (mc) nn_run_mc(p, 1, (const void *const *)in, stats, err, sizeof err);
            else nn_run(p, (const void *const *)in, out, err, sizeof err);
            n_ran++;
            for (int i = 0; i < ni; i++) free(in[i]);
            for (int i = 0; i < no; i++) free(out[i]), free(st[i]);
        }
        free(in), free(out), free(st), free(stats);
        nn_plan_free(p);
    }
    nn_model_free(m);
}

#endif
