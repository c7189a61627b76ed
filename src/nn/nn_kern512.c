/* The AVX-512 kernel set (see nn_kern_t in nn_internal.h), for CPUs with AVX-512F + DQ; the
 * functions carry their target attribute, so the build stays portable and nn_kern.c picks
 * this set at run time. Weights are the same 16-column panels as the AVX2 set's
 * (nn_pack_b: [N/16][K][16]), one zmm register per panel row.
 *
 * - mm: a 6 x 64 register block (24 accumulators: 6 rows x 4 panels side by side), fewer
 *   panels at the right edge, fewer rows at the bottom.
 * - lstm_rows: the fused LSTM step. Panel j of gate g (ONNX order i, o, f, c) holds the gate's
 *   columns 16j .. 16j + 15, so the 4 panels g H/16 + j of one 6 x 64 block are the 4 gates
 *   of the same 16 hidden units: the cell runs on the accumulators in registers, and no gate
 *   buffer is written or read back. The product reads x and h where they lie (two A
 *   operands: K = I + H rows of the stacked [W^T; R^T] panels).
 * - lstm_cell: the cell alone, 16 lanes with a masked tail (any H).
 * Activations: tanh(x) = x P(x^2) / Q(x^2) on [-9, 9] (the fit documented in nn_kern.c), and
 * sigmoid(x) = 1/2 + tanh(x/2)/2 = 1/2 + x P_s(x^2) / Q_s(x^2) with the same fit rescaled
 * (P_s(t) = P(t/4)/4, Q_s(t) = Q(t/4)) on [-18, 18]. The cell is a fifth of the step's time
 * and every operation of it competes with the products for the two 512-bit ports, so: the
 * clamps are one VRANGEPS each; the sigmoids divide by Q with the 14-bit reciprocal estimate
 * and one Newton step (15 operations each); the two tanh use a true division, which runs
 * beside the FMAs in the divider (12 operations; more divisions per cell would queue on it:
 * measured slower). |tanh| may exceed 1 by the fit's error (3.4e-7), harmless here. */
#include "nn/nn_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512dq,fma")))

/* sign(x) min(|x|, lim) in one instruction (VRANGEPS: smaller magnitude, sign of x) */
T512 static inline __m512 clamp_abs(__m512 x, float lim) { return _mm512_range_ps(x, _mm512_set1_ps(lim), 0x02); }

/* 1/q for q >= 1: the 14-bit estimate and a Newton step (about 2^-28 relative) */
T512 static inline __m512 recip(__m512 q) {
    __m512 r = _mm512_rcp14_ps(q);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
}


T512 static inline __m512 tanh16(__m512 x) {
    x = clamp_abs(x, 9.0f);
    __m512 t = _mm512_mul_ps(x, x);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(NN_TANH_P4), t, _mm512_set1_ps(NN_TANH_P3));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P2));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P1));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P0));
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(NN_TANH_Q4), t, _mm512_set1_ps(NN_TANH_Q3));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(NN_TANH_Q2));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(NN_TANH_Q1));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.0f));
    return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}

/* The powers of 4 and the extra 1/4 are exact in float: the same fit, rescaled. */
T512 static inline __m512 sigmoid16(__m512 x) {
    x = clamp_abs(x, 18.0f);
    __m512 t = _mm512_mul_ps(x, x);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(NN_TANH_P4 / 1024), t, _mm512_set1_ps(NN_TANH_P3 / 256));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P2 / 64));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P1 / 16));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(NN_TANH_P0 / 4));
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(NN_TANH_Q4 / 256), t, _mm512_set1_ps(NN_TANH_Q3 / 64));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(NN_TANH_Q2 / 16));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(NN_TANH_Q1 / 4));
    q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.0f));
    return _mm512_fmadd_ps(_mm512_mul_ps(x, p), recip(q), _mm512_set1_ps(0.5f));
}

/* c' = sigmoid(f) c + sigmoid(i) tanh(c~); h = sigmoid(o) tanh(c') */
T512 static inline __m512 cell16(__m512 gi, __m512 go, __m512 gf, __m512 gc, __m512 *c) {
    __m512 cn = _mm512_fmadd_ps(sigmoid16(gf), *c, _mm512_mul_ps(sigmoid16(gi), tanh16(gc)));
    *c = cn;
    return _mm512_mul_ps(sigmoid16(go), tanh16(cn));
}

