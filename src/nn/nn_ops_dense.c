/* Operators, part 2: dense products (Gemm, MatMul) through OpenBLAS or the plain loop, and
 * the row-wise ops Softmax, ReduceMean, BatchNormalization, LayerNormalization. */
#include "nn/nn_ops.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* The plain loop is the oracle for the OpenBLAS path (ex->reference). */
static void gemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(ta ? A[k * lda + m] : A[m * lda + k]) * (tb ? B[n * ldb + k] : B[k * ldb + n]);
            float prev = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
            C[m * ldc + n] = (float)(alpha * acc) + prev;
        }
}

void nn_gemm(const nn_exec_t *ex, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) C[m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[m * ldc + n];
        return;
    }
    if (ex->reference) {
        gemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* ---- Gemm: Y[M,N] = alpha * op(A) op(B) + beta * C ---- */
/* ip: 0 M, 1 N, 2 K, 3 transA, 4 transB (after packing), 5 has C, 6 C row stride, 7 C col stride;
 * fp: 0 alpha, 1 beta; packed: B transposed to [K, N] when B is constant and transB = 1 */

int nn_infer_gemm(nn_step_t *s, char *err, size_t errlen) {
    if (s->n_in < 2 || !s->in[0] || !s->in[1]) FAIL(NN_ERR_INVALID, "needs A and B");
    const nn_val_t *a = s->in[0], *b = s->in[1], *c = s->n_in > 2 ? s->in[2] : NULL;
    if (a->dtype != NN_FLOAT || b->dtype != NN_FLOAT || (c && c->dtype != NN_FLOAT)) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    if (a->ndim != 2 || b->ndim != 2) FAIL(NN_ERR_SHAPE, "A and B must be 2-D (rank %d and %d)", a->ndim, b->ndim);
    int ta = (int)nn_attr_i(s->node, "transA", 0), tb = (int)nn_attr_i(s->node, "transB", 0);
    int64_t M = ta ? a->dims[1] : a->dims[0], K = ta ? a->dims[0] : a->dims[1];
    int64_t K2 = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (K != K2) FAIL(NN_ERR_SHAPE, "inner dimensions differ: A gives %lld, B gives %lld", (long long)K, (long long)K2);
    int64_t d[2] = { M, N };
    nn_val_set_shape(s->out[0], NN_FLOAT, 2, d);
    s->ip[0] = M, s->ip[1] = N, s->ip[2] = K, s->ip[3] = ta, s->ip[4] = tb, s->ip[5] = c != NULL;
    s->fp[0] = nn_attr_f(s->node, "alpha", 1.0f);
    s->fp[1] = nn_attr_f(s->node, "beta", 1.0f);
    if (c) {
        if (c->ndim > 2) FAIL(NN_ERR_SHAPE, "C has rank %d", c->ndim);
        int64_t c0 = c->ndim == 2 ? c->dims[0] : 1, c1 = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
        if ((c0 != 1 && c0 != M) || (c1 != 1 && c1 != N)) FAIL(NN_ERR_SHAPE, "C [%lld, %lld] does not broadcast to [%lld, %lld]", (long long)c0, (long long)c1, (long long)M, (long long)N);
        s->ip[6] = c0 == 1 ? 0 : c1;
        s->ip[7] = c1 == 1 ? 0 : 1;
    }
    if (tb && b->is_const && K * N > 0) {
        float *p = malloc(sizeof(float) * (size_t)(K * N));
        if (!p) FAIL(NN_ERR_NOMEM, "out of memory");
        const float *src = b->data;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) p[k * N + n] = src[n * K + k];
        s->packed = p;
        s->ip[4] = 0;
    }
    return 0;
}

typedef struct { nn_exec_t *ex; nn_step_t *s; } job_t;

