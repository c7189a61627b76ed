/* The HTTP server: a libmicrohttpd daemon (internal polling thread + thread pool, epoll where
 * available, HTTP/1.1 keep-alive), request bodies collected per request up to max_body_bytes,
 * routing by path template, and per-route request metrics. Handlers live in the other api_*.c
 * files; this file owns the connection life cycle and the operational routes. */
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/api_internal.h"
#include "core/log.h"

#define API_CONN_LIMIT 1000
#define API_CONN_TIMEOUT_S 60
#define API_RETRY_AFTER_S 5
#define API_DISCARD_MAX_BYTES ((size_t)64 << 20)

struct api {
    predictd_t *app;
    struct MHD_Daemon *d;
    int port;
    int quiesced;
    MHD_socket quiesced_fd; /* the listen socket after api_quiesce; closed after the stop */
    /* Bytes of request bodies held by all requests in flight: past API_BODY_BUDGET_FACTOR x
     * max_body_bytes a request is answered 503 + Retry-After instead of buffered, so memory
     * stays bounded however many clients upload at once. */
    _Atomic long body_bytes;
};

#define API_BODY_BUDGET_FACTOR 4

typedef struct {
    const char *tmpl;
    const char *method;
    api_handler_fn fn;
    int mutating; /* refused with 503 while the server is stopping */
} route_t;

static void h_root(api_req_t *rq, api_resp_t *rs);
static void h_healthz(api_req_t *rq, api_resp_t *rs);
static void h_readyz(api_req_t *rq, api_resp_t *rs);
static void h_metrics(api_req_t *rq, api_resp_t *rs);