T512 static void lstm_cell512(float *g, float *c, float *h, int64_t H) {
    for (int64_t k = 0; k < H; k += 16) {
        __mmask16 m = H - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (H - k)) - 1);
        __m512 cs = _mm512_maskz_loadu_ps(m, c + k);
        __m512 hv = cell16(_mm512_maskz_loadu_ps(m, g + k), _mm512_maskz_loadu_ps(m, g + H + k),
                           _mm512_maskz_loadu_ps(m, g + 2 * H + k), _mm512_maskz_loadu_ps(m, g + 3 * H + k), &cs);
        _mm512_mask_storeu_ps(c + k, m, cs);
        _mm512_mask_storeu_ps(h + k, m, hv);
    }
}

/* ---- the register block: MR rows x NP panels, accumulators as named variables (an array
 * of __m512 is spilled to the stack); rows past MR and panels past NP are dead code. ---- */

#define ACC_DECL                                                                               \
    __m512 c00 = z0, c01 = z1, c02 = z2, c03 = z3, c10 = z0, c11 = z1, c12 = z2, c13 = z3,     \
           c20 = z0, c21 = z1, c22 = z2, c23 = z3, c30 = z0, c31 = z1, c32 = z2, c33 = z3,     \
           c40 = z0, c41 = z1, c42 = z2, c43 = z3, c50 = z0, c51 = z1, c52 = z2, c53 = z3

#define ROW_FMA(i, c0, c1, c2, c3, A)                            \
    if (mr > i) {                                                \
        __m512 av = _mm512_set1_ps((A)[i * lda + k]);            \
        c0 = _mm512_fmadd_ps(av, b0, c0);                        \
        if (np > 1) c1 = _mm512_fmadd_ps(av, b1, c1);            \
        if (np > 2) c2 = _mm512_fmadd_ps(av, b2, c2);            \
        if (np > 3) c3 = _mm512_fmadd_ps(av, b3, c3);            \
    }

/* acc += A[0 : mr, 0 : K] (rows lda apart) times panel rows koff .. koff + K - 1 */
#define ACC_LOOP(A, K, koff)                                                                     \
    for (int64_t k = 0; k < (K); k++) {                                                          \
        const int64_t kk = ((koff) + k) * 16;                                                    \
        __m512 b0 = _mm512_loadu_ps(p0 + kk);                                                    \
        __m512 b1 = np > 1 ? _mm512_loadu_ps(p1 + kk) : b0;                                      \
        __m512 b2 = np > 2 ? _mm512_loadu_ps(p2 + kk) : b0;                                      \
        __m512 b3 = np > 3 ? _mm512_loadu_ps(p3 + kk) : b0;                                      \
        ROW_FMA(0, c00, c01, c02, c03, A) ROW_FMA(1, c10, c11, c12, c13, A)                      \
        ROW_FMA(2, c20, c21, c22, c23, A) ROW_FMA(3, c30, c31, c32, c33, A)                      \
        ROW_FMA(4, c40, c41, c42, c43, A) ROW_FMA(5, c50, c51, c52, c53, A)                      \
    }

#define ROW_STORE(i, c0, c1, c2, c3)                                                   \
    if (mr > i) {                                                                      \
        float *cr = C + i * ldc;                                                       \
        if (acc) {                                                                     \
            c0 = _mm512_add_ps(c0, _mm512_loadu_ps(cr));                               \
            if (np > 1) c1 = _mm512_add_ps(c1, _mm512_loadu_ps(cr + 16));              \
            if (np > 2) c2 = _mm512_add_ps(c2, _mm512_loadu_ps(cr + 32));              \
            if (np > 3) c3 = _mm512_add_ps(c3, _mm512_loadu_ps(cr + 48));              \
        }                                                                              \
        _mm512_storeu_ps(cr, c0);                                                      \
        if (np > 1) _mm512_storeu_ps(cr + 16, c1);                                     \
        if (np > 2) _mm512_storeu_ps(cr + 32, c2);                                     \
        if (np > 3) _mm512_storeu_ps(cr + 48, c3);                                     \
    }

/* C[0 : MR, 0 : 16 NP] (+)= A[0 : MR, 0 : K] panels[0 : NP] (+ bias) */
#define MM_MICRO(MR, NP)                                                                               \
    T512 static void mm_##MR##x##NP(int64_t K, const float *A, int64_t lda, const float *p0, float *C,  \
                                    int64_t ldc, int acc, const float *bias) {                          \
        enum { mr = MR, np = NP };                                                                     \
        const float *p1 = p0 + K * 16, *p2 = p1 + K * 16, *p3 = p2 + K * 16;                           \
        __m512 z0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();                                \
        __m512 z1 = bias && np > 1 ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();                 \
        __m512 z2 = bias && np > 2 ? _mm512_loadu_ps(bias + 32) : _mm512_setzero_ps();                 \
        __m512 z3 = bias && np > 3 ? _mm512_loadu_ps(bias + 48) : _mm512_setzero_ps();                 \
        ACC_DECL;                                                                                      \
        ACC_LOOP(A, K, 0)                                                                              \
        ROW_STORE(0, c00, c01, c02, c03) ROW_STORE(1, c10, c11, c12, c13)                              \
        ROW_STORE(2, c20, c21, c22, c23) ROW_STORE(3, c30, c31, c32, c33)                              \
        ROW_STORE(4, c40, c41, c42, c43) ROW_STORE(5, c50, c51, c52, c53)                              \
    }
