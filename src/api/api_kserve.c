/* The KServe v2 inference protocol (JSON/REST) over the model repository in serving/,
 * plus Triton's repository extension (index, load, unload).
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live | /v2/health/ready
 *   GET  /v2/models/{m}[/versions/{v}]         model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready
 *   POST /v2/models/{m}[/versions/{v}]/infer
 *   GET|POST /v2/repository/index
 *   POST /v2/repository/models/{m}/load | /unload
 * Errors use the API's usual body ({"error":{"code","message","field"}}): 400 for a request
 * that does not fit the model (field names the input), 404 for an unknown model or version,
 * 503 for a model that is not ready. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "cli/commands.h"
#include "serving/serving.h"

static const char *MC_SUFFIX[5] = {"", "_std", "_p10", "_p50", "_p90"};

static serving_t *repo(api_req_t *rq) { return rq->app->serving; }

void api_kserve_server_meta(api_req_t *rq, api_resp_t *rs) {
    (void)rq;
    api_reply_json(rs, 200, json_pack("{s:s, s:s, s:[s,s]}", "name", "predictd", "version", PREDICTD_VERSION,
                                      "extensions", "model_repository", "mc_dropout"));
}

void api_kserve_live(api_req_t *rq, api_resp_t *rs) {
    (void)rq;
    api_reply_json(rs, 200, json_pack("{s:b}", "live", 1));
}

void api_kserve_ready(api_req_t *rq, api_resp_t *rs) {
    int ready = rq->app->ready && !rq->app->stopping;
    api_reply_json(rs, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
}

static void add_index(void *arg, const char *name, const char *version, int ready, const char *reason) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "name", name, "version", version,
                          "state", ready ? "READY" : "UNAVAILABLE");
    if (e && !ready) json_object_set_new(e, "reason", json_string(reason[0] ? reason : "not loaded"));
    json_array_append_new(arg, e);
}

void api_kserve_index(api_req_t *rq, api_resp_t *rs) {
    json_t *a = json_array();
    if (repo(rq)) serving_index(repo(rq), add_index, a);
    api_reply_json(rs, 200, a);
}

/* {m}/load or {m}/unload */
void api_kserve_repo_action(api_req_t *rq, api_resp_t *rs) {
    const char *slash = strrchr(rq->param, '/');
    if (!slash || slash == rq->param || (strcmp(slash, "/load") && strcmp(slash, "/unload")) ||
        memchr(rq->param, '/', (size_t)(slash - rq->param))) {
        api_error(rs, 404, "not_found", NULL, "use POST /v2/repository/models/{model}/load or /unload");
        return;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(slash - rq->param), rq->param);
    char err[512];
    if (!repo(rq)) {
        api_error(rs, 404, "model_not_found", NULL, "no model repository (start with --models DIR)");
        return;
    }
    int rc = strcmp(slash, "/load") == 0 ? serving_load(repo(rq), name, err, sizeof err)
                                         : serving_unload(repo(rq), name, err, sizeof err);
    if (rc == SERVING_ERR_NOT_FOUND) api_error(rs, 404, "model_not_found", NULL, "%s", err);
    else if (rc) api_error(rs, 400, "model_load_failed", NULL, "%s", err);
    else api_reply_json(rs, 200, json_object());
}

