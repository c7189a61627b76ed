/* The pipeline's job models, predict.normal and predict.earnings: their entities are
 * symbols, a chunk is one inference batch. A chunk gathers each symbol's window, runs MC
 * dropout through the model repository (the model's scaler is applied there), and writes the
 * outcome before it returns: the store (latest + history + failures, one transaction), then
 * the fast layer, then one prediction.updated per symbol. The job engine then settles the
 * chunk; a chunk redone after a crash recomputes the same values (same seed, same batch) and
 * the history's key (run_id, symbol) keeps the first row, so each symbol's row is written
 * once per run. A chunk that cannot run (breaker open, model missing, store failing) returns
 * -1: the engine retries it with backoff and dead-letters it after jobs.max_attempts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "market/pipeline_int.h"

static const char *const OUTPUT_NAMES[PIPE_OUTPUTS] = {"predicted_return", "predicted_price", "uncertainty",
                                                       "p10", "p50", "p90"};

/* params: {run_id, correlation_id, date, model, passes, seed} (the pipeline builds them). */
static int chunk_parse(const json_t *req, json_t **params, model_error_t *err) {
    static const char *const STR[] = {"run_id", "correlation_id", "model"};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(req, STR[i]);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 47) {
            snprintf(err->field, sizeof err->field, "%s", STR[i]);
            snprintf(err->message, sizeof err->message, "%s must be a string of 1..47 characters", STR[i]);
            return -1;
        }
    }
    const json_t *passes = json_object_get(req, "passes"), *seed = json_object_get(req, "seed"),
                 *date = json_object_get(req, "date");
    if (!json_is_integer(passes) || json_integer_value(passes) < 2 || json_integer_value(passes) > 1000) {
        snprintf(err->field, sizeof err->field, "passes");
        snprintf(err->message, sizeof err->message, "passes must be an integer in [2, 1000]");
        return -1;
    }
    if (!json_is_integer(seed) || json_integer_value(seed) < 0) {
        snprintf(err->field, sizeof err->field, "seed");
        snprintf(err->message, sizeof err->message, "seed must be a non-negative integer");
        return -1;
    }
    if (!json_is_integer(date)) {
        snprintf(err->field, sizeof err->field, "date");
        snprintf(err->message, sizeof err->message, "date must be an integer (days since 1970-01-01)");
        return -1;
    }
    *params = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "run_id", json_object_get(req, "run_id"),
                        "correlation_id", json_object_get(req, "correlation_id"), "model",
                        json_object_get(req, "model"), "passes", passes, "seed", seed, "date", date);
    if (!*params) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    return 0;
}

static void put_num(buf_t *b, const char *name, double v) {
    buf_printf(b, ",\"%s\":", name);
    buf_json_double(b, v);
}

/* The prediction object (MODELS.md) without "source". */
static void render_prediction(buf_t *b, const char *symbol, const double *o, double price, const char *model_type,
                              const char *version, int64_t ts_ms, const char *corr, const char *run_id) {
    char ts[40];
    iso8601_ms(ts_ms, ts, sizeof ts);
    buf_puts(b, "{\"symbol\":");
    buf_json_str(b, symbol, strlen(symbol));
    put_num(b, "predicted_return", o[0]);
    put_num(b, "predicted_price", o[1]);
    put_num(b, "current_price", price);
    put_num(b, "uncertainty", o[2]);
    put_num(b, "p10", o[3]);
    put_num(b, "p50", o[4]);
    put_num(b, "p90", o[5]);
    buf_printf(b, ",\"model_type\":\"%s\",\"model_version\":", model_type);
    buf_json_str(b, version, strlen(version));
    buf_printf(b, ",\"timestamp\":\"%s\",\"correlation_id\":", ts);
    buf_json_str(b, corr, strlen(corr));
    buf_puts(b, ",\"run_id\":");
    buf_json_str(b, run_id, strlen(run_id));
    buf_putc(b, '}');
}

static void count_error(pipeline_t *p, const char *type, double n) {
    char lab[64];
    snprintf(lab, sizeof lab, "type=\"%s\"", type);
    metrics_counter_add(p->m, "predictd_pipeline_errors_total", lab, n);
}