static void gemm_rows(void *arg, int ith, int nth) {
    job_t *j = arg;
    nn_step_t *s = j->s;
    int64_t M = s->ip[0], N = s->ip[1], K = s->ip[2], m0, m1;
    int ta = (int)s->ip[3], tb = (int)s->ip[4];
    nn_split(M, ith, nth, &m0, &m1);
    if (m1 <= m0) return;
    float *y = s->out[0]->data;
    const float *A = s->in[0]->data, *B = s->packed ? s->packed : s->in[1]->data;
    float beta = (float)s->fp[1];
    if (s->ip[5]) {
        const float *c = s->in[2]->data;
        for (int64_t m = m0; m < m1; m++)
            for (int64_t n = 0; n < N; n++) y[m * N + n] = beta * c[m * s->ip[6] + n * s->ip[7]];
    }
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    nn_gemm(j->ex, ta, tb, m1 - m0, N, K, (float)s->fp[0], A + (ta ? m0 : m0 * K), lda, B, ldb,
            s->ip[5] ? 1.0f : 0.0f, y + m0 * N, N);
}

int nn_run_gemm(nn_exec_t *ex, nn_step_t *s) {
    job_t j = { ex, s };
    if (ex->pool && s->ip[0] >= 8 && s->ip[0] * s->ip[1] * s->ip[2] >= (1 << 18)) nn_pool_run(ex->pool, gemm_rows, &j);
    else gemm_rows(&j, 0, 1);
    return 0;
}

/* ---- MatMul (numpy matmul: 1-D promotion, batch broadcasting) ---- */
/* ip: 0 M, 1 N, 2 K, 3 batch count, 4 batch rank, 5..12 batch dims, 13..20 a batch strides
 * (in matrices), 21..28 b batch strides; ip[29] = 1 when b has no batch: one [batch*M, K] gemm */

int nn_infer_matmul(nn_step_t *s, char *err, size_t errlen) {
    if (s->n_in < 2 || !s->in[0] || !s->in[1]) FAIL(NN_ERR_INVALID, "needs two inputs");
    const nn_val_t *a = s->in[0], *b = s->in[1];
    if (a->dtype != NN_FLOAT || b->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    if (a->ndim < 1 || b->ndim < 1) FAIL(NN_ERR_SHAPE, "scalar operand");
    int64_t M = a->ndim >= 2 ? a->dims[a->ndim - 2] : 1, K = a->dims[a->ndim - 1];
    int64_t K2 = b->ndim >= 2 ? b->dims[b->ndim - 2] : b->dims[0], N = b->ndim >= 2 ? b->dims[b->ndim - 1] : 1;
    if (K != K2) FAIL(NN_ERR_SHAPE, "inner dimensions differ: %lld and %lld", (long long)K, (long long)K2);
    nn_val_t ab = { 0 }, bb = { 0 };
    ab.ndim = a->ndim > 2 ? a->ndim - 2 : 0;
    bb.ndim = b->ndim > 2 ? b->ndim - 2 : 0;
    memcpy(ab.dims, a->dims, sizeof(int64_t) * (size_t)ab.ndim);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.ndim);
    int br;
    int64_t bd[NN_MAX_DIMS] = { 0 }, d[NN_MAX_DIMS] = { 0 };
    if (nn_broadcast(&ab, &bb, &br, bd)) FAIL(NN_ERR_SHAPE, "batch dimensions do not broadcast");
    int r = 0;
    for (int i = 0; i < br; i++) d[r++] = bd[i];
    if (a->ndim >= 2) d[r++] = M;
    if (b->ndim >= 2) d[r++] = N;
    nn_val_set_shape(s->out[0], NN_FLOAT, r, d);
    s->ip[0] = M, s->ip[1] = N, s->ip[2] = K;
    s->ip[3] = nn_numel(br, bd);
    s->ip[4] = br;
    for (int i = 0; i < br; i++) s->ip[5 + i] = bd[i];
    nn_bcast_strides(&ab, br, bd, s->ip + 13);
    nn_bcast_strides(&bb, br, bd, s->ip + 21);
    s->ip[29] = bb.ndim == 0;
    return 0;
}

