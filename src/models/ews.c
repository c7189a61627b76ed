/* Early-warning signals of a critical transition (MODELS.md, `ews`), on each entity's
 * observations in [as_of - time_window, as_of].
 *
 * 1. Detrend (none | linear | gaussian, bandwidth 10% of the span) -> residuals r.
 * 2. Rolling windows of w = floor(rolling_window * n) points (at least 3), k = 0..n-w:
 *    sample variance, lag-1 autocorrelation (ar1), skewness, excess kurtosis (formulas in
 *    models_int.h). Each metric's value is its last window's; its tau is Kendall's tau-b
 *    between window index (= time) and the rolling series: the trend.
 * 3. critical_distance: the recovery rate lambda = -ln(ar1) / dt per hour, dt the median
 *    sampling interval in hours, from the last window's ar1; null with a reason when
 *    ar1 <= 0 (no exponential recovery to measure).
 * 4. alert: variance tau >= alert_tau and ar1 tau >= alert_tau (always computed, whatever
 *    `metrics` shows). An alert calls env->on_alert(entity) (cache invalidation + the
 *    ews.alert event are wired there).
 * Fewer than min_points points (or fewer than 3 per window) is that entity's failure
 * (too_few_points); constant residuals are no_variance. Without as_of the window ends when
 * the entity is computed (no per-job state: results stay per entity, so the result cache
 * can keep them; its TTL bounds how old "now" gets). Rolling statistics are
 * plain O(n w) loops and Kendall's tau O(L^2): fine for the thousands of points per entity
 * a 7-day window holds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/models_int.h"
#include "store/store.h"

static const char *const METRIC_NAMES[] = {"variance", "autocorrelation", "skewness", "kurtosis",
                                           "critical_distance"};
static const char *const KNOWN[] = {"metrics", "time_window", "as_of", "series", "rolling_window",
                                    "detrend", "min_points", "alert_tau"};
#define N_KNOWN (sizeof KNOWN / sizeof KNOWN[0])

/* "2026-11-24T10:00:00Z" / "...T10:00:00.5Z" / "...+00:00" (UTC only). 0 ok. */
static int parse_iso_utc(const char *s, double *out) {
    int Y, M, D, h, m, n = 0;
    double sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &Y, &M, &D, &h, &m, &sec, &n) != 6) return -1;
    const char *z = s + n;
    if (strcmp(z, "Z") && strcmp(z, "+00:00") && *z) return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec < 0 || sec >= 61) return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    *out = (double)timegm(&tm) + sec;
    return 0;
}

