/* The AVX2 + FMA kernel set (see nn_kern_t in nn_internal.h) and the choice of a set: a
 * register-blocked product C[M, ncols] (+)= A[M, K] B[K, col0 : col0 + ncols] (+ bias) with B
 * packed once at plan time into 16-column panels ([N/16][K][16]) so that each step reuses it
 * without OpenBLAS's per-call packing (the step's product is small: M = the thread's rows,
 * K = hidden size), a 6 x 16 micro-kernel; the fused LSTM cell; vector sigmoid/tanh. The
 * functions carry their target attribute and are only called on CPUs that have it; the
 * AVX-512 set is in nn_kern512.c. The plain loop in nn_gemm stays the oracle. */
#include "nn/nn_internal.h"

#include <string.h>

/* B: [K, N] row-major with leading dimension ldb, or (trans) [N, K]. N % 16 == 0. */
void nn_pack_b(float *dst, const float *B, int64_t ldb, int trans, int64_t K, int64_t N) {
    for (int64_t p = 0; p < N / 16; p++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < 16; j++) {
                int64_t n = p * 16 + j;
                dst[(p * K + k) * 16 + j] = trans ? B[n * ldb + k] : B[k * ldb + n];
            }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* libgcc fills the CPU model in a constructor; reading it is a load, cheap per call. */
int nn_kern_available(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

int nn_isa_best(void) {
    if (!nn_kern_available()) return NN_ISA_PLAIN;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? NN_ISA_AVX512 : NN_ISA_AVX2;
}

/* Accumulators are named variables (an array of __m256 gets spilled to the stack); rows past
 * MR are dead code the compiler drops. */
#define ROW_FMA(i, c0, c1)                                         \
    if (mr > i) {                                                  \
        __m256 a = _mm256_broadcast_ss(A + i * lda + k);           \
        c0 = _mm256_fmadd_ps(a, b0, c0);                           \
        c1 = _mm256_fmadd_ps(a, b1, c1);                           \
    }
#define ROW_STORE(i, c0, c1)                                       \
    if (mr > i) {                                                  \
        float *c = C + i * ldc;                                    \
        if (acc) {                                                 \
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(c));            \
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(c + 8));        \
        }                                                          \
        _mm256_storeu_ps(c, c0);                                   \
        _mm256_storeu_ps(c + 8, c1);                               \
    }
#define MICRO(MR)                                                                                              \
    __attribute__((target("avx2,fma"))) static void micro_##MR(int64_t K, const float *A, int64_t lda,         \
                                                               const float *Bp, float *C, int64_t ldc, int acc, const float *bias) { \
        enum { mr = MR };                                                                                      \
        __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();                                        \
        __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();                                    \
        __m256 c00 = z0, c01 = z1, c10 = z0, c11 = z1, c20 = z0, c21 = z1, c30 = z0, c31 = z1, c40 = z0,       \
               c41 = z1, c50 = z0, c51 = z1;                                                                   \
        for (int64_t k = 0; k < K; k++) {                                                                      \
            __m256 b0 = _mm256_loadu_ps(Bp + k * 16), b1 = _mm256_loadu_ps(Bp + k * 16 + 8);                   \
            ROW_FMA(0, c00, c01) ROW_FMA(1, c10, c11) ROW_FMA(2, c20, c21)                                     \
            ROW_FMA(3, c30, c31) ROW_FMA(4, c40, c41) ROW_FMA(5, c50, c51)                                     \
        }                                                                                                      \
        ROW_STORE(0, c00, c01) ROW_STORE(1, c10, c11) ROW_STORE(2, c20, c21)                                   \
        ROW_STORE(3, c30, c31) ROW_STORE(4, c40, c41) ROW_STORE(5, c50, c51)                                   \
    }
MICRO(1)
MICRO(2)
MICRO(3)
MICRO(4)
MICRO(5)
MICRO(6)

/* e^x for 8 lanes: the same reduction as expf_fast in nn_ops.c (x = k ln2 + r, 2^k from the
 * exponent bits), e^r by its Taylor series to r^6/720 (relative error < 2e-7). */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860682030941723e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 1 / (1 + e^-x) (a true division: the reciprocal estimate plus a Newton step loses the last
 * bits that ONNX's tolerances around zero need); NaN lanes stay NaN. */
__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 x) {
    __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
    __m256 y = _mm256_div_ps(_mm256_set1_ps(1.0f), d);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

__attribute__((target("avx2,fma"))) void nn_vsigmoid_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float bx[8] = { 0 }, by[8];
        memcpy(bx, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_ps(by, sigmoid8(_mm256_loadu_ps(bx)));
        memcpy(y + i, by, sizeof(float) * (size_t)(n - i));
    }
}

/* tanh(x) from big = 2 sigmoid(2x) - 1, except near 0 (|x| < 1/4, where that cancels):
 * there its Taylor series to x^11 (error < 3e-9). */
__attribute__((target("avx2,fma"))) static inline __m256 tanh8_near0(__m256 x, __m256 big) {
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-1382.0f / 155925);
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(62.0f / 2835));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-17.0f / 315));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.0f / 15));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.0f / 3));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), x, x);
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.25f), _CMP_LT_OQ));
}