static int chunk_run(pipeline_t *p, mkt_route_t route, const json_t *params, const char *const *ids, uint32_t n,
                     uint8_t *codes, double *out, char *err, size_t errlen) {
    const char *run_id = json_string_value(json_object_get(params, "run_id"));
    const char *corr = json_string_value(json_object_get(params, "correlation_id"));
    const char *model = json_string_value(json_object_get(params, "model"));
    const int passes = (int)json_integer_value(json_object_get(params, "passes"));
    const uint64_t seed = (uint64_t)json_integer_value(json_object_get(params, "seed"));
    const char *model_type = mkt_route_name(route);
    const int width = route == ROUTE_EARNINGS ? MKT_TECH + MKT_EARN : MKT_TECH;
    serving_model_t *sm = NULL;
    float *x = NULL, *o[5] = {0};
    uint32_t *row_of = NULL;
    mstore_pred_t *preds = NULL;
    mstore_fail_t *fails = NULL;
    double *price = NULL;
    buf_t js = {0};
    size_t n_preds = 0, n_fails = 0;
    stages_t stg = {0};
    int rc = -1;

    if (!breaker_allow(&p->br_inference)) {
        snprintf(err, errlen, "inference circuit breaker open");
        count_error(p, "breaker_open", 1);
        return -1;
    }
    int src = 0;
    sm = serving_get(p->sv, model, NULL, &src, err, errlen);
    if (!sm) {
        breaker_failure(&p->br_inference);
        count_error(p, "model_unavailable", 1);
        return -1;
    }
    nn_tensor_t in;
    serving_model_input_info(sm, 0, &in);
    if (serving_model_n_inputs(sm) != 1 || in.ndim != 3 || in.dims[2] != width || in.dims[1] < 1 ||
        in.dims[1] > p->k || serving_model_output_row(sm, 0) != 1) {
        snprintf(err, errlen, "model %s must take x [B, K <= %d, %d] and give y [B, 1]", model, p->k, width);
        breaker_failure(&p->br_inference);
        count_error(p, "model_shape", 1);
        goto done;
    }
    const int K = (int)in.dims[1];
    const size_t row = (size_t)K * (size_t)width;
    x = malloc(((size_t)n * row + 1) * sizeof *x);
    row_of = malloc(((size_t)n + 1) * sizeof *row_of);
    price = malloc(((size_t)n + 1) * sizeof *price);
    fails = calloc((size_t)n + 1, sizeof *fails);
    preds = calloc((size_t)n + 1, sizeof *preds);
    for (int k = 0; k < 5; k++) o[k] = malloc(((size_t)n + 1) * sizeof *o[k]);
    if (!x || !row_of || !price || !fails || !preds || !o[0] || !o[1] || !o[2] || !o[3] || !o[4]) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    /* gather: valid windows go to x in chunk order */
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        feat_window_info_t info;
        int fr = features_window(&p->feat, ids[i], width, K, x + (size_t)m * row, &info);
        codes[i] = MODEL_OK;
        for (int k = 0; k < PIPE_OUTPUTS; k++) out[(size_t)i * PIPE_OUTPUTS + k] = NAN;
        mstore_fail_t *f = &fails[n_fails];
        snprintf(f->symbol, sizeof f->symbol, "%s", ids[i]);
        if (fr != 0 || info.have < K) {
            codes[i] = MODEL_ERR_MISSING_FEATURES;
            snprintf(f->reason, sizeof f->reason,
                     "missing technical features: %d of the %d feature vectors the model needs", fr ? 0 : info.have, K);
            n_fails++;
            count_error(p, "missing_features", 1);
            continue;
        }
        if (info.earn_missing && p->skip_missing_earnings) {
            codes[i] = MODEL_ERR_MISSING_EARNINGS;
            snprintf(f->reason, sizeof f->reason,
                     "missing earnings features in %d of its %d vectors (pipeline.missing_earnings = skip)",
                     info.earn_missing, K);
            n_fails++;
            count_error(p, "missing_earnings_features", 1);
            continue;
        }
        if (info.earn_missing) count_error(p, "earnings_features_zero_filled", 1);
        price[m] = info.price;
        row_of[m++] = i;
    }

    const char *version = serving_model_version(sm);
    if (m > 0) {
        double t0 = mono_s();
        /* the route's inference batches, in the chunk's order (a row's MC masks depend on its
         * place in its batch: the same rows give the same batches whatever the chunk size) */
        const uint32_t bs = (uint32_t)(route == ROUTE_EARNINGS ? p->cfg.pipeline_batch_earnings : p->cfg.pipeline_batch_normal);
        int ir = SERVING_OK;
        for (uint32_t r0 = 0; r0 < m && ir == SERVING_OK; r0 += bs) {
            uint32_t rows = m - r0 < bs ? m - r0 : bs;
            float *ins[1] = {x + (size_t)r0 * row};
            float *outs[5] = {o[0] + r0, o[1] + r0, o[2] + r0, o[3] + r0, o[4] + r0};
            serving_req_t req = {.rows = (int)rows, .inputs = ins, .outputs = outs, .mc_passes = passes, .seed = seed};
            ir = serving_infer(sm, &req, err, errlen);
        }
        stg.inference = (mono_s() - t0) * 1000.0;
        if (ir != SERVING_OK) {
            breaker_failure(&p->br_inference);
            count_error(p, "inference", 1);
            goto done;
        }
        breaker_success(&p->br_inference);
        char lab[64];
        snprintf(lab, sizeof lab, "model_type=\"%s\"", model_type);
        metrics_observe(p->m, "predictd_pipeline_inference_seconds", lab, stg.inference / 1000.0);
    }
    const int64_t ts = now_ms();
    for (uint32_t r = 0; r < m; r++) {
        uint32_t i = row_of[r];
        double *v = out + (size_t)i * PIPE_OUTPUTS;
        v[0] = (double)o[0][r];
        v[1] = price[r] * (1.0 + v[0]);
        v[2] = (double)o[1][r];
        v[3] = (double)o[2][r];
        v[4] = (double)o[3][r];
        v[5] = (double)o[4][r];
        buf_reset(&js);
        render_prediction(&js, ids[i], v, price[r], model_type, version, ts, corr, run_id);
        if (js.oom) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        mstore_pred_t *pr = &preds[n_preds++];
        snprintf(pr->symbol, sizeof pr->symbol, "%s", ids[i]);
        pr->ts_ms = ts;
        pr->json = buf_steal(&js);
    }

    /* durable first: a chunk whose outcome is not in the store is not done */
    double t1 = mono_s();
    if (!breaker_allow(&p->br_store)) {
        snprintf(err, errlen, "store circuit breaker open");
        count_error(p, "breaker_open", 1);
        goto done;
    }
    char serr[256];
    if (mstore_chunk_write(p->st, run_id, preds, n_preds, fails, n_fails, serr, sizeof serr) != 0) {
        breaker_failure(&p->br_store);
        count_error(p, "store", 1);
        snprintf(err, errlen, "store: %s", serr);
        goto done;
    }
    breaker_success(&p->br_store);
    stg.store = (mono_s() - t1) * 1000.0;
    if (p->cfg.pipeline_fault_exit_after_chunks > 0) {
        pthread_mutex_lock(&p->mu);
        long k = ++p->chunks_stored;
        pthread_mutex_unlock(&p->mu);
        if (k == p->cfg.pipeline_fault_exit_after_chunks) {
            LOG_W("fault injection: exiting after a chunk's outcome was stored, before it settles", "run=%s", run_id);
            _exit(3);
        }
    }

    double t2 = mono_s();
    long fast_failed = 0;
    char key[48];
    for (size_t i = 0; i < n_preds; i++) {
        if (!breaker_allow(&p->br_fast)) {
            fast_failed += (long)(n_preds - i);
            break;
        }
        snprintf(key, sizeof key, "pred:%s", preds[i].symbol);
        if (kv_put(p->kv, key, preds[i].json, strlen(preds[i].json), (int64_t)p->cfg.pipeline_fast_ttl_s * 1000) ==
            KV_OK) {
            breaker_success(&p->br_fast);
        } else {
            breaker_failure(&p->br_fast);
            fast_failed++;
        }
    }
    if (fast_failed) count_error(p, "fast_layer", (double)fast_failed);
    stg.fast_layer = (mono_s() - t2) * 1000.0;

    double t3 = mono_s();
    for (size_t i = 0; i < n_preds; i++)
        pipeline_publish(p, "prediction.updated", preds[i].json, strlen(preds[i].json));
    stg.events = (mono_s() - t3) * 1000.0;

    char lab[64];
    snprintf(lab, sizeof lab, "model_type=\"%s\"", model_type);
    metrics_counter_add(p->m, "predictd_pipeline_predictions_total", lab, (double)n_preds);
    pipeline_run_add_stages(p, run_id, &stg);
    LOG_D("pipeline chunk done", "run=%s model_type=%s symbols=%u predicted=%zu failed=%zu inference_ms=%.1f",
          run_id, model_type, n, n_preds, n_fails, stg.inference);
    rc = 0;
