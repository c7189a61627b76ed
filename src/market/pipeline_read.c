/* The pipeline's reads (predictions from the fast layer, else the store; history; runs),
 * the fast layer vs store consistency check, and its metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "market/pipeline_int.h"

/* Appends json (an object) with ,"source":src before its closing brace. */
static void with_source(buf_t *out, const char *json, const char *src) {
    size_t len = strlen(json);
    while (len && json[len - 1] != '}') len--;
    if (!len) return;
    buf_append(out, json, len - 1);
    buf_printf(out, ",\"source\":\"%s\"}", src);
}

int pipeline_prediction_get(pipeline_t *p, const char *symbol, buf_t *out) {
    char key[48];
    snprintf(key, sizeof key, "pred:%s", symbol);
    if (breaker_allow(&p->br_fast)) {
        char *val = NULL;
        int rc = kv_get(p->kv, key, &val, NULL, NULL);
        if (rc == KV_OK) {
            breaker_success(&p->br_fast);
            with_source(out, val, "fast_layer");
            free(val);
            return 0;
        }
        if (rc == KV_NOT_FOUND) breaker_success(&p->br_fast);
        else {
            breaker_failure(&p->br_fast);
            metrics_counter_add(p->m, "predictd_pipeline_errors_total", "type=\"fast_layer\"", 1);
        }
    }
    if (!breaker_allow(&p->br_store)) return -1;
    char *json = NULL;
    int rc = mstore_latest_get(p->st, symbol, &json, NULL, NULL);
    if (rc < 0) {
        breaker_failure(&p->br_store);
        metrics_counter_add(p->m, "predictd_pipeline_errors_total", "type=\"store\"", 1);
        return -1;
    }
    breaker_success(&p->br_store);
    if (rc == 1) return 1;
    with_source(out, json, "store");
    free(json);
    return 0;
}

int pipeline_history(pipeline_t *p, const char *symbol, int64_t from_ms, int64_t to_ms, long limit, buf_t *out,
                     long *count) {
    char err[256];
    return mstore_history(p->st, symbol, from_ms, to_ms, limit, out, count, err, sizeof err);
}

static long json_array_len(const char *text) {
    json_error_t je;
    json_t *a = json_loads(text ? text : "[]", 0, &je);
    long n = json_is_array(a) ? (long)json_array_size(a) : 0;
    json_decref(a);
    return n;
}

int pipeline_run_render(pipeline_t *p, const char *run_id, buf_t *out) {
    mstore_run_t r;
    char err[256];
    int rc = mstore_run_get(p->st, run_id, &r, err, sizeof err);
    if (rc != 0) return rc;
    /* status: the stored one once finished, else from the jobs */
    const char *status = r.status;
    json_error_t je;
    json_t *jobs = json_loads(r.jobs, 0, &je);
    if (!r.finished_at) {
        int any_started = 0, all_done = json_array_size(jobs) > 0;
        size_t i;
        json_t *v;
        json_array_foreach(jobs, i, v) {
            store_job_t job;
            if (!json_is_string(v) || store_job_get(p->st, json_string_value(v), &job) != 0) continue;
            any_started |= job.status != JOB_QUEUED;
            all_done &= job.status != JOB_QUEUED && job.status != JOB_PROCESSING;
        }
        status = any_started || all_done ? "PROCESSING" : "QUEUED";
    }
    long n_normal = json_array_len(r.normal_ids), n_earn = json_array_len(r.earnings_ids);
    long ok = 0, failed = 0;
    buf_t fails = {0};
    mstore_run_outcome(p->st, run_id, &ok, &failed, &fails, err, sizeof err);
    char day[11];
    mkt_date_format(r.date, day);
    buf_puts(out, "{\"run_id\":");
    buf_json_str(out, r.run_id, strlen(r.run_id));
    buf_puts(out, ",\"correlation_id\":");
    buf_json_str(out, r.correlation_id, strlen(r.correlation_id));
    buf_printf(out, ",\"status\":\"%s\",\"trigger\":\"%s\",\"date\":\"%s\",\"symbols\":%ld", status, r.trigger, day,
               n_normal + n_earn);
    buf_printf(out, ",\"routes\":{\"normal_day\":%ld,\"earnings_day\":%ld}", n_normal, n_earn);
    buf_printf(out, ",\"succeeded\":%ld,\"failed\":%ld,\"failures\":[", ok, failed);
    if (fails.data) buf_append(out, fails.data, fails.len);
    buf_puts(out, "],\"stages_ms\":");
    if (r.stages) {
        buf_puts(out, r.stages);
    } else {
        int found = 0;
        pthread_mutex_lock(&p->mu);
        for (active_run_t *a = p->active; a; a = a->next)
            if (!strcmp(a->run_id, run_id)) {
                buf_printf(out, "{\"route\":%.3f,\"inference\":%.3f,\"store\":%.3f,\"fast_layer\":%.3f,"
                                "\"events\":%.3f,\"total\":null}",
                           a->route_ms, a->st.inference, a->st.store, a->st.fast_layer, a->st.events);
                found = 1;
                break;
            }
        pthread_mutex_unlock(&p->mu);
        if (!found) buf_printf(out, "{\"route\":%.3f,\"inference\":null,\"store\":null,\"fast_layer\":null,"
                                    "\"events\":null,\"total\":null}", r.route_ms);
    }
    buf_printf(out, ",\"jobs\":%s,\"created_at\":", r.jobs);
    char t[40];
    iso8601_ms(r.created_at, t, sizeof t);
    buf_printf(out, "\"%s\",\"finished_at\":", t);
    if (r.finished_at) {
        iso8601_ms(r.finished_at, t, sizeof t);
        buf_printf(out, "\"%s\"}", t);
    } else {
        buf_puts(out, "null}");
    }
    buf_free(&fails);
    json_decref(jobs);
    mstore_run_clear(&r);
    return out->oom ? -1 : 0;
}