/* Splits "m", "m/ready", "m/infer", "m/versions/v", "m/versions/v/ready|infer". */
static int parse_model_path(const char *p, char *name, size_t nlen, char *version, size_t vlen,
                            const char **action) {
    char buf[512];
    if (strlen(p) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", p);
    char *parts[5];
    int n = 0;
    for (char *s = buf, *tok; n < 5 && (tok = strsep(&s, "/"));) parts[n++] = tok;
    if (n == 5 || !parts[0][0] || strlen(parts[0]) >= nlen) return -1;
    snprintf(name, nlen, "%s", parts[0]);
    version[0] = 0;
    int i = 1;
    if (n >= 3 && strcmp(parts[1], "versions") == 0) {
        if (!parts[2][0] || strlen(parts[2]) >= vlen) return -1;
        snprintf(version, vlen, "%s", parts[2]);
        i = 3;
    }
    if (i == n) *action = "";
    else if (i + 1 == n && strcmp(parts[i], "ready") == 0) *action = "ready";
    else if (i + 1 == n && strcmp(parts[i], "infer") == 0) *action = "infer";
    else return -1;
    return 0;
}

static serving_model_t *find_model(api_req_t *rq, api_resp_t *rs, const char **action, int quiet_unready) {
    char name[256], version[64], err[512];
    if (parse_model_path(rq->param, name, sizeof name, version, sizeof version, action)) {
        api_error(rs, 404, "not_found", NULL, "use /v2/models/{model}[/versions/{version}][/ready|/infer]");
        return NULL;
    }
    if (!repo(rq)) {
        api_error(rs, 404, "model_not_found", NULL, "no model '%s': no model repository (start with --models DIR)", name);
        return NULL;
    }
    int rc;
    serving_model_t *m = serving_get(repo(rq), name, version[0] ? version : NULL, &rc, err, sizeof err);
    if (!m && !(quiet_unready && rc == SERVING_ERR_UNAVAILABLE)) {
        if (rc == SERVING_ERR_NOT_FOUND) api_error(rs, 404, "model_not_found", NULL, "%s", err);
        else api_error(rs, 503, "model_not_ready", NULL, "%s", err);
    }
    return m;
}

static json_t *shape_json(const nn_tensor_t *t, int batch_axis, int64_t rows) {
    json_t *a = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(a, json_integer(d == batch_axis ? rows : t->dims[d]));
    return a;
}

void api_kserve_model_get(api_req_t *rq, api_resp_t *rs) {
    const char *action = NULL;
    serving_model_t *m = find_model(rq, rs, &action, 1);
    if (!action) return;
    if (strcmp(action, "ready") == 0) {
        if (!m && rs->body.len) return; /* unknown model: 404 is set */
        api_reply_json(rs, m ? 200 : 503, json_pack("{s:b}", "ready", m != NULL));
        serving_release(m);
        return;
    }
    if (!m) {
        if (!rs->body.len) api_error(rs, 503, "model_not_ready", NULL, "the model is not ready");
        return;
    }
    if (strcmp(action, "infer") == 0) {
        serving_release(m);
        api_error(rs, 405, "method_not_allowed", NULL, "infer takes POST");
        snprintf(rs->allow, sizeof rs->allow, "POST");
        return;
    }
    json_t *ins = json_array(), *outs = json_array();
    for (int i = 0; i < serving_model_n_inputs(m); i++) {
        nn_tensor_t t;
        serving_model_input_info(m, i, &t);
        json_array_append_new(ins, json_pack("{s:s, s:s, s:o}", "name", serving_model_input_name(m, i),
                                             "datatype", "FP32", "shape", shape_json(&t, 0, -1)));
    }
    for (int i = 0; i < serving_model_n_outputs(m); i++) {
        nn_tensor_t t;
        int ax;
        serving_model_output_info(m, i, &t, &ax);
        json_array_append_new(outs, json_pack("{s:s, s:s, s:o}", "name", serving_model_output_name(m, i),
                                              "datatype", "FP32", "shape", shape_json(&t, ax, -1)));
    }
    json_t *v = json_pack("{s:s, s:[s], s:s, s:s, s:o, s:o, s:{s:i, s:i}}", "name", serving_model_name(m),
                          "versions", serving_model_version(m), "platform", "onnx", "type", serving_model_type(m),
                          "inputs", ins, "outputs", outs, "parameters", "max_batch_size", serving_model_max_batch(m),
                          "mc_passes", serving_model_mc_passes(m));
    serving_release(m);
    api_reply_json(rs, 200, v);
}

/* Flattens nested arrays of numbers into x (room for cap); counts everything seen in *n. */
static int flatten(const json_t *v, float *x, int64_t cap, int64_t *n, const char *field, api_resp_t *rs) {
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (flatten(e, x, cap, n, field, rs)) return -1;
        return 0;
    }
    if (!json_is_number(v)) {
        api_error(rs, 400, "invalid_field", field, "element %lld is not a number", (long long)*n);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || fabs(d) > 3.4e38) {
        api_error(rs, 400, "invalid_field", field, "element %lld is not a finite FP32 number", (long long)*n);
        return -1;
    }
    if (*n < cap) x[*n] = (float)d;
    (*n)++;
    return 0;
}

