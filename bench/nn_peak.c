/* The machine's measured single-precision peak, the yardstick for the ONNX engine's GFLOP/s
 * (bench/nn_bench.sh), two ways:
 *   - "fma peak": our own register-only loop of independent FMAs (AVX-512 when the CPU has
 *     it, else AVX2 + FMA, else none) on T threads at once: what the cores can issue;
 *   - "sgemm": the best of R runs of OpenBLAS's sgemm on N x N x N (2 N^3 flops) with T
 *     threads: what a tuned library reaches on a large product (OpenBLAS 0.3.21 has no
 *     AVX-512 kernel for every CPU, so it may well stay under our own kernels).
 * Usage: nn_peak [THREADS=2] [N=1024] [RUNS=10]; prints
 *   "fma peak: X GFLOP/s (ISA, T threads, best of R)"
 *   "sgemm: Y GFLOP/s (OpenBLAS, T threads, N=.., best of R; c[1]=..)" */
/* before cblas.h: its <complex.h> defines I, a field name in nn_internal.h */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS's own (not in every cblas.h) */

/* FMA rounds per timed run: 20 M rounds of 16 FMAs of W lanes is 0.1-0.3 s per thread. */
#define FMA_ROUNDS 20000000L

typedef struct {
    pthread_barrier_t *start;
    int isa;       /* 2: AVX-512, 1: AVX2 */
    double dt;     /* seconds this thread's loop took */
    float sink;    /* keeps the result live */
} fma_job_t;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 16 independent accumulator chains: enough for 2 FMA ports of 4 cycles' latency, with
 * room to spare; the multiplier and addend keep the values bounded and the FMAs real. The
 * empty asm makes every chain opaque to the compiler: none may be merged with another
 * (they start equal) or folded. W: vector width in bits, C: its register constraint. */
#define FMA_LOOP(NAME, TARGET, T, W, C)                                                              \
    __attribute__((target(TARGET))) static float NAME(long rounds) {                                \
        T m = _mm##W##_set1_ps(0.999999f), d = _mm##W##_set1_ps(1e-6f);                             \
        T a0 = _mm##W##_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
        T a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;              \
        for (long r = 0; r < rounds; r++) {                                                         \
            a0 = _mm##W##_fmadd_ps(a0, m, d), a1 = _mm##W##_fmadd_ps(a1, m, d);                     \
            a2 = _mm##W##_fmadd_ps(a2, m, d), a3 = _mm##W##_fmadd_ps(a3, m, d);                     \
            a4 = _mm##W##_fmadd_ps(a4, m, d), a5 = _mm##W##_fmadd_ps(a5, m, d);                     \
            a6 = _mm##W##_fmadd_ps(a6, m, d), a7 = _mm##W##_fmadd_ps(a7, m, d);                     \
            a8 = _mm##W##_fmadd_ps(a8, m, d), a9 = _mm##W##_fmadd_ps(a9, m, d);                     \
            a10 = _mm##W##_fmadd_ps(a10, m, d), a11 = _mm##W##_fmadd_ps(a11, m, d);                 \
            a12 = _mm##W##_fmadd_ps(a12, m, d), a13 = _mm##W##_fmadd_ps(a13, m, d);                 \
            a14 = _mm##W##_fmadd_ps(a14, m, d), a15 = _mm##W##_fmadd_ps(a15, m, d);                 \
            __asm__ volatile("" : "+" C(a0), "+" C(a1), "+" C(a2), "+" C(a3), "+" C(a4), "+" C(a5), \
                             "+" C(a6), "+" C(a7));                                                 \
            __asm__ volatile("" : "+" C(a8), "+" C(a9), "+" C(a10), "+" C(a11), "+" C(a12),         \
                             "+" C(a13), "+" C(a14), "+" C(a15));                                   \
        }                                                                                           \
        T s0 = _mm##W##_add_ps(_mm##W##_add_ps(a0, a1), _mm##W##_add_ps(a2, a3));                   \
        T s1 = _mm##W##_add_ps(_mm##W##_add_ps(a4, a5), _mm##W##_add_ps(a6, a7));                   \
        T s2 = _mm##W##_add_ps(_mm##W##_add_ps(a8, a9), _mm##W##_add_ps(a10, a11));                 \
        T s3 = _mm##W##_add_ps(_mm##W##_add_ps(a12, a13), _mm##W##_add_ps(a14, a15));               \
        float v[W / 32], sum = 0;                                                                   \
        _mm##W##_storeu_ps(v, _mm##W##_add_ps(_mm##W##_add_ps(s0, s1), _mm##W##_add_ps(s2, s3)));   \
        for (int i = 0; i < W / 32; i++) sum += v[i];                                               \
        return sum;                                                                                 \
    }
