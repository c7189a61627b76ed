/* Helpers shared by the test_models_* files: build a graph by hand, parse a request with a
 * model, and run a job the way the job engine does (xValidate, xDefaultEntities, xPrepare
 * once, then xRunChunk over chunks of any size, then xFreeState). */
#ifndef PREDICTD_MODELS_TEST_H
#define PREDICTD_MODELS_TEST_H

#include <stdlib.h>

#include "graph/graph.h"
#include "models/model.h"
#include "test.h"

__attribute__((unused)) static void mt_add(graph_t *g, const char *id, const char *props_json) {
    json_t *p = json_loads(props_json, 0, NULL);
    graph_upsert_entity(g, id, p, 1);
    json_decref(p);
}

/* Parses request_json with md; NULL with err filled on a refusal. */
__attribute__((unused)) static json_t *mt_parse(const model_t *md, const char *request_json, model_error_t *err) {
    json_error_t je;
    json_t *req = json_loads(request_json, 0, &je);
    if (!req) { fprintf(stderr, "bad test JSON: %s (%s)\n", request_json, je.text); return NULL; }
    json_t *params = NULL;
    memset(err, 0, sizeof *err);
    int rc = md->xParse(req, &params, err);
    json_decref(req);
    return rc == 0 ? params : NULL;
}

/* Runs ids[0..n) in chunks of `chunk` entities. Returns 0, or -1 (printed). */
__attribute__((unused)) static int mt_run(const model_t *md, model_env_t *env, const json_t *params, const char *const *ids,
                  long n, long chunk, uint8_t *codes, double *out) {
    char err[256] = "";
    void *state = NULL;
    if (md->xPrepare && md->xPrepare(env, params, ids, n, &state, err, sizeof err) != 0) {
        fprintf(stderr, "prepare: %s\n", err);
        return -1;
    }
    env->job_state = state;
    int rc = 0;
    for (long off = 0; off < n && rc == 0; off += chunk) {
        long k = n - off < chunk ? n - off : chunk;
        rc = md->xRunChunk(env, params, ids + off, (uint32_t)k, codes + off,
                           out + (size_t)off * (size_t)md->n_outputs, err, sizeof err);
        if (rc) fprintf(stderr, "run: %s\n", err);
    }
    if (state && md->xFreeState) md->xFreeState(state);
    env->job_state = NULL;
    return rc;
}

/* One request, parsed and run on g over ids with chunk size `chunk`. */
__attribute__((unused)) static int mt_job(const model_t *md, graph_t *g, const char *request_json, const char *const *ids,
                  long n, long chunk, uint8_t *codes, double *out) {
    model_error_t e;
    json_t *params = mt_parse(md, request_json, &e);
    if (!params) { fprintf(stderr, "parse: %s: %s\n", e.field, e.message); return -1; }
    model_env_t env = {.graph = g};
    int rc = mt_run(md, &env, params, ids, n, chunk, codes, out);
    json_decref(params);
    return rc;
}

#endif
