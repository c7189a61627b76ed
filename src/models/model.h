/* The model interface. A model validates and normalises its job parameters once at
 * submission (the normalised JSON is what the store keeps, so a restarted server parses the
 * same thing), then computes chunks of entities. Results are fixed-width: per entity a code
 * (MODEL_OK or an error code) and n_outputs doubles. run_chunk must be thread-safe and
 * deterministic for the same params and graph state. */
#ifndef PREDICTD_MODEL_H
#define PREDICTD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/util.h"
#include "graph/graph.h"

struct store;

enum {
    MODEL_OK = 0,
    MODEL_ERR_UNKNOWN_ENTITY = 1,
    MODEL_ERR_INVALID_SPIN = 2,
    MODEL_ERR_TOO_FEW_POINTS = 3,  /* ews/bifurcation: fewer than min_points in the window */
    MODEL_ERR_NO_VARIANCE = 4,     /* ews/bifurcation: the residuals are constant */
    MODEL_ERR_NOT_SIMULATED = 5,   /* created after the job's simulation ran */
    MODEL_ERR_MISSING_FEATURES = 6,/* market pipeline: fewer feature vectors than the window */
    MODEL_ERR_MISSING_EARNINGS = 7,/* market pipeline: no earnings features (missing_earnings=skip) */
};

/* An EWS threshold breach (both taus >= alert_tau), as on_alert reports it. */
typedef struct {
    const char *job_id;    /* the job that computed it, NULL outside a job */
    const char *entity_id;
    double variance_tau, ar1_tau;
} model_alert_t;

/* What a model needs to compute: the shared state of the server. */
typedef struct {
    graph_t *graph;
    struct store *store;   /* observations (ews, bifurcation); may be NULL in tests */
    /* Called by ews for each entity whose alert fired (both taus >= alert_tau), from a
     * worker thread, possibly many at once: must be thread-safe and quick. NULL: none. */
    void (*on_alert)(void *arg, const model_alert_t *alert);
    void *alert_arg;
    const char *job_id;    /* the job whose chunk runs (set per chunk); NULL in tests */
    /* The job's state from xPrepare (NULL for models without one). Set per chunk by the
     * job engine; a model reads it only. */
    const void *job_state;
    /* Threads a whole-job simulation (xPrepare) may use; 0 = one per core. Results never
     * depend on it (tests vary it to show that). */
    int threads;
    /* The model's own context for models added at run time (jobs_add_model: model_t.ctx);
     * NULL for the built-ins. */
    void *model_ctx;
    /* The graph slots of the ids given to xRunChunk (graph_find's answers), read when the
     * graph's mutation count was slots_mutations, or NULL. A model may use them instead of
     * looking the ids up when the count is still the same under its read lock. */
    const int64_t *slots;
    uint64_t slots_mutations;
} model_env_t;

/* A validation failure: the field (dotted path) and the reason. */
typedef struct {
    char field[64];
    char message[256];
} model_error_t;

typedef struct model {
    const char *name;
    int n_outputs;
    const char *const *output_names;
    /* Validates the request body (whole JSON object); on success returns 0 and the
     * normalised parameters (owned by the caller, json_decref). */
    int (*xParse)(const json_t *request, json_t **params, model_error_t *err);
    /* Computes ids[0..n) with params into codes[n] and out[n * n_outputs]. Returns 0, or -1
     * with err filled when the whole chunk failed (it will be retried). */
    int (*xRunChunk)(const model_env_t *env, const json_t *params, const char *const *ids,
                     uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen);

    /* ---- optional hooks (NULL when the model has none) ---- */
    /* Runs once per job, before any chunk, on one worker, with all the job's ids (models
     * that simulate the whole job at once: cascade, Monte Carlo Ising). The state goes to
     * every xRunChunk as env->job_state and is freed with xFreeState when the job leaves
     * memory (it is made again after a restart). 0 ok (*state may stay NULL), -1 err. */
    int (*xPrepare)(const model_env_t *env, const json_t *params, const char *const *ids,
                    long n, void **state, char *err, size_t errlen);
    void (*xFreeState)(void *state);
    /* Appends the job's summary as one JSON value (e.g. cascade sizes per generation) from
     * the prepared state; it is stored with the job's first chunk and shown by
     * GET /api/v1/jobs/{id} as "summary". 0 ok, -1 none. */
    int (*xSummary)(const void *state, buf_t *out);
    /* Appends one entity's prediction object from its n outputs (when the flat
     * {output_name: number} form does not fit: nulls with a reason, booleans, layouts that
     * depend on a parameter). */
    void (*xRender)(const double *v, int n, buf_t *out);
    /* Checks parameters that need the server's state (e.g. seed entities exist) at
     * submission. 0 ok, -1 with err. */
    int (*xValidate)(const model_env_t *env, const json_t *params, model_error_t *err);
    /* The job's entities when the request has no entity_ids: appends n NUL-terminated ids
     * to blob. 0 ok, -1 err. */
    int (*xDefaultEntities)(const model_env_t *env, const json_t *params, buf_t *blob,
                            long *n, model_error_t *err);
    /* 1 when a small job with these (normalised) parameters is cheap enough to compute during
     * its submission (jobs.inline_max_entities): per-entity formulas, no whole-job
     * simulation, no summary. NULL: never. */
    int (*xInline)(const json_t *params);

    /* ---- models added at run time (jobs_add_model); built-ins leave these 0 ---- */
    void *ctx;          /* passed to every hook as env->model_ctx */
    int chunk_size;     /* entities per chunk for this model's jobs (0: jobs.chunk_size) */
} model_t;

/* Registry of built-in models. NULL when unknown. */
const model_t *model_find(const char *name);
/* Error code -> stable name ("unknown_entity") and a message for entity id. */
const char *model_error_name(int code);
void model_error_message(int code, const char *entity_id, char *out, size_t outlen);

extern const model_t MODEL_ISING;
extern const model_t MODEL_CASCADE;
extern const model_t MODEL_EWS;
extern const model_t MODEL_BIFURCATION;

#endif
