/* The pipeline's life, trigger and runs. One thread (pipeline_main) reads the bus
 * (data.features.ready opens a collection window; job.completed/job.failed may finish a
 * run), submits the window's and the periodic runs, finalizes runs whose jobs are done,
 * reloads the calendar, runs the consistency check and retries events that could not be
 * published. A run is recorded (market_runs) before its jobs are submitted with idempotency
 * keys run_id/normal and run_id/earnings, so a run whose 202 was sent (or that was
 * recorded when the process died) is taken back at the next start and finishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "market/pipeline_int.h"

#define TICK_MS 100
#define FINALIZE_EVERY_MS 500

static int64_t clock_mono(void *arg) {
    (void)arg;
    return mono_ms();
}

/* ---- events ---------------------------------------------------------------------------------- */

void pipeline_publish(pipeline_t *p, const char *topic, const char *json, size_t len) {
    if (!p->bus) return;
    pthread_mutex_lock(&p->mu);
    int backlog = p->outbox != NULL || p->events_down; /* keep the order: behind what waits already */
    pthread_mutex_unlock(&p->mu);
    if (!backlog && bus_publish(p->bus, topic, json, len) == 0) return;
    metrics_counter_add(p->m, "predictd_pipeline_errors_total", "type=\"publish\"", 1);
    outbox_ev_t *e = calloc(1, sizeof *e);
    if (e) e->json = strndup(json, len);
    if (!e || !e->json) {
        if (e) free(e);
        metrics_counter_add(p->m, "predictd_pipeline_outbox_dropped_total", NULL, 1);
        return;
    }
    snprintf(e->topic, sizeof e->topic, "%s", topic);
    pthread_mutex_lock(&p->mu);
    if (p->outbox_tail) p->outbox_tail->next = e;
    else p->outbox = e;
    p->outbox_tail = e;
    p->outbox_n++;
    long dropped = 0;
    while (p->outbox_n > p->cfg.pipeline_outbox_max && p->outbox) {
        outbox_ev_t *old = p->outbox;
        p->outbox = old->next;
        if (!p->outbox) p->outbox_tail = NULL;
        p->outbox_n--;
        free(old->json);
        free(old);
        dropped++;
    }
    pthread_mutex_unlock(&p->mu);
    if (dropped) metrics_counter_add(p->m, "predictd_pipeline_outbox_dropped_total", NULL, (double)dropped);
}

/* Retries the outbox in order; stops at the first failure. */
static void outbox_flush(pipeline_t *p) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        outbox_ev_t *e = p->events_down ? NULL : p->outbox;
        pthread_mutex_unlock(&p->mu);
        if (!e || bus_publish(p->bus, e->topic, e->json, strlen(e->json)) != 0) return;
        pthread_mutex_lock(&p->mu);
        p->outbox = e->next;
        if (!p->outbox) p->outbox_tail = NULL;
        p->outbox_n--;
        pthread_mutex_unlock(&p->mu);
        free(e->json);
        free(e);
    }
}

/* ---- features and calendar --------------------------------------------------------------------- */

int pipeline_window_k(pipeline_t *p) { return p->k; }

static int reload_calendar(pipeline_t *p, char *err, size_t errlen) {
    cal_row_t *rows = NULL;
    size_t n = 0;
    if (mstore_calendar_load(p->st, &rows, &n, err, errlen) != 0) return -1;
    calendar_replace(&p->cal, rows, n);
    LOG_D("calendar reloaded", "rows=%zu", n);
    return 0;
}

