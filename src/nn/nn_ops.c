/* Operators, part 1: the op table, element-wise ops with numpy broadcasting, activations,
 * Dropout, and the shape/data-movement ops. Each op is an infer function (plan time: check
 * inputs, set output shapes, precompute parameters) and a run function (no allocation).
 * Dense ops (Gemm, MatMul, norms, Softmax, ReduceMean) are in nn_ops_dense.c, recurrent
 * ones in nn_ops_rnn.c. */
#include "nn/nn_ops.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int nn_axis(int64_t a, int r, int64_t *out) {
    if (a < -r || a >= r) return -1;
    *out = a < 0 ? a + r : a;
    return 0;
}

int nn_const_ints(const nn_val_t *v, int64_t *buf, int max) {
    if (!v || !v->is_const || (v->dtype != NN_INT64 && v->dtype != NN_INT32) || v->numel > max) return -1;
    for (int64_t i = 0; i < v->numel; i++) buf[i] = nn_val_geti(v, i);
    return (int)v->numel;
}

/* ---- vectorizable exp, sigmoid, tanh (see nn_ops.h) ---- */

static inline float expf_fast(float x0) {
    float x = x0 > -87.0f ? x0 : -87.0f;   /* NaN -> -87 here, and back to NaN at the end */
    x = x < 88.0f ? x : 88.0f;
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - kf * 0.693145751953125f - kf * 1.42860682030941723e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return x0 == x0 ? p * s : x0;
}

/* The AVX2 + FMA versions in nn_kern.c when isa allows them and the CPU has them; this
 * portable loop otherwise. */
static int vec_ok(int isa, int64_t n) { return n >= 8 && isa >= NN_ISA_AVX2 && nn_kern_available(); }

void nn_vsigmoid(float *y, const float *x, int64_t n, int isa) {
    if (vec_ok(isa, n)) { nn_vsigmoid_avx2(y, x, n); return; }
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf_fast(-x[i]));
}

void nn_vtanh(float *y, const float *x, int64_t n, int isa) {
    if (vec_ok(isa, n)) { nn_vtanh_avx2(y, x, n); return; }
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], v2 = v * v;
        float small = v + v * v2 * (-1.0f / 3 + v2 * (2.0f / 15 + v2 * (-17.0f / 315 + v2 * (62.0f / 2835 + v2 * (-1382.0f / 155925)))));
        y[i] = fabsf(v) < 0.25f ? small : 2.0f / (1.0f + expf_fast(-2.0f * v)) - 1.0f;
    }
}

/* ---- Identity, activations ---- */

static int infer_same(nn_step_t *s, char *err, size_t errlen) {
    if (s->n_in < 1 || !s->in[0]) FAIL(NN_ERR_INVALID, "missing input");
    nn_val_set_shape(s->out[0], s->in[0]->dtype, s->in[0]->ndim, s->in[0]->dims);
    return 0;
}

static int infer_act(nn_step_t *s, char *err, size_t errlen) {
    int rc = infer_same(s, err, errlen);
    if (rc) return rc;
    if (s->in[0]->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "input type %s (float32 only)", nn_dtype_name(s->in[0]->dtype));
    s->fp[0] = nn_attr_f(s->node, "alpha", 0.01f);
    return 0;
}

static int run_identity(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    if (s->out[0]->data != s->in[0]->data)
        memcpy(s->out[0]->data, s->in[0]->data, (size_t)s->in[0]->numel * nn_dtype_size(s->in[0]->dtype));
    return 0;
}

static int run_relu(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    for (int64_t i = 0; i < s->in[0]->numel; i++) y[i] = x[i] > 0 ? x[i] : 0;
    return 0;
}

static int run_leaky(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data, a = (float)s->fp[0];
    for (int64_t i = 0; i < s->in[0]->numel; i++) y[i] = x[i] >= 0 ? x[i] : a * x[i];
    return 0;
}

static int run_tanh(nn_exec_t *ex, nn_step_t *s) {
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    if (!ex->reference) { nn_vtanh(y, x, s->in[0]->numel, s->isa); return 0; }
    for (int64_t i = 0; i < s->in[0]->numel; i++) y[i] = tanhf(x[i]);
    return 0;
}

static int run_sigmoid(nn_exec_t *ex, nn_step_t *s) {
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    if (!ex->reference) { nn_vsigmoid(y, x, s->in[0]->numel, s->isa); return 0; }
    for (int64_t i = 0; i < s->in[0]->numel; i++) y[i] = nn_sigmoidf(x[i]);
    return 0;
}

/* ---- Dropout ---- */