int ews_parse_common(const json_t *req, const char *name, json_t **out, model_error_t *err) {
    json_t *src = models_gather_params(req, name, KNOWN, N_KNOWN, err);
    if (!src) return -1;
    unsigned metrics = EWS_M_VARIANCE | EWS_M_AUTOCORRELATION | EWS_M_CRITICAL_DISTANCE;
    const json_t *ms = json_object_get(src, "metrics");
    if (ms && !json_is_null(ms)) {
        if (!json_is_array(ms) || json_array_size(ms) == 0) {
            models_set_err(err, "metrics", "metrics must be a non-empty array of variance, autocorrelation, "
                           "skewness, kurtosis, critical_distance");
            goto fail;
        }
        metrics = 0;
        for (size_t i = 0; i < json_array_size(ms); i++) {
            const json_t *m = json_array_get(ms, i);
            int k = 0;
            while (k < 5 && !(json_is_string(m) && strcmp(json_string_value(m), METRIC_NAMES[k]) == 0)) k++;
            if (k == 5) {
                snprintf(err->field, sizeof err->field, "parameters.metrics[%zu]", i);
                snprintf(err->message, sizeof err->message, "unknown metric: use variance, autocorrelation, "
                         "skewness, kurtosis or critical_distance");
                goto fail;
            }
            metrics |= 1u << k;
        }
    }
    double window_s = 7 * 86400.0, rolling = 0.5, alert_tau = 0.7, as_of = NAN;
    const json_t *tw = json_object_get(src, "time_window");
    if (tw && !json_is_null(tw)) {
        int ok = 0;
        if (json_is_string(tw)) ok = parse_duration_s(json_string_value(tw), &window_s) == 0;
        else if (json_is_number(tw)) { window_s = json_number_value(tw); ok = isfinite(window_s); }
        if (!ok || !(window_s > 0)) {
            models_set_err(err, "time_window", "time_window must be a duration > 0 like 90s, 30m, 24h, 7d");
            goto fail;
        }
    }
    const json_t *ao = json_object_get(src, "as_of");
    if (ao && !json_is_null(ao)) {
        int ok = 0;
        if (json_is_string(ao)) ok = parse_iso_utc(json_string_value(ao), &as_of) == 0;
        else if (json_is_number(ao)) { as_of = json_number_value(ao); ok = isfinite(as_of); }
        if (!ok) {
            models_set_err(err, "as_of", "as_of must be seconds since the epoch or a UTC time like 2026-11-24T10:00:00Z");
            goto fail;
        }
    }
    const char *series = "value";
    const json_t *se = json_object_get(src, "series");
    if (se && !json_is_null(se)) {
        if (!json_is_string(se) || json_string_length(se) == 0 || json_string_length(se) > 256) {
            models_set_err(err, "series", "series must be a name of 1 to 256 bytes");
            goto fail;
        }
        series = json_string_value(se);
    }
    if (models_num_param(src, "rolling_window", 1e-9, 1, &rolling, err) < 0) {
        models_set_err(err, "rolling_window", "rolling_window must be a fraction of the points in (0, 1]");
        goto fail;
    }
    if (models_num_param(src, "alert_tau", -1, 1, &alert_tau, err) < 0) goto fail;
    long long min_points = 20;
    if (models_int_param(src, "min_points", 3, 100000000, &min_points, err) < 0) goto fail;
    int detrend = EWS_DETREND_GAUSSIAN;
    const json_t *dt = json_object_get(src, "detrend");
    static const char *const DN[] = {"none", "linear", "gaussian"};
    if (dt && !json_is_null(dt)) {
        const char *d = json_is_string(dt) ? json_string_value(dt) : "";
        detrend = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(d, DN[k]) == 0) detrend = k;
        if (detrend < 0) {
            models_set_err(err, "detrend", "detrend must be \"none\", \"linear\" or \"gaussian\"");
            goto fail;
        }
    }
    json_t *mlist = json_array();
    for (int k = 0; k < 5; k++)
        if (metrics & (1u << k)) json_array_append_new(mlist, json_string(METRIC_NAMES[k]));
    json_t *o = json_pack("{s:s, s:o, s:f, s:s, s:f, s:s, s:I, s:f}", "prediction_type", name,
                          "metrics", mlist, "time_window_s", window_s, "series", series,
                          "rolling_window", rolling, "detrend", DN[detrend],
                          "min_points", (json_int_t)min_points, "alert_tau", alert_tau);
    if (!o) goto fail;
    if (!isnan(as_of)) json_object_set_new(o, "as_of", json_real(as_of));
    json_decref(src);
    *out = o;
    return 0;
fail:
    json_decref(src);
    return -1;
}

void ews_opts_from_params(const json_t *params, ews_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->window_s = json_number_value(json_object_get(params, "time_window_s"));
    const json_t *ao = json_object_get(params, "as_of");
    o->as_of = ao ? json_number_value(ao) : NAN;
    o->rolling = json_number_value(json_object_get(params, "rolling_window"));
    o->alert_tau = json_number_value(json_object_get(params, "alert_tau"));
    o->min_points = (long)json_integer_value(json_object_get(params, "min_points"));
    o->series = json_string_value(json_object_get(params, "series"));
    const char *d = json_string_value(json_object_get(params, "detrend"));
    o->detrend = d && !strcmp(d, "none") ? EWS_DETREND_NONE
               : d && !strcmp(d, "linear") ? EWS_DETREND_LINEAR : EWS_DETREND_GAUSSIAN;
    const json_t *ms = json_object_get(params, "metrics");
    for (size_t i = 0; i < json_array_size(ms); i++)
        for (int k = 0; k < 5; k++)
            if (!strcmp(json_string_value(json_array_get(ms, i)), METRIC_NAMES[k])) o->metrics |= 1u << k;
}