int pipeline_features_put(pipeline_t *p, const feat_row_t *rows, size_t n, size_t *symbols, char *err,
                          size_t errlen) {
    if (mstore_features_put(p->st, rows, n, p->k, err, errlen) != 0) return -1;
    if (features_apply(&p->feat, rows, n) != 0) LOG_W("feature window out of memory", "rows=%zu", n);
    /* the distinct symbols, for the event */
    json_t *set = json_object();
    buf_t b = {0};
    buf_puts(&b, "{\"symbols\":[");
    size_t k = 0;
    for (size_t i = 0; set && i < n; i++) {
        if (json_object_get(set, rows[i].symbol)) continue;
        json_object_set_new(set, rows[i].symbol, json_true());
        if (k++) buf_putc(&b, ',');
        buf_json_str(&b, rows[i].symbol, strlen(rows[i].symbol));
    }
    char at[40];
    iso8601_ms(now_ms(), at, sizeof at);
    buf_printf(&b, "],\"count\":%zu,\"vectors\":%zu,\"at\":\"%s\"}", k, n, at);
    if (!b.oom) pipeline_publish(p, "data.features.ready", b.data, b.len);
    buf_free(&b);
    json_decref(set);
    *symbols = k;
    return 0;
}

int pipeline_calendar_put(pipeline_t *p, const cal_row_t *rows, size_t n, char *err, size_t errlen) {
    if (mstore_calendar_put(p->st, rows, n, err, errlen) != 0) return -1;
    if (reload_calendar(p, err, errlen) != 0) LOG_W("calendar reload failed", "reason=\"%s\"", err);
    return 0;
}

/* ---- runs ---------------------------------------------------------------------------------------- */

static void set_jerr(jobs_error_t *e, int status, const char *code, const char *field, const char *msg) {
    memset(e, 0, sizeof *e);
    e->http_status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message, "%s", msg);
    if (status == 429 || status == 503) e->retry_after_s = 1;
}

void pipeline_run_add_stages(pipeline_t *p, const char *run_id, const stages_t *s) {
    pthread_mutex_lock(&p->mu);
    for (active_run_t *r = p->active; r; r = r->next)
        if (!strcmp(r->run_id, run_id)) {
            r->st.inference += s->inference;
            r->st.store += s->store;
            r->st.fast_layer += s->fast_layer;
            r->st.events += s->events;
            break;
        }
    pthread_mutex_unlock(&p->mu);
}

static void active_add(pipeline_t *p, const mstore_run_t *r, char jobs[2][32]) {
    active_run_t *a = calloc(1, sizeof *a);
    if (!a) return; /* finalized from the store's record at the next start */
    snprintf(a->run_id, sizeof a->run_id, "%s", r->run_id);
    snprintf(a->correlation_id, sizeof a->correlation_id, "%s", r->correlation_id);
    memcpy(a->jobs, jobs, sizeof a->jobs);
    a->route_ms = r->route_ms;
    pthread_mutex_lock(&p->mu);
    active_run_t **pp = &p->active; /* oldest first */
    while (*pp) pp = &(*pp)->next;
    *pp = a;
    pthread_mutex_unlock(&p->mu);
}

/* The pipeline hears job.completed / job.failed only while it has runs in flight: every other
 * job of the server would wake it for nothing. On before a run's jobs are submitted; off once
 * the last run is finalized (a completion it misses is found by the periodic finalize). */
#define TOPICS_IDLE "data.features.ready"
#define TOPICS_RUNNING "data.features.ready,job.completed,job.failed"

static void watch_jobs_locked(pipeline_t *p, int on) {
    if (p->sub) bus_set_topics(p->bus, p->sub, on ? TOPICS_RUNNING : TOPICS_IDLE);
}

/* A run's jobs are about to be submitted: hear them. */
static void run_submitting(pipeline_t *p) {
    pthread_mutex_lock(&p->mu);
    p->submitting++;
    watch_jobs_locked(p, 1);
    pthread_mutex_unlock(&p->mu);
}

/* That submission is over (the run is in p->active, or it failed); none left: stop hearing. */
static void run_submitted(pipeline_t *p) {
    pthread_mutex_lock(&p->mu);
    if (p->submitting > 0) p->submitting--;
    if (!p->active && !p->submitting) watch_jobs_locked(p, 0);
    pthread_mutex_unlock(&p->mu);
}

