/* What one push client (a WebSocket connection, an SSE stream) wants from the bus: sets of
 * symbols and job ids, and an optional topic list. Pure data, no locking: the owner (the hub,
 * under its lock; an SSE stream, alone) serialises access.
 *
 * Matching an event (topic, data.symbol, data.job_id):
 *   - a topic list, when set, is the list of topics delivered at all ("*", "job.*" allowed);
 *   - an event carrying data.symbol and/or data.job_id (a "keyed" event) is delivered when
 *     one of its keys is in the matching set (a set may be "*": every key);
 *   - an event carrying neither is delivered only when the topic list is set and names it.
 * A WebSocket client starts with nothing subscribed (no event); an SSE stream starts with
 * symbols "*", jobs "*" and topics "*" (every event) and narrows them by query arguments.
 *
 * Client messages (JSON text): {"subscribe": {"symbols": [..] | "*", "jobs": [..] | "*",
 * "topics": [..] | "*"}}, {"unsubscribe": {...}} alike, and {"stats": {}}. A message is
 * checked whole before anything changes: a bad one leaves the filter as it was. */
#ifndef PREDICTD_PUSH_FILTER_H
#define PREDICTD_PUSH_FILTER_H

#include <stddef.h>

#include "core/util.h"

#define PUSH_KEY_MAX 64       /* bytes of a symbol or job id, NUL included */
#define PUSH_SYMBOL_MAX_LEN 32
#define PUSH_JOB_MAX_LEN 31
#define PUSH_FILTER_MAX_KEYS 10000 /* per set: bounds a client's filter memory */
#define PUSH_FILTER_MAX_TOPICS 64

typedef enum { PUSH_SET_NONE = 0, PUSH_SET_SOME, PUSH_SET_ALL } push_set_mode_t;

/* A set of strings: none, some (sorted, unique) or all. */
typedef struct {
    push_set_mode_t mode;
    char **v;
    size_t n, cap;
} push_set_t;

typedef struct {
    push_set_t symbols, jobs;
    push_set_t topics; /* NONE: no topic list (keyed events of any topic, no keyless ones) */
} push_filter_t;

typedef enum { PUSH_MSG_SUBSCRIBE = 1, PUSH_MSG_UNSUBSCRIBE, PUSH_MSG_STATS } push_msg_kind_t;

/* Why a message or query was refused: the API's error object. */
typedef struct {
    char code[32];
    char field[64];
    char message[192];
} push_err_t;

/* Zero-initialised = nothing subscribed. push_filter_clear frees and resets to that. */
void push_filter_clear(push_filter_t *f);
/* Every event (the SSE default). */
void push_filter_all(push_filter_t *f);
/* Deep copy; -1 out of memory (dst then cleared). */
int push_filter_copy(push_filter_t *dst, const push_filter_t *src);

/* Is the event wanted? symbol / job_id: the event's data.symbol / data.job_id, NULL when
 * the event has none. */
int push_filter_match(const push_filter_t *f, const char *topic, const char *symbol, const char *job_id);

/* Applies one client message (text, len bytes) to f. Returns its kind, or -1 with err filled
 * (f unchanged). */
int push_filter_apply_msg(push_filter_t *f, const char *text, size_t len, push_err_t *err);

/* SSE: narrows f (start from push_filter_all) by ?symbols= and ?jobs= (comma-separated lists
 * or "*"; NULL = argument absent). 0 ok, -1 with err filled. */
int push_filter_from_query(push_filter_t *f, const char *symbols, const char *jobs, push_err_t *err);

/* Appends {"symbols": "*"|[..]|[], "jobs": ..., "topics": "*"|[..]|null} (the subscription
 * as it now stands). */
void push_filter_describe(const push_filter_t *f, buf_t *out);

/* The keys of an event payload: data.symbol and data.job_id when they are strings. Each
 * out buffer gets the value ("" when it is too long to be subscribable); *has_* tells
 * whether the key is there. 0 ok, -1 the payload is not a JSON object (no keys). */
int push_event_keys(const char *json, size_t len, char symbol[PUSH_KEY_MAX], int *has_symbol,
                    char job_id[PUSH_KEY_MAX], int *has_job);

/* Valid names: symbol 1..32 of [A-Za-z0-9._-], job id 1..31 of the same. */
int push_symbol_valid(const char *s);
int push_job_id_valid(const char *s);

#endif
