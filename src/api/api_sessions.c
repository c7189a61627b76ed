/* Session scoring (docs/sessions.md): POST /api/v1/sessions/score and the seed's batch
 * endpoints under /api/v1/batch. The work is in sessions/; this file turns requests into
 * calls and answers into JSON. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"
#include "sessions/sessions.h"

#define SESSIONS_RETRY_AFTER_S 5

static sessions_t *need_sessions(api_req_t *rq, api_resp_t *rs) {
    if (rq->app->sessions) return rq->app->sessions;
    api_error(rs, 503, "sessions_unavailable", NULL, "session scoring is not running");
    rs->retry_after_s = SESSIONS_RETRY_AFTER_S;
    return NULL;
}

static json_t *time_or_null(int64_t ms) {
    if (ms <= 0) return json_null();
    char t[40];
    iso8601_ms(ms, t, sizeof t);
    return json_string(t);
}

static void store_failed(api_resp_t *rs, const char *err) {
    api_error(rs, 503, "store_unavailable", NULL, "the store failed: %s", err);
    rs->retry_after_s = SESSIONS_RETRY_AFTER_S;
}

void api_sessions_score(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    json_t *body = NULL;
    if (api_parse_body(rq, rs, &body)) return;
    const predictd_config_t *cfg = &rq->app->cfg;
    sessions_limits_t lim = {.max_duration_ms = SESSIONS_DURATION_MAX_MS, .max_events = cfg->sessions_max_events};
    sessions_telemetry_t t;
    sessions_error_t e;
    if (sessions_telemetry_parse(body, &lim, &t, &e)) {
        json_decref(body);
        api_error(rs, e.status, e.code, e.field, "%s", e.message);
        return;
    }
    json_decref(body);
    sessions_result_t res;
    char err[256];
    sessions_submit_rc_t rc = sessions_submit(s, &t, &res, err, sizeof err);
    sessions_telemetry_free(&t);
    switch (rc) {
    case SESSIONS_NEW:
    case SESSIONS_DUPLICATE: {
        json_t *o = json_pack("{s:s, s:f, s:s, s:s, s:b}", "session_id", res.session_id, "score", res.h_score,
                              "verdict", res.h_verdict, "source", "heuristic", "queued", 1);
        if (o && rc == SESSIONS_DUPLICATE) json_object_set_new(o, "duplicate", json_true());
        api_reply_json(rs, rc == SESSIONS_NEW ? 202 : 200, o);
        return;
    }
    case SESSIONS_CONFLICT:
        api_error(rs, 409, "session_conflict", "session_id",
                  "session %s was already submitted with other telemetry; a session id is scored once", res.session_id);
        return;
    case SESSIONS_FULL:
        api_error(rs, 429, "queue_full", NULL, "%ld sessions are queued (sessions.max_queued); retry later",
                  cfg->sessions_max_queued);
        rs->retry_after_s = SESSIONS_RETRY_AFTER_S;
        return;
    case SESSIONS_ERROR:
        store_failed(rs, err);
        return;
    }
}

void api_batch_result(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    if (!sessions_id_valid(rq->param)) {
        api_invalid(rs, "sessionId", "a session id is 1 to %d characters from A-Z a-z 0-9 . _ : -", SESSIONS_ID_MAX);
        return;
    }
    sessions_result_t r;
    char err[256];
    int found = sessions_result(s, rq->param, &r, err, sizeof err);
    if (found < 0) {
        store_failed(rs, err);
        return;
    }
    if (!found) {
        api_error(rs, 404, "session_not_found", "sessionId", "no session %s (never submitted, or deleted after retention)",
                  rq->param);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:s, s:b, s:{s:f, s:s}, s:o, s:o, s:o}", "session_id", r.session_id,
                          "status", r.processed ? "processed" : "queued", "source", r.processed ? "forest" : "heuristic",
                          "score", r.score, "verdict", r.verdict, "queued", !r.processed, "heuristic", "score",
                          r.h_score, "verdict", r.h_verdict, "batch_id",
                          r.processed ? json_integer(r.batch_id) : json_null(), "received_at",
                          time_or_null(r.received_ms), "processed_at", time_or_null(r.processed_ms));
    api_reply_json(rs, 200, o);
}

void api_batch_stats(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    sessions_stats_t st;
    char err[256];
    if (sessions_stats(s, &st, err, sizeof err)) {
        store_failed(rs, err);
        return;
    }
    long pending = st.queue_depth - st.in_batch;
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:{s:b}, s:o}",
                          "total", (json_int_t)st.total, "queue_depth", (json_int_t)st.queue_depth, "pending",
                          (json_int_t)(pending > 0 ? pending : 0), "in_batch", (json_int_t)st.in_batch, "processed",
                          (json_int_t)st.processed, "processed_total", (json_int_t)st.processed_total, "batches",
                          (json_int_t)st.batches, "failures", (json_int_t)st.failures, "consecutive_failures",
                          (json_int_t)st.consecutive_failures, "last_run_at", time_or_null(st.last_run_ms),
                          "last_batch_size", (json_int_t)st.last_batch_size, "reference_size",
                          (json_int_t)st.reference_size, "reference_seen", (json_int_t)st.reference_seen, "scheduler",
                          "running", st.scheduler_running, "next_retry_at", time_or_null(st.next_retry_ms));
    api_reply_json(rs, 200, o);
}

void api_batch_process(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    sessions_batch_report_t rep;
    char err[256];
    if (sessions_process_now(s, &rep, err, sizeof err)) {
        api_error(rs, 503, "batch_failed", NULL, "the batch failed and its sessions stay queued: %s", err);
        rs->retry_after_s = 1;
        return;
    }
    sessions_stats_t st;
    long depth = sessions_stats(s, &st, err, sizeof err) == 0 ? st.queue_depth : -1;
    json_t *o = json_pack("{s:o, s:I, s:{s:I, s:I, s:I}, s:f, s:I}", "batch_id",
                          rep.batch_id ? json_integer(rep.batch_id) : json_null(), "processed", (json_int_t)rep.size,
                          "verdicts", "human", (json_int_t)rep.by_verdict[0], "suspicious",
                          (json_int_t)rep.by_verdict[1], "bot", (json_int_t)rep.by_verdict[2], "duration_ms",
                          rep.seconds * 1000.0, "queue_depth", (json_int_t)depth);
    api_reply_json(rs, 200, o);
}

static void reply_sched_status(sessions_t *s, api_resp_t *rs) {
    sessions_sched_status_t st;
    sessions_scheduler_status(s, &st);
    json_t *o = json_pack("{s:b, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:i, s:s}", "running", st.running,
                          "interval_s", st.cfg.interval_s, "min_batch", st.cfg.min_batch, "max_wait_s",
                          st.cfg.max_wait_s, "max_batch", st.cfg.max_batch, "retry_base_ms", st.cfg.retry_base_ms,
                          "retry_max_ms", st.cfg.retry_max_ms, "last_run_at", time_or_null(st.last_run_ms),
                          "next_check_at", time_or_null(st.next_check_ms), "consecutive_failures", st.failures,
                          "last_decision", st.last_decision);
    api_reply_json(rs, 200, o);
}

void api_batch_sched_start(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    sessions_scheduler_set(s, 1);
    reply_sched_status(s, rs);
}

void api_batch_sched_stop(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    sessions_scheduler_set(s, 0);
    reply_sched_status(s, rs);
}

void api_batch_sched_status(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    reply_sched_status(s, rs);
}

/* The key from X-Admin-Key, else from Authorization: Bearer KEY; NULL when neither. */
static const char *admin_key(const api_req_t *rq) {
    const char *k = api_header(rq, "X-Admin-Key");
    if (k) return k;
    const char *a = api_header(rq, "Authorization");
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
        a += 7;
        while (*a == ' ') a++;
        return a;
    }
    return NULL;
}

