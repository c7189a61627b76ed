/* The machine's measured single-precision peak, the yardstick for the ONNX engine's GFLOP/s
 * (bench/nn_bench.sh): the best of R runs of OpenBLAS's sgemm on N x N x N (2 N^3 flops)
 * with T threads. Usage: nn_peak [THREADS=2] [N=1024] [RUNS=10]; prints
 * "sgemm peak: X GFLOP/s (T threads, N=..)". */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS's own (not in every cblas.h) */

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, n = argc > 2 ? atoi(argv[2]) : 1024;
    int runs = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || n < 16 || runs < 1) {
        fprintf(stderr, "usage: nn_peak [THREADS] [N] [RUNS]\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.2f;
    }
    double best = 1e30;
    for (int r = 0; r < runs + 2; r++) { /* two warm-up runs */
        double t0 = mono_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = mono_s() - t0;
        if (r >= 2 && dt < best) best = dt;
    }
    printf("sgemm peak: %.1f GFLOP/s (%d threads, N=%d, best of %d; c[1]=%g)\n",
           2.0 * n * (double)nn / best / 1e9, threads, n, runs, c[1]);
    free(a);
    free(b);
    free(c);
    return 0;
}
