/* Jobs over HTTP: batch prediction submission, status, listing, results, cancellation and
 * dead letters. Validation of a submission belongs to jobs_submit (it knows the models);
 * this file shapes requests and answers. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

#define JOBS_LIMIT_DEFAULT 100
#define JOBS_LIMIT_MAX 1000
#define RESULTS_LIMIT_DEFAULT 1000
#define RESULTS_LIMIT_MAX 10000
#define IDEM_KEY_MAX 200

static int require_jobs(const api_req_t *rq, api_resp_t *rs) {
    if (rq->app->jobs && rq->app->store) return 1;
    api_error(rs, 503, "unavailable", NULL, "the job engine is not running");
    rs->retry_after_s = 5;
    return 0;
}

static void jobs_failed(api_resp_t *rs, const jobs_error_t *e, const char *default_field) {
    int status = e->http_status >= 400 && e->http_status < 600 ? e->http_status : 422;
    const char *code = e->code[0] ? e->code : (status == 422 ? "invalid_field" : "error");
    const char *field = e->field[0] ? e->field : default_field;
    api_error(rs, status, code, field, "%s", e->message[0] ? e->message : "the request was refused");
    if (e->retry_after_s > 0) rs->retry_after_s = e->retry_after_s;
}

/* the longest ?wait_ms= of a status read: well inside the connection timeout (60 s) */
#define API_STATUS_WAIT_MAX_MS 30000

static void job_not_found(const api_req_t *rq, api_resp_t *rs, const char *id) {
    const long keep_s = rq->app->cfg.retention_s;
    if (keep_s > 0)
        api_error(rs, 404, "job_not_found", NULL,
                  "no job with id '%.64s' (finished jobs are deleted %ld s after they finish: jobs.retention_s)",
                  id, keep_s);
    else
        api_error(rs, 404, "job_not_found", NULL, "no job with id '%.64s'", id);
}

/* The 202 answer for job. */
static void submitted(api_resp_t *rs, const store_job_t *job, int64_t eta_ms, int reused) {
    const char *status = job_status_name(job->status);
    rs->status = 202;
    buf_puts(&rs->body, "{\"job_id\":");
    buf_json_str(&rs->body, job->id, strlen(job->id));
    buf_puts(&rs->body, ",\"status\":");
    buf_json_str(&rs->body, status, strlen(status));
    buf_puts(&rs->body, ",\"estimated_completion\":");
    api_put_time(&rs->body, eta_ms);
    buf_puts(&rs->body, ",\"callback_url\":");
    char url[96];
    snprintf(url, sizeof url, "/api/v1/jobs/%s/results", job->id);
    buf_json_str(&rs->body, url, strlen(url));
    /* the same request as a job done earlier, every entity in the same state: that job */
    if (reused) buf_puts(&rs->body, ",\"reused\":true");
    buf_putc(&rs->body, '}');
}