static int infer_dropout(nn_step_t *s, char *err, size_t errlen) {
    int rc = infer_same(s, err, errlen);
    if (rc) return rc;
    double ratio = 0.5;
    if (s->opset >= 12) {
        if (s->n_in > 1 && s->in[1]) {
            if (s->in[1]->numel != 1 || (s->in[1]->dtype != NN_FLOAT && s->in[1]->dtype != NN_DOUBLE)) FAIL(NN_ERR_INVALID, "ratio must be a float scalar");
            ratio = s->in[1]->is_const ? nn_val_getf(s->in[1], 0) : -1;   /* -1: read at run time */
        }
        if (s->n_in > 2 && s->in[2]) {
            if (!s->in[2]->is_const || s->in[2]->numel != 1) FAIL(NN_ERR_UNSUPPORTED, "training_mode must be a constant scalar");
            if (nn_val_geti(s->in[2], 0)) FAIL(NN_ERR_UNSUPPORTED, "training_mode=true: random masks only through MC runs");
        }
    } else {
        ratio = nn_attr_f(s->node, "ratio", 0.5f);
        if (nn_attr_i(s->node, "is_test", 1) == 0 && s->opset < 7) FAIL(NN_ERR_UNSUPPORTED, "is_test=0 unsupported");
    }
    if (!(ratio >= 0 && ratio < 1) && ratio != -1) FAIL(NN_ERR_INVALID, "ratio %g outside [0, 1)", ratio);
    s->fp[0] = ratio;
    if (s->n_out > 1) nn_val_set_shape(s->out[1], NN_BOOL, s->in[0]->ndim, s->in[0]->dims);
    return 0;
}

/* Inverted dropout: kept elements are scaled by 1/(1-ratio). In stacked MC mode the data is
 * [outer, passes, bax, inner] and element (o, q, b, i) uses pass q's mask at the index it has
 * in a single pass, (o * bax + b) * inner + i. */
static int run_dropout(nn_exec_t *ex, nn_step_t *s) {
    const nn_val_t *x = s->in[0];
    uint8_t *mask = s->n_out > 1 ? s->out[1]->data : NULL;
    if (ex->dropout_mode == 0) {
        run_identity(ex, s);
        if (mask) memset(mask, 1, (size_t)x->numel);
        return 0;
    }
    if (x->dtype != NN_FLOAT) return NN_ERR_UNSUPPORTED;
    const float *in = x->data;
    float *out = s->out[0]->data;
    double ratio = s->fp[0] >= 0 ? s->fp[0] : nn_val_getf(s->in[1], 0);
    if (!(ratio >= 0 && ratio < 1)) return NN_ERR_INVALID;
    float scale = (float)(1.0 / (1.0 - ratio));
    const uint64_t thr = nn_mask_threshold(ratio);
    if (ex->dropout_mode == 1) {
        uint64_t st = nn_mask_stream(ex->seed, s->node_index, ex->pass);
        for (int64_t i = 0; i < x->numel; i++) {
            int keep = nn_mask_bits(st, i) >= thr;
            out[i] = keep ? in[i] * scale : 0.0f;
            if (mask) mask[i] = (uint8_t)keep;
        }
        return 0;
    }
    int64_t outer = s->mc_outer, bax = s->mc_bax, inner = s->mc_inner;
    int P = s->mc_passes;
    for (int64_t o = 0; o < outer; o++)
        for (int q = 0; q < P; q++) {
            uint64_t st = nn_mask_stream(ex->seed, s->node_index, q);
            for (int64_t b = 0; b < bax; b++) {
                int64_t src = ((o * P + q) * bax + b) * inner, idx = (o * bax + b) * inner;
                for (int64_t i = 0; i < inner; i++) {
                    int keep = nn_mask_bits(st, idx + i) >= thr;
                    out[src + i] = keep ? in[src + i] * scale : 0.0f;
                    if (mask) mask[src + i] = (uint8_t)keep;
                }
            }
        }
    return 0;
}

/* ---- Add, Sub, Mul, Div with numpy broadcasting ---- */
/* ip[0] = op, ip[1] = out rank, ip[2..9] = out dims, ip[10..17] a strides, ip[18..25] b strides,
 * ip[26] = 1 when no broadcast is needed (same shapes), 2 when b is a scalar */

int nn_broadcast(const nn_val_t *a, const nn_val_t *b, int *ndim, int64_t *dims) {
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) return -1;
        dims[i] = da == 1 ? db : da;
    }
    *ndim = r;
    return 0;
}

