/* Ising spin-flip probability, analytic (MODELS.md): neighbours held fixed, Glauber rate.
 *   m_i = sum_j J_ij s_j + h_i,  dE_i = 2 s_i m_i,
 *   w_i = nu / (1 + exp(dE_i / T)) per hour,  p_flip = 1 - exp(-w_i H)
 * A neighbour without a usable spin contributes nothing to m_i; the entity itself without one
 * is a per-entity failure (invalid_spin). 1/(1+e^x) is computed as e^-x/(1+e^-x) for x > 0 so
 * that a large dE/T gives a tiny rate instead of overflow; 1 - e^-y via expm1 keeps precision
 * for small rates. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "models/model.h"
#include "models/models_int.h"

#define MC_MAX_SAMPLES 10000000L

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
    static const char *const KNOWN[] = {"temperature", "time_horizon", "attempt_rate", "method",
                                        "samples", "radius", "seed"};
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)p, key, val) {
        size_t k = 0;
        while (k < 7 && strcmp(key, KNOWN[k])) k++;
        if (k == 7) {
            snprintf(err->field, sizeof err->field, "parameters.%.50s", key);
            snprintf(err->message, sizeof err->message,
                     "unknown parameter '%.100s' (temperature, time_horizon, attempt_rate, method, "
                     "samples, radius, seed)", key);
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
    int mc = 0;
    if (m && !json_is_null(m)) {
        const char *ms = json_is_string(m) ? json_string_value(m) : "";
        mc = strcmp(ms, "monte_carlo") == 0;
        if (!mc && strcmp(ms, "analytic")) {
            snprintf(err->field, sizeof err->field, "parameters.method");
            snprintf(err->message, sizeof err->message, "method must be \"analytic\" or \"monte_carlo\"");
            return -1;
        }
    }
    if (!mc) {
        /* the Monte Carlo knobs mean nothing to the analytic method: say so */
        for (int k = 4; k < 7; k++)
            if (json_object_get(p, KNOWN[k])) {
                snprintf(err->field, sizeof err->field, "parameters.%s", KNOWN[k]);
                snprintf(err->message, sizeof err->message,
                         "%s applies to method \"monte_carlo\" only", KNOWN[k]);
                return -1;
            }
        *out = json_pack("{s:s, s:f, s:f, s:f, s:s}", "prediction_type", "spin_flip_probability",
                         "temperature", T, "time_horizon_s", H_s, "attempt_rate", nu, "method", "analytic");
        return *out ? 0 : -1;
    }
    long long samples = 1000, radius = 2, seed = 0;
    if (models_int_param(p, "samples", 1, MC_MAX_SAMPLES, &samples, err) < 0) return -1;
    if (models_int_param(p, "seed", 0, MODELS_MAX_SEED, &seed, err) < 0) return -1;
    const json_t *r = json_object_get(p, "radius");
    if (r && json_is_string(r) && strcmp(json_string_value(r), "all") == 0) radius = -1;
    else if (models_int_param(p, "radius", 0, 1000000, &radius, err) < 0) {
        snprintf(err->message, sizeof err->message, "radius must be an integer >= 0 (hops) or \"all\"");
        return -1;
    }
    *out = json_pack("{s:s, s:f, s:f, s:f, s:s, s:I, s:I, s:I}", "prediction_type",
                     "spin_flip_probability", "temperature", T, "time_horizon_s", H_s,
                     "attempt_rate", nu, "method", "monte_carlo", "samples", (json_int_t)samples,
                     "radius", (json_int_t)radius, "seed", (json_int_t)seed);
    return *out ? 0 : -1;
}