void api_predict_post(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    api_ids_t ids;
    if (!require_jobs(rq, rs)) return;
    /* the very bytes of a request that made a job reusable as it is: that job, unparsed */
    jobs_body_key_t bk;
    jobs_body_key(rq->param, rq->body, rq->body_len, &bk);
    const char *key = api_header(rq, "Idempotency-Key");
    store_job_t reused;
    if (!key && rq->body_len > 0 && jobs_reuse_by_body(rq->app->jobs, rq->param, &bk, &reused)) {
        submitted(rs, &reused, reused.finished_at, 1);
        return;
    }
    if (api_parse_batch_body(rq, rs, &doc, &ids)) return;
    if (!json_is_object(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON object {entity_ids, parameters, ...}");
        json_decref(doc);
        api_ids_free(&ids);
        return;
    }
    if (key && (!*key || strlen(key) > IDEM_KEY_MAX)) {
        api_invalid(rs, "Idempotency-Key", "the Idempotency-Key header must be 1 to %d bytes", IDEM_KEY_MAX);
        json_decref(doc);
        api_ids_free(&ids);
        return;
    }
    const jobs_ids_t jids = {.n = ids.n, .str = ids.str, .len = ids.len};
    store_job_t job;
    memset(&job, 0, sizeof job);
    int existed = 0;
    int64_t eta_ms = 0;
    jobs_error_t e;
    memset(&e, 0, sizeof e);
    if (jobs_submit_body(rq->app->jobs, rq->param, doc, ids.present ? &jids : NULL, &bk, key, &job, &existed,
                         &eta_ms, &e) != 0)
        jobs_failed(rs, &e, NULL);
    else
        submitted(rs, &job, eta_ms, existed == JOBS_REUSED);
    json_decref(doc);
    api_ids_free(&ids);
}

void api_job_get(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    store_job_t job;
    /* a long poll: an unfinished job is answered once it moves (a chunk settles, it ends) or
     * after wait_ms, instead of at once */
    long wait_ms = 0;
    if (api_query_long(rq, rs, "wait_ms", 0, 0, API_STATUS_WAIT_MAX_MS, &wait_ms) < 0) return;
    int rc = strlen(rq->param) < sizeof job.id ? jobs_job_wait(rq->app->jobs, rq->param, wait_ms, &job) : 1;
    if (rc == 1) job_not_found(rq, rs, rq->param);
    else if (rc != 0) api_error(rs, 503, "store_unavailable", NULL, "the store could not read the job");
    else {
        api_put_job(&rs->body, &job);
        /* models with a job summary (cascade): "summary" once the first chunk is stored */
        buf_t sum = {0};
        if (rs->body.len > 0 && jobs_summary(rq->app->jobs, job.id, job.model, &sum) == 0 && !sum.oom) {
            rs->body.len--; /* the job object's closing brace */
            buf_puts(&rs->body, ",\"summary\":");
            buf_append(&rs->body, sum.data, sum.len);
            buf_putc(&rs->body, '}');
        }
        buf_free(&sum);
    }
}

void api_jobs_list(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    char status_s[32], model[32], cursor[32];
    long limit;
    int status = -1;
    int rc_s = api_query(rq, rs, "status", status_s, sizeof status_s);
    if (rc_s < 0) return;
    if (rc_s == 0 && status_s[0]) {
        for (char *p = status_s; *p; p++) *p = (char)toupper((unsigned char)*p);
        job_status_t st;
        if (job_status_parse(status_s, &st) != 0) {
            api_invalid(rs, "status", "status must be one of QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED");
            return;
        }
        status = (int)st;
    }
    int rc_m = api_query(rq, rs, "model", model, sizeof model);
    if (rc_m < 0) return;
    int rc_c = api_query(rq, rs, "cursor", cursor, sizeof cursor);
    if (rc_c < 0) return;
    if (api_query_long(rq, rs, "limit", JOBS_LIMIT_DEFAULT, 1, JOBS_LIMIT_MAX, &limit)) return;
    store_job_t *jobs = NULL;
    size_t n = 0;
    /* One more than asked: whether it comes back says if there is a next page. */
    if (store_jobs_list(rq->app->store, status, rc_m == 0 && model[0] ? model : NULL,
                        rc_c == 0 && cursor[0] ? cursor : NULL, (int)limit + 1, &jobs, &n) != 0) {
        free(jobs);
        api_error(rs, 503, "store_unavailable", NULL, "the store could not list jobs");
        return;
    }
    int more = n > (size_t)limit;
    if (more) n = (size_t)limit;
    buf_puts(&rs->body, "{\"jobs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&rs->body, ',');
        api_put_job(&rs->body, &jobs[i]);
    }
    buf_puts(&rs->body, "],\"next_cursor\":");
    if (more) buf_json_str(&rs->body, jobs[n - 1].id, strlen(jobs[n - 1].id));
    else buf_puts(&rs->body, "null");
    buf_putc(&rs->body, '}');
    free(jobs);
}

void api_job_results(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    char cursor[64];
    long limit;
    int rc_c = api_query(rq, rs, "cursor", cursor, sizeof cursor);
    if (rc_c < 0) return;
    if (api_query_long(rq, rs, "limit", RESULTS_LIMIT_DEFAULT, 1, RESULTS_LIMIT_MAX, &limit)) return;
    jobs_error_t e;
    memset(&e, 0, sizeof e);
    int rc = jobs_results_page(rq->app->jobs, rq->param, rc_c == 0 ? cursor : NULL, (int)limit, &rs->body, &e);
    if (rc == 1) {
        job_not_found(rq, rs, rq->param);
    } else if (rc != 0) {
        if (!e.http_status) {
            e.http_status = 422;
            snprintf(e.code, sizeof e.code, "invalid_field");
        }
        jobs_failed(rs, &e, "cursor");
    }
}

void api_job_cancel(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    store_job_t job;
    memset(&job, 0, sizeof job);
    int rc = jobs_cancel(rq->app->jobs, rq->param, &job);
    if (rc == 0) {
        api_put_job(&rs->body, &job);
    } else if (rc == 2) {
        api_error(rs, 409, "already_finished", NULL, "job %.64s already finished with status %s",
                  rq->param, job_status_name(job.status));
    } else if (rc == 1) {
        job_not_found(rq, rs, rq->param);
    } else {
        api_error(rs, 503, "store_unavailable", NULL, "the store could not cancel the job");
    }
}

void api_deadletters_list(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    long limit, after;
    if (api_query_long(rq, rs, "limit", JOBS_LIMIT_DEFAULT, 1, JOBS_LIMIT_MAX, &limit) ||
        api_query_long(rq, rs, "cursor", 0, 0, LONG_MAX, &after))
        return;
    store_deadletter_t *dl = NULL;
    size_t n = 0;
    if (store_deadletters_list(rq->app->store, after, (int)limit + 1, &dl, &n) != 0) {
        free(dl);
        api_error(rs, 503, "store_unavailable", NULL, "the store could not list dead letters");
        return;
    }
    int more = n > (size_t)limit;
    if (more) n = (size_t)limit;
    buf_puts(&rs->body, "{\"deadletters\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&rs->body, ',');
        buf_printf(&rs->body, "{\"id\":%ld,\"job_id\":", dl[i].id);
        buf_json_str(&rs->body, dl[i].job_id, strnlen(dl[i].job_id, sizeof dl[i].job_id));
        buf_printf(&rs->body, ",\"chunk\":%u,\"attempts\":%d,\"reason\":", (unsigned)dl[i].chunk, dl[i].attempts);
        buf_json_str(&rs->body, dl[i].reason, strnlen(dl[i].reason, sizeof dl[i].reason));
        buf_puts(&rs->body, ",\"created_at\":");
        api_put_time(&rs->body, dl[i].created_at);
        buf_putc(&rs->body, '}');
    }
    buf_puts(&rs->body, "],\"next_cursor\":");
    if (more) buf_printf(&rs->body, "\"%ld\"", dl[n - 1].id);
    else buf_puts(&rs->body, "null");
    buf_putc(&rs->body, '}');
    free(dl);
}

void api_deadletter_retry(api_req_t *rq, api_resp_t *rs) {
    if (!require_jobs(rq, rs)) return;
    char *end = NULL;
    errno = 0;
    long id = strtol(rq->param, &end, 10);
    char job_id[32] = "";
    if (errno || *end || !isdigit((unsigned char)rq->param[0]) ||
        jobs_deadletter_retry(rq->app->jobs, id, job_id) != 0) {
        api_error(rs, 404, "deadletter_not_found", NULL, "no dead letter %.64s waiting for a retry", rq->param);
        return;
    }
    buf_puts(&rs->body, "{\"job_id\":");
    buf_json_str(&rs->body, job_id, strnlen(job_id, sizeof job_id));
    buf_puts(&rs->body, ",\"status\":\"requeued\"}");
}
