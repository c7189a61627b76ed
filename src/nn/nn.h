/* nn: a small ONNX CPU inference engine with Monte Carlo dropout.
 *
 * Life cycle:  nn_model_load -> nn_plan_create (per batch size) -> nn_run / nn_run_mc ...
 *              -> nn_plan_free -> nn_model_free.
 *
 * Ownership and threads:
 * - A model is immutable once loaded; any number of plans (in any threads) may share it.
 *   It must outlive every plan made from it.
 * - A plan owns its memory arena, its packed weights and its thread pool. One run at a time
 *   per plan (runs on one plan are not thread-safe); use one plan per concurrent caller.
 *   Nothing is allocated on the run path.
 * - Dense products go through OpenBLAS with its own threading switched off
 *   (openblas_set_num_threads(1) and its idle threads stopped, process-wide), those of LSTM/GRU/RNN through our own
 *   kernels (AVX-512 or AVX2 + FMA, the best the CPU has, see nn_plan_opts_t.isa); the
 *   plan's pool splits work by rows.
 * - Errors: functions return 0 or a negative NN_ERR_* and write a one-line message into
 *   err[errlen] (when err is not NULL). Nothing a file or a caller can provide aborts.
 */
#ifndef PREDICTD_NN_H
#define PREDICTD_NN_H

#include <stddef.h>
#include <stdint.h>

#define NN_MAX_DIMS 8

/* Element types: the ONNX TensorProto.DataType codes. */
typedef enum {
    NN_FLOAT = 1, NN_UINT8 = 2, NN_INT8 = 3, NN_INT32 = 6, NN_INT64 = 7, NN_BOOL = 9,
    NN_DOUBLE = 11
} nn_dtype_t;

enum {
    NN_OK = 0,
    NN_ERR_IO = -1,          /* cannot read the file */
    NN_ERR_PARSE = -2,       /* not a valid ONNX protobuf (truncated, corrupt) */
    NN_ERR_UNSUPPORTED = -3, /* an op, attribute, data type or feature we do not run */
    NN_ERR_INVALID = -4,     /* a malformed graph: dangling input, cycle, bad tensor */
    NN_ERR_SHAPE = -5,       /* shapes do not fit (input shape, op shape rules) */
    NN_ERR_NOMEM = -6,
    NN_ERR_ARG = -7          /* a caller mistake (wrong plan kind, NULL buffers) */
};

/* A tensor description; data is not owned by the struct unless a function says so. */
typedef struct {
    int dtype;                 /* nn_dtype_t */
    int ndim;
    int64_t dims[NN_MAX_DIMS]; /* in model infos, -1 marks a symbolic dimension */
    void *data;
} nn_tensor_t;

size_t nn_dtype_size(int dtype);             /* 0 for types we do not handle */
const char *nn_dtype_name(int dtype);
int64_t nn_tensor_numel(const nn_tensor_t *t);

typedef struct nn_model nn_model_t;

/* Reads and validates an .onnx file: protobuf structure, tensor types, every op known
 * (first unknown one is named with its node), every input produced, no cycle. */
int nn_model_load(const char *path, nn_model_t **out, char *err, size_t errlen);
int nn_model_load_buffer(const void *buf, size_t len, nn_model_t **out, char *err, size_t errlen);
/* With NN_LOAD_ALLOW_UNSUPPORTED, unknown ops do not fail the load (for `model check`: list
 * the ops and which run); nn_plan_create then fails on the first one, naming it. */
#define NN_LOAD_ALLOW_UNSUPPORTED 1
int nn_model_load_flags(const char *path, int flags, nn_model_t **out, char *err, size_t errlen);
void nn_model_free(nn_model_t *m);

/* Model information; pointers stay valid while the model lives. Inputs are the graph
 * inputs that are not initializers. dims of -1 are symbolic (e.g. batch). */
int nn_model_n_inputs(const nn_model_t *m);
int nn_model_n_outputs(const nn_model_t *m);
const char *nn_model_input_name(const nn_model_t *m, int i);
const char *nn_model_output_name(const nn_model_t *m, int i);
void nn_model_input_info(const nn_model_t *m, int i, nn_tensor_t *info);  /* data = NULL */
void nn_model_output_info(const nn_model_t *m, int i, nn_tensor_t *info);
int64_t nn_model_opset(const nn_model_t *m);            /* default ("" / ai.onnx) domain */
int nn_model_n_nodes(const nn_model_t *m);
const char *nn_model_node_op(const nn_model_t *m, int i);
const char *nn_model_node_name(const nn_model_t *m, int i);
int nn_model_node_supported(const nn_model_t *m, int i);
int nn_model_n_dropouts(const nn_model_t *m);
int nn_op_supported(const char *op_type);             /* 1 if the engine runs this op */
int nn_n_supported_ops(void);
const char *nn_supported_op(int i);                   /* i < nn_n_supported_ops() */

typedef struct nn_plan nn_plan_t;

/* Kernel sets, in increasing order: a plan uses the best its CPU runs, capped by
 * nn_plan_opts_t.isa. NN_ISA_PLAIN: OpenBLAS and plain loops only (the element-wise
 * activations too). */