/* ---- consistency check -------------------------------------------------------------------------- */

typedef struct {
    pipeline_t *p;
    int64_t now, ttl_ms;
    long checked, mismatched, repaired, repair_failed;
} check_t;

static void check_one(void *arg, const char *symbol, const char *run_id, int64_t ts_ms, const char *json) {
    (void)run_id;
    check_t *c = arg;
    int64_t age = c->now - ts_ms;
    if (age >= c->ttl_ms) return; /* expired in the fast layer by design: not a mismatch */
    c->checked++;
    char key[48];
    snprintf(key, sizeof key, "pred:%s", symbol);
    char *val = NULL;
    int rc = kv_get(c->p->kv, key, &val, NULL, NULL);
    int same = rc == KV_OK && !strcmp(val, json);
    free(val);
    if (same) return;
    c->mismatched++;
    /* repair: store -> fast layer, for what is left of its life */
    if (kv_put(c->p->kv, key, json, strlen(json), c->ttl_ms - age) == KV_OK) c->repaired++;
    else c->repair_failed++;
}

int pipeline_consistency_run(pipeline_t *p, buf_t *report) {
    check_t c = {p, now_ms(), (int64_t)p->cfg.pipeline_fast_ttl_s * 1000, 0, 0, 0, 0};
    char err[256];
    int rc = mstore_latest_scan(p->st, check_one, &c, err, sizeof err);
    double ratio = c.checked ? (double)c.mismatched / (double)c.checked : 0.0;
    int alert = rc == 0 && ratio > 0.05;
    metrics_counter_add(p->m, "predictd_pipeline_consistency_checks_total", NULL, 1);
    metrics_gauge_set(p->m, "predictd_pipeline_consistency_mismatch_ratio", NULL, ratio);
    metrics_counter_add(p->m, "predictd_pipeline_consistency_repaired_total", NULL, (double)c.repaired);
    buf_t ev = {0};
    buf_printf(&ev, "{\"kind\":\"consistency\",\"checked\":%ld,\"mismatched\":%ld,\"repaired\":%ld,"
                    "\"repair_failed\":%ld,\"ratio\":",
               c.checked, c.mismatched, c.repaired, c.repair_failed);
    buf_json_double(&ev, ratio);
    buf_printf(&ev, ",\"threshold\":0.05,\"alert\":%s}", alert ? "true" : "false");
    if (alert) {
        metrics_counter_add(p->m, "predictd_pipeline_consistency_alerts_total", NULL, 1);
        LOG_W("fast layer and store disagree", "checked=%ld mismatched=%ld ratio=%.3f repaired=%ld", c.checked,
              c.mismatched, ratio, c.repaired);
        if (!ev.oom) pipeline_publish(p, "pipeline.alert", ev.data, ev.len);
    } else if (c.mismatched) {
        LOG_I("fast layer repaired from the store", "checked=%ld mismatched=%ld", c.checked, c.mismatched);
    }
    if (rc != 0) LOG_W("consistency check could not read the store", "reason=\"%s\"", err);
    if (report && !ev.oom) buf_append(report, ev.data, ev.len);
    buf_free(&ev);
    return rc;
}

int pipeline_consistency_check(pipeline_t *p, buf_t *out) { return pipeline_consistency_run(p, out); }

/* ---- metrics -------------------------------------------------------------------------------------- */

static const double E2E_BUCKETS[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120};

