/* The job engine's events on the bus (bus/bus.h): ews.alert from the EWS model's alert hook,
 * job.progress each time one of a job's chunks settles (jobs.c), job.completed / job.failed
 * when a job's last chunk settles (jobs.c) or when it is served whole from the cache at
 * submission. Payloads are one JSON object; `at` is an ISO 8601 UTC
 * time with milliseconds. Publishing never waits on a subscriber (the bus drops instead). */
#include "jobs/jobs_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"

/* Set once at start (jobs_attach_bus), read by every publisher: an atomic pointer, no lock. */
static bus_t *bus_of(jobs_t *j) { return __atomic_load_n(&j->bus, __ATOMIC_ACQUIRE); }

void jobs_attach_bus(jobs_t *j, struct bus *b) { __atomic_store_n(&j->bus, b, __ATOMIC_RELEASE); }

/* The bus when someone listens to topic; else NULL, the event counted as published unheard
 * (most jobs finish with nobody subscribed: building their events would be wasted work). */
static bus_t *listener(jobs_t *j, const char *topic) {
    bus_t *b = bus_of(j);
    if (!b) return NULL;
    if (bus_wants(b, topic)) return b;
    bus_count_unheard(b, topic);
    return NULL;
}

static void put_at(buf_t *out, int64_t ms) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char t[48];
    snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    buf_printf(out, "\"at\":\"%s\"", t);
}

void jobs_publish_alert(jobs_t *j, const model_alert_t *a) {
    bus_t *b = listener(j, "ews.alert");
    if (!b) return;
    buf_t out = {0};
    buf_puts(&out, "{\"entity_id\":");
    buf_json_str(&out, a->entity_id, strlen(a->entity_id));
    buf_puts(&out, ",\"job_id\":");
    if (a->job_id) buf_json_str(&out, a->job_id, strlen(a->job_id));
    else buf_puts(&out, "null");
    buf_puts(&out, ",\"variance_tau\":");
    buf_json_double(&out, a->variance_tau);
    buf_puts(&out, ",\"ar1_tau\":");
    buf_json_double(&out, a->ar1_tau);
    buf_puts(&out, ",");
    put_at(&out, now_ms());
    buf_puts(&out, "}");
    if (!out.oom) bus_publish(b, "ews.alert", out.data, out.len);
    buf_free(&out);
}

void jobs_publish_finished(jobs_t *j, const store_job_t *job) {
    bus_t *b = listener(j, job->status == JOB_FAILED ? "job.failed" : "job.completed");
    if (!b) return;
    static const char *const names[] = {"QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"};
    int st = job->status >= 0 && job->status <= JOB_CANCELLED ? (int)job->status : 0;
    buf_t out = {0};
    buf_puts(&out, "{\"job_id\":");
    buf_json_str(&out, job->id, strlen(job->id));
    buf_puts(&out, ",\"model\":");
    buf_json_str(&out, job->model, strlen(job->model));
    buf_printf(&out, ",\"status\":\"%s\",\"total_entities\":%ld,\"successful\":%ld,\"failed\":%ld,",
               names[st], (long)job->n_entities, (long)job->successful, (long)job->failed);
    put_at(&out, job->finished_at ? job->finished_at : now_ms());
    buf_puts(&out, "}");
    if (!out.oom)
        bus_publish(b, job->status == JOB_FAILED ? "job.failed" : "job.completed", out.data, out.len);
    buf_free(&out);
}

void jobs_publish_progress(jobs_t *j, const store_job_t *job) {
    bus_t *b = listener(j, "job.progress");
    if (!b) return;
    long settled = job->chunks_done + job->chunks_dead;
    double progress = job->n_chunks > 0 ? (double)settled / (double)job->n_chunks : 1.0;
    if (progress > 1.0) progress = 1.0;
    buf_t out = {0};
    buf_puts(&out, "{\"job_id\":");
    buf_json_str(&out, job->id, strlen(job->id));
    buf_printf(&out, ",\"chunks_done\":%ld,\"chunks_dead\":%ld,\"n_chunks\":%ld,\"successful\":%ld,"
               "\"failed\":%ld,\"progress\":",
               (long)job->chunks_done, (long)job->chunks_dead, (long)job->n_chunks, (long)job->successful,
               (long)job->failed);
    buf_json_double(&out, progress);
    buf_puts(&out, ",");
    put_at(&out, job->updated_at ? job->updated_at : now_ms());
    buf_puts(&out, "}");
    if (!out.oom) bus_publish(b, "job.progress", out.data, out.len);
    buf_free(&out);
}