#define MM_ROWS(NP) MM_MICRO(1, NP) MM_MICRO(2, NP) MM_MICRO(3, NP) MM_MICRO(4, NP) MM_MICRO(5, NP) MM_MICRO(6, NP)
MM_ROWS(1)
MM_ROWS(2)
MM_ROWS(3)
MM_ROWS(4)

typedef void (*mm_fn)(int64_t K, const float *A, int64_t lda, const float *p0, float *C, int64_t ldc, int acc, const float *bias);
static const mm_fn mm_fns[4][6] = {
    { mm_1x1, mm_2x1, mm_3x1, mm_4x1, mm_5x1, mm_6x1 },
    { mm_1x2, mm_2x2, mm_3x2, mm_4x2, mm_5x2, mm_6x2 },
    { mm_1x3, mm_2x3, mm_3x3, mm_4x3, mm_5x3, mm_6x3 },
    { mm_1x4, mm_2x4, mm_3x4, mm_4x4, mm_5x4, mm_6x4 },
};

/* Rows in blocks whose A part stays in L1 (about 16 KB), then 4 panels at a time (the last
 * group narrower), then 6 rows at a time. */
static void mm512(const float *panels, int64_t K, int64_t col0, int64_t ncols, int64_t M, const float *A,
                  int64_t lda, float *C, int64_t ldc, int acc, const float *bias) {
    int64_t mb = (4096 / (K > 0 ? K : 1)) / 6 * 6;
    if (mb < 6) mb = 6;
    int64_t q0 = col0 / 16, q1 = (col0 + ncols) / 16;
    for (int64_t m0 = 0; m0 < M; m0 += mb) {
        int64_t m1 = m0 + mb < M ? m0 + mb : M;
        for (int64_t q = q0; q < q1; q += 4) {
            int64_t np = q1 - q < 4 ? q1 - q : 4;
            const float *bp = panels + q * K * 16, *bb = bias ? bias + q * 16 : NULL;
            float *cp = C + (q * 16 - col0);
            for (int64_t m = m0; m < m1; m += 6) {
                int64_t mr = m1 - m < 6 ? m1 - m : 6;
                mm_fns[np - 1][mr - 1](K, A + m * lda, lda, bp, cp + m * ldc, ldc, acc, bb);
            }
        }
    }
}

/* ---- the fused LSTM step ---- */

/* The cell of row r, hidden units 16j .. 16j + 15, from its 4 gates' pre-activations g. */
T512 static inline void cell_row(const nn_lstm_rows_t *a, int64_t r, int64_t j, const __m512 *g) {
    const int64_t H = a->H;
    float *cp = a->c + r * H + j * 16;
    __m512 cs = _mm512_loadu_ps(cp);
    __m512 hv = cell16(g[0], g[1], g[2], g[3], &cs);
    _mm512_storeu_ps(cp, cs);
    _mm512_storeu_ps(a->h_out + r * H + j * 16, hv);
    if (a->y) _mm512_storeu_ps(a->y + r * a->ldy + j * 16, hv);
}

/* rows m .. m + MR - 1, hidden units 16j .. 16j + 15. The accumulators go through a small
 * array into one rolled loop of cells: as fast as 6 unrolled cells (which are throughput-bound
 * either way), with a sixth of the code. */
#define ROW_KEEP(i, gi, go, gf, gc) \
    if (mr > i) { g[i][0] = gi, g[i][1] = go, g[i][2] = gf, g[i][3] = gc; }

