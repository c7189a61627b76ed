/* Ising spin-flip probability, analytic (MODELS.md): neighbours held fixed, Glauber rate.
 *   m_i = sum_j J_ij s_j + h_i,  dE_i = 2 s_i m_i,
 *   w_i = nu / (1 + exp(dE_i / T)) per hour,  p_flip = 1 - exp(-w_i H)
 * A neighbour without a usable spin contributes nothing to m_i; the entity itself without one
 * is a per-entity failure (invalid_spin). 1/(1+e^x) is computed as e^-x/(1+e^-x) for x > 0 so
 * that a large dE/T gives a tiny rate instead of overflow; 1 - e^-y via expm1 keeps precision
 * for small rates. */
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "models/model.h"

static const char *const OUTPUTS[] = {"p_flip", "delta_e", "local_field", "rate_per_hour"};

static int number_param(const json_t *params, const char *key, double *out, int required,
                        model_error_t *err) {
    const json_t *v = json_object_get(params, key);
    if (!v || json_is_null(v)) {
        if (!required) return 1;
        snprintf(err->field, sizeof err->field, "parameters.%s", key);
        snprintf(err->message, sizeof err->message, "%s is required", key);
        return -1;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(err->field, sizeof err->field, "parameters.%s", key);
        snprintf(err->message, sizeof err->message, "%s must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int ising_parse(const json_t *req, json_t **out, model_error_t *err) {
    const json_t *pt = json_object_get(req, "prediction_type");
    if (pt && !json_is_null(pt) &&
        (!json_is_string(pt) || strcmp(json_string_value(pt), "spin_flip_probability") != 0)) {
        snprintf(err->field, sizeof err->field, "prediction_type");
        snprintf(err->message, sizeof err->message, "prediction_type must be \"spin_flip_probability\"");
        return -1;
    }
    const json_t *p = json_object_get(req, "parameters");
    if (!p || !json_is_object(p)) {
        snprintf(err->field, sizeof err->field, "parameters");
        snprintf(err->message, sizeof err->message,
                 p ? "parameters must be an object" : "parameters is required (with temperature)");
        return -1;
    }
    static const char *const KNOWN[] = {"temperature", "time_horizon", "attempt_rate", "method"};
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)p, key, val) {
        size_t k = 0;
        while (k < 4 && strcmp(key, KNOWN[k])) k++;
        if (k == 4) {
            snprintf(err->field, sizeof err->field, "parameters.%.50s", key);
            snprintf(err->message, sizeof err->message,
                     "unknown parameter '%.100s' (temperature, time_horizon, attempt_rate, method)", key);
            return -1;
        }
    }
    double T, nu = 1.0, H_s = 24 * 3600.0;
    if (number_param(p, "temperature", &T, 1, err) < 0) return -1;
    if (!(T > 0)) {
        snprintf(err->field, sizeof err->field, "parameters.temperature");
        snprintf(err->message, sizeof err->message, "temperature must be > 0");
        return -1;
    }
    if (number_param(p, "attempt_rate", &nu, 0, err) < 0) return -1;
    if (!(nu > 0)) {
        snprintf(err->field, sizeof err->field, "parameters.attempt_rate");
        snprintf(err->message, sizeof err->message, "attempt_rate must be > 0 (per hour)");
        return -1;
    }
    const json_t *h = json_object_get(p, "time_horizon");
    if (h && !json_is_null(h)) {
        int ok = 0;
        if (json_is_string(h)) ok = parse_duration_s(json_string_value(h), &H_s) == 0;
        else if (json_is_number(h)) { H_s = json_number_value(h); ok = isfinite(H_s) && H_s >= 0; }
        if (!ok) {
            snprintf(err->field, sizeof err->field, "parameters.time_horizon");
            snprintf(err->message, sizeof err->message,
                     "time_horizon must be a duration like 90s, 30m, 24h, 7d or a number of seconds >= 0");
            return -1;
        }
    }
    const json_t *m = json_object_get(p, "method");
    if (m && !json_is_null(m) && (!json_is_string(m) || strcmp(json_string_value(m), "analytic"))) {
        snprintf(err->field, sizeof err->field, "parameters.method");
        snprintf(err->message, sizeof err->message, "method must be \"analytic\" (monte_carlo is not available yet)");
        return -1;
    }
    *out = json_pack("{s:s, s:f, s:f, s:f, s:s}", "prediction_type", "spin_flip_probability",
                     "temperature", T, "time_horizon_s", H_s, "attempt_rate", nu, "method", "analytic");
    return *out ? 0 : -1;
}

/* ids: n entity ids -> codes[n], out[n][4] = {p_flip, delta_e, local_field, rate_per_hour} */
static int ising_run(const model_env_t *env, const json_t *params, const char *const *ids,
                     uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen) {
    (void)err; (void)errlen;
    const double T = json_number_value(json_object_get(params, "temperature"));
    const double H = json_number_value(json_object_get(params, "time_horizon_s")) / 3600.0;
    const double nu = json_number_value(json_object_get(params, "attempt_rate"));
    graph_t *g = env->graph;
    graph_rdlock(g);
    for (uint32_t k = 0; k < n; k++) {
        double *o = out + (size_t)k * 4;
        int64_t i = graph_find(g, ids[k]);
        if (i < 0) { codes[k] = MODEL_ERR_UNKNOWN_ENTITY; memset(o, 0, 4 * sizeof *o); continue; }
        double s = g->spin[i];
        if (isnan(s)) { codes[k] = MODEL_ERR_INVALID_SPIN; memset(o, 0, 4 * sizeof *o); continue; }
        const graph_adj_t *a = &g->adj[i];
        double m = 0;
        for (uint32_t e = 0; e < a->n; e++) {
            double sj = g->spin[a->nbr[e]];
            if (!isnan(sj)) m += a->w[e] * sj;
        }
        m += g->field[i];
        double de = 2.0 * s * m, x = de / T;
        double rate = x > 0 ? nu * exp(-x) / (1.0 + exp(-x)) : nu / (1.0 + exp(x));
        codes[k] = MODEL_OK;
        o[0] = -expm1(-rate * H);
        o[1] = de;
        o[2] = m;
        o[3] = rate;
    }
    graph_unlock(g);
    return 0;
}

const model_t MODEL_ISING = {
    .name = "ising",
    .n_outputs = 4,
    .output_names = OUTPUTS,
    .xParse = ising_parse,
    .xRunChunk = ising_run,
};