enum { NN_ISA_BEST = 0, NN_ISA_PLAIN = 1, NN_ISA_AVX2 = 2, NN_ISA_AVX512 = 3 };

typedef struct {
    /* Batch size: replaces dimension 0 of every runtime input (inputs carry the batch on
     * axis 0). Ignored for inputs given in input_shapes. */
    int64_t batch;
    /* Optional, one per model input (NULL = none): explicit shapes (dims, dtype); when
     * data is also set, the input is fixed to that value at plan time (constant-folded,
     * not passed to nn_run). Copied by nn_plan_create. */
    const nn_tensor_t *const *input_shapes;
    int threads;              /* worker threads incl. the caller; <= 0: number of cores */
    int mc_passes;            /* > 0: a plan for nn_run_mc with this many passes */
    int reference;            /* 1: plain reference kernels, one thread (the test oracle) */
    int isa;                  /* NN_ISA_BEST (0), or the highest kernel set to use (tests
                                 cover every set the machine runs); else NN_ERR_ARG */
    size_t max_bytes;         /* cap on any one value and on the arena; 0: 4 GiB */
} nn_plan_opts_t;

int nn_plan_create(const nn_model_t *m, const nn_plan_opts_t *opts, nn_plan_t **out,
                   char *err, size_t errlen);
void nn_plan_free(nn_plan_t *p);
/* Planned shapes of the outputs (at the plan's batch; for an MC plan, one pass's shape). */
void nn_plan_output_info(const nn_plan_t *p, int i, nn_tensor_t *info);
void nn_plan_input_info(const nn_plan_t *p, int i, nn_tensor_t *info);
size_t nn_plan_arena_bytes(const nn_plan_t *p);

/* What planning made of the graph (for `model check` and tests). */
typedef struct {
    int steps;            /* kernels run per nn_run / nn_run_mc */
    int shared_steps;     /* MC plans: steps run once per batch (no Dropout reaches them) */
    int stacked_steps;    /* MC plans: steps run on the passes stacked along the batch axis */
    int tiles;            /* MC plans: values repeated from the shared part into the stacked one */
    size_t arena_bytes;   /* the one arena, buffers reused by liveness */
    size_t value_bytes;   /* what the same values would take without reuse */
} nn_plan_stats_t;
void nn_plan_stats(const nn_plan_t *p, nn_plan_stats_t *st);

/* Inference (Dropout is the identity). inputs[i]: contiguous data of model input i with the
 * planned shape (NULL for inputs fixed at plan time); outputs[i]: a caller buffer of the
 * planned size. Plan must have mc_passes == 0. */
int nn_run(nn_plan_t *p, const void *const *inputs, void *const *outputs, char *err, size_t errlen);

/* One stochastic pass (Dropout active at its ratio, inverted scaling 1/(1-ratio)), with the
 * masks of pass `pass` under `seed`: the naive computation nn_run_mc must equal. */
int nn_run_pass(nn_plan_t *p, uint64_t seed, int pass, const void *const *inputs,
                void *const *outputs, char *err, size_t errlen);

/* Per-output statistics over passes, each array of the output's planned size (float). */
typedef struct {
    float *mean, *std, *p10, *p50, *p90;
} nn_mc_stats_t;

/* Monte Carlo dropout: mc_passes passes, masks drawn from `seed` (the same masks as
 * nn_run_pass(seed, 0..passes-1)). The part of the graph no Dropout reaches is computed
 * once; the rest runs once with the passes stacked along the batch axis: the plan is
 * inferred with every runtime input's axis 0 (its batch axis, see nn_plan_opts_t.batch)
 * passes times larger as well, and a value's batch axis is the one axis that grows
 * passes times. Planning fails with NN_ERR_UNSUPPORTED where stacking would not equal
 * separate passes: a value after a Dropout without such an axis, or an op that combines or
 * moves rows (a Reshape merging the batch axis with another, Softmax, LayerNormalization,
 * Concat, Gather or Slice over it, a product over it).
 * Mask of pass q, Dropout node n, element i of that pass's tensor: keep when
 * u(seed, n, q, i) >= ratio, u a counter-based uniform (see nn_internal.h). Outputs must be
 * float. std is the population standard deviation (divide by passes); quantiles use
 * linear interpolation between order statistics (numpy's default): q-th quantile of the
 * sorted x[0..n-1] is x[f] + (h - f) * (x[f+1] - x[f]) with h = (n - 1) q, f = floor(h). */
int nn_run_mc(nn_plan_t *p, uint64_t seed, const void *const *inputs, nn_mc_stats_t *stats,
              char *err, size_t errlen);

/* The quantile rule above on an ascending x; and the in-place sort nn_run_mc uses. */
float nn_quantile_sorted(const float *x, int n, double q);
void nn_sort_floats(float *x, int n);

/* Reads a serialized TensorProto (.pb) into a newly allocated tensor (data malloc'd, freed
 * by nn_tensor_free_data). */
int nn_tensor_load_pb(const char *path, nn_tensor_t *out, char *name, size_t namelen,
                      char *err, size_t errlen);
void nn_tensor_free_data(nn_tensor_t *t);

#endif