/* Routes sharing a template are listed together (the Allow header is built from them). */
static const route_t ROUTES[] = {
    {"/", "GET", h_root, 0},
    {"/healthz", "GET", h_healthz, 0},
    {"/readyz", "GET", h_readyz, 0},
    {"/metrics", "GET", h_metrics, 0},
    {"/api/v1/entities", "POST", api_entities_post, 1},
    {"/api/v1/entities/{id}", "GET", api_entity_get, 0},
    {"/api/v1/entities/{id}", "PATCH", api_entity_patch, 1},
    {"/api/v1/entities/{id}", "DELETE", api_entity_delete, 1},
    {"/api/v1/entities/{id}/observations", "POST", api_observations_post, 1},
    {"/api/v1/relationships", "POST", api_relationships_post, 1},
    {"/api/v1/relationships", "DELETE", api_relationships_delete, 1},
    {"/api/v1/import/{kind}", "POST", api_import_post, 1},
    {"/api/v1/predict/batch/{model}", "POST", api_predict_post, 1},
    {"/api/v1/jobs", "GET", api_jobs_list, 0},
    {"/api/v1/jobs/{id}", "GET", api_job_get, 0},
    {"/api/v1/jobs/{id}/results", "GET", api_job_results, 0},
    {"/api/v1/jobs/{id}/cancel", "POST", api_job_cancel, 1},
    {"/api/v1/deadletters", "GET", api_deadletters_list, 0},
    {"/api/v1/deadletters/{id}/retry", "POST", api_deadletter_retry, 1},
    {"/api/v1/cache/invalidate", "POST", api_cache_invalidate, 1},
    {"/v2", "GET", api_kserve_server_meta, 0},
    {"/v2/health/live", "GET", api_kserve_live, 0},
    {"/v2/health/ready", "GET", api_kserve_ready, 0},
    {"/v2/repository/index", "GET", api_kserve_index, 0},
    {"/v2/repository/index", "POST", api_kserve_index, 0},
    {"/v2/repository/models/{*}", "POST", api_kserve_repo_action, 1},
    {"/v2/models/{*}", "GET", api_kserve_model_get, 0},
    {"/v2/models/{*}", "POST", api_kserve_model_post, 0},
    {"/api/v1/events", "GET", api_events_get, 0},
    /* market pipeline (api_market.c, docs/pipeline.md) */
    {"/api/v1/features", "POST", api_features_post, 1},
    {"/api/v1/calendar", "POST", api_calendar_post, 1},
    {"/api/v1/pipeline/run", "POST", api_pipeline_run_post, 1},
    {"/api/v1/pipeline/runs/{id}", "GET", api_pipeline_run_get, 0},
    {"/api/v1/pipeline/consistency", "POST", api_pipeline_consistency_post, 1},
    {"/api/v1/pipeline/debug", "POST", api_pipeline_debug_post, 1},
    {"/api/v1/predictions", "GET", api_predictions_get, 0},
    {"/api/v1/predictions/{symbol}", "GET", api_prediction_get, 0},
    {"/api/v1/predictions/{symbol}/history", "GET", api_prediction_history, 0},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

/* One request in flight (libmicrohttpd's per-request context). */
typedef struct {
    double t0;
    const route_t *route;  /* NULL until matched */
    const char *route_label;
    char *param;           /* decoded {..} segment */
    buf_t body;
    int refused;           /* refusal holds the answer; the body is drained, not kept */
    api_resp_t refusal;
    unsigned long long announced_len; /* Content-Length when over the limit */
    size_t discarded;
    int responded;
    long held;             /* bytes of body counted in api_t.body_bytes */
} req_ctx_t;

static void body_release(api_t *a, req_ctx_t *c) {
    if (c->held) atomic_fetch_sub(&a->body_bytes, c->held);
    c->held = 0;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Does the raw path match the template? On a match with a {..} segment, *param_raw/len
 * point into path at that segment (still %-encoded). A template ending in {*} takes the
 * rest of the path, slashes included, as its parameter. */
static int tmpl_match(const char *tmpl, const char *path, size_t path_len, const char **param_raw,
                      size_t *param_len) {
    const char *t = tmpl, *p = path, *pend = path + path_len;
    *param_raw = NULL;
    *param_len = 0;
    for (;;) {
        if (*t == '{') {
            const char *tc = strchr(t, '}');
            const char *seg_end = strcmp(t, "{*}") == 0 ? NULL : memchr(p, '/', (size_t)(pend - p));
            if (!seg_end) seg_end = pend;
            if (seg_end == p) return 0; /* empty segment */
            *param_raw = p;
            *param_len = (size_t)(seg_end - p);
            t = tc + 1;
            p = seg_end;
            continue;
        }
        if (!*t) return p == pend;
        if (p == pend || *t != *p) return 0;
        t++;
        p++;
    }
}

/* Finds the route for (method, path). Returns it, or NULL with *tmpl_found set when the path
 * matched some template under another method (405) and NULL with it unset otherwise (404). */
static const route_t *route_find(const char *method, const char *path, const char **tmpl_found,
                                 const char **param_raw, size_t *param_len) {
    size_t len = strlen(path);
    if (len > 1 && path[len - 1] == '/') len--; /* "/api/v1/jobs/" is "/api/v1/jobs" */
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    *tmpl_found = NULL;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const char *pr;
        size_t pl;
        if (!tmpl_match(ROUTES[i].tmpl, path, len, &pr, &pl)) continue;
        if (!*tmpl_found) *tmpl_found = ROUTES[i].tmpl;
        if (strcmp(ROUTES[i].method, m) == 0) {
            *param_raw = pr;
            *param_len = pl;
            return &ROUTES[i];
        }
    }
    return NULL;
}

static void allow_header(const char *tmpl, char *out, size_t outlen) {
    out[0] = 0;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(ROUTES[i].tmpl, tmpl)) continue;
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s", n ? ", " : "", ROUTES[i].method);
        if (strcmp(ROUTES[i].method, "GET") == 0) {
            n = strlen(out);
            snprintf(out + n, outlen - n, ", HEAD");
        }
    }
}

/* ---- responses and metrics ---------------------------------------------------------------- */