void nn_bcast_strides(const nn_val_t *a, int r, const int64_t *dims, int64_t *st) {
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        int ia = i - (r - a->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1;
        st[i] = (da == 1 && dims[i] != 1) ? 0 : acc;
        acc *= da;
    }
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static int infer_binary(nn_step_t *s, int op, char *err, size_t errlen) {
    if (s->n_in < 2 || !s->in[0] || !s->in[1]) FAIL(NN_ERR_INVALID, "needs two inputs");
    const nn_val_t *a = s->in[0], *b = s->in[1];
    if (a->dtype != b->dtype) FAIL(NN_ERR_INVALID, "input types differ (%s, %s)", nn_dtype_name(a->dtype), nn_dtype_name(b->dtype));
    if (a->dtype != NN_FLOAT && a->dtype != NN_DOUBLE && a->dtype != NN_INT32 && a->dtype != NN_INT64)
        FAIL(NN_ERR_UNSUPPORTED, "type %s unsupported", nn_dtype_name(a->dtype));
    int r;
    int64_t dims[NN_MAX_DIMS] = { 0 };
    if (nn_broadcast(a, b, &r, dims))
        FAIL(NN_ERR_SHAPE, "shapes do not broadcast (rank %d and %d, first dims %lld and %lld)", a->ndim, b->ndim,
             (long long)(a->ndim ? a->dims[0] : 1), (long long)(b->ndim ? b->dims[0] : 1));
    nn_val_set_shape(s->out[0], a->dtype, r, dims);
    s->ip[0] = op;
    s->ip[1] = r;
    for (int i = 0; i < r; i++) s->ip[2 + i] = dims[i];
    nn_bcast_strides(a, r, dims, s->ip + 10);
    nn_bcast_strides(b, r, dims, s->ip + 18);
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->dims[i] == b->dims[i];
    s->ip[26] = same ? 1 : (b->numel == 1 && a->numel == s->out[0]->numel) ? 2 : 0;
    return 0;
}

#define BIN_APPLY(T, op, x, y) \
    ((op) == OP_ADD ? (T)((x) + (y)) : (op) == OP_SUB ? (T)((x) - (y)) : (op) == OP_MUL ? (T)((x) * (y)) : div_##T((x), (y)))

static inline float div_float(float x, float y) { return x / y; }
static inline double div_double(double x, double y) { return x / y; }
static inline int32_t div_int32_t(int32_t x, int32_t y) { return y == 0 || (y == -1 && x == INT32_MIN) ? 0 : x / y; }
static inline int64_t div_int64_t(int64_t x, int64_t y) { return y == 0 || (y == -1 && x == INT64_MIN) ? 0 : x / y; }

#define BIN_KERNEL(T)                                                                              \
    static void bin_##T(const nn_step_t *s) {                                                      \
        const T *A = s->in[0]->data, *B = s->in[1]->data;                                          \
        T *C = s->out[0]->data;                                                                    \
        int op = (int)s->ip[0], r = (int)s->ip[1];                                                 \
        int64_t n = s->out[0]->numel;                                                              \
        if (n == 0) return;                                                                        \
        if (s->ip[26] == 1) {                                                                      \
            switch (op) {                                                                          \
            case OP_ADD: for (int64_t i = 0; i < n; i++) C[i] = A[i] + B[i]; break;                \
            case OP_SUB: for (int64_t i = 0; i < n; i++) C[i] = A[i] - B[i]; break;                \
            case OP_MUL: for (int64_t i = 0; i < n; i++) C[i] = A[i] * B[i]; break;                \
            default: for (int64_t i = 0; i < n; i++) C[i] = div_##T(A[i], B[i]);                   \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        if (s->ip[26] == 2) {                                                                      \
            T y = B[0];                                                                            \
            for (int64_t i = 0; i < n; i++) C[i] = BIN_APPLY(T, op, A[i], y);                      \
            return;                                                                                \
        }                                                                                          \
        if (r == 0) { C[0] = BIN_APPLY(T, op, A[0], B[0]); return; }                               \
        const int64_t *dims = s->ip + 2, *sa = s->ip + 10, *sb = s->ip + 18;                       \
        int64_t idx[NN_MAX_DIMS] = { 0 }, inner = dims[r - 1], ia = 0, ib = 0;                     \
        int64_t la = sa[r - 1], lb = sb[r - 1];                                                    \
        for (int64_t base = 0; base < n; base += inner) {                                          \
            T *c = C + base;                                                                       \
            switch (op) {                                                                          \
            case OP_ADD: for (int64_t i = 0; i < inner; i++) c[i] = A[ia + i * la] + B[ib + i * lb]; break; \
            case OP_SUB: for (int64_t i = 0; i < inner; i++) c[i] = A[ia + i * la] - B[ib + i * lb]; break; \
            case OP_MUL: for (int64_t i = 0; i < inner; i++) c[i] = A[ia + i * la] * B[ib + i * lb]; break; \
            default: for (int64_t i = 0; i < inner; i++) c[i] = div_##T(A[ia + i * la], B[ib + i * lb]);   \
            }                                                                                      \
            for (int d = r - 2; d >= 0; d--) {                                                     \
                idx[d]++;                                                                          \
                ia += sa[d];                                                                       \
                ib += sb[d];                                                                       \
                if (idx[d] < dims[d]) break;                                                       \
                ia -= sa[d] * dims[d];                                                             \
                ib -= sb[d] * dims[d];                                                             \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

BIN_KERNEL(float)
BIN_KERNEL(double)
BIN_KERNEL(int32_t)
BIN_KERNEL(int64_t)

static int run_binary(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    switch (s->out[0]->dtype) {
    case NN_FLOAT: bin_float(s); break;
    case NN_DOUBLE: bin_double(s); break;
    case NN_INT32: bin_int32_t(s); break;
    default: bin_int64_t(s);
    }
    return 0;
}

static int infer_add(nn_step_t *s, char *err, size_t errlen) { return infer_binary(s, OP_ADD, err, errlen); }
static int infer_sub(nn_step_t *s, char *err, size_t errlen) { return infer_binary(s, OP_SUB, err, errlen); }
static int infer_mul(nn_step_t *s, char *err, size_t errlen) { return infer_binary(s, OP_MUL, err, errlen); }
static int infer_div(nn_step_t *s, char *err, size_t errlen) { return infer_binary(s, OP_DIV, err, errlen); }

/* ---- Reshape, Flatten, Squeeze, Unsqueeze (copies; the data does not move) ---- */

static int infer_reshape(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int64_t shp[NN_MAX_DIMS + 1];
    int n;
    if (s->opset >= 5) {
        if (s->n_in < 2 || !s->in[1]) FAIL(NN_ERR_INVALID, "missing shape input");
        n = nn_const_ints(s->in[1], shp, NN_MAX_DIMS);
        if (n < 0) FAIL(s->in[1]->is_const ? NN_ERR_UNSUPPORTED : NN_ERR_UNSUPPORTED, "shape input must be a constant int64 tensor of rank <= %d", NN_MAX_DIMS);
    } else {
        const int64_t *a = nn_attr_ints(s->node, "shape", &n);
        if (n < 0 || n > NN_MAX_DIMS) FAIL(NN_ERR_INVALID, "bad shape attribute");
        for (int i = 0; i < n; i++) shp[i] = a[i];
    }
    int allowzero = (int)nn_attr_i(s->node, "allowzero", 0);
    int neg = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (shp[i] == 0 && !allowzero) {
            if (i >= x->ndim) FAIL(NN_ERR_SHAPE, "shape[%d] = 0 copies a dimension the input does not have", i);
            shp[i] = x->dims[i];
        }
        if (shp[i] == -1) {
            if (neg >= 0) FAIL(NN_ERR_SHAPE, "more than one -1 in shape");
            neg = i;
        } else if (shp[i] < 0 || shp[i] > (INT64_C(1) << 40) || (shp[i] > 0 && known > (INT64_C(1) << 40) / shp[i])) {
            /* (the product is checked before it is formed: found by the libFuzzer target) */
            FAIL(NN_ERR_SHAPE, "shape[%d] = %lld (more than 2^40 elements)", i, (long long)shp[i]);
        } else {
            known *= shp[i];
        }
    }
    if (neg >= 0) {
        if (known == 0 || x->numel % known) FAIL(NN_ERR_SHAPE, "cannot infer -1: %lld elements into blocks of %lld", (long long)x->numel, (long long)known);
        shp[neg] = x->numel / known;
        known *= shp[neg];
    }
    if (known != x->numel) FAIL(NN_ERR_SHAPE, "shape has %lld elements, input has %lld", (long long)known, (long long)x->numel);
    nn_val_set_shape(s->out[0], x->dtype, n, shp);
    return 0;
}

static int infer_flatten(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int64_t a;
    a = nn_attr_i(s->node, "axis", 1);
    if (a < 0) a += x->ndim;
    if (a < 0 || a > x->ndim) FAIL(NN_ERR_INVALID, "axis out of range");
    int64_t d[2] = { nn_numel((int)a, x->dims), nn_numel(x->ndim - (int)a, x->dims + a) };
    nn_val_set_shape(s->out[0], x->dtype, 2, d);
    return 0;
}

static int get_axes(nn_step_t *s, int64_t *axes, int max, char *err, size_t errlen) {
    int n = -1;
    if (s->opset >= 13) {
        if (s->n_in > 1 && s->in[1]) {
            n = nn_const_ints(s->in[1], axes, max);
            if (n < 0) FAIL(NN_ERR_UNSUPPORTED, "axes input must be a constant int tensor");
        }
    } else {
        const int64_t *a = nn_attr_ints(s->node, "axes", &n);
        if (n > max) FAIL(NN_ERR_INVALID, "too many axes");
        for (int i = 0; i < n; i++) axes[i] = a[i];
    }
    return n;
}

static int infer_squeeze(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int64_t axes[NN_MAX_DIMS * 2], d[NN_MAX_DIMS];
    int n = get_axes(s, axes, NN_MAX_DIMS * 2, err, errlen);
    if (n < -1) return n;
    char drop[NN_MAX_DIMS] = { 0 };
    if (n < 0) {
        for (int i = 0; i < x->ndim; i++) drop[i] = x->dims[i] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int64_t a;
            if (nn_axis(axes[i], x->ndim, &a)) FAIL(NN_ERR_INVALID, "axis %lld out of range", (long long)axes[i]);
            if (x->dims[a] != 1) FAIL(NN_ERR_SHAPE, "cannot squeeze axis %lld of size %lld", (long long)a, (long long)x->dims[a]);
            drop[a] = 1;
        }
    }
    int r = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!drop[i]) d[r++] = x->dims[i];
    nn_val_set_shape(s->out[0], x->dtype, r, d);
    return 0;
}

static int infer_unsqueeze(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int64_t axes[NN_MAX_DIMS * 2], d[NN_MAX_DIMS];
    int n = get_axes(s, axes, NN_MAX_DIMS * 2, err, errlen);
    if (n < -1) return n;
    if (n < 0) FAIL(NN_ERR_INVALID, "axes missing");
    int r = x->ndim + n;
    if (r > NN_MAX_DIMS) FAIL(NN_ERR_UNSUPPORTED, "rank %d too large", r);
    char ins[NN_MAX_DIMS] = { 0 };
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (nn_axis(axes[i], r, &a) || ins[a]) FAIL(NN_ERR_INVALID, "axis %lld out of range or repeated", (long long)axes[i]);
        ins[a] = 1;
    }
    for (int i = 0, k = 0; i < r; i++) d[i] = ins[i] ? 1 : x->dims[k++];
    nn_val_set_shape(s->out[0], x->dtype, r, d);
    return 0;
}

/* ---- Transpose ---- */
/* ip[0] = rank, ip[1..8] = out dims, ip[9..16] = input stride of each output axis */

static int infer_transpose(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int n, r = x->ndim;
    const int64_t *perm = nn_attr_ints(s->node, "perm", &n);
    int64_t p[NN_MAX_DIMS], d[NN_MAX_DIMS], st[NN_MAX_DIMS];
    char seen[NN_MAX_DIMS] = { 0 };
    if (n >= 0 && n != r) FAIL(NN_ERR_INVALID, "perm has %d entries for rank %d", n, r);
    for (int i = 0; i < r; i++) {
        p[i] = n >= 0 ? perm[i] : r - 1 - i;
        if (p[i] < 0 || p[i] >= r || seen[p[i]]) FAIL(NN_ERR_INVALID, "bad perm");
        seen[p[i]] = 1;
    }
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) { st[i] = acc; acc *= x->dims[i]; }
    s->ip[0] = r;
    for (int i = 0; i < r; i++) {
        d[i] = x->dims[p[i]];
        s->ip[1 + i] = d[i];
        s->ip[9 + i] = st[p[i]];
    }
    nn_val_set_shape(s->out[0], x->dtype, r, d);
    return 0;
}