void pipeline_metrics_describe(pipeline_t *p) {
    metrics_t *m = p->m;
    metrics_describe(m, "predictd_pipeline_predictions_total", METRIC_COUNTER,
                     "Market predictions written, by model_type.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_inference_seconds", METRIC_HISTOGRAM,
                     "MC-dropout inference time of one batch, by model_type.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_e2e_seconds", METRIC_HISTOGRAM,
                     "A run from its trigger to its last chunk settled.", E2E_BUCKETS,
                     (int)(sizeof E2E_BUCKETS / sizeof E2E_BUCKETS[0]));
    metrics_describe(m, "predictd_pipeline_fresh_symbols", METRIC_GAUGE,
                     "Symbols whose latest prediction is younger than pipeline.fast_ttl_s.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_errors_total", METRIC_COUNTER,
                     "Pipeline errors by type (missing_features, inference, store, fast_layer, publish, ...).",
                     NULL, 0);
    metrics_describe(m, "predictd_pipeline_routed_total", METRIC_COUNTER, "Symbols routed, by route.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_routing_seconds", METRIC_HISTOGRAM, "Time to route one run's symbols.",
                     NULL, 0);
    metrics_describe(m, "predictd_pipeline_pending_symbols", METRIC_GAUGE,
                     "Symbols of data.features.ready waiting for the collection window.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_breaker_state", METRIC_GAUGE,
                     "Circuit breaker state by name: 0 closed, 1 open, 2 half-open.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_runs_started_total", METRIC_COUNTER, "Runs started.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_runs_total", METRIC_COUNTER, "Runs finished, by status.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_active_runs", METRIC_GAUGE, "Runs not yet finished.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_consistency_checks_total", METRIC_COUNTER,
                     "Fast layer vs store checks run.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_consistency_mismatch_ratio", METRIC_GAUGE,
                     "Mismatched share of fresh symbols at the last check (alert above 0.05).", NULL, 0);
    metrics_describe(m, "predictd_pipeline_consistency_repaired_total", METRIC_COUNTER,
                     "Fast-layer entries rewritten from the store by the check.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_consistency_alerts_total", METRIC_COUNTER,
                     "Checks that found more than 5 % of the fresh symbols mismatched.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_outbox", METRIC_GAUGE, "Events waiting to be published again.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_outbox_dropped_total", METRIC_COUNTER,
                     "Events dropped because the outbox was full.", NULL, 0);
    metrics_describe(m, "predictd_pipeline_fast_layer_keys", METRIC_GAUGE,
                     "Live keys in the fast layer (-1: down).", NULL, 0);
    metrics_counter_add(m, "predictd_pipeline_predictions_total", "model_type=\"normal_day\"", 0);
    metrics_counter_add(m, "predictd_pipeline_predictions_total", "model_type=\"earnings_day\"", 0);
    metrics_counter_add(m, "predictd_pipeline_routed_total", "route=\"normal_day\"", 0);
    metrics_counter_add(m, "predictd_pipeline_routed_total", "route=\"earnings_day\"", 0);
    metrics_counter_add(m, "predictd_pipeline_consistency_alerts_total", NULL, 0);
}

typedef struct {
    int64_t since;
    long n;
} fresh_t;

static void count_fresh(void *arg, const char *symbol, const char *run_id, int64_t ts_ms, const char *json) {
    (void)symbol, (void)run_id, (void)json;
    fresh_t *f = arg;
    f->n += ts_ms >= f->since;
}

void pipeline_metrics_collect(void *arg, metrics_t *m) {
    pipeline_t *p = arg;
    breaker_t *brs[3] = {&p->br_inference, &p->br_fast, &p->br_store};
    for (int i = 0; i < 3; i++) {
        char lab[64];
        snprintf(lab, sizeof lab, "name=\"%s\"", brs[i]->name);
        metrics_gauge_set(m, "predictd_pipeline_breaker_state", lab, (double)breaker_state(brs[i]));
    }
    pthread_mutex_lock(&p->mu);
    double pending = (double)json_object_size(p->pending);
    double outbox = (double)p->outbox_n;
    double active = 0;
    for (active_run_t *a = p->active; a; a = a->next) active++;
    pthread_mutex_unlock(&p->mu);
    metrics_gauge_set(m, "predictd_pipeline_pending_symbols", NULL, pending);
    metrics_gauge_set(m, "predictd_pipeline_outbox", NULL, outbox);
    metrics_gauge_set(m, "predictd_pipeline_active_runs", NULL, active);
    metrics_gauge_set(m, "predictd_pipeline_fast_layer_keys", NULL, (double)kv_count(p->kv));
    fresh_t f = {now_ms() - (int64_t)p->cfg.pipeline_fast_ttl_s * 1000, 0};
    char err[256];
    if (mstore_latest_scan(p->st, count_fresh, &f, err, sizeof err) == 0)
        metrics_gauge_set(m, "predictd_pipeline_fresh_symbols", NULL, (double)f.n);
}
