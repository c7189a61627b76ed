/* The session service: submission, results, batches and the scheduler thread. The
 * statements live in sessions_sql.c; this file holds the order of things and the state
 * shared between the scheduler and the API (struct sessions, sessions_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/util.h"
#include "sessions/iforest.h"
#include "sessions/sessions_int.h"
#include "store/store_sql.h"

#define RETENTION_ROWS_PER_ROUND 10000

static const double BATCH_SIZE_BUCKETS[] = {1, 5, 10, 20, 50, 100, 200, 500, 1000};
static const double SCORE_BUCKETS[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};

static void observe_score(metrics_t *m, const char *source, const char *verdict, double score) {
    char labels[96];
    snprintf(labels, sizeof labels, "source=\"%s\",verdict=\"%s\"", source, verdict);
    metrics_observe(m, "predictd_sessions_score", labels, score);
}

static void collect(void *arg, metrics_t *m) {
    sessions_t *s = arg;
    metrics_gauge_set(m, "predictd_sessions_queue_depth", NULL, (double)atomic_load(&s->queued));
}

static void describe_metrics(metrics_t *m) {
    if (!m) return;
    metrics_describe(m, "predictd_sessions_submitted_total", METRIC_COUNTER,
                     "session submissions by outcome (new, duplicate, conflict, full)", NULL, 0);
    metrics_describe(m, "predictd_sessions_queue_depth", METRIC_GAUGE, "sessions queued for the forest", NULL, 0);
    metrics_describe(m, "predictd_sessions_batch_size", METRIC_HISTOGRAM, "sessions scored per committed batch",
                     BATCH_SIZE_BUCKETS, (int)(sizeof BATCH_SIZE_BUCKETS / sizeof BATCH_SIZE_BUCKETS[0]));
    metrics_describe(m, "predictd_sessions_batch_seconds", METRIC_HISTOGRAM,
                     "a batch from reading the queue to its commit (forest fit and scoring included)", NULL, 0);
    metrics_describe(m, "predictd_sessions_batches_total", METRIC_COUNTER, "batches by outcome (ok, failed)", NULL, 0);
    metrics_describe(m, "predictd_sessions_score", METRIC_HISTOGRAM,
                     "session scores by source (heuristic at submission, forest in a batch) and verdict",
                     SCORE_BUCKETS, (int)(sizeof SCORE_BUCKETS / sizeof SCORE_BUCKETS[0]));
    metrics_describe(m, "predictd_sessions_reference_rows", METRIC_GAUGE, "rows in the forest's reference set", NULL, 0);
    metrics_describe(m, "predictd_sessions_deleted_total", METRIC_COUNTER,
                     "sessions deleted by reason (retention, clear)", NULL, 0);
}

static double pm(int v) {
    return (double)v / 1000.0;
}

/* ---- submission and lookups ------------------------------------------------------------ */

sessions_submit_rc_t sessions_submit(sessions_t *s, const sessions_telemetry_t *t, sessions_result_t *res,
                                     char *err, size_t errlen) {
    double f[NF];
    sessions_features(t, f);
    double h = sessions_heuristic(f);
    const char *v = sessions_verdict(h, pm(s->cfg.sessions_heuristic_review_pm), pm(s->cfg.sessions_heuristic_bot_pm));
    sessions_insert_arg_t a = {.s = s, .t = t, .f = f, .h_score = h, .h_verdict = v, .now_ms = now_ms(), .res = res};
    if (store_sql_write(s->st, sessions_sql_insert, &a, err, errlen)) return SESSIONS_ERROR;
    static const char *OUTCOME[] = {"new", "duplicate", "conflict", "full"};
    char labels[48];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", OUTCOME[a.rc]);
    metrics_counter_add(s->m, "predictd_sessions_submitted_total", labels, 1);
    if (a.rc == SESSIONS_NEW) observe_score(s->m, "heuristic", v, h);
    return a.rc;
}

int sessions_result(sessions_t *s, const char *session_id, sessions_result_t *res, char *err, size_t errlen) {
    sessions_get_arg_t a = {.session_id = session_id, .res = res};
    if (store_sql_read(s->st, sessions_sql_get, &a, err, errlen)) return -1;
    return a.found;
}