FMA_LOOP(fma_loop_avx512, "avx512f", __m512, 512, "v")
FMA_LOOP(fma_loop_avx2, "avx2,fma", __m256, 256, "x")

/* the kernel set predictd's own plans choose on this CPU (nn_isa_best) */
static int fma_isa(void) {
    const int best = nn_isa_best();
    return best == NN_ISA_AVX512 ? 2 : best == NN_ISA_AVX2 ? 1 : 0;
}
static float fma_loop(int isa, long rounds) { return isa == 2 ? fma_loop_avx512(rounds) : fma_loop_avx2(rounds); }
#else
static int fma_isa(void) { return 0; }
static float fma_loop(int isa, long rounds) { (void)isa, (void)rounds; return 0; }
#endif

static void *fma_thread(void *arg) {
    fma_job_t *j = arg;
    pthread_barrier_wait(j->start);
    double t0 = mono_s();
    j->sink = fma_loop(j->isa, FMA_ROUNDS);
    j->dt = mono_s() - t0;
    return NULL;
}

/* One run: every thread's loop at once; GFLOP/s over the slowest thread's time. */
static double fma_run(int isa, int threads, float *sink) {
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    fma_job_t *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!jobs || !tid) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int t = 0; t < threads; t++) {
        jobs[t] = (fma_job_t){ &start, isa, 0, 0 };
        if (t > 0 && pthread_create(&tid[t], NULL, fma_thread, &jobs[t])) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    fma_thread(&jobs[0]);
    double dt = jobs[0].dt;
    for (int t = 1; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (jobs[t].dt > dt) dt = jobs[t].dt;
    }
    for (int t = 0; t < threads; t++) *sink += jobs[t].sink;
    pthread_barrier_destroy(&start);
    free(jobs);
    free(tid);
    double lanes = isa == 2 ? 16 : 8;
    return 2.0 * 16 * lanes * (double)FMA_ROUNDS * threads / dt / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, n = argc > 2 ? atoi(argv[2]) : 1024;
    int runs = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || threads > 256 || n < 16 || runs < 1) {
        fprintf(stderr, "usage: nn_peak [THREADS] [N] [RUNS]\n");
        return 2;
    }
    int isa = fma_isa();
    if (isa) {
        int fruns = runs < 5 ? runs : 5; /* the loop's time hardly varies: 5 runs are plenty */
        double best = 0;
        float sink = 0;
        for (int r = 0; r < fruns + 1; r++) { /* one warm-up run (clocks, threads) */
            double g = fma_run(isa, threads, &sink);
            if (r >= 1 && g > best) best = g;
        }
        printf("fma peak: %.1f GFLOP/s (%s, %d threads, best of %d; sum %g)\n", best,
               isa == 2 ? "avx512" : "avx2", threads, fruns, (double)sink);
    } else {
        printf("fma peak: n/a (no AVX2 + FMA)\n");
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
    printf("sgemm: %.1f GFLOP/s (OpenBLAS, %d threads, N=%d, best of %d; c[1]=%g)\n",
           2.0 * n * (double)nn / best / 1e9, threads, n, runs, c[1]);
    free(a);
    free(b);
    free(c);
    return 0;
}