static void matmul_part(void *arg, int ith, int nth) {
    job_t *j = arg;
    nn_step_t *s = j->s;
    int64_t M = s->ip[0], N = s->ip[1], K = s->ip[2], nb = s->ip[3];
    const float *A = s->in[0]->data, *B = s->in[1]->data;
    float *Y = s->out[0]->data;
    if (s->ip[29]) {   /* b is one matrix: rows of all a matrices in one product */
        int64_t rows = nb * M, r0, r1;
        nn_split(rows, ith, nth, &r0, &r1);
        if (r1 > r0) nn_gemm(j->ex, 0, 0, r1 - r0, N, K, 1.0f, A + r0 * K, K, B, N, 0.0f, Y + r0 * N, N);
        return;
    }
    int64_t b0, b1;
    nn_split(nb, ith, nth, &b0, &b1);
    int br = (int)s->ip[4];
    for (int64_t bi = b0; bi < b1; bi++) {
        int64_t rem = bi, oa = 0, ob = 0;
        for (int d = br - 1; d >= 0; d--) {
            int64_t x = rem % s->ip[5 + d];
            rem /= s->ip[5 + d];
            oa += x * s->ip[13 + d];
            ob += x * s->ip[21 + d];
        }
        nn_gemm(j->ex, 0, 0, M, N, K, 1.0f, A + oa * M * K, K, B + ob * K * N, N, 0.0f, Y + bi * M * N, N);
    }
}

int nn_run_matmul(nn_exec_t *ex, nn_step_t *s) {
    job_t j = { ex, s };
    int64_t work = s->ip[29] ? s->ip[3] * s->ip[0] : s->ip[3];   /* rows or matrices to split */
    if (ex->pool && work >= 8 && s->ip[3] * s->ip[0] * s->ip[1] * s->ip[2] >= (1 << 18)) nn_pool_run(ex->pool, matmul_part, &j);
    else matmul_part(&j, 0, 1);
    return 0;
}

/* ---- Softmax over [outer, n, inner] ---- */

int nn_infer_softmax(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    if (x->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    int64_t a;
    int legacy = s->opset < 13;
    if (nn_axis(nn_attr_i(s->node, "axis", legacy ? 1 : -1), x->ndim ? x->ndim : 1, &a)) FAIL(NN_ERR_INVALID, "axis out of range");
    s->ip[0] = nn_numel((int)a, x->dims);
    s->ip[1] = legacy ? nn_numel(x->ndim - (int)a, x->dims + a) : (x->ndim ? x->dims[a] : 1);
    s->ip[2] = legacy ? 1 : nn_numel(x->ndim - (int)a - 1, x->dims + a + 1);
    nn_val_set_shape(s->out[0], x->dtype, x->ndim, x->dims);
    return 0;
}

int nn_run_softmax(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    int64_t outer = s->ip[0], n = s->ip[1], inner = s->ip[2];
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xv = x + o * n * inner + i;
            float *yv = y + o * n * inner + i;
            float mx = -INFINITY;
            for (int64_t k = 0; k < n; k++) mx = xv[k * inner] > mx ? xv[k * inner] : mx;
            double sum = 0;
            for (int64_t k = 0; k < n; k++) {
                yv[k * inner] = expf(xv[k * inner] - mx);
                sum += yv[k * inner];
            }
            for (int64_t k = 0; k < n; k++) yv[k * inner] = (float)(yv[k * inner] / sum);
        }
    return 0;
}

/* ---- ReduceMean ---- */
/* ip: 0 rank, 1..8 input dims, 9..16 output offset stride per input axis (0 = reduced),
 * 17 reduced count; scratch: double accumulators */