/* ---- the computation ------------------------------------------------------------- */

void ews_detrend(const double *t, const double *x, long n, int mode, double *res) {
    if (mode == EWS_DETREND_NONE || n < 2) {
        for (long i = 0; i < n; i++) res[i] = x[i];
        return;
    }
    double span = t[n - 1] - t[0];
    if (mode == EWS_DETREND_LINEAR || !(span > 0)) {
        /* x ~ a + b (t - tm) by least squares (b = 0 when all times are equal) */
        double tm = 0, xm = 0;
        for (long i = 0; i < n; i++) tm += t[i], xm += x[i];
        tm /= (double)n;
        xm /= (double)n;
        double sxy = 0, sxx = 0;
        for (long i = 0; i < n; i++) sxy += (t[i] - tm) * (x[i] - xm), sxx += (t[i] - tm) * (t[i] - tm);
        double b = sxx > 0 ? sxy / sxx : 0;
        for (long i = 0; i < n; i++) res[i] = x[i] - (xm + b * (t[i] - tm));
        return;
    }
    /* Gaussian kernel smoother, bandwidth h = 0.1 span; points further than 6h weigh
     * < e^-18 and are left out (t is sorted: a sliding range) */
    const double h = 0.1 * span, cut = 6 * h;
    long lo = 0, hi = 0;
    for (long i = 0; i < n; i++) {
        while (t[i] - t[lo] > cut) lo++;
        while (hi < n && t[hi] - t[i] <= cut) hi++;
        double sw = 0, swx = 0;
        for (long j = lo; j < hi; j++) {
            double u = (t[j] - t[i]) / h, k = exp(-0.5 * u * u);
            sw += k;
            swx += k * x[j];
        }
        res[i] = x[i] - swx / sw;
    }
}