/* Submits (or finds again, by idempotency key) the run's jobs. 0 ok (jobs filled). */
static int submit_jobs(pipeline_t *p, const mstore_run_t *r, char jobs[2][32], jobs_error_t *err) {
    memset(jobs, 0, 2 * 32);
    for (int route = 0; route < 2; route++) {
        json_error_t je;
        json_t *ids = json_loads(route == ROUTE_EARNINGS ? r->earnings_ids : r->normal_ids, 0, &je);
        if (!json_is_array(ids)) {
            json_decref(ids);
            set_jerr(err, 500, "corrupt_run", "", "the run's symbol list does not parse");
            return -1;
        }
        if (json_array_size(ids) == 0) {
            json_decref(ids);
            continue;
        }
        json_t *req = json_pack("{s:o, s:s, s:s, s:s, s:i, s:I, s:i}", "entity_ids", ids, "run_id", r->run_id,
                                "correlation_id", r->correlation_id, "model", p->model_names[route], "passes",
                                p->cfg.pipeline_passes, "seed", (json_int_t)p->cfg.pipeline_seed, "date", r->date);
        char idem[64];
        snprintf(idem, sizeof idem, "%s/%s", r->run_id, route == ROUTE_EARNINGS ? "earnings" : "normal");
        store_job_t job;
        int existed = 0;
        int64_t eta = 0;
        int rc = req ? jobs_submit(p->jobs, p->models[route].name, req, idem, &job, &existed, &eta, err) : -1;
        json_decref(req);
        if (rc != 0) {
            if (!req) set_jerr(err, 503, "out_of_memory", "", "out of memory");
            return -1;
        }
        snprintf(jobs[route], 32, "%s", job.id);
    }
    return 0;
}

static void jobs_json(char jobs[2][32], char *out, size_t outlen) {
    snprintf(out, outlen, "[%s%s%s%s%s%s%s]", jobs[0][0] ? "\"" : "", jobs[0], jobs[0][0] ? "\"" : "",
             jobs[0][0] && jobs[1][0] ? "," : "", jobs[1][0] ? "\"" : "", jobs[1], jobs[1][0] ? "\"" : "");
}

static void make_id(const char *prefix, char *out, size_t outlen) {
    char j[32];
    make_job_id(j); /* "JOB-" + sortable time + random */
    snprintf(out, outlen, "%s%s", prefix, j + 4);
}

