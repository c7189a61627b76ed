/* Shared between the api/ files (not part of the public contract in api.h).
 *   api_server.c  the libmicrohttpd daemon, per-request bodies, routing, metrics, /healthz...
 *   api_json.c    error bodies, JSON body parsing with field paths, query arguments, times
 *   api_graph.c   entities, relationships, observations
 *   api_import.c  CSV import
 *   api_jobs.c    batch prediction, jobs, results, cancellation, dead letters
 * A handler reads an api_req_t and fills an api_resp_t; it never touches libmicrohttpd
 * except to read headers and query arguments through the helpers below. */
#ifndef PREDICTD_API_INTERNAL_H
#define PREDICTD_API_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "api/api.h"
#include "core/util.h"
#include "store/store.h"

struct MHD_Connection;
struct MHD_UpgradeResponseHandle;

typedef struct {
    predictd_t *app;
    struct MHD_Connection *conn;
    const char *method;
    const char *route;   /* the matched template, e.g. "/api/v1/jobs/{id}" */
    const char *param;   /* the URL-decoded {..} segment, NULL when the route has none */
    const char *body;    /* request body, NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
} api_req_t;

typedef struct {
    int status;
    buf_t body;
    const char *content_type; /* NULL: application/json */
    char allow[64];           /* Allow header for 405, "" for none */
    int retry_after_s;        /* Retry-After header when > 0 */
    /* A streamed body (Server-Sent Events, api_events.c): when stream_read is set the body
     * is produced by stream_read(stream_cls, pos, buf, max) (libmicrohttpd's content reader
     * contract) until it ends; stream_free(stream_cls) runs once the response is done. */
    ssize_t (*stream_read)(void *cls, uint64_t pos, char *buf, size_t max);
    void (*stream_free)(void *cls);
    void *stream_cls;
    /* An HTTP upgrade (WebSocket, api_push.c): when upgrade_fn is set the answer is 101 with
     * Upgrade: upgrade_proto and the extra header below, and once it went out
     * upgrade_fn(upgrade_cls, ...) gets the connection (libmicrohttpd's MHD_UpgradeHandler). */
    void (*upgrade_fn)(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, int sock, struct MHD_UpgradeResponseHandle *urh);
    void *upgrade_cls;
    const char *upgrade_proto;
    char extra_header_name[32]; /* one more response header ("" none) */
    char extra_header_value[96];
} api_resp_t;

typedef void (*api_handler_fn)(api_req_t *rq, api_resp_t *rs);