#define LSTM_MICRO(MR)                                                                                  \
    T512 static void lstm_##MR(const nn_lstm_rows_t *a, int64_t m, int64_t j) {                          \
        enum { mr = MR, np = 4 };                                                                       \
        const int64_t I = a->I, H = a->H, K = I + H, gs = H * K; /* gs: floats between gates' panels */ \
        const float *p0 = a->panels + j * K * 16, *p1 = p0 + gs, *p2 = p1 + gs, *p3 = p2 + gs;          \
        const float *bias = a->bias + j * 16;                                                           \
        __m512 z0 = _mm512_loadu_ps(bias), z1 = _mm512_loadu_ps(bias + H);                              \
        __m512 z2 = _mm512_loadu_ps(bias + 2 * H), z3 = _mm512_loadu_ps(bias + 3 * H);                  \
        ACC_DECL;                                                                                       \
        {                                                                                               \
            const int64_t lda = a->ldx;                                                                 \
            ACC_LOOP(a->x + m * lda, I, 0)                                                              \
        }                                                                                               \
        {                                                                                               \
            const int64_t lda = H;                                                                      \
            ACC_LOOP(a->h_in + m * H, H, I)                                                             \
        }                                                                                               \
        __m512 g[6][4];                                                                                 \
        ROW_KEEP(0, c00, c01, c02, c03) ROW_KEEP(1, c10, c11, c12, c13)                                 \
        ROW_KEEP(2, c20, c21, c22, c23) ROW_KEEP(3, c30, c31, c32, c33)                                 \
        ROW_KEEP(4, c40, c41, c42, c43) ROW_KEEP(5, c50, c51, c52, c53)                                 \
        _Pragma("GCC unroll 1") for (int i = 0; i < mr; i++) cell_row(a, m + i, j, g[i]);              \
    }
LSTM_MICRO(2)
LSTM_MICRO(3)
LSTM_MICRO(4)
LSTM_MICRO(5)
LSTM_MICRO(6)

/* One row (batch 1, or the last of a block): 4 chains of dependent FMAs would wait on the
 * FMA latency, so even and odd k go to two sets of accumulators, added at the end. */
#define ACC1_LOOP(A, K, koff)                                                                   \
    {                                                                                           \
        int64_t k = 0;                                                                          \
        for (; k + 2 <= (K); k += 2) {                                                          \
            const float *b = p0 + ((koff) + k) * 16;                                            \
            __m512 a0 = _mm512_set1_ps((A)[k]), a1 = _mm512_set1_ps((A)[k + 1]);                \
            c00 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b), c00);                                 \
            c01 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + gs), c01);                            \
            c02 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + 2 * gs), c02);                        \
            c03 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + 3 * gs), c03);                        \
            c10 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + 16), c10);                            \
            c11 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + gs + 16), c11);                       \
            c12 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + 2 * gs + 16), c12);                   \
            c13 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + 3 * gs + 16), c13);                   \
        }                                                                                       \
        if (k < (K)) {                                                                          \
            const float *b = p0 + ((koff) + k) * 16;                                            \
            __m512 a0 = _mm512_set1_ps((A)[k]);                                                 \
            c00 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b), c00);                                 \
            c01 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + gs), c01);                            \
            c02 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + 2 * gs), c02);                        \
            c03 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + 3 * gs), c03);                        \
        }                                                                                       \
    }

T512 static void lstm_1(const nn_lstm_rows_t *a, int64_t m, int64_t j) {
    const int64_t I = a->I, H = a->H, K = I + H, gs = H * K;
    const float *p0 = a->panels + j * K * 16, *bias = a->bias + j * 16;
    __m512 c00 = _mm512_loadu_ps(bias), c01 = _mm512_loadu_ps(bias + H);
    __m512 c02 = _mm512_loadu_ps(bias + 2 * H), c03 = _mm512_loadu_ps(bias + 3 * H);
    __m512 c10 = _mm512_setzero_ps(), c11 = c10, c12 = c10, c13 = c10;
    ACC1_LOOP(a->x + m * a->ldx, I, 0)
    ACC1_LOOP(a->h_in + m * H, H, I)
    __m512 g[4] = { _mm512_add_ps(c00, c10), _mm512_add_ps(c01, c11), _mm512_add_ps(c02, c12), _mm512_add_ps(c03, c13) };
    cell_row(a, m, j, g);
}

typedef void (*lstm_fn)(const nn_lstm_rows_t *a, int64_t m, int64_t j);
static const lstm_fn lstm_fns[6] = { lstm_1, lstm_2, lstm_3, lstm_4, lstm_5, lstm_6 };

/* Hidden slices outer (a slice's 4 gate panels, K x 256 bytes, stay in L1 across the row
 * blocks), rows inner. */
static void lstm_rows512(const nn_lstm_rows_t *a, int64_t M) {
    for (int64_t j = 0; j < a->H / 16; j++)
        for (int64_t m = 0; m < M; m += 6) lstm_fns[(M - m < 6 ? M - m : 6) - 1](a, m, j);
}

const nn_kern_t nn_kern_avx512 = { "avx512", mm512, lstm_cell512, lstm_rows512 };

#else

const nn_kern_t nn_kern_avx512 = { "avx512", NULL, NULL, NULL };

#endif