/* Odometer copy: out (contiguous, dims) <- in at offsets sum(idx[d] * st[d]) + base. */
void nn_strided_copy(void *out, const void *in, size_t es, int r, const int64_t *dims, const int64_t *st, int64_t base) {
    int64_t n = nn_numel(r, dims);
    if (n == 0) return;
    if (r == 0) { memcpy(out, (const char *)in + base * (int64_t)es, es); return; }
    int64_t idx[NN_MAX_DIMS] = { 0 }, off = base, inner = dims[r - 1], ls = st[r - 1];
    for (int64_t o = 0; o < n; o += inner) {
        if (es == 4) {
            float *y = (float *)out + o;
            const float *x = (const float *)in + off;
            for (int64_t i = 0; i < inner; i++) y[i] = x[i * ls];
        } else {
            for (int64_t i = 0; i < inner; i++)
                memcpy((char *)out + (o + i) * (int64_t)es, (const char *)in + (off + i * ls) * (int64_t)es, es);
        }
        for (int d = r - 2; d >= 0; d--) {
            idx[d]++;
            off += st[d];
            if (idx[d] < dims[d]) break;
            off -= st[d] * dims[d];
            idx[d] = 0;
        }
    }
}

static int run_transpose(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    nn_strided_copy(s->out[0]->data, s->in[0]->data, nn_dtype_size(s->in[0]->dtype), (int)s->ip[0], s->ip + 1, s->ip + 9, 0);
    return 0;
}