int pipeline_run_start(pipeline_t *p, const char *const *symbols, size_t n, int all, int32_t date,
                       const char *trigger, const char *correlation_id, char run_id[40], char corr[48],
                       jobs_error_t *err) {
    char **all_syms = NULL;
    size_t n_all = 0;
    buf_t ids[2] = {{0}, {0}};
    mstore_run_t r;
    memset(&r, 0, sizeof r);
    int rc = -1;
    if (all) {
        if (features_symbols(&p->feat, &all_syms, &n_all) != 0) {
            set_jerr(err, 503, "out_of_memory", "", "out of memory");
            return -1;
        }
        symbols = (const char *const *)all_syms;
        n = n_all;
    }
    if (n == 0) {
        set_jerr(err, 422, "no_symbols", all ? "all" : "symbols",
                 all ? "the feature store holds no symbols yet" : "symbols must not be empty");
        goto done;
    }
    if ((long)n > p->cfg.pipeline_max_symbols_per_run) {
        char msg[128];
        snprintf(msg, sizeof msg, "%zu symbols; at most %ld per run (pipeline.max_symbols_per_run)", n,
                 p->cfg.pipeline_max_symbols_per_run);
        set_jerr(err, 422, "too_many_symbols", all ? "all" : "symbols", msg);
        goto done;
    }
    /* route */
    double t0 = mono_s();
    long counts[2] = {0, 0};
    json_t *seen = json_object();
    char day[11];
    mkt_date_format(date, day);
    for (int k = 0; k < 2; k++) buf_putc(&ids[k], '[');
    for (size_t i = 0; i < n; i++) {
        if (seen && json_object_get(seen, symbols[i])) continue; /* a repeat is routed once */
        if (seen) json_object_set_new(seen, symbols[i], json_true());
        const char *why = "";
        mkt_route_t route = calendar_route(&p->cal, &p->holidays, symbols[i], date, &why);
        LOG_D("routed", "symbol=%s date=%s route=%s why=\"%s\"", symbols[i], day, mkt_route_name(route), why);
        if (counts[route]++) buf_putc(&ids[route], ',');
        buf_json_str(&ids[route], symbols[i], strlen(symbols[i]));
    }
    json_decref(seen);
    for (int k = 0; k < 2; k++) buf_putc(&ids[k], ']');
    r.route_ms = (mono_s() - t0) * 1000.0;
    metrics_observe(p->m, "predictd_pipeline_routing_seconds", NULL, r.route_ms / 1000.0);
    metrics_counter_add(p->m, "predictd_pipeline_routed_total", "route=\"normal_day\"", (double)counts[0]);
    metrics_counter_add(p->m, "predictd_pipeline_routed_total", "route=\"earnings_day\"", (double)counts[1]);
    if (ids[0].oom || ids[1].oom) {
        set_jerr(err, 503, "out_of_memory", "", "out of memory");
        goto done;
    }

    make_id("RUN-", r.run_id, sizeof r.run_id);
    if (correlation_id && *correlation_id) snprintf(r.correlation_id, sizeof r.correlation_id, "%s", correlation_id);
    else make_id("COR-", r.correlation_id, sizeof r.correlation_id);
    r.date = date;
    snprintf(r.trigger, sizeof r.trigger, "%s", trigger);
    r.created_at = now_ms();
    snprintf(r.status, sizeof r.status, "SUBMITTING");
    r.normal_ids = ids[0].data;
    r.earnings_ids = ids[1].data;
    char serr[256];
    if (mstore_run_insert(p->st, &r, serr, sizeof serr) != 0) {
        set_jerr(err, 503, "store_unavailable", "", serr);
        goto done;
    }
    char jobs[2][32];
    run_submitting(p);
    if (submit_jobs(p, &r, jobs, err) != 0) {
        run_submitted(p);
        /* nothing accepted: take back what was made */
        for (int k = 0; k < 2; k++) {
            store_job_t j;
            if (jobs[k][0]) jobs_cancel(p->jobs, jobs[k], &j);
        }
        mstore_run_delete(p->st, r.run_id, serr, sizeof serr);
        goto done;
    }
    char js[80];
    jobs_json(jobs, js, sizeof js);
    /* if this fails the jobs run anyway: the run is taken back (SUBMITTING) at the next start */
    if (mstore_run_set_jobs(p->st, r.run_id, js, serr, sizeof serr) != 0)
        LOG_W("run's jobs not recorded", "run=%s reason=\"%s\"", r.run_id, serr);
    active_add(p, &r, jobs);
    run_submitted(p);
    metrics_counter_add(p->m, "predictd_pipeline_runs_started_total", NULL, 1);
    LOG_I("pipeline run started", "run=%s correlation_id=%s trigger=%s date=%s normal=%ld earnings=%ld", r.run_id,
          r.correlation_id, trigger, day, counts[0], counts[1]);
    snprintf(run_id, 40, "%s", r.run_id);
    snprintf(corr, 48, "%s", r.correlation_id);
    rc = 0;
done:
    buf_free(&ids[0]);
    buf_free(&ids[1]);
    free(all_syms);
    return rc;
}

/* The dead letter reason of one of the run's jobs, if any. */
static void dead_reason(pipeline_t *p, const active_run_t *a, char *out, size_t outlen) {
    snprintf(out, outlen, "its chunk failed after every retry (dead letter)");
    store_deadletter_t *dl = NULL;
    size_t n = 0;
    long after = 0;
    while (store_deadletters_list(p->st, after, 500, &dl, &n) == 0 && n > 0) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(dl[i].job_id, a->jobs[0]) || !strcmp(dl[i].job_id, a->jobs[1])) {
                snprintf(out, outlen, "its chunk failed after %d attempts (dead letter): %.*s", dl[i].attempts,
                         (int)(outlen > 80 ? outlen - 80 : 1), dl[i].reason);
                free(dl);
                return;
            }
        after = dl[n - 1].id;
        free(dl);
        dl = NULL;
    }
    free(dl);
}

