#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "models/models_int.h"

void models_set_err(model_error_t *err, const char *key, const char *fmt, ...) {
    snprintf(err->field, sizeof err->field, "parameters.%.50s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

json_t *models_gather_params(const json_t *req, const char *prediction_type,
                             const char *const *known, size_t n_known, model_error_t *err) {
    const json_t *pt = json_object_get(req, "prediction_type");
    if (pt && !json_is_null(pt) &&
        (!json_is_string(pt) || strcmp(json_string_value(pt), prediction_type) != 0)) {
        snprintf(err->field, sizeof err->field, "prediction_type");
        snprintf(err->message, sizeof err->message, "prediction_type must be \"%s\"", prediction_type);
        return NULL;
    }
    const json_t *p = json_object_get(req, "parameters");
    if (p && !json_is_null(p) && !json_is_object(p)) {
        snprintf(err->field, sizeof err->field, "parameters");
        snprintf(err->message, sizeof err->message, "parameters must be an object");
        return NULL;
    }
    json_t *src = json_object();
    if (!src) return NULL;
    for (size_t k = 0; k < n_known; k++) {
        json_t *v = json_object_get(req, known[k]);
        if (v) json_object_set(src, known[k], v);
    }
    if (p && json_is_object(p)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)p, key, val) {
            size_t k = 0;
            while (k < n_known && strcmp(key, known[k])) k++;
            if (k == n_known) {
                char names[200] = "";
                size_t used = 0;
                for (size_t i = 0; i < n_known && used < sizeof names; i++)
                    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", known[i]);
                models_set_err(err, key, "unknown parameter '%.50s' (%s)", key, names);
                json_decref(src);
                return NULL;
            }
            json_object_set(src, key, val);
        }
    }
    return src;
}

int models_int_param(const json_t *obj, const char *key, long long min, long long max,
                     long long *out, model_error_t *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    long long x;
    if (json_is_integer(v)) x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9.2e18)
        x = (long long)json_real_value(v);
    else {
        models_set_err(err, key, "%s must be an integer from %lld to %lld", key, min, max);
        return -1;
    }
    if (x < min || x > max) {
        models_set_err(err, key, "%s must be an integer from %lld to %lld", key, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

int models_num_param(const json_t *obj, const char *key, double min, double max, double *out,
                     model_error_t *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(x) || x < min || x > max) {
        models_set_err(err, key, "%s must be a number from %g to %g", key, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

int models_bool_param(const json_t *obj, const char *key, int *out, model_error_t *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_boolean(v)) {
        models_set_err(err, key, "%s must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

typedef struct {
    void (*fn)(void *, int, int);
    void *arg;
    int ith, nth;
} par_job_t;

static void *par_main(void *p) {
    par_job_t *j = p;
    j->fn(j->arg, j->ith, j->nth);
    return NULL;
}

void models_parallel(int nth, void (*fn)(void *arg, int ith, int nth), void *arg) {
    if (nth < 1) nth = 1;
    par_job_t *jobs = calloc((size_t)nth, sizeof *jobs);
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    int *started = calloc((size_t)nth, sizeof *started);
    if (!jobs || !th || !started) {
        for (int i = 0; i < nth; i++) fn(arg, i, nth);
        free(jobs); free(th); free(started);
        return;
    }
    for (int i = 1; i < nth; i++) {
        jobs[i] = (par_job_t){fn, arg, i, nth};
        started[i] = pthread_create(&th[i], NULL, par_main, &jobs[i]) == 0;
    }
    fn(arg, 0, nth);
    for (int i = 1; i < nth; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(arg, i, nth);
    }
    free(jobs); free(th); free(started);
}

int models_threads_for(long work, int cap) {
    int n = cap > 0 ? cap : cpu_count();
    if (n > 64) n = 64;
    if (work < n) n = (int)(work > 0 ? work : 1);
    return n < 1 ? 1 : n;
}

/* tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)), n0 = n(n-1)/2, n1 = 0 (time has no ties),
 * n2 = pairs tied in y. */
double models_kendall_tau(const double *y, long n) {
    if (n < 2) return NAN;
    double c = 0, d = 0, ty = 0;
    for (long i = 0; i < n; i++)
        for (long k = i + 1; k < n; k++) {
            if (y[k] > y[i]) c++;
            else if (y[k] < y[i]) d++;
            else ty++;
        }
    double n0 = (double)n * (double)(n - 1) / 2.0;
    double den = sqrt(n0 * (n0 - ty));
    return den > 0 ? (c - d) / den : NAN;
}

int models_inline_always(const json_t *params) {
    (void)params;
    return 1;
}