done:
    if (preds)
        for (size_t i = 0; i < n_preds; i++) free(preds[i].json);
    free(preds);
    free(fails);
    free(price);
    free(row_of);
    free(x);
    for (int k = 0; k < 5; k++) free(o[k]);
    buf_free(&js);
    serving_release(sm);
    return rc;
}

static int run_normal(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                      uint8_t *codes, double *out, char *err, size_t errlen) {
    return chunk_run(env->model_ctx, ROUTE_NORMAL, params, ids, n, codes, out, err, errlen);
}

static int run_earnings(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                        uint8_t *codes, double *out, char *err, size_t errlen) {
    return chunk_run(env->model_ctx, ROUTE_EARNINGS, params, ids, n, codes, out, err, errlen);
}

void pipeline_models_init(pipeline_t *p) {
    for (int r = 0; r < 2; r++) {
        model_t *md = &p->models[r];
        memset(md, 0, sizeof *md);
        md->name = r == ROUTE_EARNINGS ? "predict.earnings" : "predict.normal";
        md->n_outputs = PIPE_OUTPUTS;
        md->output_names = OUTPUT_NAMES;
        md->xParse = chunk_parse;
        md->xRunChunk = r == ROUTE_EARNINGS ? run_earnings : run_normal;
        md->ctx = p;
        /* several inference batches per chunk: one store commit and one settle for them all */
        int batch = r == ROUTE_EARNINGS ? p->cfg.pipeline_batch_earnings : p->cfg.pipeline_batch_normal;
        long cs = (long)batch * (p->cfg.pipeline_chunk_batches > 0 ? p->cfg.pipeline_chunk_batches : 1);
        md->chunk_size = (int)(cs < 65536 ? cs : 65536);
    }
}
