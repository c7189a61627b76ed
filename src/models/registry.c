#include <stdio.h>
#include <string.h>

#include "models/model.h"

static const model_t *const MODELS[] = {&MODEL_ISING, &MODEL_CASCADE, &MODEL_EWS, &MODEL_BIFURCATION};

const model_t *model_find(const char *name) {
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (strcmp(MODELS[i]->name, name) == 0) return MODELS[i];
    return NULL;
}

const char *model_error_name(int code) {
    switch (code) {
    case MODEL_ERR_UNKNOWN_ENTITY: return "unknown_entity";
    case MODEL_ERR_INVALID_SPIN: return "invalid_spin";
    case MODEL_ERR_TOO_FEW_POINTS: return "too_few_points";
    case MODEL_ERR_NO_VARIANCE: return "no_variance";
    case MODEL_ERR_NOT_SIMULATED: return "not_simulated";
    case MODEL_ERR_MISSING_FEATURES: return "missing_features";
    case MODEL_ERR_MISSING_EARNINGS: return "missing_earnings_features";
    default: return "model_error";
    }
}

void model_error_message(int code, const char *id, char *out, size_t outlen) {
    switch (code) {
    case MODEL_ERR_UNKNOWN_ENTITY: snprintf(out, outlen, "entity '%s' does not exist", id); break;
    case MODEL_ERR_INVALID_SPIN:
        snprintf(out, outlen, "entity '%s' has no 'spin' property of +1 or -1", id);
        break;
    case MODEL_ERR_TOO_FEW_POINTS:
        snprintf(out, outlen, "entity '%s' has fewer observations in the time window than min_points "
                              "(or too few for a rolling window of 3 points)", id);
        break;
    case MODEL_ERR_NO_VARIANCE:
        snprintf(out, outlen, "entity '%s': the detrended series is constant, so its variance and "
                              "autocorrelation are undefined", id);
        break;
    case MODEL_ERR_NOT_SIMULATED:
        snprintf(out, outlen, "entity '%s' was created after the job's simulation ran", id);
        break;
    case MODEL_ERR_MISSING_FEATURES:
        snprintf(out, outlen, "symbol '%s' has fewer feature vectors than the model's sequence length", id);
        break;
    case MODEL_ERR_MISSING_EARNINGS:
        snprintf(out, outlen, "symbol '%s' has no earnings features in its window (missing_earnings = skip)", id);
        break;
    default: snprintf(out, outlen, "entity '%s' could not be computed", id);
    }
}