int sessions_stats(sessions_t *s, sessions_stats_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    sessions_stats_arg_t a = {.out = out};
    if (store_sql_read(s->st, sessions_sql_stats, &a, err, errlen)) return -1;
    out->last_run_ms = a.last_run_ms;
    pthread_mutex_lock(&s->mu);
    out->in_batch = s->running ? s->in_batch : 0;
    out->consecutive_failures = s->failures;
    out->scheduler_running = s->enabled;
    out->next_retry_ms = s->failures ? s->last_failure_ms + sessions_sched_backoff_ms(&s->sched, s->failures) : 0;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- batches ---------------------------------------------------------------------------- */

/* Reads up to max queued sessions, fits the forest on them plus the reference set, scores
 * them and commits. The caller holds the batch (s->running). */
static int run_batch(sessions_t *s, long max, sessions_batch_report_t *rep, char *err, size_t errlen) {
    double t0 = mono_s();
    int64_t started = now_ms();
    memset(rep, 0, sizeof *rep);
    sessions_batch_read_t rd = {.max = max, .ref_max = s->cfg.sessions_reference_max};
    iforest_t *forest = NULL;
    double *scores = NULL;
    const char **verdicts = NULL;
    if (store_sql_read(s->st, sessions_sql_batch_read, &rd, err, errlen)) goto fail;
    if (rd.n == 0) {
        long q = 0;
        if (store_sql_read(s->st, sessions_sql_count_queued, &q, NULL, 0) == 0 && q == 0) atomic_store(&s->queued, 0);
        sessions_batch_read_free(&rd);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    s->in_batch = rd.n;
    int inject = s->fault_left > 0;
    if (inject) s->fault_left--;
    pthread_mutex_unlock(&s->mu);
    if (inject) {
        snprintf(err, errlen, "injected batch failure (sessions.fault_batch_failures)");
        goto fail;
    }
    /* batch k (k = batches committed so far + 1) draws from streams (seed, 2k) and
     * (seed, 2k + 1): a retried batch draws the same numbers again */
    uint64_t k = (uint64_t)rd.batches + 1;
    rng_t r;
    rng_seed2(&r, (uint64_t)s->cfg.sessions_seed, 2 * k);
    uint64_t forest_seed = rng_u64(&r);
    rng_seed2(&r, (uint64_t)s->cfg.sessions_seed, 2 * k + 1);
    uint64_t reservoir_seed = rng_u64(&r);
    iforest_params_t p = {.n_trees = s->cfg.sessions_trees, .subsample = s->cfg.sessions_subsample, .seed = forest_seed};
    if (iforest_fit(&forest, rd.X, (size_t)(rd.n + rd.n_ref), NF, &p, err, errlen)) goto fail;
    scores = malloc((size_t)rd.n * sizeof *scores);
    verdicts = malloc((size_t)rd.n * sizeof *verdicts);
    if (!scores || !verdicts) {
        snprintf(err, errlen, "out of memory scoring a batch of %ld", rd.n);
        goto fail;
    }
    iforest_score_rows(forest, rd.X, (size_t)rd.n, scores);
    for (long i = 0; i < rd.n; i++)
        verdicts[i] = sessions_verdict(scores[i], pm(s->cfg.sessions_forest_review_pm), pm(s->cfg.sessions_forest_bot_pm));
    sessions_commit_arg_t c = {.s = s, .rd = &rd, .scores = scores, .verdicts = verdicts, .started_ms = started,
                               .now_ms = now_ms(), .forest_seed = forest_seed, .reservoir_seed = reservoir_seed};
    if (store_sql_write(s->st, sessions_sql_batch_commit, &c, err, errlen)) goto fail;
    rep->batch_id = c.batch_id;
    rep->size = c.updated;
    rep->seconds = mono_s() - t0;
    for (long i = 0; i < rd.n; i++) {
        int vi = strcmp(verdicts[i], "bot") == 0 ? 2 : strcmp(verdicts[i], "suspicious") == 0 ? 1 : 0;
        rep->by_verdict[vi]++;
        observe_score(s->m, "forest", verdicts[i], scores[i]);
    }
    metrics_observe(s->m, "predictd_sessions_batch_size", NULL, (double)c.updated);
    metrics_observe(s->m, "predictd_sessions_batch_seconds", NULL, rep->seconds);
    metrics_counter_add(s->m, "predictd_sessions_batches_total", "outcome=\"ok\"", 1);
    metrics_gauge_set(s->m, "predictd_sessions_reference_rows", NULL, (double)c.reference_size);
    LOG_I("session batch", "batch_id=%ld size=%ld reference=%ld ms=%.1f", c.batch_id, c.updated, rd.n_ref,
          rep->seconds * 1000.0);
    pthread_mutex_lock(&s->mu);
    s->last_run_ms = c.now_ms;
    s->failures = 0;
    pthread_mutex_unlock(&s->mu);
    iforest_free(forest);
    free(scores);
    free(verdicts);
    sessions_batch_read_free(&rd);
    return 0;
fail:
    LOG_W("session batch failed", "reason=\"%s\"", err);
    metrics_counter_add(s->m, "predictd_sessions_batches_total", "outcome=\"failed\"", 1);
    store_sql_write(s->st, sessions_sql_count_failure, NULL, NULL, 0);
    pthread_mutex_lock(&s->mu);
    s->failures++;
    s->last_failure_ms = now_ms();
    pthread_mutex_unlock(&s->mu);
    iforest_free(forest);
    free(scores);
    free(verdicts);
    sessions_batch_read_free(&rd);
    return -1;
}

/* Takes the batch (waiting for one in progress) and runs it. */
int sessions_process_now(sessions_t *s, sessions_batch_report_t *rep, char *err, size_t errlen) {
    pthread_mutex_lock(&s->mu);
    s->waiting++;
    while (s->running) pthread_cond_wait(&s->cv, &s->mu);
    s->waiting--;
    s->running = 1;
    pthread_mutex_unlock(&s->mu);
    int rc = run_batch(s, s->cfg.sessions_max_batch, rep, err, errlen);
    pthread_mutex_lock(&s->mu);
    s->running = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sessions_clear(sessions_t *s, int all, long *deleted, char *err, size_t errlen) {
    pthread_mutex_lock(&s->mu);
    s->waiting++;
    while (s->running) pthread_cond_wait(&s->cv, &s->mu);
    s->waiting--;
    s->running = 1; /* no batch reads the queue while it is cleared */
    s->in_batch = 0;
    pthread_mutex_unlock(&s->mu);
    sessions_delete_arg_t a = {.s = s, .all = all};
    int rc = store_sql_write(s->st, sessions_sql_clear, &a, err, errlen);
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && all) {
        s->last_run_ms = 0;
        s->failures = 0;
    }
    s->running = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc) return -1;
    *deleted = a.deleted;
    metrics_counter_add(s->m, "predictd_sessions_deleted_total", "reason=\"clear\"", (double)a.deleted);
    LOG_I("sessions cleared", "all=%d deleted=%ld", all, a.deleted);
    return 0;
}

/* ---- the scheduler ------------------------------------------------------------------------ */

static void retention(sessions_t *s) {
    sessions_delete_arg_t a = {.s = s, .older_than_ms = now_ms() - (int64_t)s->cfg.sessions_retention_s * 1000,
                               .limit = RETENTION_ROWS_PER_ROUND};
    char err[256];
    if (store_sql_write(s->st, sessions_sql_retention, &a, err, sizeof err)) {
        LOG_W("session retention failed", "reason=\"%s\"", err);
        return;
    }
    if (a.deleted) {
        metrics_counter_add(s->m, "predictd_sessions_deleted_total", "reason=\"retention\"", (double)a.deleted);
        LOG_I("sessions deleted after retention", "deleted=%ld retention_s=%d", a.deleted, s->cfg.sessions_retention_s);
    }
}

static void *sched_main(void *arg) {
    sessions_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int64_t now = now_ms();
        int64_t wake = now + (int64_t)s->sched.interval_s * 1000;
        if (now >= s->next_cleanup_ms) {
            s->next_cleanup_ms = now + (int64_t)s->sched.interval_s * 1000;
            pthread_mutex_unlock(&s->mu);
            retention(s);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->enabled && !s->running && !s->waiting) {
            sessions_sched_in_t in = {.now_ms = now, .queued = atomic_load(&s->queued),
                                      .last_run_ms = s->last_run_ms ? s->last_run_ms : s->opened_ms,
                                      .failures = s->failures, .last_failure_ms = s->last_failure_ms};
            sessions_sched_out_t o = sessions_sched_decide(&s->sched, &in);
            s->last_decision = o.reason;
            s->next_check_ms = o.next_check_ms;
            if (o.run) {
                s->running = 1;
                pthread_mutex_unlock(&s->mu);
                sessions_batch_report_t rep;
                char err[256];
                run_batch(s, o.batch_size, &rep, err, sizeof err);
                pthread_mutex_lock(&s->mu);
                s->running = 0;
                pthread_cond_broadcast(&s->cv);
                continue; /* decide again: more may be due at once */
            }
            wake = o.next_check_ms;
        }
        if (wake > s->next_cleanup_ms) wake = s->next_cleanup_ms;
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000), .tv_nsec = (long)(wake % 1000) * 1000000L};
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void sessions_scheduler_set(sessions_t *s, int running) {
    pthread_mutex_lock(&s->mu);
    if (running && !s->enabled) LOG_I("session scheduler started", "interval_s=%d", s->sched.interval_s);
    if (!running && s->enabled) LOG_I("session scheduler stopped", "queued=%ld", atomic_load(&s->queued));
    s->enabled = running;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sessions_scheduler_status(sessions_t *s, sessions_sched_status_t *out) {
    pthread_mutex_lock(&s->mu);
    out->running = s->enabled;
    out->cfg = s->sched;
    out->last_run_ms = s->last_run_ms;
    out->next_check_ms = s->enabled ? s->next_check_ms : 0;
    out->failures = s->failures;
    out->last_decision = s->last_decision;
    pthread_mutex_unlock(&s->mu);
}

/* ---- admin ------------------------------------------------------------------------------- */

int sessions_admin_enabled(const sessions_t *s) {
    return s->cfg.sessions_admin_key[0] != 0;
}

int sessions_admin_ok(const sessions_t *s, const char *key) {
    const char *want = s->cfg.sessions_admin_key;
    if (!want[0] || !key) return 0;
    size_t n = strlen(want), m = strlen(key);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)want[i] ^ (unsigned char)key[i < m ? i : 0];
    return diff == 0 && m > 0;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int sessions_open(sessions_t **out, const predictd_config_t *cfg, store_t *st, metrics_t *m, char *err,
                  size_t errlen) {
    *out = NULL;
    sessions_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    s->st = st;
    s->m = m;
    s->sched = (sessions_sched_cfg_t){cfg->sessions_interval_s, cfg->sessions_min_batch, cfg->sessions_max_wait_s,
                                      cfg->sessions_max_batch, cfg->sessions_retry_base_ms, cfg->sessions_retry_max_ms};
    s->opened_ms = now_ms();
    s->last_decision = "";
    s->fault_left = cfg->sessions_fault_batch_failures;
    s->enabled = cfg->sessions_autostart;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_REALTIME); /* deadlines are now_ms() wall times */
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    long queued = 0;
    sessions_stats_t stats;
    if (store_sql_write(st, sessions_sql_schema, NULL, err, errlen) ||
        store_sql_read(st, sessions_sql_count_queued, &queued, err, errlen) || sessions_stats(s, &stats, err, errlen))
        goto fail;
    atomic_store(&s->queued, queued);
    s->last_run_ms = stats.last_run_ms;
    describe_metrics(m);
    if (m) {
        metrics_add_collector(m, collect, s);
        metrics_gauge_set(m, "predictd_sessions_reference_rows", NULL, (double)stats.reference_size);
    }
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        snprintf(err, errlen, "cannot start the session scheduler thread: %s", strerror(errno));
        goto fail;
    }
    s->thread_started = 1;
    LOG_I("sessions ready", "queued=%ld processed_total=%ld reference=%ld scheduler=%s", queued, stats.processed_total,
          stats.reference_size, s->enabled ? "running" : "stopped");
    *out = s;
    return 0;
fail:
    sessions_close(s);
    return -1;
}

void sessions_close(sessions_t *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->m) metrics_remove_collector(s->m, collect, s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