static void stages_json(const active_run_t *a, int64_t total_ms, buf_t *b) {
    buf_puts(b, "{\"route\":");
    buf_json_double(b, a->route_ms);
    buf_puts(b, ",\"inference\":");
    buf_json_double(b, a->st.inference);
    buf_puts(b, ",\"store\":");
    buf_json_double(b, a->st.store);
    buf_puts(b, ",\"fast_layer\":");
    buf_json_double(b, a->st.fast_layer);
    buf_puts(b, ",\"events\":");
    buf_json_double(b, a->st.events);
    if (total_ms >= 0) buf_printf(b, ",\"total\":%lld}", (long long)total_ms);
    else buf_puts(b, ",\"total\":null}");
}

/* Finalizes the run when every job of it has finished. 1 finalized, 0 not yet, -1 error. */
static int try_finalize(pipeline_t *p, active_run_t *a) {
    int failed_job = 0, cancelled = 0;
    for (int k = 0; k < 2; k++) {
        if (!a->jobs[k][0]) continue;
        store_job_t job;
        if (store_job_get(p->st, a->jobs[k], &job) != 0) return -1;
        if (job.status == JOB_QUEUED || job.status == JOB_PROCESSING) return 0;
        failed_job |= job.status != JOB_COMPLETED;
        cancelled |= job.status == JOB_CANCELLED;
    }
    mstore_run_t r;
    char err[256];
    if (mstore_run_get(p->st, a->run_id, &r, err, sizeof err) != 0) return -1;
    r.finished_at = now_ms();
    snprintf(r.status, sizeof r.status, "%s", failed_job ? "FAILED" : "COMPLETED");
    buf_t st = {0};
    stages_json(a, r.finished_at - r.created_at, &st);
    free(r.stages);
    r.stages = buf_steal(&st);
    char reason[300];
    if (cancelled) snprintf(reason, sizeof reason, "its job was cancelled before it was computed");
    else dead_reason(p, a, reason, sizeof reason);
    int rc = mstore_run_finish(p->st, &r, failed_job ? reason : "not computed", err, sizeof err);
    if (rc != 0) {
        LOG_W("run not finalized", "run=%s reason=\"%s\"", a->run_id, err);
        mstore_run_clear(&r);
        return -1;
    }
    long ok = 0, failed = 0;
    mstore_run_outcome(p->st, a->run_id, &ok, &failed, NULL, err, sizeof err);
    double total_s = (double)(r.finished_at - r.created_at) / 1000.0;
    metrics_observe(p->m, "predictd_pipeline_e2e_seconds", NULL, total_s);
    metrics_counter_add(p->m, "predictd_pipeline_runs_total", failed_job ? "status=\"FAILED\"" : "status=\"COMPLETED\"",
                        1);
    buf_t ev = {0};
    buf_puts(&ev, "{\"run_id\":");
    buf_json_str(&ev, a->run_id, strlen(a->run_id));
    buf_puts(&ev, ",\"correlation_id\":");
    buf_json_str(&ev, a->correlation_id, strlen(a->correlation_id));
    buf_printf(&ev, ",\"status\":\"%s\",\"succeeded\":%ld,\"failed\":%ld,\"total_ms\":%lld}", r.status, ok, failed,
               (long long)(r.finished_at - r.created_at));
    if (!ev.oom) pipeline_publish(p, "pipeline.run.completed", ev.data, ev.len);
    buf_free(&ev);
    LOG_I("pipeline run finished", "run=%s status=%s succeeded=%ld failed=%ld total_ms=%lld", a->run_id, r.status, ok,
          failed, (long long)(r.finished_at - r.created_at));
    mstore_run_clear(&r);
    return 1;
}

static void finalize_runs(pipeline_t *p) {
    /* one at a time, without the lock while the store is read */
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (active_run_t *a = p->active; a; a = a->next) n++;
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&p->mu);
        active_run_t *a = p->active;
        for (size_t k = 0; a && k < i; k++) a = a->next;
        active_run_t copy;
        if (a) copy = *a;
        pthread_mutex_unlock(&p->mu);
        if (!a) break;
        if (try_finalize(p, &copy) != 1) continue;
        pthread_mutex_lock(&p->mu);
        for (active_run_t **pp = &p->active; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->run_id, copy.run_id)) {
                active_run_t *dead = *pp;
                *pp = dead->next;
                free(dead);
                break;
            }
        if (!p->active && !p->submitting) watch_jobs_locked(p, 0);
        pthread_mutex_unlock(&p->mu);
        i--, n--;
    }
}

