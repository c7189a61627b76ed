/* Internal structures of the nn engine, shared by the loader, the planner and the kernels. */
#ifndef PREDICTD_NN_INTERNAL_H
#define PREDICTD_NN_INTERNAL_H

#include "nn/nn.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <stdarg.h>

/* A named value of the graph: a graph input, an initializer or a node output. */
typedef struct {
    char *name;          /* points into the protobuf tree */
    int is_input;        /* a runtime graph input */
    int has_info;        /* dtype/dims known from the graph's value infos */
    nn_tensor_t info;    /* declared type (dims -1 = symbolic) */
    int is_init;         /* initializer or Constant-free data: init holds it */
    nn_tensor_t init;    /* owned data */
    int producer;        /* node index, -1 if none */
} nn_value_t;

typedef struct {
    const Onnx__NodeProto *proto;
    const char *op;
    const char *name;
    int op_id;           /* index in the op table */
    int n_in, n_out;
    int *in;             /* value ids; -1 for an empty (absent optional) input */
    int *out;            /* value ids; -1 for an unused optional output */
} nn_node_t;

struct nn_model {
    Onnx__ModelProto *proto;
    int64_t opset;
    nn_value_t *values;
    int n_values;
    nn_node_t *nodes;
    int n_nodes;
    int *order;          /* topological order of the nodes */
    int *inputs, n_inputs;
    int *outputs, n_outputs;
    int flags;           /* NN_LOAD_* */
};

/* A value inside a plan: shape, and where its data lives. */
typedef struct {
    int dtype;
    int ndim;
    int64_t dims[NN_MAX_DIMS];
    int64_t numel;
    void *data;          /* constant data, or arena + offset once the arena exists */
    int is_const;        /* known at plan time (initializer or folded) */
    void *owned;         /* plan-owned constant data */
    int in_arena;
    size_t bytes, offset;
    int first, last;     /* steps that write first / read last (liveness) */
    int unread;          /* written by its step, read by no other and not a graph output:
                            its kernel may skip it (planner sets it after liveness) */
    int borrowed;        /* a runtime input that is not a graph output: during a run, data is
                            the caller's buffer (no copy into the arena; kernels never write
                            their inputs) */
} nn_val_t;

typedef struct nn_pool nn_pool_t;

typedef struct {
    nn_pool_t *pool;
    int threads;
    int reference;
    int dropout_mode;    /* 0: identity, 1: one pass (pass index below), 2: passes stacked */
    uint64_t seed;
    int pass;
} nn_exec_t;

typedef struct nn_step nn_step_t;

typedef struct {
    const char *name;
    /* Checks inputs, sets the outputs' dtype and dims, fills the step's params; may pack
     * constant weights (step->packed) and ask for scratch (step->scratch_bytes). */
    int (*infer)(nn_step_t *s, char *err, size_t errlen);
    int (*run)(nn_exec_t *ex, nn_step_t *s);
    int min_in;          /* inputs that must be present (the planner checks them) */
    /* Optional, after infer: asks the step to read its input 0 as [B, T, ...] where it was
     * [T, B, ...]; 1 if it will. The planner then drops a Transpose(perm 1, 0, 2) before it
     * and gives it the Transpose's input (one copy of the whole input less per run). */
    int (*x_batch_first)(nn_step_t *s);
} nn_op_t;

struct nn_step {
    const nn_node_t *node;
    const nn_op_t *op;
    int node_index;
    int64_t opset;
    int isa;             /* the plan's NN_ISA_* (resolved: never NN_ISA_BEST) */
    int reference;       /* the plan runs the plain reference kernels (nn_plan_opts_t) */
    int n_in, n_out;
    nn_val_t **in;       /* NULL entries for absent optional inputs */
    nn_val_t **out;      /* NULL entries for unused optional outputs (kernels skip them) */
    int64_t ip[64];      /* op parameters computed at plan time */
    double fp[8];
    void *packed;        /* plan-owned packed weights */
    size_t scratch_bytes;
    void *scratch;       /* arena scratch, live during this step only */
    nn_val_t scratch_val;
    /* For Dropout in stacked MC mode: data viewed as [outer, passes, bax, inner]. */
    int64_t mc_outer, mc_bax, mc_inner;
    int mc_passes;
    int is_tile;         /* a plan-inserted step: repeat in[0] passes times on its batch axis */
};

extern const nn_op_t nn_ops[];
extern const int nn_n_ops;
int nn_op_find(const char *name);

/* errors */
int nn_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* attributes of a node */
const Onnx__AttributeProto *nn_attr(const nn_node_t *n, const char *name);
int64_t nn_attr_i(const nn_node_t *n, const char *name, int64_t def);
float nn_attr_f(const nn_node_t *n, const char *name, float def);
const int64_t *nn_attr_ints(const nn_node_t *n, const char *name, int *count);
const float *nn_attr_floats(const nn_node_t *n, const char *name, int *count);
/* string attribute copied into buf; returns 0 if absent (buf = def) */
int nn_attr_s(const nn_node_t *n, const char *name, char *buf, size_t len, const char *def);

int nn_tensor_from_proto(const Onnx__TensorProto *tp, nn_tensor_t *out, char *err, size_t errlen);

/* values */
/* Element count; -1 for a negative dimension, one over 2^40, or a count over 2^62. */
static inline int64_t nn_numel(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > (INT64_C(1) << 40)) return -1;
        if (dims[i] && n > (INT64_C(1) << 62) / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}
void nn_val_set_shape(nn_val_t *v, int dtype, int ndim, const int64_t *dims);
/* Reads element i of an integer-typed (int32/int64) value as int64. */
int64_t nn_val_geti(const nn_val_t *v, int64_t i);
double nn_val_getf(const nn_val_t *v, int64_t i);