static const char *method_label(const char *m) {
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0) return known[i];
    return "other";
}

static void record(predictd_t *app, const req_ctx_t *c, const char *method, int status) {
    LOG_D("http request", "method=%s route=\"%s\" code=%d ms=%.3f", method_label(method), c->route_label,
          status, (mono_s() - c->t0) * 1000.0);
    if (!app->metrics) return;
    char labels[256];
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",code=\"%d\"", c->route_label,
             method_label(method), status);
    metrics_counter_add(app->metrics, "predictd_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", c->route_label);
    metrics_observe(app->metrics, "predictd_http_request_seconds", labels, mono_s() - c->t0);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, predictd_t *app, req_ctx_t *c,
                                 const char *method, api_resp_t *rs) {
    if (rs->body.oom) {
        buf_free(&rs->body);
        api_error(rs, 500, "out_of_memory", NULL, "the response did not fit in memory");
    }
    struct MHD_Response *r;
    if (rs->stream_read) { /* the stream owns stream_cls from here, freed by stream_free */
        buf_free(&rs->body);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, rs->stream_read,
                                              rs->stream_cls, rs->stream_free);
        if (!r) rs->stream_free(rs->stream_cls);
    } else if (rs->body.len) {
        size_t len = rs->body.len;
        r = MHD_create_response_from_buffer(len, buf_steal(&rs->body), MHD_RESPMEM_MUST_FREE);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    buf_free(&rs->body);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->content_type ? rs->content_type : "application/json");
    if (rs->allow[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs->allow);
    if (rs->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rs->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result q = MHD_queue_response(conn, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    c->responded = 1;
    record(app, c, method, rs->status);
    return q;
}

/* Fills c->refusal with an error; the request is then answered with it once its body has
 * been drained (see on_headers). */
static void refuse(req_ctx_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(req_ctx_t *c, int status, const char *code, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_error(&c->refusal, status, code, NULL, "%s", msg);
    if (status == 405 && c->route) allow_header(c->route->tmpl, c->refusal.allow, sizeof c->refusal.allow);
    if (status == 503) c->refusal.retry_after_s = API_RETRY_AFTER_S;
    c->refused = 1;
}

/* ---- the request life cycle --------------------------------------------------------------- */

/* How much of a refused body is read and dropped before hanging up instead. */
static size_t discard_cap(const predictd_t *app) {
    return (size_t)app->cfg.max_body_bytes + API_DISCARD_MAX_BYTES;
}

/* Decides what can be decided from the headers: route, method, path parameter, shutdown,
 * announced body size. Returns with c->refused set when the request is refused. */
static void check_headers(struct MHD_Connection *conn, predictd_t *app, req_ctx_t *c, const char *url,
                          const char *method) {
    const char *tmpl = NULL, *praw = NULL;
    size_t plen = 0;
    const route_t *r = route_find(method, url, &tmpl, &praw, &plen);
    c->route_label = tmpl ? tmpl : "other";
    if (!r && !tmpl) {
        refuse(c, 404, "not_found", "no route for %s %.200s", method, url);
        return;
    }
    if (!r) {
        for (size_t i = 0; i < N_ROUTES && !c->route; i++)
            if (ROUTES[i].tmpl == tmpl) c->route = &ROUTES[i];
        refuse(c, 405, "method_not_allowed", "%s is not allowed on %s", method, tmpl);
        return;
    }
    c->route = r;
    if (praw) {
        c->param = strndup(praw, plen);
        size_t n = c->param ? MHD_http_unescape(c->param) : 0;
        if (!c->param || n != strlen(c->param) || n == 0) {
            refuse(c, 400, "invalid_path", "the path segment for %s is empty or contains a NUL byte", r->tmpl);
            return;
        }
    }
    if (r->mutating && app->stopping) {
        refuse(c, 503, "shutting_down", "the server is shutting down; retry against another instance or later");
        return;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > (unsigned long long)app->cfg.max_body_bytes) {
            refuse(c, 413, "body_too_large", "the request body is %llu bytes; at most %ld are accepted", n,
                   app->cfg.max_body_bytes);
            c->announced_len = n;
        }
    }
}

/* First call for a request: the headers are in, the body is not. A refused request is
 * answered at once when the client waits for the answer before sending its body
 * (Expect: 100-continue) or the body is too big to drain. Otherwise the body is read and
 * dropped first: answering with the body unread makes the server close the connection
 * while the client is still sending, and the client then sees a reset, not the answer. */
static enum MHD_Result on_headers(struct MHD_Connection *conn, api_t *a, req_ctx_t *c,
                                  const char *url, const char *method) {
    check_headers(conn, a->app, c, url, method);
    if (!c->refused) return MHD_YES;
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if ((expect && strcasecmp(expect, "100-continue") == 0) || c->announced_len > discard_cap(a->app))
        return send_resp(conn, a->app, c, method, &c->refusal);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    api_t *a = cls;
    req_ctx_t *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->t0 = mono_s();
        c->route_label = "other";
        *con_cls = c;
        return on_headers(conn, a, c, url, method);
    }
    if (c->responded) { /* answered before the body: drop whatever still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    size_t max = (size_t)a->app->cfg.max_body_bytes;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->refused) {
            c->discarded += n;
            /* Read and dropped so the answer can be sent; a stream without end is hung up on. */
            return c->discarded > discard_cap(a->app) ? MHD_NO : MHD_YES;
        }
        if (c->body.len + n > max) { /* no Content-Length (chunked) or it lied */
            refuse(c, 413, "body_too_large", "the request body is larger than the %ld bytes accepted",
                   a->app->cfg.max_body_bytes);
            c->discarded = c->body.len + n;
            body_release(a, c);
            buf_free(&c->body);
            return MHD_YES;
        }
        long budget = a->app->cfg.max_body_bytes * API_BODY_BUDGET_FACTOR;
        if (atomic_fetch_add(&a->body_bytes, (long)n) + (long)n > budget) {
            atomic_fetch_sub(&a->body_bytes, (long)n);
            refuse(c, 503, "server_busy", "too many request bodies are being received at once; retry shortly");
            c->discarded = c->body.len + n;
            body_release(a, c);
            buf_free(&c->body);
            return MHD_YES;
        }
        c->held += (long)n;
        buf_append(&c->body, upload_data, n);
        return MHD_YES;
    }
    /* The whole request is in. */
    if (c->refused) return send_resp(conn, a->app, c, method, &c->refusal);
    if (c->body.oom) {
        refuse(c, 413, "body_too_large", "the request body did not fit in memory");
        return send_resp(conn, a->app, c, method, &c->refusal);
    }
    api_req_t rq = {
        .app = a->app,
        .conn = conn,
        .method = method,
        .route = c->route->tmpl,
        .param = c->param,
        .body = c->body.data ? c->body.data : "",
        .body_len = c->body.len,
    };
    api_resp_t rs = {.status = 200};
    c->route->fn(&rq, &rs);
    body_release(a, c);
    buf_free(&c->body);
    return send_resp(conn, a->app, c, method, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    req_ctx_t *c = *con_cls;
    if (!c) return;
    body_release((api_t *)cls, c); /* a client gone mid-upload */
    buf_free(&c->body);
    buf_free(&c->refusal.body);
    free(c->param);
    free(c);
    *con_cls = NULL;
}

/* Keeps %-escapes in the path so that an id holding "%2F" stays one segment; api_server.c
 * decodes path segments and api_json.c query values after splitting. */
static size_t keep_escapes(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r') *p = ' ';
    LOG_W("http server", "detail=\"%s\"", msg);
}

/* ---- operational routes ------------------------------------------------------------------- */

static void h_root(api_req_t *rq, api_resp_t *rs) {
    (void)rq;
    buf_puts(&rs->body, "{\"name\":\"predictd\",\"api\":\"/api/v1\",\"health\":\"/healthz\","
                        "\"ready\":\"/readyz\",\"metrics\":\"/metrics\","
                        "\"example\":\"POST /api/v1/predict/batch/ising\"}");
}

static void h_healthz(api_req_t *rq, api_resp_t *rs) {
    (void)rq;
    buf_puts(&rs->body, "{\"status\":\"ok\"}");
}

static void h_readyz(api_req_t *rq, api_resp_t *rs) {
    if (rq->app->ready && !rq->app->stopping) {
        buf_puts(&rs->body, "{\"ready\":true}");
        return;
    }
    rs->status = 503;
    rs->retry_after_s = API_RETRY_AFTER_S;
    buf_printf(&rs->body, "{\"ready\":false,\"reason\":\"%s\"}", rq->app->stopping ? "stopping" : "starting");
}

static void h_metrics(api_req_t *rq, api_resp_t *rs) {
    if (!rq->app->metrics) {
        api_error(rs, 503, "unavailable", NULL, "metrics are not enabled");
        return;
    }
    metrics_render(rq->app->metrics, &rs->body);
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int api_start(api_t **out, predictd_t *app, char *err, size_t errlen) {
    *out = NULL;
    char host[128];
    snprintf(host, sizeof host, "%s", app->cfg.listen);
    char *colon = strrchr(host, ':');
    if (!colon) {
        snprintf(err, errlen, "listen '%s' is not HOST:PORT", app->cfg.listen);
        return -1;
    }
    *colon = 0;
    const char *port = colon + 1, *h = host;
    if (host[0] == '[' && colon > host && colon[-1] == ']') {
        colon[-1] = 0;
        h = host + 1;
    }
    if (!*h || strcmp(h, "*") == 0) h = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int gai = getaddrinfo(h, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "listen '%s': %s", app->cfg.listen, gai_strerror(gai));
        return -1;
    }
    api_t *a = calloc(1, sizeof *a);
    if (!a) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->app = app;
    if (app->metrics) {
        metrics_describe(app->metrics, "predictd_http_requests_total", METRIC_COUNTER,
                         "HTTP requests by route template, method and status code", NULL, 0);
        metrics_describe(app->metrics, "predictd_http_request_seconds", METRIC_HISTOGRAM,
                         "HTTP request latency by route template, from headers read to response queued",
                         NULL, 0);
    }
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* http_threads 0 (the default): a thread per connection, so a handler that waits (a
     * submission waits for its group commit) never holds up another client's requests;
     * N > 0: a pool of N threads, each serving many connections. */
    unsigned threads = app->cfg.http_threads > 0 ? (unsigned)app->cfg.http_threads : 0;
    if (threads == 0) flags = (flags & ~(unsigned)MHD_USE_AUTO) | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a, /* first, so it sees everything */
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                            MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, a,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u,
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1 << 20),
                            threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!a->d) {
        snprintf(err, errlen, "cannot listen on %s (address in use or not available)", app->cfg.listen);
        free(a);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? (int)info->port : 0;
    LOG_I("http listening", "listen=%s port=%d threads=%u", app->cfg.listen, a->port, threads);
    *out = a;
    return 0;
}

int api_port(const api_t *a) { return a ? a->port : 0; }

void api_quiesce(api_t *a) {
    if (!a || !a->d || a->quiesced) return;
    /* libmicrohttpd's threads may still look at the socket: it is closed in api_free. */
    a->quiesced_fd = MHD_quiesce_daemon(a->d);
    a->quiesced = 1;
}

void api_free(api_t *a) {
    if (!a) return;
    if (a->d) MHD_stop_daemon(a->d);
    if (a->quiesced && a->quiesced_fd != MHD_INVALID_SOCKET) close(a->quiesced_fd);
    free(a);
}