/* At start: every run not finished goes back in memory; one whose jobs were never recorded
 * gets them (again: the idempotency keys find jobs already made). */
static int recover_runs(pipeline_t *p, char *err, size_t errlen) {
    char (*ids)[40] = NULL;
    size_t n = 0;
    if (mstore_runs_unfinished(p->st, &ids, &n, err, errlen) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        mstore_run_t r;
        if (mstore_run_get(p->st, ids[i], &r, err, errlen) != 0) continue;
        char jobs[2][32];
        jobs_error_t je;
        run_submitting(p);
        if (submit_jobs(p, &r, jobs, &je) == 0) {
            char js[80];
            jobs_json(jobs, js, sizeof js);
            if (strcmp(r.status, "SUBMITTED")) mstore_run_set_jobs(p->st, r.run_id, js, err, errlen);
            active_add(p, &r, jobs);
            run_submitted(p);
            LOG_I("pipeline run recovered", "run=%s jobs=%s", r.run_id, js);
        } else {
            run_submitted(p);
            LOG_W("pipeline run not recovered (retried at the next start)", "run=%s reason=\"%s\"", r.run_id,
                  je.message);
        }
        mstore_run_clear(&r);
    }
    free(ids);
    return 0;
}

/* ---- the thread ------------------------------------------------------------------------------------ */

static void on_features_ready(pipeline_t *p, const char *data) {
    json_error_t je;
    json_t *ev = json_loads(data, 0, &je);
    json_t *syms = json_object_get(ev, "symbols");
    size_t i;
    json_t *v;
    long dropped = 0;
    pthread_mutex_lock(&p->mu);
    json_array_foreach(syms, i, v) {
        if (!json_is_string(v)) continue;
        if ((long)json_object_size(p->pending) >= p->cfg.pipeline_max_symbols_per_run &&
            !json_object_get(p->pending, json_string_value(v))) {
            dropped++;
            continue;
        }
        json_object_set_new(p->pending, json_string_value(v), json_true());
    }
    if (json_object_size(p->pending) && !p->window_started_ms) p->window_started_ms = mono_ms();
    pthread_mutex_unlock(&p->mu);
    if (dropped) metrics_counter_add(p->m, "predictd_pipeline_errors_total", "type=\"pending_full\"", (double)dropped);
    json_decref(ev);
}

/* The window is over: one run for its symbols. Kept pending (and retried) if it fails. */
static void window_run(pipeline_t *p) {
    pthread_mutex_lock(&p->mu);
    json_t *pend = p->pending;
    size_t n = json_object_size(pend);
    const char **syms = calloc(n ? n : 1, sizeof *syms);
    json_t *keep = json_object();
    size_t k = 0;
    const char *key;
    json_t *v;
    if (syms && keep) {
        json_object_foreach(pend, key, v) syms[k++] = key;
        p->pending = keep; /* new events go to a fresh set while this one is submitted */
    }
    p->window_started_ms = 0;
    pthread_mutex_unlock(&p->mu);
    if (!syms || !keep) {
        free(syms);
        json_decref(keep);
        return;
    }
    char run_id[40], corr[48];
    jobs_error_t err;
    if (pipeline_run_start(p, syms, k, 0, mkt_today(), "window", NULL, run_id, corr, &err) != 0) {
        LOG_W("window run not started, symbols kept for the next window", "symbols=%zu reason=\"%s\"", k,
              err.message);
        pthread_mutex_lock(&p->mu);
        json_object_update_missing(p->pending, pend);
        if (!p->window_started_ms) p->window_started_ms = mono_ms();
        pthread_mutex_unlock(&p->mu);
    }
    free(syms);
    json_decref(pend);
}