/* dense products: C[M,N] = alpha * op(A) op(B) + beta * C, row-major; OpenBLAS or the
 * plain loop (ex->reference). Runs on the calling thread. */
void nn_gemm(const nn_exec_t *ex, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
             float beta, float *C, int64_t ldc);

/* Kernels of the recurrent ops, one set per instruction set: nn_kern.c (AVX2 + FMA, 6 x 16
 * register block) and nn_kern512.c (AVX-512, 6 x 64 and the fused LSTM step), each function
 * compiled for its target and picked at run time, so the build stays portable. A plan takes
 * the set of its isa (nn_kern_for; NULL: none, the callers use nn_gemm and the plain loops,
 * which stay the oracle). Weights are packed once into 16-column panels by nn_pack_b
 * ([N/16][K][16], N % 16 == 0), the same for every set. */
typedef struct {
    const float *panels;  /* [W^T; R^T] stacked along K = I + H, in panels (GH = 4H columns) */
    const float *bias;    /* [4H]: Wb + Rb */
    int64_t I, H;         /* H % 16 == 0 */
    const float *x;       /* the step's input rows, ldx apart */
    int64_t ldx;
    const float *h_in;    /* [M, H] the previous h */
    float *c, *h_out;     /* [M, H] the cell state (updated in place) and the new h */
    float *y;             /* NULL, or rows ldy apart that get a copy of the new h */
    int64_t ldy;
} nn_lstm_rows_t;

typedef struct {
    const char *name;
    /* C[M, ncols] (+)= A[M, K] B[:, col0 : col0 + ncols] + bias[col0 : col0 + ncols] (bias may
     * be NULL), B in panels; col0 and ncols multiples of 16. */
    void (*mm)(const float *panels, int64_t K, int64_t col0, int64_t ncols, int64_t M, const float *A,
               int64_t lda, float *C, int64_t ldc, int acc, const float *bias);
    /* One LSTM step for one row with the default activations, fused (H % 8 == 0):
     * g = [i | o | f | c~] pre-activations (4H, overwritten), c and h the row's state (H each):
     * c = sigmoid(f) c + sigmoid(i) tanh(c~), h = sigmoid(o) tanh(c). */
    void (*lstm_cell)(float *g, float *c, float *h, int64_t H);
    /* The whole step for M rows, product and cell together (H % 16 == 0); NULL when the set
     * has none (the caller runs mm, then lstm_cell per row). h_in must not overlap h_out. */
    void (*lstm_rows)(const nn_lstm_rows_t *a, int64_t M);
} nn_kern_t;

extern const nn_kern_t nn_kern_avx2, nn_kern_avx512;
/* The LSTM cell's tanh, x P(x^2) / Q(x^2) on [-9, 9] (fitted in nn_kern.c, see tanh8_rat):
 * the coefficients of P and Q, highest degree first (Q's constant term is 1), shared by the
 * AVX2 and AVX-512 sets. */
#define NN_TANH_P4 1.3182973518377494e-08f
#define NN_TANH_P3 2.0470678496339705e-05f
#define NN_TANH_P2 0.003486500977581371f
#define NN_TANH_P1 0.13373125871033037f
#define NN_TANH_P0 0.9999999062370115f
#define NN_TANH_Q4 7.702078138188684e-07f
#define NN_TANH_Q3 0.00032712607488109336f
#define NN_TANH_Q2 0.025841659968944757f
#define NN_TANH_Q1 0.46706422571077544f

int nn_isa_best(void);                  /* the best NN_ISA_* this CPU runs */
const nn_kern_t *nn_kern_for(int isa);  /* NULL for NN_ISA_PLAIN or a set the CPU lacks */
int nn_kern_available(void);            /* AVX2 + FMA: the vector activations below */
void nn_vsigmoid_avx2(float *y, const float *x, int64_t n);
void nn_vtanh_avx2(float *y, const float *x, int64_t n);
void nn_pack_b(float *dst, const float *B, int64_t ldb, int trans, int64_t K, int64_t N);

/* thread pool: fn(arg, ith, nth) for ith in [0, nth), the caller runs ith 0 */
nn_pool_t *nn_pool_create(int threads);
void nn_pool_free(nn_pool_t *p);
void nn_pool_run(nn_pool_t *p, void (*fn)(void *arg, int ith, int nth), void *arg);
int nn_pool_threads(const nn_pool_t *p);
static inline void nn_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* The dropout mask: counter-based, so that a pass's mask does not depend on how passes
 * are laid out in memory. keep = u >= ratio with u uniform in [0, 1). */
static inline uint64_t nn_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static inline uint64_t nn_mask_stream(uint64_t seed, int node, int pass) {
    return nn_mix64(nn_mix64(seed ^ nn_mix64((uint64_t)node + 1)) ^ ((uint64_t)pass * 0xd1b54a32d192ed03ULL));
}
/* 53 random bits for element idx of a stream: splitmix64's output for the counter idx, one
 * mix per element (the stream is already mixed). keep = bits >= nn_mask_threshold(ratio),
 * which is u >= ratio for u = bits / 2^53, compared in integers. */
static inline uint64_t nn_mask_bits(uint64_t stream, int64_t idx) {
    return nn_mix64(stream + (uint64_t)idx * 0x9e3779b97f4a7c15ULL) >> 11;
}
static inline uint64_t nn_mask_threshold(double ratio) {
    return (uint64_t)ceil(ratio * 0x1.0p53); /* exact: a power-of-two scaling */
}

#endif
