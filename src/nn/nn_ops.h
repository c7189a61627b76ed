/* Operator kernels shared between the op files (see nn_ops.c for the table). */
#ifndef PREDICTD_NN_OPS_H
#define PREDICTD_NN_OPS_H

#include "nn/nn_internal.h"

#include <math.h>

#define FAIL(code, ...) return nn_errf(err, errlen, (code), __VA_ARGS__)

static inline float nn_sigmoidf(float x) {
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* Vectorizable activations for the fast kernels (the reference kernels use libm):
 * e^x = 2^k e^r with x = k ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^7/5040
 * (relative error < 2e-7 on [-87, 88], where x is clamped); sigmoid = 1/(1 + e^-x),
 * tanh = 2 sigmoid(2x) - 1 (absolute error < 1e-6), by its Taylor series for |x| < 1/4.
 * AVX2 + FMA versions (nn_kern.c) when isa (the plan's NN_ISA_*) is NN_ISA_AVX2 or above and
 * the CPU has them. In place: y may equal x. */
void nn_vsigmoid(float *y, const float *x, int64_t n, int isa);
void nn_vtanh(float *y, const float *x, int64_t n, int isa);

int nn_axis(int64_t a, int r, int64_t *out);
int nn_const_ints(const nn_val_t *v, int64_t *buf, int max);
int nn_broadcast(const nn_val_t *a, const nn_val_t *b, int *ndim, int64_t *dims);
void nn_bcast_strides(const nn_val_t *a, int r, const int64_t *dims, int64_t *st);
void nn_strided_copy(void *out, const void *in, size_t es, int r, const int64_t *dims, const int64_t *st, int64_t base);

#define NN_DECLARE_OP(name)                                       \
    int nn_infer_##name(nn_step_t *s, char *err, size_t errlen); \
    int nn_run_##name(nn_exec_t *ex, nn_step_t *s);
NN_DECLARE_OP(gemm)
NN_DECLARE_OP(matmul)
NN_DECLARE_OP(softmax)
NN_DECLARE_OP(reduce_mean)
NN_DECLARE_OP(batchnorm)
NN_DECLARE_OP(layernorm)
NN_DECLARE_OP(lstm)
NN_DECLARE_OP(gru)
NN_DECLARE_OP(rnn)
int nn_rnn_x_batch_first(nn_step_t *s);

#endif