static void *pipeline_main(void *arg) {
    pipeline_t *p = arg;
    int64_t now = mono_ms();
    int64_t next_finalize = now, next_interval = now + (int64_t)p->cfg.pipeline_interval_s * 1000;
    int64_t next_consistency = now + (int64_t)p->cfg.pipeline_consistency_interval_s * 1000;
    int64_t next_calendar = now + (int64_t)p->cfg.pipeline_calendar_refresh_s * 1000;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        bus_event_t ev;
        int got = p->sub ? bus_next(p->bus, p->sub, TICK_MS, &ev) : 0;
        if (!p->sub || got < 0) {
            /* no bus (or closed): just tick */
            pthread_mutex_lock(&p->mu);
            if (!p->stop) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += TICK_MS * 1000000L;
                if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
            }
            pthread_mutex_unlock(&p->mu);
        }
        if (got == 1) {
            if (!strcmp(ev.topic, "data.features.ready")) on_features_ready(p, ev.data);
            else next_finalize = 0; /* a job finished: look now */
            bus_event_clear(&ev);
        }
        now = mono_ms();
        pthread_mutex_lock(&p->mu);
        int window_due = p->window_started_ms && now - p->window_started_ms >= (int64_t)p->cfg.pipeline_window_s * 1000;
        pthread_mutex_unlock(&p->mu);
        if (window_due) window_run(p);
        if (p->cfg.pipeline_interval_s > 0 && now >= next_interval) {
            next_interval = now + (int64_t)p->cfg.pipeline_interval_s * 1000;
            char run_id[40], corr[48];
            jobs_error_t err;
            if (features_count(&p->feat) > 0 &&
                pipeline_run_start(p, NULL, 0, 1, mkt_today(), "interval", NULL, run_id, corr, &err) != 0)
                LOG_W("periodic run not started", "reason=\"%s\"", err.message);
        }
        if (now >= next_finalize) {
            next_finalize = now + FINALIZE_EVERY_MS;
            finalize_runs(p);
        }
        if (p->cfg.pipeline_consistency_interval_s > 0 && now >= next_consistency) {
            next_consistency = now + (int64_t)p->cfg.pipeline_consistency_interval_s * 1000;
            pipeline_consistency_run(p, NULL);
        }
        if (now >= next_calendar) {
            next_calendar = now + (int64_t)p->cfg.pipeline_calendar_refresh_s * 1000;
            char err[256];
            if (reload_calendar(p, err, sizeof err) != 0) LOG_W("calendar reload failed", "reason=\"%s\"", err);
        }
        outbox_flush(p);
    }
    return NULL;
}

/* ---- open / close ------------------------------------------------------------------------------------ */

/* K: the normal model's sequence length (input dim 1), else the earnings model's, else 32. */
static int sequence_length(pipeline_t *p) {
    for (int r = 0; r < 2; r++) {
        int rc;
        char err[256];
        serving_model_t *sm = p->sv ? serving_get(p->sv, p->model_names[r], NULL, &rc, err, sizeof err) : NULL;
        if (!sm) continue;
        nn_tensor_t t;
        serving_model_input_info(sm, 0, &t);
        int k = t.ndim == 3 && t.dims[1] > 0 && t.dims[1] <= 100000 ? (int)t.dims[1] : 0;
        serving_release(sm);
        if (k) return k;
    }
    return 32;
}

