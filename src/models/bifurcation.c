/* Time to a critical transition (MODELS.md, `bifurcation`): same inputs as `ews`.
 *
 * The rolling recovery rate lambda_k = -ln(ar1_k) / dt (per hour; dt the median sampling
 * interval) of each rolling window with ar1_k > 0, is fitted by least squares as
 * lambda(t) ~ a + b t over the windows of the last rolling window (the last min(L, w)
 * windows: the most recent stretch of the series the estimate still sees). Choices made
 * here where MODELS.md is silent:
 *  - a window's estimate is placed at the time it speaks for: its points' times weighted by
 *    their squared deviations d_i^2 (ar1 ~ sum phi_i d_i^2 / sum d_i^2 weighs them so);
 *    placed at the window's end it would lag by about half a window, and at its centre
 *    it would still lag when the variance grows towards the transition, both making the
 *    time to transition come out wrong;
 *  - lambda_now = a + b t_now, t_now the last observation's time (the fit, not the noisier
 *    last window);
 *  - confidence = P(b < 0) under the fit's normal approximation, Phi(-b / se(b)); the
 *    windows overlap, so se(b) is optimistic and the confidence an upper bound.
 * If b < 0 and lambda_now > 0: time_to_transition_hours = -lambda_now / b; else null with
 * a reason (not declining, already at or past the transition, too few windows to fit). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/models_int.h"

enum { REASON_NONE = 0, REASON_NOT_DECLINING, REASON_PAST, REASON_TOO_FEW };

static const char *const OUTPUTS[] = {"time_to_transition_hours", "lambda_now", "lambda_slope", "r2",
                                      "confidence", "reason", "fit_windows", "n_points"};
#define N_OUT 8

int bifurcation_compute(const double *t, const double *x, long n, const ews_opts_t *o, double *out) {
    for (int i = 0; i < N_OUT; i++) out[i] = NAN;
    out[7] = (double)n;
    long w = (long)floor(o->rolling * (double)n + 1e-9);
    long L = n - w + 1;
    double *ar1 = malloc((size_t)(L > 0 ? L : 1) * sizeof *ar1);
    if (!ar1) return -1;
    ews_result_t r;
    int code = ews_compute(t, x, n, o, &r, ar1);
    if (code != MODEL_OK) { free(ar1); return code; }
    /* points (tc_k hours relative to now, lambda_k) of the last min(L, w) windows */
    long from = L - (w < L ? w : L);
    double tnow = t[n - 1];
    double sx = 0, sy = 0;
    long m = 0;
    double *px = malloc((size_t)L * sizeof *px), *py = malloc((size_t)L * sizeof *py);
    double *res = malloc((size_t)n * sizeof *res);
    if (!px || !py || !res) { free(ar1); free(px); free(py); free(res); return -1; }
    ews_detrend(t, x, n, o->detrend, res);
    for (long k = from; k < L; k++) {
        if (!(ar1[k] > 0) || !(r.dt_h > 0)) continue;
        /* the time the window's ar1 speaks for: its times weighted by (r_i - mean)^2, the
         * weights ar1 = sum phi_i d_i^2 / sum d_i^2 gives each point */
        double mean = 0, sw = 0, swt = 0;
        for (long i = k; i < k + w; i++) mean += res[i];
        mean /= (double)w;
        for (long i = k; i < k + w; i++) {
            double d2 = (res[i] - mean) * (res[i] - mean);
            sw += d2;
            swt += d2 * (t[i] - tnow);
        }
        double tc = (sw > 0 ? swt / sw : 0) / 3600.0;
        px[m] = tc;
        py[m] = -log(ar1[k]) / r.dt_h;
        sx += px[m];
        sy += py[m];
        m++;
    }
    out[6] = (double)m;
    out[5] = REASON_NONE;
    if (m < 3) {
        out[5] = REASON_TOO_FEW;
    } else {
        double xm = sx / (double)m, ym = sy / (double)m, sxx = 0, sxy = 0, syy = 0;
        for (long k = 0; k < m; k++) {
            double dx = px[k] - xm, dy = py[k] - ym;
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        if (!(sxx > 0)) {
            out[5] = REASON_TOO_FEW;
        } else {
            double b = sxy / sxx, a = ym - b * xm; /* lambda(t) = a + b t, t = 0 now */
            double ssr = syy - b * sxy;
            if (ssr < 0) ssr = 0;
            out[1] = a;
            out[2] = b;
            out[3] = syy > 0 ? 1.0 - ssr / syy : 1.0;
            double se = sqrt(ssr / (double)(m - 2) / sxx);
            out[4] = se > 0 ? 0.5 * erfc(b / se / sqrt(2.0)) : (b < 0 ? 1.0 : 0.0);
            if (!(b < 0)) out[5] = REASON_NOT_DECLINING;
            else if (!(a > 0)) out[5] = REASON_PAST;
            else out[0] = -a / b;
        }
    }
    free(ar1);
    free(px);
    free(py);
    free(res);
    return MODEL_OK;
}

static int bif_parse(const json_t *req, json_t **out, model_error_t *err) {
    return ews_parse_common(req, "bifurcation", out, err);
}


static int bif_entity(const model_env_t *env, const char *id, const double *t, const double *x,
                      long m, const ews_opts_t *o, double *v) {
    (void)env;
    (void)id;
    return bifurcation_compute(t, x, m, o, v);
}

/* ids: n -> codes[n], out[n][8] (OUTPUTS) */
static int bif_run(const model_env_t *env, const json_t *params, const char *const *ids, uint32_t n,
                   uint8_t *codes, double *out, char *err, size_t errlen) {
    return ews_for_each(env, params, ids, n, codes, out, N_OUT, bif_entity, err, errlen);
}

static void bif_render(const double *v, int n, buf_t *b) {
    if (n < N_OUT) { buf_puts(b, "{}"); return; }
    static const char *const REASONS[] = {
        NULL, "the recovery rate is not declining: no transition approaching",
        "the recovery rate is already at or below zero: at or past the transition",
        "fewer than 3 rolling windows with ar1 > 0 to fit"};
    buf_putc(b, '{');
    for (int i = 0; i < 5; i++) {
        if (i) buf_putc(b, ',');
        buf_json_str(b, OUTPUTS[i], strlen(OUTPUTS[i]));
        buf_putc(b, ':');
        buf_json_double(b, v[i]);
    }
    int reason = (int)v[5];
    if (reason > 0 && reason < 4) {
        buf_puts(b, ",\"reason\":");
        buf_json_str(b, REASONS[reason], strlen(REASONS[reason]));
    }
    buf_puts(b, ",\"fit_windows\":");
    buf_json_double(b, v[6]);
    buf_puts(b, ",\"n_points\":");
    buf_json_double(b, v[7]);
    buf_putc(b, '}');
}

const model_t MODEL_BIFURCATION = {
    .name = "bifurcation",
    .n_outputs = N_OUT,
    .output_names = OUTPUTS,
    .xParse = bif_parse,
    .xRunChunk = bif_run,
    .xRender = bif_render,
    .xInline = models_inline_always,
};
