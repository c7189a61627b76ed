/* serving: the ONNX model repository and its dynamic batcher (what the KServe v2 routes in
 * api/api_kserve.c and `predictd serve --models DIR` stand on).
 *
 * Repository layout (Triton's): DIR/{name}/{version}/model.onnx, version a decimal number,
 * with an optional DIR/{name}/{version}/config.yaml:
 *
 *   type: lstm_regressor        # free text, shown in the metadata
 *   max_batch_size: 128         # rows per batched run (default 128)
 *   max_queue_delay_ms: 5       # how long the first queued request waits for others (5)
 *   mc_passes: 20               # passes when a request asks for MC dropout without a count (20)
 *   threads: 2                  # engine threads per run (default: cores, at most 8)
 *   inputs:
 *     - name: x
 *       scaler: {mean: [..], scale: [..]}   # per feature (last axis): (x - mean) / scale
 *
 * Every version found is loaded at open; one that fails is kept in the index as not ready,
 * with the reason. An unversioned request goes to the highest ready version.
 *
 * Batching: each ready version has one batcher thread. serving_infer queues the request
 * and waits on a condition; the batcher takes the requests that arrive within
 * max_queue_delay_ms of the first (up to max_batch_size rows), concatenates them along the
 * batch axis, runs the engine once and copies each request's rows back. MC-dropout requests
 * run alone: their masks depend on the row's place in the batch.
 *
 * Threads: every function may be called from any thread. One mutex guards the index and
 * the reference counts; each model's own mutex guards its queue. No lock is held across a
 * model run. */
#ifndef PREDICTD_SERVING_H
#define PREDICTD_SERVING_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "nn/nn.h"

typedef struct serving serving_t;
typedef struct serving_model serving_model_t;

enum {
    SERVING_OK = 0,
    SERVING_ERR_NOT_FOUND = -1,   /* no such model or version */
    SERVING_ERR_UNAVAILABLE = -2, /* known but not ready (failed to load, unloaded) */
    SERVING_ERR_INPUT = -3,       /* the request does not fit the model */
    SERVING_ERR_RUN = -4          /* the engine failed */
};

/* dir NULL or "": an empty repository. Fails only on an unreadable dir. */
int serving_open(serving_t **out, const char *dir, metrics_t *metrics, char *err, size_t errlen);
void serving_free(serving_t *s); /* every model released first; NULL is a no-op */

/* The index: fn once per known version, in name then version order. */
typedef void (*serving_index_fn)(void *arg, const char *name, const char *version, int ready,
                                 const char *reason);
void serving_index(serving_t *s, serving_index_fn fn, void *arg);
int serving_n_ready(serving_t *s);

/* (Re)loads every version of name from the folder: 0 when at least one is ready, else
 * SERVING_ERR_NOT_FOUND (no folder) or SERVING_ERR_UNAVAILABLE, reason in err. */
int serving_load(serving_t *s, const char *name, char *err, size_t errlen);
/* Marks every version of name unavailable ("unloaded"); requests in flight finish. */
int serving_unload(serving_t *s, const char *name, char *err, size_t errlen);

/* A reference on a ready version (version NULL: the highest ready one), or NULL with
 * SERVING_ERR_NOT_FOUND / SERVING_ERR_UNAVAILABLE in *rc and the reason in err. */
serving_model_t *serving_get(serving_t *s, const char *name, const char *version, int *rc,
                             char *err, size_t errlen);
void serving_release(serving_model_t *m);

/* Model information. Input dims: dims[0] is the batch (-1); the rest are fixed. Output
 * dims are those of a one-row request; out_batch_axis says which axis holds the rows. */
const char *serving_model_name(const serving_model_t *m);
const char *serving_model_version(const serving_model_t *m);
const char *serving_model_type(const serving_model_t *m);
int serving_model_max_batch(const serving_model_t *m);
int serving_model_mc_passes(const serving_model_t *m); /* the default count */
int serving_model_n_inputs(const serving_model_t *m);
int serving_model_n_outputs(const serving_model_t *m);
const char *serving_model_input_name(const serving_model_t *m, int i);
const char *serving_model_output_name(const serving_model_t *m, int i);
void serving_model_input_info(const serving_model_t *m, int i, nn_tensor_t *info);
void serving_model_output_info(const serving_model_t *m, int i, nn_tensor_t *info, int *batch_axis);
int64_t serving_model_input_row(const serving_model_t *m, int i);  /* elements per row */
int64_t serving_model_output_row(const serving_model_t *m, int i);

/* One inference. inputs[i]: rows x input_row(i) floats, scaled in place by the model's
 * scaler. Plain (mc_passes 0): outputs[i] receives rows x output_row(i) floats laid out in
 * the output's shape with `rows` on its batch axis. MC (mc_passes >= 2): outputs[5*i + k],
 * k = mean, std, p10, p50, p90, each of that size. Blocks until done. Returns SERVING_OK,
 * SERVING_ERR_INPUT or SERVING_ERR_RUN with the message in err. */
typedef struct {
    int rows;
    float *const *inputs;
    float *const *outputs;
    int mc_passes;
    uint64_t seed;
} serving_req_t;
int serving_infer(serving_model_t *m, const serving_req_t *req, char *err, size_t errlen);

#endif