/* ---- Concat ---- */

static int infer_concat(nn_step_t *s, char *err, size_t errlen) {
    if (s->n_in < 1) FAIL(NN_ERR_INVALID, "no inputs");
    const nn_val_t *x0 = s->in[0];
    if (!x0) FAIL(NN_ERR_INVALID, "missing input");
    int64_t a;
    const Onnx__AttributeProto *at = nn_attr(s->node, "axis");
    if (!at && s->opset >= 4) FAIL(NN_ERR_INVALID, "axis missing");
    if (nn_axis(at ? at->i : 1, x0->ndim, &a)) FAIL(NN_ERR_INVALID, "axis out of range");
    int64_t d[NN_MAX_DIMS];
    memcpy(d, x0->dims, sizeof d);
    d[a] = 0;
    for (int k = 0; k < s->n_in; k++) {
        const nn_val_t *x = s->in[k];
        if (!x || x->dtype != x0->dtype || x->ndim != x0->ndim) FAIL(NN_ERR_SHAPE, "input %d type or rank differs", k);
        for (int i = 0; i < x->ndim; i++)
            if (i != a && x->dims[i] != x0->dims[i]) FAIL(NN_ERR_SHAPE, "input %d: dim %d is %lld, expected %lld", k, i, (long long)x->dims[i], (long long)x0->dims[i]);
        d[a] += x->dims[a];
    }
    s->ip[0] = a;
    nn_val_set_shape(s->out[0], x0->dtype, x0->ndim, d);
    return 0;
}

static int run_concat(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const nn_val_t *o = s->out[0];
    int a = (int)s->ip[0];
    size_t es = nn_dtype_size(o->dtype);
    int64_t outer = nn_numel(a, o->dims), inner = nn_numel(o->ndim - a - 1, o->dims + a + 1);
    char *y = o->data;
    for (int64_t q = 0; q < outer; q++)
        for (int k = 0; k < s->n_in; k++) {
            size_t blk = (size_t)(s->in[k]->dims[a] * inner) * es;
            memcpy(y, (const char *)s->in[k]->data + q * blk, blk);
            y += blk;
        }
    return 0;
}

/* ---- Slice ---- */
/* ip[0] = rank, ip[1..8] = out dims, ip[9..16] = input strides * step, ip[17] = base offset */