int nn_infer_reduce_mean(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    if (x->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    int64_t axes[NN_MAX_DIMS * 2];
    int n = -1;
    if (s->n_in > 1 && s->in[1]) {
        n = nn_const_ints(s->in[1], axes, NN_MAX_DIMS * 2);
        if (n < 0) FAIL(NN_ERR_UNSUPPORTED, "axes must be a constant int tensor");
    } else {
        const int64_t *a = nn_attr_ints(s->node, "axes", &n);
        if (n > NN_MAX_DIMS * 2) FAIL(NN_ERR_INVALID, "too many axes");
        for (int i = 0; i < n; i++) axes[i] = a[i];
    }
    int keep = (int)nn_attr_i(s->node, "keepdims", 1);
    char red[NN_MAX_DIMS] = { 0 };
    if (n <= 0) {
        if (n == 0 && nn_attr_i(s->node, "noop_with_empty_axes", 0)) { /* identity */ }
        else for (int i = 0; i < x->ndim; i++) red[i] = 1;
    }
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (nn_axis(axes[i], x->ndim, &a)) FAIL(NN_ERR_INVALID, "axis %lld out of range", (long long)axes[i]);
        red[a] = 1;
    }
    int64_t d[NN_MAX_DIMS], cnt = 1;
    int r = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (red[i]) { cnt *= x->dims[i]; if (keep) d[r++] = 1; }
        else d[r++] = x->dims[i];
    }
    nn_val_set_shape(s->out[0], NN_FLOAT, r, d);
    int64_t acc = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        s->ip[9 + i] = red[i] ? 0 : acc;
        if (!red[i]) acc *= x->dims[i];
    }
    s->ip[0] = x->ndim;
    for (int i = 0; i < x->ndim; i++) s->ip[1 + i] = x->dims[i];
    s->ip[17] = cnt;
    s->scratch_bytes = sizeof(double) * (size_t)(s->out[0]->numel + 1);
    return 0;
}

int nn_run_reduce_mean(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const nn_val_t *x = s->in[0];
    double *acc = s->scratch;
    int64_t no = s->out[0]->numel;
    for (int64_t i = 0; i < no; i++) acc[i] = 0;
    int r = (int)s->ip[0];
    const int64_t *dims = s->ip + 1, *st = s->ip + 9;
    const float *xv = x->data;
    if (x->numel) {
        int64_t idx[NN_MAX_DIMS] = { 0 }, off = 0;
        for (int64_t e = 0; e < x->numel; e++) {
            acc[off] += xv[e];
            for (int d = r - 1; d >= 0; d--) {
                idx[d]++;
                off += st[d];
                if (idx[d] < dims[d]) break;
                off -= st[d] * dims[d];
                idx[d] = 0;
            }
        }
    }
    float *y = s->out[0]->data;
    for (int64_t i = 0; i < no; i++) y[i] = s->ip[17] ? (float)(acc[i] / (double)s->ip[17]) : NAN;
    return 0;
}

/* ---- BatchNormalization (inference): y = (x - mean) / sqrt(var + eps) * scale + bias ---- */