/* ---- api_json.c ---- */
/* {"error":{"code":code,"message":...,"field":field|null}}; replaces any body already set. */
void api_error(api_resp_t *rs, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* 422 invalid_field naming field. */
#define api_invalid(rs, field, ...) api_error((rs), 422, "invalid_field", (field), __VA_ARGS__)
/* Parses the body as JSON. 0 ok (*out owned by the caller); -1 with a 400 invalid_json in rs. */
int api_parse_body(const api_req_t *rq, api_resp_t *rs, json_t **out);

/* ---- api_batch_body.c ---- */
/* A batch submission's top-level entity_ids, taken out of the body in the parse. */
typedef struct {
    int present;       /* entity_ids was an array (of strings: anything else goes to jansson) */
    size_t n, cap;
    const char **str;  /* n NUL-terminated strings (into strs) */
    uint32_t *off, *len;
    buf_t strs;
} api_ids_t;
/* Parses a batch body: like api_parse_body, but a top-level entity_ids array of strings is
 * left out of *doc and collected in ids (ids->present) in one pass; any document this pass
 * does not take exactly as jansson would is parsed by api_parse_body (ids->present = 0, *doc
 * keeps entity_ids). 0 ok (free with json_decref and api_ids_free), -1 with a 400 in rs. */
int api_parse_batch_body(const api_req_t *rq, api_resp_t *rs, json_t **doc, api_ids_t *ids);
void api_ids_free(api_ids_t *ids);
/* Sets status and the body to the compact serialisation of v; steals the reference. */
void api_reply_json(api_resp_t *rs, int status, json_t *v);
/* Appends an ISO 8601 string for ms since the epoch, or null when ms is 0. */
void api_put_time(buf_t *b, int64_t ms);
/* The job record as the API shows it. */
void api_put_job(buf_t *b, const store_job_t *job);
/* Query argument ?name=, URL-decoded into out; 0 found, 1 absent, -1 too long or with a NUL
 * (422 in rs). */
int api_query(const api_req_t *rq, api_resp_t *rs, const char *name, char *out, size_t outlen);
/* Integer query argument in [min, max], def when absent; -1 with a 422 in rs. */
int api_query_long(const api_req_t *rq, api_resp_t *rs, const char *name, long def, long min,
                   long max, long *out);
/* A request header, or NULL. */
const char *api_header(const api_req_t *rq, const char *name);
/* ISO 8601 date-time ("2026-11-24T10:00:00Z", fraction and +HH:MM offsets allowed, a bare
 * date is midnight UTC) to seconds since the epoch. 0 ok, -1 malformed. */
int api_parse_iso8601(const char *s, double *out);
/* A property value the graph store keeps: number, string or boolean (null when allow_null). */
int api_scalar_ok(const json_t *v, int allow_null);

/* ---- handlers (api_graph.c, api_import.c, api_jobs.c) ---- */
void api_entities_post(api_req_t *rq, api_resp_t *rs);
void api_entity_get(api_req_t *rq, api_resp_t *rs);
void api_entity_patch(api_req_t *rq, api_resp_t *rs);
void api_entity_delete(api_req_t *rq, api_resp_t *rs);
void api_relationships_post(api_req_t *rq, api_resp_t *rs);
void api_relationships_delete(api_req_t *rq, api_resp_t *rs);
void api_observations_post(api_req_t *rq, api_resp_t *rs);
void api_import_post(api_req_t *rq, api_resp_t *rs);
void api_predict_post(api_req_t *rq, api_resp_t *rs);
void api_job_get(api_req_t *rq, api_resp_t *rs);
void api_jobs_list(api_req_t *rq, api_resp_t *rs);
void api_job_results(api_req_t *rq, api_resp_t *rs);
void api_job_cancel(api_req_t *rq, api_resp_t *rs);
void api_deadletters_list(api_req_t *rq, api_resp_t *rs);
void api_deadletter_retry(api_req_t *rq, api_resp_t *rs);
void api_cache_invalidate(api_req_t *rq, api_resp_t *rs); /* api_cache.c */
/* api_kserve.c: KServe v2 + repository extension; {*} routes get the rest of the path */
void api_kserve_server_meta(api_req_t *rq, api_resp_t *rs);
void api_kserve_live(api_req_t *rq, api_resp_t *rs);
void api_kserve_ready(api_req_t *rq, api_resp_t *rs);
void api_kserve_index(api_req_t *rq, api_resp_t *rs);
void api_kserve_repo_action(api_req_t *rq, api_resp_t *rs);
void api_kserve_model_get(api_req_t *rq, api_resp_t *rs);
void api_kserve_model_post(api_req_t *rq, api_resp_t *rs);
void api_events_get(api_req_t *rq, api_resp_t *rs);       /* api_events.c */
/* api_sessions.c: session scoring and the seed's batch endpoints */
void api_sessions_score(api_req_t *rq, api_resp_t *rs);
void api_batch_stats(api_req_t *rq, api_resp_t *rs);
void api_batch_process(api_req_t *rq, api_resp_t *rs);
void api_batch_result(api_req_t *rq, api_resp_t *rs);
void api_batch_sched_start(api_req_t *rq, api_resp_t *rs);
void api_batch_sched_stop(api_req_t *rq, api_resp_t *rs);
void api_batch_sched_status(api_req_t *rq, api_resp_t *rs);
void api_batch_clear(api_req_t *rq, api_resp_t *rs);
/* api_import.c: 422 invalid_csv with the report's lines. */
void api_csv_error(api_resp_t *rs, const char *report, size_t len, const char *message);
/* api_market.c: the market pipeline (docs/pipeline.md) */
void api_features_post(api_req_t *rq, api_resp_t *rs);
void api_calendar_post(api_req_t *rq, api_resp_t *rs);
void api_pipeline_run_post(api_req_t *rq, api_resp_t *rs);
void api_pipeline_run_get(api_req_t *rq, api_resp_t *rs);
void api_predictions_get(api_req_t *rq, api_resp_t *rs);
void api_prediction_get(api_req_t *rq, api_resp_t *rs);
void api_prediction_history(api_req_t *rq, api_resp_t *rs);
void api_pipeline_consistency_post(api_req_t *rq, api_resp_t *rs);
void api_pipeline_debug_post(api_req_t *rq, api_resp_t *rs);
/* POST /api/v1/import/{features|calendar}: 1 handled (rs filled), 0 another kind. */
int api_market_import(api_req_t *rq, api_resp_t *rs);
/* api_push.c: WebSocket push (push/push_hub.h) and the test/ops publish route */
void api_ws_get(api_req_t *rq, api_resp_t *rs);
void api_events_publish(api_req_t *rq, api_resp_t *rs);

#endif