static int infer_slice(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int r = x->ndim;
    int64_t st[NN_MAX_DIMS * 2], en[NN_MAX_DIMS * 2], ax[NN_MAX_DIMS * 2], sp[NN_MAX_DIMS * 2];
    int n, ne, na = -1, ns = -1;
    if (s->opset >= 10) {
        if (s->n_in < 3) FAIL(NN_ERR_INVALID, "starts and ends needed");
        n = nn_const_ints(s->in[1], st, NN_MAX_DIMS * 2);
        ne = nn_const_ints(s->in[2], en, NN_MAX_DIMS * 2);
        if (s->n_in > 3 && s->in[3]) na = nn_const_ints(s->in[3], ax, NN_MAX_DIMS * 2);
        if (s->n_in > 4 && s->in[4]) ns = nn_const_ints(s->in[4], sp, NN_MAX_DIMS * 2);
        if (n < 0 || ne < 0 || (s->n_in > 3 && s->in[3] && na < 0) || (s->n_in > 4 && s->in[4] && ns < 0))
            FAIL(NN_ERR_UNSUPPORTED, "starts/ends/axes/steps must be constant int tensors");
    } else {
        const int64_t *a = nn_attr_ints(s->node, "starts", &n), *b = nn_attr_ints(s->node, "ends", &ne), *c = nn_attr_ints(s->node, "axes", &na);
        if (n < 0 || ne < 0 || n > NN_MAX_DIMS * 2 || na > NN_MAX_DIMS * 2) FAIL(NN_ERR_INVALID, "starts/ends missing");
        for (int i = 0; i < n; i++) st[i] = a[i];
        for (int i = 0; i < ne && i < n; i++) en[i] = b[i];
        for (int i = 0; i < na; i++) ax[i] = c[i];
    }
    if (ne != n || (na >= 0 && na != n) || (ns >= 0 && ns != n)) FAIL(NN_ERR_INVALID, "starts/ends/axes/steps lengths differ");
    int64_t lo[NN_MAX_DIMS], step[NN_MAX_DIMS], d[NN_MAX_DIMS], str[NN_MAX_DIMS];
    char seen[NN_MAX_DIMS] = { 0 };
    for (int i = 0; i < r; i++) { lo[i] = 0; step[i] = 1; d[i] = x->dims[i]; }
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (nn_axis(na >= 0 ? ax[i] : i, r, &a) || seen[a]) FAIL(NN_ERR_INVALID, "axis out of range or repeated");
        seen[a] = 1;
        int64_t dim = x->dims[a], k = ns >= 0 ? sp[i] : 1, b = st[i], e = en[i];
        if (k == 0) FAIL(NN_ERR_INVALID, "step 0");
        if (b < 0) b = b < -dim ? 0 : b + dim;   /* written to avoid overflow on INT64_MIN */
        if (e < 0) e = e < -dim ? -1 : e + dim;
        else if (e > dim) e = dim;
        if (k > 0) {
            if (b > dim) b = dim;
            if (e < 0) e = 0;
            d[a] = e > b ? (e - b + k - 1) / k : 0;
        } else {
            if (b > dim - 1) b = dim - 1;
            if (e < -1) e = -1;
            d[a] = b > e ? (b - e + (-k) - 1) / (-k) : 0;
        }
        lo[a] = b;
        step[a] = k;
    }
    int64_t acc = 1, base = 0;
    for (int i = r - 1; i >= 0; i--) { str[i] = acc; acc *= x->dims[i]; }
    s->ip[0] = r;
    for (int i = 0; i < r; i++) {
        s->ip[1 + i] = d[i];
        s->ip[9 + i] = str[i] * step[i];
        if (d[i]) base += lo[i] * str[i];
    }
    s->ip[17] = base;
    nn_val_set_shape(s->out[0], x->dtype, r, d);
    return 0;
}

static int run_slice(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    nn_strided_copy(s->out[0]->data, s->in[0]->data, nn_dtype_size(s->in[0]->dtype), (int)s->ip[0], s->ip + 1, s->ip + 9, s->ip[17]);
    return 0;
}

/* ---- Gather ---- */

static int infer_gather(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0], *ind = s->n_in > 1 ? s->in[1] : NULL;
    if (!ind || (ind->dtype != NN_INT64 && ind->dtype != NN_INT32)) FAIL(NN_ERR_INVALID, "indices must be int32/int64");
    int64_t a;
    if (nn_axis(nn_attr_i(s->node, "axis", 0), x->ndim, &a)) FAIL(NN_ERR_INVALID, "axis out of range");
    int r = x->ndim - 1 + ind->ndim;
    if (r > NN_MAX_DIMS) FAIL(NN_ERR_UNSUPPORTED, "output rank %d", r);
    int64_t d[NN_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < a; i++) d[k++] = x->dims[i];
    for (int i = 0; i < ind->ndim; i++) d[k++] = ind->dims[i];
    for (int i = (int)a + 1; i < x->ndim; i++) d[k++] = x->dims[i];
    s->ip[0] = a;
    nn_val_set_shape(s->out[0], x->dtype, r, d);
    return 0;
}

