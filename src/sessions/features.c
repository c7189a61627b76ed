/* Feature extraction and the heuristic score. Notation: pointer moves p_0..p_{n-1} with
 * times t_i; segment i (1 <= i < n) goes from p_{i-1} to p_i with length d_i and duration
 * dt_i = t_i - t_{i-1}. "std" is the population standard deviation. A feature whose
 * definition needs more events than the session has is 0. */
#include "sessions/features.h"

#include <math.h>

static const char *NAMES[SESSIONS_N_FEATURES] = {
    "duration_s", "pointer_count", "click_count", "key_count", "path_px", "speed_mean", "speed_cv",
    "straightness", "curvature_mean", "pause_ratio", "click_interval_ms", "click_interval_cv",
    "key_interval_ms", "key_interval_cv", "event_rate",
};

const char *sessions_feature_name(int i) {
    return i >= 0 && i < SESSIONS_N_FEATURES ? NAMES[i] : "?";
}

_Static_assert(sizeof(sessions_point_t) == 3 * sizeof(double), "click times are read with a stride of 3");

/* Intervals between consecutive times t[0], t[stride], ... (n of them): mean and cv (0 with fewer than 2 events;
 * cv 0 with fewer than 2 intervals). Two passes so no buffer is needed. */
static void interval_stats(const double *t, size_t stride, size_t n, double *mean, double *cv) {
    *mean = *cv = 0;
    if (n < 2) return;
    double s = 0;
    for (size_t i = 1; i < n; i++) s += t[i * stride] - t[(i - 1) * stride];
    double m = s / (double)(n - 1);
    *mean = m;
    if (n < 3 || m == 0) return;
    double ss = 0;
    for (size_t i = 1; i < n; i++) {
        double dv = t[i * stride] - t[(i - 1) * stride] - m;
        ss += dv * dv;
    }
    *cv = sqrt(ss / (double)(n - 1)) / m;
}