__attribute__((target("avx2,fma"))) static inline __m256 tanh8(__m256 x) {
    const __m256 two = _mm256_set1_ps(2.0f), one = _mm256_set1_ps(1.0f);
    return tanh8_near0(x, _mm256_fmsub_ps(two, sigmoid8(_mm256_mul_ps(two, x)), one));
}

__attribute__((target("avx2,fma"))) void nn_vtanh_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float bx[8] = { 0 }, by[8];
        memcpy(bx, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_ps(by, tanh8(_mm256_loadu_ps(bx)));
        memcpy(y + i, by, sizeof(float) * (size_t)(n - i));
    }
}

/* tanh for the LSTM cell: x P(x^2) / Q(x^2) on [-9, 9] (clamped outside, where tanh is 1 to
 * within 3e-8), P and Q of degree 4 in x^2 fitted by this project (Lawson-weighted least
 * squares on [0, 9] against tanh in double: largest error 2e-8 in double, 3.4e-7 evaluated in
 * float32), with the reciprocal estimate + a Newton step for 1/Q (Q >= 1). About half the
 * work of exp + reciprocal + the series blend; every lane finite for finite input. */
__attribute__((target("avx2,fma"))) static inline __m256 tanh8_rat(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-9.0f)), _mm256_set1_ps(9.0f));
    __m256 t = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(NN_TANH_P4);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(NN_TANH_P3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(NN_TANH_P2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(NN_TANH_P1));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(NN_TANH_P0));
    __m256 q = _mm256_set1_ps(NN_TANH_Q4);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(NN_TANH_Q3));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(NN_TANH_Q2));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(NN_TANH_Q1));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.0f));
    __m256 r = _mm256_rcp_ps(q);
    r = _mm256_mul_ps(r, _mm256_fnmadd_ps(q, r, _mm256_set1_ps(2.0f)));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(x, p), r);
    return _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-1.0f)), _mm256_set1_ps(1.0f));
}

/* sigmoid(x) = (1 + tanh(x / 2)) / 2 */
__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8_rat(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(half, tanh8_rat(_mm256_mul_ps(half, x)), half);
}

__attribute__((target("avx2,fma"))) static void lstm_cell_avx2(float *g, float *c, float *h, int64_t H) {
    for (int64_t k = 0; k + 8 <= H; k += 8) {
        __m256 i = sigmoid8_rat(_mm256_loadu_ps(g + k)), o = sigmoid8_rat(_mm256_loadu_ps(g + H + k));
        __m256 f = sigmoid8_rat(_mm256_loadu_ps(g + 2 * H + k)), cc = tanh8_rat(_mm256_loadu_ps(g + 3 * H + k));
        __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(c + k), _mm256_mul_ps(i, cc));
        _mm256_storeu_ps(c + k, cn);
        _mm256_storeu_ps(h + k, _mm256_mul_ps(o, tanh8_rat(cn)));
    }
}

/* Rows in blocks whose A part stays in L1 (about 16 KB), then the panels, then 6 rows at a
 * time: each row block is read once per panel from L1, each panel once per row block. */
static void mm_avx2(const float *panels, int64_t K, int64_t col0, int64_t ncols, int64_t M, const float *A,
                    int64_t lda, float *C, int64_t ldc, int acc, const float *bias) {
    int64_t mb = (4096 / (K > 0 ? K : 1)) / 6 * 6;
    if (mb < 6) mb = 6;
    for (int64_t m0 = 0; m0 < M; m0 += mb) {
        int64_t m1 = m0 + mb < M ? m0 + mb : M;
        for (int64_t p = col0 / 16; p < (col0 + ncols) / 16; p++) {
            const float *bp = panels + p * K * 16, *bb = bias ? bias + p * 16 : NULL;
            float *cp = C + (p * 16 - col0);
            int64_t m = m0;
            for (; m + 6 <= m1; m += 6) micro_6(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb);
            switch (m1 - m) {
            case 5: micro_5(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb); break;
            case 4: micro_4(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb); break;
            case 3: micro_3(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb); break;
            case 2: micro_2(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb); break;
            case 1: micro_1(K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb); break;
            default: break;
            }
        }
    }
}

const nn_kern_t nn_kern_avx2 = { "avx2", mm_avx2, lstm_cell_avx2, NULL };

#else

int nn_kern_available(void) { return 0; }
int nn_isa_best(void) { return NN_ISA_PLAIN; }
void nn_vsigmoid_avx2(float *y, const float *x, int64_t n) { (void)y, (void)x, (void)n; }
void nn_vtanh_avx2(float *y, const float *x, int64_t n) { (void)y, (void)x, (void)n; }
const nn_kern_t nn_kern_avx2 = { "avx2", NULL, NULL, NULL };

#endif

const nn_kern_t *nn_kern_for(int isa) {
    int best = nn_isa_best();
    if (isa > best) return NULL;
    return isa == NN_ISA_AVX512 ? &nn_kern_avx512 : isa == NN_ISA_AVX2 ? &nn_kern_avx2 : NULL;
}
