/* Features of one session and the heuristic score on them. Each feature is defined next to
 * its code in features.c; the order of sessions_feature_t is the column order of a feature
 * row (what the isolation forest sees and what the store keeps). Pure functions. */
#ifndef PREDICTD_SESSIONS_FEATURES_H
#define PREDICTD_SESSIONS_FEATURES_H

#include "sessions/telemetry.h"

typedef enum {
    SF_DURATION_S,         /* duration_ms / 1000 */
    SF_POINTER_COUNT,      /* pointer events */
    SF_CLICK_COUNT,        /* click events */
    SF_KEY_COUNT,          /* key events */
    SF_PATH_PX,            /* length of the pointer path */
    SF_SPEED_MEAN,         /* mean segment speed, px/s */
    SF_SPEED_CV,           /* spread of the segment speeds: std / mean */
    SF_STRAIGHTNESS,       /* end-to-end distance / path length */
    SF_CURVATURE_MEAN,     /* mean absolute turning angle, radians */
    SF_PAUSE_RATIO,        /* share of the pointer's time spent in gaps >= SESSIONS_PAUSE_MS */
    SF_CLICK_INTERVAL_MS,  /* mean time between clicks */
    SF_CLICK_INTERVAL_CV,  /* std / mean of the time between clicks */
    SF_KEY_INTERVAL_MS,    /* mean time between key events */
    SF_KEY_INTERVAL_CV,    /* std / mean of the time between key events */
    SF_EVENT_RATE,         /* all events per second of the session */
    SESSIONS_N_FEATURES
} sessions_feature_t;

#define SESSIONS_PAUSE_MS 250.0

/* The name of feature i (snake_case, as the API shows it). */
const char *sessions_feature_name(int i);

/* f: [SESSIONS_N_FEATURES] from t. */
void sessions_features(const sessions_telemetry_t *t, double *f);

/* Heuristic bot likelihood in [0, 1] from the features: the sum of the weights of the
 * signals that fire (features.c lists them), capped at 1. */
double sessions_heuristic(const double *f);

/* "bot" when score >= bot, "suspicious" when >= review, else "human" (static strings). */
const char *sessions_verdict(double score, double review, double bot);

#endif