static int run_gather(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const nn_val_t *x = s->in[0], *ind = s->in[1];
    int a = (int)s->ip[0];
    size_t es = nn_dtype_size(x->dtype);
    int64_t outer = nn_numel(a, x->dims), dim = x->dims[a], inner = nn_numel(x->ndim - a - 1, x->dims + a + 1);
    size_t blk = (size_t)inner * es;
    char *y = s->out[0]->data;
    for (int64_t q = 0; q < outer; q++)
        for (int64_t j = 0; j < ind->numel; j++) {
            int64_t i = nn_val_geti(ind, j);
            if (i < 0) i += dim;
            if (i < 0 || i >= dim) return NN_ERR_INVALID;
            memcpy(y, (const char *)x->data + ((size_t)(q * dim + i)) * blk, blk);
            y += blk;
        }
    return 0;
}

/* ---- Shape, Constant, ConstantOfShape, Cast ---- */

static int infer_shape(nn_step_t *s, char *err, size_t errlen) {
    const nn_val_t *x = s->in[0];
    int r = x->ndim;
    int64_t b = 0, e = r;
    if (s->opset >= 15) {
        b = nn_attr_i(s->node, "start", 0);
        e = nn_attr_i(s->node, "end", r);
        if (b < 0) b += r;
        if (e < 0) e += r;
        b = b < 0 ? 0 : b > r ? r : b;
        e = e < 0 ? 0 : e > r ? r : e;
    }
    int64_t n = e > b ? e - b : 0;
    nn_val_t *o = s->out[0];
    nn_val_set_shape(o, NN_INT64, 1, &n);
    o->owned = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!o->owned) FAIL(NN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) ((int64_t *)o->owned)[i] = x->dims[b + i];
    o->data = o->owned;
    o->is_const = 1;   /* known at plan time: the planner drops the step */
    return 0;
}

static int run_none(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    (void)s;
    return 0;
}

/* Constant and ConstantOfShape keep their value in step->packed (an nn_tensor_t + data). */
static int infer_constant(nn_step_t *s, char *err, size_t errlen) {
    const nn_node_t *n = s->node;
    nn_tensor_t t;
    memset(&t, 0, sizeof t);
    const Onnx__AttributeProto *a;
    int rc;
    if ((a = nn_attr(n, "value")) && a->t) {
        rc = nn_tensor_from_proto(a->t, &t, err, errlen);
        if (rc) return rc;
    } else if ((a = nn_attr(n, "value_float")) && a->has_f) {
        t.dtype = NN_FLOAT;
        t.data = malloc(4);
        if (t.data) *(float *)t.data = a->f;
    } else if ((a = nn_attr(n, "value_int")) && a->has_i) {
        t.dtype = NN_INT64;
        t.data = malloc(8);
        if (t.data) *(int64_t *)t.data = a->i;
    } else if ((a = nn_attr(n, "value_floats"))) {
        t.dtype = NN_FLOAT;
        t.ndim = 1;
        t.dims[0] = (int64_t)a->n_floats;
        t.data = malloc(4 * a->n_floats + 4);
        if (t.data) memcpy(t.data, a->floats, 4 * a->n_floats);
    } else if ((a = nn_attr(n, "value_ints"))) {
        t.dtype = NN_INT64;
        t.ndim = 1;
        t.dims[0] = (int64_t)a->n_ints;
        t.data = malloc(8 * a->n_ints + 8);
        if (t.data) memcpy(t.data, a->ints, 8 * a->n_ints);
    } else {
        FAIL(NN_ERR_UNSUPPORTED, "no supported value attribute (sparse or string constants are not)");
    }
    if (!t.data) FAIL(NN_ERR_NOMEM, "out of memory");
    nn_val_t *o = s->out[0];
    nn_val_set_shape(o, t.dtype, t.ndim, t.dims);
    o->owned = t.data;
    o->data = t.data;
    o->is_const = 1;
    return 0;
}

static int infer_constant_of_shape(nn_step_t *s, char *err, size_t errlen) {
    int64_t d[NN_MAX_DIMS + 1];
    int n = nn_const_ints(s->in[0], d, NN_MAX_DIMS);
    if (n < 0) FAIL(NN_ERR_UNSUPPORTED, "shape input must be a constant int64 tensor of at most %d values", NN_MAX_DIMS);
    for (int i = 0; i < n; i++)
        if (d[i] < 0) FAIL(NN_ERR_SHAPE, "negative dimension %lld", (long long)d[i]);
    nn_tensor_t t;
    memset(&t, 0, sizeof t);
    const Onnx__AttributeProto *a = nn_attr(s->node, "value");
    if (a && a->t) {
        int rc = nn_tensor_from_proto(a->t, &t, err, errlen);
        if (rc) return rc;
        if (nn_tensor_numel(&t) != 1) { free(t.data); FAIL(NN_ERR_INVALID, "value must have one element"); }
    } else {
        t.dtype = NN_FLOAT;
        t.data = calloc(1, 8);
        if (!t.data) FAIL(NN_ERR_NOMEM, "out of memory");
    }
    s->packed = t.data;
    nn_val_set_shape(s->out[0], t.dtype, n, d);
    return 0;
}

static int run_constant_of_shape(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    size_t es = nn_dtype_size(s->out[0]->dtype);
    for (int64_t i = 0; i < s->out[0]->numel; i++) memcpy((char *)s->out[0]->data + (size_t)i * es, s->packed, es);
    return 0;
}