void api_batch_clear(api_req_t *rq, api_resp_t *rs) {
    sessions_t *s = need_sessions(rq, rs);
    if (!s) return;
    if (!sessions_admin_enabled(s)) {
        api_error(rs, 403, "admin_disabled", NULL,
                  "this endpoint is disabled: set sessions.admin_key (PREDICTD_SESSIONS_ADMIN_KEY) to enable it");
        return;
    }
    const char *key = admin_key(rq);
    if (!key) {
        api_error(rs, 401, "unauthorized", "X-Admin-Key",
                  "the admin key is required (header X-Admin-Key: KEY or Authorization: Bearer KEY)");
        return;
    }
    if (!sessions_admin_ok(s, key)) {
        api_error(rs, 403, "forbidden", "X-Admin-Key", "the admin key is wrong");
        return;
    }
    char scope[16];
    int q = api_query(rq, rs, "scope", scope, sizeof scope);
    if (q < 0) return;
    if (q == 1) snprintf(scope, sizeof scope, "queue");
    if (strcmp(scope, "queue") && strcmp(scope, "all")) {
        api_invalid(rs, "scope", "scope must be queue (the queued sessions) or all (every session, the reference set and the counters)");
        return;
    }
    long deleted = 0;
    char err[256];
    if (sessions_clear(s, strcmp(scope, "all") == 0, &deleted, err, sizeof err)) {
        store_failed(rs, err);
        return;
    }
    api_reply_json(rs, 200, json_pack("{s:s, s:I}", "scope", scope, "deleted", (json_int_t)deleted));
}