/* ids: n entity ids -> codes[n], out[n][4] = {p_flip, delta_e, local_field, rate_per_hour} */
static int ising_run(const model_env_t *env, const json_t *params, const char *const *ids,
                     uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen) {
    if (ising_is_mc(params)) return ising_mc_run(env, params, ids, n, codes, out, err, errlen);
    (void)err; (void)errlen;
    const double T = json_number_value(json_object_get(params, "temperature"));
    const double H = json_number_value(json_object_get(params, "time_horizon_s")) / 3600.0;
    const double nu = json_number_value(json_object_get(params, "attempt_rate"));
    graph_t *g = env->graph;
    int64_t own[256];
    graph_rdlock(g);
    /* slots the caller resolved (the cache's lookups) hold while nothing changed since */
    const int64_t *given = env->slots && env->slots_mutations == g->mutations ? env->slots : NULL;
    for (uint32_t base = 0; base < n; base += 256) {
        const uint32_t m = n - base < 256 ? n - base : 256;
        const int64_t *slots = given ? given + base : own;
        if (!given) graph_find_many(g, ids + base, m, own);
        /* the entities' adjacency a few ahead, then their neighbour and weight arrays:
         * random entities of a big graph are cache misses, overlapped this way */
        for (uint32_t k = 0; k < m && k < 8; k++)
            if (slots[k] >= 0) __builtin_prefetch(&g->adj[slots[k]]);
        for (uint32_t k = 0; k < m; k++) {
            if (k + 8 < m && slots[k + 8] >= 0) __builtin_prefetch(&g->adj[slots[k + 8]]);
            if (k + 4 < m && slots[k + 4] >= 0) {
                const int64_t i4 = slots[k + 4];
                const graph_adj_t *pa = &g->adj[i4];
                __builtin_prefetch(pa->w);
                __builtin_prefetch(pa->nbr);
                __builtin_prefetch(&g->spin[i4]);
                __builtin_prefetch(&g->field[i4]);
            }
            if (k + 2 < m && slots[k + 2] >= 0) { /* its neighbours' spins (the block is in by now) */
                const graph_adj_t *pa = &g->adj[slots[k + 2]];
                for (uint32_t e = 0; e < pa->n && e < 16; e++) __builtin_prefetch(&g->spin[pa->nbr[e]]);
            }
            double *o = out + (size_t)(base + k) * 4;
            uint8_t *code = &codes[base + k];
            int64_t i = slots[k];
            if (i < 0) { *code = MODEL_ERR_UNKNOWN_ENTITY; memset(o, 0, 4 * sizeof *o); continue; }
            double s = g->spin[i];
            if (isnan(s)) { *code = MODEL_ERR_INVALID_SPIN; memset(o, 0, 4 * sizeof *o); continue; }
            const graph_adj_t *a = &g->adj[i];
            double mf = 0;
            for (uint32_t e = 0; e < a->n; e++) {
                double sj = g->spin[a->nbr[e]];
                if (!isnan(sj)) mf += a->w[e] * sj;
            }
            mf += g->field[i];
            double de = 2.0 * s * mf, x = de / T;
            double rate = x > 0 ? nu * exp(-x) / (1.0 + exp(-x)) : nu / (1.0 + exp(x));
            *code = MODEL_OK;
            o[0] = -expm1(-rate * H);
            o[1] = de;
            o[2] = mf;
            o[3] = rate;
        }
    }
    graph_unlock(g);
    return 0;
}

/* Analytic: the four outputs by name. Monte Carlo marks its rows with rate_per_hour = -1
 * (a rate is never negative) and uses the slots for {p_flip, p_changed, stderr}. */
static void ising_render(const double *v, int n, buf_t *out) {
    int mc = n >= 4 && v[3] < 0;
    /* the keys with their punctuation, as literals: a results page writes a million of them */
    static const char *const KEYS[] = {"{\"p_flip\":", ",\"delta_e\":", ",\"local_field\":",
                                       ",\"rate_per_hour\":"};
    static const char *const MC_KEYS[] = {"{\"p_flip\":", ",\"p_changed\":", ",\"stderr\":"};
    const char *const *keys = mc ? MC_KEYS : KEYS;
    int k = mc ? 3 : (n < 4 ? n : 4);
    if (k == 0) buf_putc(out, '{');
    for (int o = 0; o < k; o++) {
        buf_puts(out, keys[o]);
        buf_json_double(out, v[o]);
    }
    buf_putc(out, '}');
}

/* The analytic result is a per-entity formula; Monte Carlo simulates the whole job. */
static int ising_inline(const json_t *params) { return !ising_is_mc(params); }

const model_t MODEL_ISING = {
    .name = "ising",
    .n_outputs = 4,
    .output_names = OUTPUTS,
    .xParse = ising_parse,
    .xRunChunk = ising_run,
    .xPrepare = ising_mc_prepare,
    .xFreeState = ising_mc_free,
    .xRender = ising_render,
    .xInline = ising_inline,
};