int pipeline_open(pipeline_t **out, const predictd_config_t *cfg, store_t *st, jobs_t *jobs, struct serving *sv,
                  struct bus *bus, metrics_t *m, char *err, size_t errlen) {
    *out = NULL;
    pipeline_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->cfg = *cfg;
    p->st = st;
    p->jobs = jobs;
    p->sv = sv;
    p->bus = bus;
    p->m = m;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    calendar_init(&p->cal);
    p->model_names[ROUTE_NORMAL] = p->cfg.pipeline_normal_model;
    p->model_names[ROUTE_EARNINGS] = p->cfg.pipeline_earnings_model;
    const int64_t open_ms = (int64_t)cfg->pipeline_breaker_open_s * 1000;
    breaker_init(&p->br_inference, "inference", 10, open_ms, clock_mono, NULL);
    breaker_init(&p->br_fast, "fast_layer", 5, open_ms, clock_mono, NULL);
    breaker_init(&p->br_store, "store", 5, open_ms, clock_mono, NULL);
    p->pending = json_object();
    if (!p->pending) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (strcmp(cfg->pipeline_missing_earnings, "zeros") && strcmp(cfg->pipeline_missing_earnings, "skip")) {
        snprintf(err, errlen, "pipeline.missing_earnings: '%s' is not zeros or skip", cfg->pipeline_missing_earnings);
        goto fail;
    }
    p->skip_missing_earnings = !strcmp(cfg->pipeline_missing_earnings, "skip");
    char herr[200];
    if (mkt_holidays_parse(cfg->pipeline_holidays, &p->holidays, herr, sizeof herr) != 0) {
        snprintf(err, errlen, "pipeline.holidays: %s", herr);
        goto fail;
    }
    p->k = sequence_length(p);
    if (features_init(&p->feat, p->k) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (kv_open(&p->kv, cfg->pipeline_fast_layer, NULL, NULL, err, errlen) != 0) goto fail;
    kv_set_down(p->kv, cfg->pipeline_fast_layer_down);
    if (mstore_init(st, err, errlen) != 0 || mstore_features_load(st, &p->feat, err, errlen) != 0 ||
        reload_calendar(p, err, errlen) != 0)
        goto fail;
    pipeline_metrics_describe(p);
    metrics_add_collector(m, pipeline_metrics_collect, p);
    pipeline_models_init(p);
    for (int r = 0; r < 2; r++)
        if (jobs_add_model(jobs, &p->models[r], err, errlen) != 0) goto fail;
    if (recover_runs(p, err, errlen) != 0) goto fail;
    if (bus) {
        p->sub = bus_subscribe(bus, p->active ? TOPICS_RUNNING : TOPICS_IDLE, 65536);
        if (!p->sub) {
            snprintf(err, errlen, "cannot subscribe to the bus");
            goto fail;
        }
    }
    if (pthread_create(&p->thread, NULL, pipeline_main, p) != 0) {
        snprintf(err, errlen, "cannot start the pipeline thread");
        goto fail;
    }
    p->thread_started = 1;
    LOG_I("pipeline ready", "window_vectors=%d symbols=%zu calendar_rows=%zu normal_model=%s earnings_model=%s",
          p->k, features_count(&p->feat), calendar_size(&p->cal), p->model_names[0], p->model_names[1]);
    *out = p;
    return 0;
fail:
    /* models already handed to the job engine stay valid: p is kept until the engine is gone */
    pipeline_stop(p);
    *out = p;
    return -1;
}

void pipeline_stop(pipeline_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_started) pthread_join(p->thread, NULL);
    p->thread_started = 0;
    if (p->sub) bus_unsubscribe(p->bus, p->sub);
    p->sub = NULL;
}

void pipeline_free(pipeline_t *p) {
    if (!p) return;
    pipeline_stop(p);
    if (p->m) metrics_remove_collector(p->m, pipeline_metrics_collect, p);
    while (p->active) {
        active_run_t *a = p->active;
        p->active = a->next;
        free(a);
    }
    while (p->outbox) {
        outbox_ev_t *e = p->outbox;
        p->outbox = e->next;
        free(e->json);
        free(e);
    }
    json_decref(p->pending);
    kv_free(p->kv);
    features_destroy(&p->feat);
    calendar_destroy(&p->cal);
    mkt_holidays_free(&p->holidays);
    breaker_destroy(&p->br_inference);
    breaker_destroy(&p->br_fast);
    breaker_destroy(&p->br_store);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void pipeline_set_fast_layer_down(pipeline_t *p, int down) { kv_set_down(p->kv, down); }
void pipeline_set_events_down(pipeline_t *p, int down) {
    pthread_mutex_lock(&p->mu);
    p->events_down = down;
    pthread_mutex_unlock(&p->mu);
}
int pipeline_debug_enabled(pipeline_t *p) { return p->cfg.pipeline_debug; }