/* r: [n] residuals -> per window k in [0, n - w]: var[k], ar1[k], skew[k], kurt[k] */
void ews_rolling(const double *r, long n, long w, double *var, double *ar1, double *skew, double *kurt) {
    for (long k = 0; k + w <= n; k++) {
        const double *x = r + k;
        double m = 0;
        for (long i = 0; i < w; i++) m += x[i];
        m /= (double)w;
        double m2 = 0, m3 = 0, m4 = 0, c1 = 0;
        for (long i = 0; i < w; i++) {
            double d = x[i] - m, d2 = d * d;
            m2 += d2;
            m3 += d2 * d;
            m4 += d2 * d2;
            if (i + 1 < w) c1 += d * (x[i + 1] - m);
        }
        double ss = m2;
        m2 /= (double)w;
        m3 /= (double)w;
        m4 /= (double)w;
        if (var) var[k] = ss / (double)(w - 1);
        if (ar1) ar1[k] = ss > 0 ? c1 / ss : NAN;
        if (skew) skew[k] = m2 > 0 ? m3 / pow(m2, 1.5) : NAN;
        if (kurt) kurt[k] = m2 > 0 ? m4 / (m2 * m2) - 3.0 : NAN;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int ews_compute(const double *t, const double *x, long n, const ews_opts_t *o, ews_result_t *r,
                double *ar1_series) {
    memset(r, 0, sizeof *r);
    r->n = n;
    r->var = r->var_tau = r->ar1 = r->ar1_tau = r->skew = r->skew_tau = r->kurt = r->kurt_tau = NAN;
    r->lambda = r->dt_h = NAN;
    long w = (long)floor(o->rolling * (double)n + 1e-9);
    r->w = w;
    if (n < o->min_points || n < 3 || w < 3) return MODEL_ERR_TOO_FEW_POINTS;
    const long L = n - w + 1;
    r->L = L;
    double *res = malloc((size_t)n * sizeof *res);
    double *buf = malloc((size_t)(4 * L + n) * sizeof *buf);
    if (!res || !buf) { free(res); free(buf); return -1; }
    double *var = buf, *ar1 = buf + L, *skew = buf + 2 * L, *kurt = buf + 3 * L, *dts = buf + 4 * L;
    ews_detrend(t, x, n, o->detrend, res);
    ews_rolling(res, n, w, var, ar1, skew, kurt);
    int code = MODEL_OK;
    if (!(var[L - 1] > 0)) { code = MODEL_ERR_NO_VARIANCE; goto out; }
    r->var = var[L - 1];
    r->ar1 = ar1[L - 1];
    r->skew = skew[L - 1];
    r->kurt = kurt[L - 1];
    r->var_tau = models_kendall_tau(var, L);
    r->ar1_tau = models_kendall_tau(ar1, L);
    r->skew_tau = models_kendall_tau(skew, L);
    r->kurt_tau = models_kendall_tau(kurt, L);
    for (long i = 0; i + 1 < n; i++) dts[i] = t[i + 1] - t[i];
    qsort(dts, (size_t)(n - 1), sizeof *dts, cmp_double);
    r->dt_h = ((n - 1) % 2 ? dts[(n - 1) / 2] : 0.5 * (dts[(n - 1) / 2 - 1] + dts[(n - 1) / 2])) / 3600.0;
    if (r->ar1 > 0 && r->dt_h > 0) r->lambda = -log(r->ar1) / r->dt_h;
    r->alert = r->var_tau >= o->alert_tau && r->ar1_tau >= o->alert_tau;
    if (ar1_series) memcpy(ar1_series, ar1, (size_t)L * sizeof *ar1);
out:
    free(res);
    free(buf);
    return code;
}

int ews_fetch(const model_env_t *env, const ews_opts_t *o, const char *id, double **t, double **x,
              long *n) {
    size_t k = 0;
    *t = *x = NULL;
    *n = 0;
    if (!env->store) return -1;
    if (store_observations_get(env->store, id, o->series, o->as_of - o->window_s, o->as_of, t, x, &k) != 0)
        return -1;
    *n = (long)k;
    return 0;
}

/* ---- the model ------------------------------------------------------------------- */

/* outputs: see ews_render */
static const char *const OUTPUTS[] = {"n_points", "window_points", "variance", "variance_tau",
                                      "ar1", "ar1_tau", "skewness", "skewness_tau", "kurtosis",
                                      "kurtosis_tau", "critical_distance", "alert", "metrics",
                                      "median_interval_hours"};
#define N_OUT 14

static int ews_parse(const json_t *req, json_t **out, model_error_t *err) {
    return ews_parse_common(req, "ews", out, err);
}

/* The job's as_of when the request has none: the time the job starts, once. */

int ews_for_each(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                 uint8_t *codes, double *out, int n_out, ews_entity_fn fn, char *err, size_t errlen) {
    ews_opts_t o;
    ews_opts_from_params(params, &o);
    if (isnan(o.as_of)) o.as_of = (double)now_ms() / 1000.0; /* no as_of: the window ends now */
    for (uint32_t k = 0; k < n; k++) {
        double *v = out + (size_t)k * (size_t)n_out;
        for (int i = 0; i < n_out; i++) v[i] = NAN;
        graph_rdlock(env->graph);
        int64_t gi = graph_find(env->graph, ids[k]);
        graph_unlock(env->graph);
        if (gi < 0) { codes[k] = MODEL_ERR_UNKNOWN_ENTITY; continue; }
        double *t, *x;
        long m;
        if (ews_fetch(env, &o, ids[k], &t, &x, &m) != 0) {
            snprintf(err, errlen, "observations of '%.100s' could not be read from the store", ids[k]);
            return -1;
        }
        int code = fn(env, ids[k], t, x, m, &o, v);
        free(t);
        free(x);
        if (code < 0) { snprintf(err, errlen, "out of memory"); return -1; }
        codes[k] = (uint8_t)code;
    }
    return 0;
}

/* one entity: v[14] (OUTPUTS); an alert calls env->on_alert */
static int ews_entity(const model_env_t *env, const char *id, const double *t, const double *x,
                      long m, const ews_opts_t *o, double *v) {
    ews_result_t r;
    int code = ews_compute(t, x, m, o, &r, NULL);
    if (code < 0) return code;
    v[0] = (double)r.n;
    v[1] = (double)r.w;
    if (code != MODEL_OK) return code;
    v[2] = r.var; v[3] = r.var_tau; v[4] = r.ar1; v[5] = r.ar1_tau;
    v[6] = r.skew; v[7] = r.skew_tau; v[8] = r.kurt; v[9] = r.kurt_tau;
    v[10] = r.lambda;
    v[11] = r.alert;
    v[12] = o->metrics;
    v[13] = r.dt_h;
    if (r.alert && env->on_alert) {
        model_alert_t a = {.job_id = env->job_id, .entity_id = id, .variance_tau = r.var_tau,
                           .ar1_tau = r.ar1_tau};
        env->on_alert(env->alert_arg, &a);
    }
    return code;
}

/* ids: n -> codes[n], out[n][14] (OUTPUTS) */
static int ews_run(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                   uint8_t *codes, double *out, char *err, size_t errlen) {
    return ews_for_each(env, params, ids, n, codes, out, N_OUT, ews_entity, err, errlen);
}

static void put_num(buf_t *b, int *first, const char *name, double v) {
    if (!*first) buf_putc(b, ',');
    *first = 0;
    buf_json_str(b, name, strlen(name));
    buf_putc(b, ':');
    buf_json_double(b, v);
}

/* {n_points, window_points, [variance, variance_tau], [ar1, ar1_tau], [skewness, skewness_tau],
 *  [kurtosis, kurtosis_tau], [critical_distance, critical_distance_reason?], alert,
 *  median_interval_hours}: the metrics asked for, plus what alert rests on. */
static void ews_render(const double *v, int n, buf_t *b) {
    if (n < N_OUT) { buf_puts(b, "{}"); return; }
    unsigned m = (unsigned)v[12];
    int first = 1;
    buf_putc(b, '{');
    put_num(b, &first, "n_points", v[0]);
    put_num(b, &first, "window_points", v[1]);
    if (m & EWS_M_VARIANCE) { put_num(b, &first, "variance", v[2]); put_num(b, &first, "variance_tau", v[3]); }
    if (m & (EWS_M_AUTOCORRELATION | EWS_M_CRITICAL_DISTANCE)) {
        put_num(b, &first, "ar1", v[4]);
        put_num(b, &first, "ar1_tau", v[5]);
    }
    if (m & EWS_M_SKEWNESS) { put_num(b, &first, "skewness", v[6]); put_num(b, &first, "skewness_tau", v[7]); }
    if (m & EWS_M_KURTOSIS) { put_num(b, &first, "kurtosis", v[8]); put_num(b, &first, "kurtosis_tau", v[9]); }
    if (m & EWS_M_CRITICAL_DISTANCE) {
        put_num(b, &first, "critical_distance", v[10]);
        if (isnan(v[10]))
            buf_puts(b, ",\"critical_distance_reason\":\"ar1 <= 0 in the last window: no exponential "
                        "recovery rate to measure\"");
    }
    buf_puts(b, v[11] > 0 ? ",\"alert\":true" : ",\"alert\":false");
    put_num(b, &first, "median_interval_hours", v[13]);
    buf_putc(b, '}');
}

const model_t MODEL_EWS = {
    .name = "ews",
    .n_outputs = N_OUT,
    .output_names = OUTPUTS,
    .xParse = ews_parse,
    .xRunChunk = ews_run,
    .xRender = ews_render,
    .xInline = models_inline_always,
};