static json_t *out_tensor(const char *name, const char *suffix, const nn_tensor_t *t, int ax, int64_t rows,
                          const float *x, int64_t n) {
    char full[300];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    json_t *data = json_array();
    for (int64_t k = 0; k < n; k++) json_array_append_new(data, json_real((double)x[k]));
    return json_pack("{s:s, s:s, s:o, s:o}", "name", full, "datatype", "FP32", "shape", shape_json(t, ax, rows),
                     "data", data);
}

static void infer(api_req_t *rq, api_resp_t *rs, serving_model_t *m) {
    json_t *body = NULL;
    float *in[8] = {0}, *out[40] = {0};
    int n_in = serving_model_n_inputs(m), n_out = serving_model_n_outputs(m);
    if (api_parse_body(rq, rs, &body)) return;
    if (!json_is_object(body)) {
        api_error(rs, 400, "invalid_field", NULL, "the body must be a JSON object with \"inputs\"");
        goto done;
    }
    json_t *inputs = json_object_get(body, "inputs"), *params = json_object_get(body, "parameters");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        api_error(rs, 400, "invalid_field", "inputs", "inputs must be a non-empty array of tensors");
        goto done;
    }
    int passes = 0;
    json_int_t seed = 0;
    if (params && !json_is_object(params)) {
        api_error(rs, 400, "invalid_field", "parameters", "parameters must be an object");
        goto done;
    }
    json_t *p = json_object_get(params, "mc_passes");
    if (p) {
        if (!json_is_integer(p) || json_integer_value(p) < 2 || json_integer_value(p) > 1000) {
            api_error(rs, 400, "invalid_field", "parameters.mc_passes", "mc_passes must be an integer in [2, 1000]");
            goto done;
        }
        passes = (int)json_integer_value(p);
    } else if (json_is_true(json_object_get(params, "mc_dropout"))) {
        passes = serving_model_mc_passes(m);
    }
    p = json_object_get(params, "seed");
    if (p) {
        if (!json_is_integer(p) || json_integer_value(p) < 0) {
            api_error(rs, 400, "invalid_field", "parameters.seed", "seed must be a non-negative integer");
            goto done;
        }
        seed = json_integer_value(p);
    }
    int64_t rows = -1;
    for (int i = 0; i < n_in; i++) {
        const char *want = serving_model_input_name(m, i);
        json_t *t = NULL, *e;
        size_t k, at = 0;
        json_array_foreach(inputs, k, e) if (json_is_object(e) && json_is_string(json_object_get(e, "name")) &&
                                             strcmp(json_string_value(json_object_get(e, "name")), want) == 0) {
            t = e;
            at = k;
        }
        if (!t) {
            api_error(rs, 400, "invalid_field", "inputs", "input '%s' is missing", want);
            goto done;
        }
        char field[64];
        snprintf(field, sizeof field, "inputs[%zu].datatype", at);
        json_t *dt = json_object_get(t, "datatype");
        if (!json_is_string(dt) || strcmp(json_string_value(dt), "FP32")) {
            api_error(rs, 400, "invalid_field", field, "input '%s' takes datatype FP32", want);
            goto done;
        }
        nn_tensor_t info;
        serving_model_input_info(m, i, &info);
        snprintf(field, sizeof field, "inputs[%zu].shape", at);
        json_t *sh = json_object_get(t, "shape");
        int ok = json_is_array(sh) && json_array_size(sh) == (size_t)info.ndim;
        for (int d = 0; ok && d < info.ndim; d++) {
            json_t *v = json_array_get(sh, (size_t)d);
            ok = json_is_integer(v) && (d == 0 ? json_integer_value(v) >= 1 && json_integer_value(v) <= 1000000
                                               : json_integer_value(v) == info.dims[d]);
        }
        if (!ok) {
            char want_shape[128] = "[batch";
            for (int d = 1; d < info.ndim; d++)
                snprintf(want_shape + strlen(want_shape), sizeof want_shape - strlen(want_shape), ", %lld",
                         (long long)info.dims[d]);
            api_error(rs, 400, "invalid_field", field, "input '%s' has shape %s]", want, want_shape);
            goto done;
        }
        int64_t r = json_integer_value(json_array_get(sh, 0));
        if (rows >= 0 && r != rows) {
            api_error(rs, 400, "invalid_field", field, "every input needs the same batch size (%lld)", (long long)rows);
            goto done;
        }
        rows = r;
        int64_t need = rows * serving_model_input_row(m, i), got = 0;
        snprintf(field, sizeof field, "inputs[%zu].data", at);
        json_t *data = json_object_get(t, "data");
        if (!json_is_array(data)) {
            api_error(rs, 400, "invalid_field", field, "data must be an array of numbers (flat or nested)");
            goto done;
        }
        /* count and check first, so that a shape the data does not back allocates nothing */
        if (flatten(data, NULL, 0, &got, field, rs)) goto done;
        if (got != need) {
            api_error(rs, 400, "invalid_field", field, "%lld numbers for a shape of %lld elements", (long long)got,
                      (long long)need);
            goto done;
        }
        in[i] = malloc((size_t)need * sizeof(float));
        if (!in[i]) {
            api_error(rs, 500, "out_of_memory", NULL, "the input did not fit in memory");
            goto done;
        }
        got = 0;
        flatten(data, in[i], need, &got, field, rs);
    }
    int per = passes ? 5 : 1;
    for (int o = 0; o < n_out * per; o++) {
        out[o] = malloc((size_t)(rows * serving_model_output_row(m, o / per)) * sizeof(float));
        if (!out[o]) {
            api_error(rs, 500, "out_of_memory", NULL, "the output did not fit in memory");
            goto done;
        }
    }
    serving_req_t req = {.rows = (int)rows, .inputs = in, .outputs = out, .mc_passes = passes, .seed = (uint64_t)seed};
    char err[512];
    int rc = serving_infer(m, &req, err, sizeof err);
    if (rc == SERVING_ERR_INPUT) {
        api_error(rs, 400, "invalid_input", passes ? "parameters.mc_passes" : "inputs", "%s", err);
        goto done;
    }
    if (rc) {
        api_error(rs, 500, "inference_failed", NULL, "%s", err);
        goto done;
    }
    json_t *outs = json_array();
    for (int o = 0; o < n_out; o++) {
        nn_tensor_t t;
        int ax;
        serving_model_output_info(m, o, &t, &ax);
        for (int k = 0; k < per; k++)
            json_array_append_new(outs, out_tensor(serving_model_output_name(m, o), MC_SUFFIX[k], &t, ax, rows,
                                                   out[o * per + k], rows * serving_model_output_row(m, o)));
    }
    json_t *v = json_pack("{s:s, s:s, s:o}", "model_name", serving_model_name(m), "model_version",
                          serving_model_version(m), "outputs", outs);
    json_t *id = json_object_get(body, "id");
    if (json_is_string(id)) json_object_set(v, "id", id);
    if (passes) json_object_set_new(v, "parameters", json_pack("{s:i, s:I}", "mc_passes", passes, "seed", seed));
    api_reply_json(rs, 200, v);
done:
    for (int i = 0; i < 8; i++) free(in[i]);
    for (int o = 0; o < 40; o++) free(out[o]);
    json_decref(body);
}

void api_kserve_model_post(api_req_t *rq, api_resp_t *rs) {
    const char *action = NULL;
    serving_model_t *m = find_model(rq, rs, &action, 0);
    if (!m) return;
    if (strcmp(action, "infer") == 0) infer(rq, rs, m);
    else api_error(rs, 405, "method_not_allowed", NULL, "only .../infer takes POST");
    serving_release(m);
}
