/* One verification session's telemetry as POST /api/v1/sessions/score carries it, checked
 * and copied out of the JSON body (docs/sessions.md has the schema and the limits):
 *   {"session_id": "s-1", "duration_ms": 5400,
 *    "pointer": [[t_ms, x, y], ...], "clicks": [[t_ms, x, y], ...], "keys": [[t_ms, "a"], ...],
 *    "client": {...}}
 * Further fields are accepted and ignored. Times are ms from the session's start, in
 * [0, duration_ms], non-decreasing within each array. Not thread-bound: a parsed telemetry
 * belongs to its caller. */
#ifndef PREDICTD_SESSIONS_TELEMETRY_H
#define PREDICTD_SESSIONS_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SESSIONS_ID_MAX 128       /* bytes of a session id */
#define SESSIONS_KEY_MAX 32       /* bytes of one key name in keys[][1] */
#define SESSIONS_CLIENT_MAX 4096  /* bytes of the client object, compact JSON */
#define SESSIONS_COORD_MAX 1e7    /* |x|, |y| in pixels */
#define SESSIONS_DURATION_MAX_MS 3600000.0 /* a session of more than an hour is refused */

typedef struct {
    double t_ms, x, y;
} sessions_point_t;

typedef struct {
    char session_id[SESSIONS_ID_MAX + 1];
    double duration_ms;
    sessions_point_t *pointer; /* n_pointer moves, t non-decreasing */
    size_t n_pointer;
    sessions_point_t *clicks;
    size_t n_clicks;
    double *key_t_ms;          /* the times of the key events (the key names are not kept) */
    size_t n_keys;
    char *client_json;         /* the client object, compact JSON with sorted keys */
    uint64_t body_hash;        /* of the whole body (sorted keys): a repeat is the same session */
} sessions_telemetry_t;

typedef struct {
    double max_duration_ms; /* duration_ms above this is refused */
    long max_events;        /* per array (pointer, clicks, keys) */
} sessions_limits_t;

/* Why a body was refused: the HTTP status, error code, field path ("pointer[3][0]") and a
 * sentence for the client. */
typedef struct {
    int status;
    char code[32];
    char field[64];
    char message[256];
} sessions_error_t;

/* Checks body and fills out (zeroed first). 0 ok; -1 with e filled (422 invalid_field for a
 * missing or wrong field, 413 too_many_events for an array over max_events, 500
 * out_of_memory), and out left empty. */
int sessions_telemetry_parse(const json_t *body, const sessions_limits_t *lim, sessions_telemetry_t *out,
                             sessions_error_t *e);
void sessions_telemetry_free(sessions_telemetry_t *t); /* NULL is a no-op; frees what it holds */

/* 1 when id is a usable session id: 1..SESSIONS_ID_MAX bytes of [A-Za-z0-9._:-]. */
int sessions_id_valid(const char *id);

#endif
