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

#include "graph/graph.h"

enum { MODEL_OK = 0, MODEL_ERR_UNKNOWN_ENTITY = 1, MODEL_ERR_INVALID_SPIN = 2 };

/* What a model needs to compute: the shared state of the server. */
typedef struct {
    graph_t *graph;
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
} model_t;

/* Registry of built-in models. NULL when unknown. */
const model_t *model_find(const char *name);
/* Error code -> stable name ("unknown_entity") and a message for entity id. */
const char *model_error_name(int code);
void model_error_message(int code, const char *entity_id, char *out, size_t outlen);

extern const model_t MODEL_ISING;

#endif
