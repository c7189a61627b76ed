/* Telemetry checks: every refusal names the field and the reason; nothing is kept on one. */
#include "sessions/telemetry.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static int refuse(sessions_error_t *e, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int refuse(sessions_error_t *e, int status, const char *code, const char *field, const char *fmt, ...) {
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int sessions_id_valid(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > SESSIONS_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* A JSON number (integer or real, not a boolean), finite. */
static int get_num(const json_t *v, double *out) {
    if (!json_is_number(v)) return 0;
    double d = json_number_value(v);
    if (!isfinite(d)) return 0;
    *out = d;
    return 1;
}

/* Checks an array of events; width 3: [t_ms, x, y] into pts; width 2: [t_ms, key] into ts. */
static int parse_events(const json_t *body, const char *name, int width, const sessions_limits_t *lim,
                        double duration_ms, sessions_point_t **pts, double **ts, size_t *n_out,
                        sessions_error_t *e) {
    const json_t *a = json_object_get(body, name);
    char f[64];
    if (!a) return refuse(e, 422, "invalid_field", name, "%s is required (an array, empty when there were none)", name);
    if (!json_is_array(a)) return refuse(e, 422, "invalid_field", name, "%s must be an array of %s", name,
                                         width == 3 ? "[t_ms, x, y]" : "[t_ms, key]");
    size_t n = json_array_size(a);
    if ((long)n > lim->max_events)
        return refuse(e, 413, "too_many_events", name, "%s holds %zu events; at most %ld are accepted", name, n,
                      lim->max_events);
    if (n == 0) return 0;
    if (width == 3) *pts = calloc(n, sizeof **pts);
    else *ts = calloc(n, sizeof **ts);
    if ((width == 3 && !*pts) || (width == 2 && !*ts))
        return refuse(e, 500, "out_of_memory", name, "out of memory reading %s", name);
    double prev = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *ev = json_array_get(a, i);
        snprintf(f, sizeof f, "%s[%zu]", name, i);
        if (!json_is_array(ev) || json_array_size(ev) != (size_t)width)
            return refuse(e, 422, "invalid_field", f, "%s must be an array of %d elements %s", f, width,
                          width == 3 ? "[t_ms, x, y]" : "[t_ms, key]");
        double t;
        snprintf(f, sizeof f, "%s[%zu][0]", name, i);
        if (!get_num(json_array_get(ev, 0), &t)) return refuse(e, 422, "invalid_field", f, "%s (t_ms) must be a number", f);
        if (t < 0 || t > duration_ms)
            return refuse(e, 422, "invalid_field", f, "%s: t_ms %g is outside [0, duration_ms = %g]", f, t, duration_ms);
        if (i > 0 && t < prev)
            return refuse(e, 422, "invalid_field", f, "%s: t_ms %g is earlier than the event before it (%g); times must not decrease",
                          f, t, prev);
        prev = t;
        if (width == 3) {
            double xy[2];
            for (int k = 0; k < 2; k++) {
                snprintf(f, sizeof f, "%s[%zu][%d]", name, i, k + 1);
                if (!get_num(json_array_get(ev, (size_t)k + 1), &xy[k]))
                    return refuse(e, 422, "invalid_field", f, "%s (%s) must be a number", f, k ? "y" : "x");
                if (fabs(xy[k]) > SESSIONS_COORD_MAX)
                    return refuse(e, 422, "invalid_field", f, "%s: |%s| must be at most %g pixels", f, k ? "y" : "x",
                                  SESSIONS_COORD_MAX);
            }
            (*pts)[i] = (sessions_point_t){t, xy[0], xy[1]};
        } else {
            const json_t *k = json_array_get(ev, 1);
            snprintf(f, sizeof f, "%s[%zu][1]", name, i);
            if (!json_is_string(k) || json_string_length(k) == 0 || json_string_length(k) > SESSIONS_KEY_MAX)
                return refuse(e, 422, "invalid_field", f, "%s (key) must be a string of 1 to %d bytes", f, SESSIONS_KEY_MAX);
            (*ts)[i] = t;
        }
    }
    *n_out = n;
    return 0;
}

int sessions_telemetry_parse(const json_t *body, const sessions_limits_t *lim, sessions_telemetry_t *out,
                             sessions_error_t *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    if (!json_is_object(body))
        return refuse(e, 422, "invalid_field", NULL,
                      "the body must be a JSON object {session_id, duration_ms, pointer, clicks, keys, client}");
    const json_t *id = json_object_get(body, "session_id");
    if (!id) return refuse(e, 422, "invalid_field", "session_id", "session_id is required");
    if (!json_is_string(id) || !sessions_id_valid(json_string_value(id)) ||
        strlen(json_string_value(id)) != json_string_length(id))
        return refuse(e, 422, "invalid_field", "session_id",
                      "session_id must be a string of 1 to %d characters from A-Z a-z 0-9 . _ : -", SESSIONS_ID_MAX);
    snprintf(out->session_id, sizeof out->session_id, "%s", json_string_value(id));
    const json_t *d = json_object_get(body, "duration_ms");
    if (!d) return refuse(e, 422, "invalid_field", "duration_ms", "duration_ms is required");
    if (!get_num(d, &out->duration_ms)) return refuse(e, 422, "invalid_field", "duration_ms", "duration_ms must be a number");
    if (out->duration_ms <= 0 || out->duration_ms > lim->max_duration_ms)
        return refuse(e, 422, "invalid_field", "duration_ms", "duration_ms must be in (0, %.0f]", lim->max_duration_ms);
    const json_t *client = json_object_get(body, "client");
    if (!client) return refuse(e, 422, "invalid_field", "client", "client is required (an object, {} when nothing is known)");
    if (!json_is_object(client)) return refuse(e, 422, "invalid_field", "client", "client must be an object");
    if (parse_events(body, "pointer", 3, lim, out->duration_ms, &out->pointer, NULL, &out->n_pointer, e) ||
        parse_events(body, "clicks", 3, lim, out->duration_ms, &out->clicks, NULL, &out->n_clicks, e) ||
        parse_events(body, "keys", 2, lim, out->duration_ms, NULL, &out->key_t_ms, &out->n_keys, e))
        goto fail;
    out->client_json = json_dumps(client, JSON_COMPACT | JSON_SORT_KEYS);
    if (!out->client_json) {
        refuse(e, 500, "out_of_memory", "client", "out of memory reading client");
        goto fail;
    }
    if (strlen(out->client_json) > SESSIONS_CLIENT_MAX) {
        refuse(e, 413, "client_too_large", "client", "client is %zu bytes as compact JSON; at most %d are accepted",
               strlen(out->client_json), SESSIONS_CLIENT_MAX);
        goto fail;
    }
    char *all = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!all) {
        refuse(e, 500, "out_of_memory", NULL, "out of memory hashing the body");
        goto fail;
    }
    out->body_hash = hash_fnv1a(all, strlen(all), 0x5e5510);
    free(all);
    return 0;
fail:
    sessions_telemetry_free(out);
    memset(out, 0, sizeof *out);
    return -1;
}

void sessions_telemetry_free(sessions_telemetry_t *t) {
    if (!t) return;
    free(t->pointer);
    free(t->clicks);
    free(t->key_t_ms);
    free(t->client_json);
    t->pointer = t->clicks = NULL;
    t->key_t_ms = NULL;
    t->client_json = NULL;
}