static int infer_cast(nn_step_t *s, char *err, size_t errlen) {
    int to = (int)nn_attr_i(s->node, "to", 0);
    if (!nn_dtype_size(to)) FAIL(NN_ERR_UNSUPPORTED, "cast to %s unsupported", nn_dtype_name(to));
    if (!nn_dtype_size(s->in[0]->dtype)) FAIL(NN_ERR_UNSUPPORTED, "cast from %s unsupported", nn_dtype_name(s->in[0]->dtype));
    nn_val_set_shape(s->out[0], to, s->in[0]->ndim, s->in[0]->dims);
    return 0;
}

static int64_t clamp_i(double v, double lo, double hi) {
    if (!(v == v)) return 0;
    if (v < lo) return (int64_t)lo;
    if (v > hi) return (int64_t)hi;
    return (int64_t)v;
}

static int run_cast(nn_exec_t *ex, nn_step_t *s) {
    (void)ex;
    const nn_val_t *x = s->in[0];
    nn_val_t *o = s->out[0];
    int fl = x->dtype == NN_FLOAT || x->dtype == NN_DOUBLE;
    for (int64_t i = 0; i < x->numel; i++) {
        double f = fl ? nn_val_getf(x, i) : 0;
        int64_t v = fl ? 0 : nn_val_geti(x, i);
        switch (o->dtype) {
        case NN_FLOAT: ((float *)o->data)[i] = fl ? (float)f : (float)v; break;
        case NN_DOUBLE: ((double *)o->data)[i] = fl ? f : (double)v; break;
        case NN_INT64: ((int64_t *)o->data)[i] = fl ? clamp_i(f, -9.2e18, 9.2e18) : v; break;
        case NN_INT32: ((int32_t *)o->data)[i] = fl ? (int32_t)clamp_i(f, INT32_MIN, INT32_MAX) : (int32_t)v; break;
        case NN_INT8: ((int8_t *)o->data)[i] = fl ? (int8_t)clamp_i(f, -128, 127) : (int8_t)v; break;
        case NN_UINT8: ((uint8_t *)o->data)[i] = fl ? (uint8_t)clamp_i(f, 0, 255) : (uint8_t)v; break;
        default: ((uint8_t *)o->data)[i] = fl ? f != 0 : v != 0;
        }
    }
    return 0;
}

/* ---- the table ---- */

const nn_op_t nn_ops[] = {
    { "Identity", infer_same, run_identity, 1, NULL },
    { "Relu", infer_act, run_relu, 1, NULL },
    { "LeakyRelu", infer_act, run_leaky, 1, NULL },
    { "Tanh", infer_act, run_tanh, 1, NULL },
    { "Sigmoid", infer_act, run_sigmoid, 1, NULL },
    { "Dropout", infer_dropout, run_dropout, 1, NULL },
    { "Add", infer_add, run_binary, 2, NULL },
    { "Sub", infer_sub, run_binary, 2, NULL },
    { "Mul", infer_mul, run_binary, 2, NULL },
    { "Div", infer_div, run_binary, 2, NULL },
    { "Reshape", infer_reshape, run_identity, 1, NULL },
    { "Flatten", infer_flatten, run_identity, 1, NULL },
    { "Squeeze", infer_squeeze, run_identity, 1, NULL },
    { "Unsqueeze", infer_unsqueeze, run_identity, 1, NULL },
    { "Transpose", infer_transpose, run_transpose, 1, NULL },
    { "Concat", infer_concat, run_concat, 1, NULL },
    { "Slice", infer_slice, run_slice, 1, NULL },
    { "Gather", infer_gather, run_gather, 2, NULL },
    { "Shape", infer_shape, run_none, 1, NULL },
    { "Constant", infer_constant, run_none, 0, NULL },
    { "ConstantOfShape", infer_constant_of_shape, run_constant_of_shape, 1, NULL },
    { "Cast", infer_cast, run_cast, 1, NULL },
    { "Gemm", nn_infer_gemm, nn_run_gemm, 2, NULL },
    { "MatMul", nn_infer_matmul, nn_run_matmul, 2, NULL },
    { "Softmax", nn_infer_softmax, nn_run_softmax, 1, NULL },
    { "ReduceMean", nn_infer_reduce_mean, nn_run_reduce_mean, 1, NULL },
    { "BatchNormalization", nn_infer_batchnorm, nn_run_batchnorm, 5, NULL },
    { "LayerNormalization", nn_infer_layernorm, nn_run_layernorm, 2, NULL },
    { "LSTM", nn_infer_lstm, nn_run_lstm, 3, nn_rnn_x_batch_first },
    { "GRU", nn_infer_gru, nn_run_gru, 3, nn_rnn_x_batch_first },
    { "RNN", nn_infer_rnn, nn_run_rnn, 3, nn_rnn_x_batch_first },
};
const int nn_n_ops = (int)(sizeof nn_ops / sizeof nn_ops[0]);

int nn_op_find(const char *name) {
    for (int i = 0; i < nn_n_ops; i++)
        if (strcmp(nn_ops[i].name, name) == 0) return i;
    return -1;
}

int nn_n_supported_ops(void) { return nn_n_ops; }

const char *nn_supported_op(int i) { return i >= 0 && i < nn_n_ops ? nn_ops[i].name : NULL; }
