/* POST /api/v1/cache/invalidate {entity_ids?, model?, all?} -> 200 {"invalidated": n}.
 * entity_ids alone: those entities' cached results of every model; with model: of that model
 * only; model alone: every entry of the model; all: true: everything (alone). A server
 * running without the cache answers {"invalidated": 0}. */
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cache/cache.h"

#define ID_MAX_BYTES 256

void api_cache_invalidate(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (api_parse_body(rq, rs, &doc)) return;
    const char **ids = NULL;
    if (!json_is_object(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON object {entity_ids?, model?, all?}");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val) {
        if (strcmp(key, "entity_ids") && strcmp(key, "model") && strcmp(key, "all")) {
            api_invalid(rs, key, "unknown field '%.64s' (entity_ids, model, all)", key);
            goto out;
        }
    }
    const json_t *all = json_object_get(doc, "all");
    const json_t *model = json_object_get(doc, "model");
    const json_t *arr = json_object_get(doc, "entity_ids");
    if (all && !json_is_null(all) && !json_is_boolean(all)) {
        api_invalid(rs, "all", "all must be true or false");
        goto out;
    }
    int everything = all && json_is_true(all);
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) {
            api_invalid(rs, "model", "model must be a string");
            goto out;
        }
        if (!cache_model_known(rq->app->cache, json_string_value(model))) {
            api_invalid(rs, "model", "model must be one of ising, cascade, ews, bifurcation");
            goto out;
        }
    } else {
        model = NULL;
    }
    size_t n = 0;
    if (arr && !json_is_null(arr)) {
        if (!json_is_array(arr) || json_array_size(arr) == 0) {
            api_invalid(rs, "entity_ids", "entity_ids must be a non-empty array of entity ids");
            goto out;
        }
        n = json_array_size(arr);
        if ((long)n > rq->app->cfg.max_entities) {
            api_error(rs, 422, "too_many_entities", "entity_ids", "at most %ld entity ids per call",
                      rq->app->cfg.max_entities);
            goto out;
        }
        ids = malloc(n * sizeof *ids);
        if (!ids) {
            api_error(rs, 503, "out_of_memory", NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(arr, i);
            size_t len = json_is_string(v) ? json_string_length(v) : 0;
            if (!json_is_string(v) || len == 0 || len > ID_MAX_BYTES || strlen(json_string_value(v)) != len) {
                char field[48];
                snprintf(field, sizeof field, "entity_ids[%zu]", i);
                api_invalid(rs, field, "entity ids are strings of 1 to %d bytes", ID_MAX_BYTES);
                goto out;
            }
            ids[i] = json_string_value(v);
        }
    }
    if (everything && (n || model)) {
        api_invalid(rs, "all", "all: true drops everything; it takes neither entity_ids nor model");
        goto out;
    }
    if (!everything && !n && !model) {
        api_invalid(rs, NULL, "say what to invalidate: entity_ids, model, or all: true");
        goto out;
    }
    long removed = cache_invalidate(rq->app->cache, ids, n, model ? json_string_value(model) : NULL, everything);
    if (removed < 0) removed = 0;
    api_reply_json(rs, 200, json_pack("{s:I}", "invalidated", (json_int_t)removed));
out:
    free(ids);
    json_decref(doc);
}
