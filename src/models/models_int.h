/* Private to src/models: parameter helpers, a small thread fan-out, and the pieces of the
 * built-in models shared between their files. */
#ifndef PREDICTD_MODELS_INT_H
#define PREDICTD_MODELS_INT_H

#include "models/model.h"

#define MODELS_MAX_SEED 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

/* An integer parameter of obj in [min, max]. 1 absent or null (*out untouched), 0 ok,
 * -1 err filled ("parameters.key"). */
int models_int_param(const json_t *obj, const char *key, long long min, long long max,
                     long long *out, model_error_t *err);
/* A finite number in [min, max]. Same returns. */
int models_num_param(const json_t *obj, const char *key, double min, double max, double *out,
                     model_error_t *err);
/* A boolean. Same returns. */
int models_bool_param(const json_t *obj, const char *key, int *out, model_error_t *err);
void models_set_err(model_error_t *err, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The request's parameters in one object: prediction_type, when given, must equal
 * prediction_type; the known keys may stand at the top level or inside "parameters" (inside
 * wins); an unknown key inside "parameters" is an error naming the known ones. A new
 * reference, or NULL with err filled. */
json_t *models_gather_params(const json_t *req, const char *prediction_type,
                             const char *const *known, size_t n_known, model_error_t *err);

/* Runs fn(arg, ith, nth) for ith in [0, nth) on nth threads (the caller's thread is one of
 * them) and waits for all. Falls back to running them one after another if a thread cannot
 * start, so results never depend on how many threads ran. */
void models_parallel(int nth, void (*fn)(void *arg, int ith, int nth), void *arg);
/* Threads worth using for `work` independent units: min(cap or cpu_count when cap is 0,
 * work), at least 1. */
int models_threads_for(long work, int cap);

/* ising.c <-> ising_mc.c */
int ising_is_mc(const json_t *params);
/* model_t.xInline for models computed entity by entity whatever the parameters. */
int models_inline_always(const json_t *params);
int ising_mc_prepare(const model_env_t *env, const json_t *params, const char *const *ids,
                     long n, void **state, char *err, size_t errlen);
void ising_mc_free(void *state);
int ising_mc_run(const model_env_t *env, const json_t *params, const char *const *ids,
                 uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen);

/* Kendall's tau-b between x[i] = i and y[0..n) (ties in y counted), O(n^2): the rolling
 * series it sees are at most a few thousand points. NAN when n < 2 or y is constant. */
double models_kendall_tau(const double *y, long n);

/* ews.c <-> bifurcation.c: the shared inputs and the early-warning computation. */
enum { EWS_DETREND_NONE = 0, EWS_DETREND_LINEAR, EWS_DETREND_GAUSSIAN };
enum { EWS_M_VARIANCE = 1, EWS_M_AUTOCORRELATION = 2, EWS_M_SKEWNESS = 4, EWS_M_KURTOSIS = 8,
       EWS_M_CRITICAL_DISTANCE = 16 };

typedef struct {
    double window_s;       /* time_window */
    double as_of;          /* seconds since the epoch: the window ends here */
    double rolling;        /* rolling window, fraction of the points */
    double alert_tau;
    int detrend;
    long min_points;
    unsigned metrics;      /* EWS_M_* bits */
    const char *series;    /* points into the params object */
} ews_opts_t;

typedef struct {
    long n, w, L;          /* points, points per rolling window, rolling windows */
    double dt_h;           /* median sampling interval, hours */
    double var, var_tau, ar1, ar1_tau, skew, skew_tau, kurt, kurt_tau;
    double lambda;         /* -ln(ar1) / dt_h per hour; NAN when ar1 <= 0 */
    int alert;
} ews_result_t;

/* Validates the shared parameters (top level or inside "parameters"; inside wins) into
 * normalised params with prediction_type name. 0 ok, -1 err. */
int ews_parse_common(const json_t *req, const char *name, json_t **out, model_error_t *err);
void ews_opts_from_params(const json_t *params, ews_opts_t *o);
/* Residuals of x[0..n) at times t[0..n) (seconds, increasing) after detrending:
 * none (x itself), linear (least squares in t), gaussian (Nadaraya-Watson smoother with a
 * Gaussian kernel of bandwidth 10% of the span, cut at 6 bandwidths). */
void ews_detrend(const double *t, const double *x, long n, int mode, double *res);
/* Rolling statistics of residuals r[0..n) over windows of w points, k = 0..n-w:
 * var[k] sample variance (n - 1), ar1[k] lag-1 autocorrelation
 * sum (r_i - m)(r_{i+1} - m) / sum (r_i - m)^2, skew[k] = m3 / m2^1.5, kurt[k] = m4 / m2^2 - 3
 * (population moments). Any output may be NULL. */
void ews_rolling(const double *r, long n, long w, double *var, double *ar1, double *skew, double *kurt);
/* The whole EWS analysis of one series; ar1_series (optional, [n - w + 1]) receives the
 * rolling ar1. Returns MODEL_OK, MODEL_ERR_TOO_FEW_POINTS or MODEL_ERR_NO_VARIANCE. */
int ews_compute(const double *t, const double *x, long n, const ews_opts_t *o, ews_result_t *r,
                double *ar1_series);
/* The per-entity loop both series models share: for each id, outputs NAN-filled, unknown
 * ids failed, the window's points read, then fn computes out[k * n_out ..] and returns a
 * MODEL_* code (or -1 out of memory). 0, or -1 with err (the chunk is retried). */
typedef int (*ews_entity_fn)(const model_env_t *env, const char *id, const double *t,
                             const double *x, long m, const ews_opts_t *o, double *v);
int ews_for_each(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                 uint8_t *codes, double *out, int n_out, ews_entity_fn fn, char *err, size_t errlen);
/* Reads the entity's points in the window: 0 ok (caller frees), -1 store error. */
int ews_fetch(const model_env_t *env, const ews_opts_t *o, const char *id, double **t, double **x,
              long *n);
/* bifurcation.c: the fit of one series into out[8] = {time_to_transition_hours, lambda_now,
 * lambda_slope, r2, confidence, reason (0 none, 1 not declining, 2 past, 3 too few windows),
 * fit_windows, n_points}. A MODEL_* code, or -1 out of memory. */
int bifurcation_compute(const double *t, const double *x, long n, const ews_opts_t *o, double *out);

#endif