void sessions_features(const sessions_telemetry_t *t, double *f) {
    for (int i = 0; i < SESSIONS_N_FEATURES; i++) f[i] = 0;
    const sessions_point_t *p = t->pointer;
    size_t n = t->n_pointer;
    f[SF_DURATION_S] = t->duration_ms / 1000.0;
    f[SF_POINTER_COUNT] = (double)n;
    f[SF_CLICK_COUNT] = (double)t->n_clicks;
    f[SF_KEY_COUNT] = (double)t->n_keys;
    /* event_rate = (pointer + clicks + keys) / duration_s */
    f[SF_EVENT_RATE] = (double)(n + t->n_clicks + t->n_keys) / f[SF_DURATION_S];

    /* path_px = sum d_i.
     * speed_mean, speed_cv: over the segments with dt_i > 0, v_i = d_i / dt_i * 1000 (px/s);
     *   speed_mean = mean v_i, speed_cv = std v_i / mean v_i.
     * straightness = |p_{n-1} - p_0| / path_px (1: a straight line; 0 when path_px is 0).
     * curvature_mean = mean over consecutive pairs of segments that both move (d > 0; a
     *   segment that does not move is skipped, the pair is taken across it) of the absolute
     *   turning angle between them, atan2(|cross|, dot), in [0, pi].
     * pause_ratio = (sum of dt_i >= SESSIONS_PAUSE_MS) / (t_{n-1} - t_0) (0 when that is 0). */
    double path = 0, speed_sum = 0, speed_sq = 0, turn_sum = 0, pause = 0;
    size_t n_speed = 0, n_turn = 0;
    double pdx = 0, pdy = 0;
    int have_prev = 0;
    for (size_t i = 1; i < n; i++) {
        double dx = p[i].x - p[i - 1].x, dy = p[i].y - p[i - 1].y, dt = p[i].t_ms - p[i - 1].t_ms;
        double d = hypot(dx, dy);
        path += d;
        if (dt > 0) {
            double v = d / dt * 1000.0;
            speed_sum += v;
            n_speed++;
        }
        if (dt >= SESSIONS_PAUSE_MS) pause += dt;
        if (d > 0) {
            if (have_prev) {
                turn_sum += fabs(atan2(pdx * dy - pdy * dx, pdx * dx + pdy * dy));
                n_turn++;
            }
            pdx = dx;
            pdy = dy;
            have_prev = 1;
        }
    }
    f[SF_PATH_PX] = path;
    if (n_speed) {
        double m = speed_sum / (double)n_speed;
        f[SF_SPEED_MEAN] = m;
        if (n_speed >= 2 && m > 0) {
            for (size_t i = 1; i < n; i++) { /* second pass: std about the mean */
                double dt = p[i].t_ms - p[i - 1].t_ms;
                if (dt <= 0) continue;
                double v = hypot(p[i].x - p[i - 1].x, p[i].y - p[i - 1].y) / dt * 1000.0 - m;
                speed_sq += v * v;
            }
            f[SF_SPEED_CV] = sqrt(speed_sq / (double)n_speed) / m;
        }
    }
    if (n >= 2 && path > 0) f[SF_STRAIGHTNESS] = hypot(p[n - 1].x - p[0].x, p[n - 1].y - p[0].y) / path;
    if (n_turn) f[SF_CURVATURE_MEAN] = turn_sum / (double)n_turn;
    if (n >= 2 && p[n - 1].t_ms > p[0].t_ms) f[SF_PAUSE_RATIO] = pause / (p[n - 1].t_ms - p[0].t_ms);

    /* click_interval_ms, click_interval_cv: mean and std / mean of c_j - c_{j-1} over the
     * click times; key_interval_ms, key_interval_cv: the same over the key times. */
    if (t->n_clicks)
        interval_stats(&t->clicks[0].t_ms, sizeof(sessions_point_t) / sizeof(double), t->n_clicks,
                       &f[SF_CLICK_INTERVAL_MS], &f[SF_CLICK_INTERVAL_CV]);
    if (t->n_keys) interval_stats(t->key_t_ms, 1, t->n_keys, &f[SF_KEY_INTERVAL_MS], &f[SF_KEY_INTERVAL_CV]);
}

/* The heuristic's signals (weight: condition). Scripted clients move in straight lines at
 * constant speed, click and type like a metronome, finish faster than people, or click with
 * no pointer movement at all (a synthetic event).
 *   0.35  fewer than 2 pointer moves while there are clicks or keys
 *   0.25  duration under 1 s
 *   0.25  at least 3 pointer moves and straightness >= 0.98
 *   0.20  at least 4 pointer moves and speed_cv < 0.05
 *   0.15  at least 3 clicks and click_interval_cv < 0.05
 *   0.15  at least 3 keys and key_interval_cv < 0.05
 *   0.25  speed_mean > 20000 px/s
 * The sum is capped at 1. */
double sessions_heuristic(const double *f) {
    double s = 0;
    if (f[SF_POINTER_COUNT] < 2 && (f[SF_CLICK_COUNT] > 0 || f[SF_KEY_COUNT] > 0)) s += 0.35;
    if (f[SF_DURATION_S] < 1.0) s += 0.25;
    if (f[SF_POINTER_COUNT] >= 3 && f[SF_STRAIGHTNESS] >= 0.98) s += 0.25;
    if (f[SF_POINTER_COUNT] >= 4 && f[SF_SPEED_CV] < 0.05) s += 0.20;
    if (f[SF_CLICK_COUNT] >= 3 && f[SF_CLICK_INTERVAL_CV] < 0.05) s += 0.15;
    if (f[SF_KEY_COUNT] >= 3 && f[SF_KEY_INTERVAL_CV] < 0.05) s += 0.15;
    if (f[SF_SPEED_MEAN] > 20000) s += 0.25;
    return s > 1 ? 1 : s;
}

const char *sessions_verdict(double score, double review, double bot) {
    if (score >= bot) return "bot";
    if (score >= review) return "suspicious";
    return "human";
}