int nn_infer_batchnorm(nn_step_t *s, char *err, size_t errlen) {
    if (s->n_in < 5) FAIL(NN_ERR_INVALID, "needs X, scale, B, mean, var");
    const nn_val_t *x = s->in[0];
    if (nn_attr_i(s->node, "training_mode", 0)) FAIL(NN_ERR_UNSUPPORTED, "training_mode=1 unsupported");
    for (int k = 1; k < s->n_out; k++)
        if (s->node->out[k] >= 0) FAIL(NN_ERR_UNSUPPORTED, "training outputs unsupported");
    if (x->ndim < 2) FAIL(NN_ERR_SHAPE, "X must be [N, C, ...]");
    int64_t C = x->dims[1];
    for (int k = 0; k < 5; k++)
        if (!s->in[k] || s->in[k]->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    for (int k = 1; k < 5; k++)
        if (s->in[k]->numel != C) FAIL(NN_ERR_SHAPE, "input %d has %lld elements, C = %lld", k, (long long)s->in[k]->numel, (long long)C);
    s->fp[0] = nn_attr_f(s->node, "epsilon", 1e-5f);
    nn_val_set_shape(s->out[0], NN_FLOAT, x->ndim, x->dims);
    for (int k = 1; k < s->n_out; k++) nn_val_set_shape(s->out[k], NN_FLOAT, 1, &C);
    return 0;
}

int nn_run_batchnorm(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const nn_val_t *x = s->in[0];
    const float *xv = x->data, *sc = s->in[1]->data, *bi = s->in[2]->data, *mu = s->in[3]->data, *var = s->in[4]->data;
    float *y = s->out[0]->data;
    int64_t N = x->dims[0], C = x->dims[1], inner = nn_numel(x->ndim - 2, x->dims + 2);
    for (int64_t c = 0; c < C; c++) {
        float a = sc[c] / sqrtf(var[c] + (float)s->fp[0]), b = bi[c] - mu[c] * a;
        for (int64_t n = 0; n < N; n++) {
            const float *xp = xv + (n * C + c) * inner;
            float *yp = y + (n * C + c) * inner;
            for (int64_t i = 0; i < inner; i++) yp[i] = xp[i] * a + b;
        }
    }
    return 0;
}

/* ---- LayerNormalization over the axes from `axis` on ---- */

int nn_infer_layernorm(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0], *sc = s->n_in > 1 ? s->in[1] : NULL, *b = s->n_in > 2 ? s->in[2] : NULL;
    if (!sc) FAIL(NN_ERR_INVALID, "Scale missing");
    if (x->dtype != NN_FLOAT || sc->dtype != NN_FLOAT || (b && b->dtype != NN_FLOAT)) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    int64_t a;
    if (nn_axis(nn_attr_i(s->node, "axis", -1), x->ndim, &a)) FAIL(NN_ERR_INVALID, "axis out of range");
    int64_t outer = nn_numel((int)a, x->dims), inner = nn_numel(x->ndim - (int)a, x->dims + a);
    if (sc->numel != inner && sc->numel != 1) FAIL(NN_ERR_SHAPE, "Scale has %lld elements, normalized size is %lld", (long long)sc->numel, (long long)inner);
    if (b && b->numel != inner && b->numel != 1) FAIL(NN_ERR_SHAPE, "B has %lld elements, normalized size is %lld", (long long)b->numel, (long long)inner);
    s->ip[0] = outer, s->ip[1] = inner;
    s->fp[0] = nn_attr_f(s->node, "epsilon", 1e-5f);
    nn_val_set_shape(s->out[0], NN_FLOAT, x->ndim, x->dims);
    int64_t d[NN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) d[i] = i < a ? x->dims[i] : 1;
    for (int k = 1; k < s->n_out && k < 3; k++) nn_val_set_shape(s->out[k], NN_FLOAT, x->ndim, d);
    return 0;
}

int nn_run_layernorm(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    int64_t outer = s->ip[0], inner = s->ip[1];
    const float *x = s->in[0]->data, *sc = s->in[1]->data;
    const float *b = s->n_in > 2 && s->in[2] ? s->in[2]->data : NULL;
    int64_t ss = s->in[1]->numel == 1 ? 0 : 1, bs = b && s->in[2]->numel == 1 ? 0 : 1;
    float *y = s->out[0]->data;
    float *mo = s->n_out > 1 ? s->out[1]->data : NULL, *io = s->n_out > 2 ? s->out[2]->data : NULL;
    for (int64_t o = 0; o < outer; o++) {
        const float *xv = x + o * inner;
        float *yv = y + o * inner;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < inner; i++) mean += xv[i];
        mean /= inner ? (double)inner : 1.0;
        for (int64_t i = 0; i < inner; i++) var += (xv[i] - mean) * (xv[i] - mean);
        var /= inner ? (double)inner : 1.0;
        double inv = 1.0 / sqrt(var + s->fp[0]);
        for (int64_t i = 0; i < inner; i++) yv[i] = (float)((xv[i] - mean) * inv) * sc[i * ss] + (b ? b[i * bs] : 0.0f);
        if (mo) mo[o] = (float)mean;
        if (io) io[o] = (float)inv;
    }
    return 0;
}
