/* The session service on a real store: submissions are durable and idempotent, a batch
 * scores each queued session exactly once and commits it with its reservoir updates, a
 * failed batch changes nothing, the reservoir stays bounded, the same data and seed give
 * the same forest scores, and everything survives closing and reopening. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/rng.h"
#include "sessions/sessions.h"
#include "store/store.h"
#include "test.h"

static char tmpdir[64];

static void config(predictd_config_t *cfg) {
    config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s/data", tmpdir);
    cfg->sessions_autostart = 0; /* batches only when the test asks */
    cfg->sessions_max_batch = 20;
    cfg->sessions_reference_max = 25;
}

static int open_all(const predictd_config_t *cfg, store_t **st, sessions_t **s) {
    char err[256];
    if (store_open(st, cfg, err, sizeof err)) { fprintf(stderr, "store_open: %s\n", err); return -1; }
    if (sessions_open(s, cfg, *st, NULL, err, sizeof err)) { fprintf(stderr, "sessions_open: %s\n", err); return -1; }
    return 0;
}

static void close_all(store_t *st, sessions_t *s) {
    sessions_close(s);
    store_close(st);
}

static void fresh_dir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/predictd-sessions-XXXXXX");
    if (!mkdtemp(tmpdir)) perror("mkdtemp");
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* Session i: a wiggly path of 20 moves (seeded by i); every 10th is a straight, fast line. */
static void make_session(int i, sessions_telemetry_t *t, sessions_point_t *pts) {
    memset(t, 0, sizeof *t);
    snprintf(t->session_id, sizeof t->session_id, "sess-%04d", i);
    t->duration_ms = 5000;
    rng_t r;
    rng_seed(&r, (uint64_t)i + 1);
    for (int k = 0; k < 20; k++) {
        if (i % 10 == 9) pts[k] = (sessions_point_t){k * 5.0, k * 100.0, k * 100.0};
        else pts[k] = (sessions_point_t){k * 100.0 + rng_uniform(&r) * 50, 300 + 80 * rng_normal(&r), 300 + 80 * rng_normal(&r)};
    }
    t->pointer = pts;
    t->n_pointer = 20;
    t->client_json = "{}";
    t->body_hash = (uint64_t)i * 2654435761u;
}

static void submit_n(sessions_t *s, int from, int n) {
    for (int i = from; i < from + n; i++) {
        sessions_telemetry_t t;
        sessions_point_t pts[20];
        make_session(i, &t, pts);
        sessions_result_t res;
        char err[256];
        sessions_submit_rc_t rc = sessions_submit(s, &t, &res, err, sizeof err);
        if (rc != SESSIONS_NEW) fprintf(stderr, "submit %d: rc %d %s\n", i, rc, err);
    }
}

static void test_submit_is_durable_and_idempotent(void) {
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    store_t *st;
    sessions_t *s;
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    sessions_telemetry_t t;
    sessions_point_t pts[20];
    make_session(1, &t, pts);
    sessions_result_t r1, r2;
    char err[256];
    ASSERT_EQ_INT(sessions_submit(s, &t, &r1, err, sizeof err), SESSIONS_NEW);
    ASSERT_EQ_INT(sessions_submit(s, &t, &r2, err, sizeof err), SESSIONS_DUPLICATE);
    ASSERT_NEAR(r2.h_score, r1.h_score, 0);
    ASSERT_EQ_STR(r2.h_verdict, r1.h_verdict);
    t.body_hash++;
    ASSERT_EQ_INT(sessions_submit(s, &t, &r2, err, sizeof err), SESSIONS_CONFLICT);
    close_all(st, s);
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    sessions_result_t g;
    ASSERT_EQ_INT(sessions_result(s, "sess-0001", &g, err, sizeof err), 1);
    ASSERT_EQ_INT(g.processed, 0);
    ASSERT_NEAR(g.score, r1.h_score, 0);
    ASSERT_EQ_INT(sessions_result(s, "nope", &g, err, sizeof err), 0);
    sessions_stats_t stats;
    ASSERT_EQ_INT(sessions_stats(s, &stats, err, sizeof err), 0);
    ASSERT_EQ_INT(stats.queue_depth, 1);
    ASSERT_EQ_INT(stats.total, 1);
    close_all(st, s);
    remove_dir();
}

static void test_queue_bound(void) {
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    cfg.sessions_max_queued = 3;
    store_t *st;
    sessions_t *s;
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    submit_n(s, 0, 3);
    sessions_telemetry_t t;
    sessions_point_t pts[20];
    sessions_result_t r;
    char err[256];
    make_session(3, &t, pts);
    ASSERT_EQ_INT(sessions_submit(s, &t, &r, err, sizeof err), SESSIONS_FULL);
    make_session(0, &t, pts); /* a repeat is still answered */
    ASSERT_EQ_INT(sessions_submit(s, &t, &r, err, sizeof err), SESSIONS_DUPLICATE);
    sessions_batch_report_t rep;
    ASSERT_EQ_INT(sessions_process_now(s, &rep, err, sizeof err), 0);
    make_session(3, &t, pts);
    ASSERT_EQ_INT(sessions_submit(s, &t, &r, err, sizeof err), SESSIONS_NEW);
    close_all(st, s);
    remove_dir();
}

/* Runs 45 sessions through batches of 20; returns their forest scores in out[45]. */
static void run_batches(double *out, int *ok) {
    *ok = 0;
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    store_t *st;
    sessions_t *s;
    if (open_all(&cfg, &st, &s)) return;
    submit_n(s, 0, 45);
    char err[256];
    sessions_batch_report_t rep;
    long sizes[4];
    for (int b = 0; b < 4; b++) {
        if (sessions_process_now(s, &rep, err, sizeof err)) { fprintf(stderr, "batch: %s\n", err); goto done; }
        sizes[b] = rep.size;
    }
    if (sizes[0] != 20 || sizes[1] != 20 || sizes[2] != 5 || sizes[3] != 0) {
        fprintf(stderr, "batch sizes %ld %ld %ld %ld, expected 20 20 5 0\n", sizes[0], sizes[1], sizes[2], sizes[3]);
        goto done;
    }
    for (int i = 0; i < 45; i++) {
        char id[32];
        snprintf(id, sizeof id, "sess-%04d", i);
        sessions_result_t r;
        if (sessions_result(s, id, &r, err, sizeof err) != 1 || !r.processed) goto done;
        if (r.batch_id != (i < 20 ? 1 : i < 40 ? 2 : 3)) { fprintf(stderr, "%s in batch %ld\n", id, r.batch_id); goto done; }
        out[i] = r.score;
    }
    sessions_stats_t stats;
    if (sessions_stats(s, &stats, err, sizeof err)) goto done;
    if (stats.processed_total != 45 || stats.batches != 3 || stats.queue_depth != 0 || stats.reference_seen != 45 ||
        stats.reference_size != 25 || stats.last_batch_size != 5) {
        fprintf(stderr, "stats: processed_total %ld batches %ld queue %ld seen %ld ref %ld last %ld\n",
                stats.processed_total, stats.batches, stats.queue_depth, stats.reference_seen, stats.reference_size,
                stats.last_batch_size);
        goto done;
    }
    *ok = 1;
done:
    close_all(st, s);
    remove_dir();
}

static void test_batches_exactly_once_bounded_reservoir_deterministic(void) {
    double a[45], b[45];
    int ok_a, ok_b;
    run_batches(a, &ok_a);
    ASSERT_TRUE(ok_a);
    run_batches(b, &ok_b);
    ASSERT_TRUE(ok_b);
    ASSERT_TRUE(memcmp(a, b, sizeof a) == 0);
    /* the straight fast lines (every 10th) stand out from the wiggles of their batch */
    double max_normal = 0, min_line = 1;
    for (int i = 0; i < 40; i++) {
        if (i % 10 == 9) { if (a[i] < min_line) min_line = a[i]; }
        else if (a[i] > max_normal) max_normal = a[i];
    }
    ASSERT_TRUE(min_line > max_normal);
}

static void test_failed_batch_changes_nothing(void) {
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    cfg.sessions_fault_batch_failures = 2;
    store_t *st;
    sessions_t *s;
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    submit_n(s, 0, 5);
    char err[256];
    sessions_batch_report_t rep;
    ASSERT_EQ_INT(sessions_process_now(s, &rep, err, sizeof err), -1);
    ASSERT_EQ_INT(sessions_process_now(s, &rep, err, sizeof err), -1);
    sessions_stats_t stats;
    ASSERT_EQ_INT(sessions_stats(s, &stats, err, sizeof err), 0);
    ASSERT_EQ_INT(stats.queue_depth, 5);
    ASSERT_EQ_INT(stats.failures, 2);
    ASSERT_EQ_INT(stats.consecutive_failures, 2);
    ASSERT_EQ_INT(stats.batches, 0);
    ASSERT_EQ_INT(stats.reference_seen, 0);
    ASSERT_TRUE(stats.next_retry_ms > 0);
    ASSERT_EQ_INT(sessions_process_now(s, &rep, err, sizeof err), 0);
    ASSERT_EQ_INT(rep.size, 5);
    ASSERT_EQ_INT(rep.batch_id, 1);
    ASSERT_EQ_INT(sessions_stats(s, &stats, err, sizeof err), 0);
    ASSERT_EQ_INT(stats.consecutive_failures, 0);
    ASSERT_EQ_INT(stats.failures, 2);
    ASSERT_EQ_INT(stats.processed_total, 5);
    close_all(st, s);
    remove_dir();
}

static void test_clear(void) {
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    store_t *st;
    sessions_t *s;
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    submit_n(s, 0, 3);
    char err[256];
    sessions_batch_report_t rep;
    ASSERT_EQ_INT(sessions_process_now(s, &rep, err, sizeof err), 0);
    submit_n(s, 3, 4);
    long deleted = 0;
    ASSERT_EQ_INT(sessions_clear(s, 0, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 4);
    sessions_stats_t stats;
    ASSERT_EQ_INT(sessions_stats(s, &stats, err, sizeof err), 0);
    ASSERT_EQ_INT(stats.queue_depth, 0);
    ASSERT_EQ_INT(stats.processed, 3);
    ASSERT_EQ_INT(sessions_clear(s, 1, &deleted, err, sizeof err), 0);
    ASSERT_EQ_INT(deleted, 3);
    ASSERT_EQ_INT(sessions_stats(s, &stats, err, sizeof err), 0);
    ASSERT_EQ_INT(stats.total, 0);
    ASSERT_EQ_INT(stats.reference_size, 0);
    ASSERT_EQ_INT(stats.batches, 0);
    close_all(st, s);
    remove_dir();
}

static void test_admin_key(void) {
    fresh_dir();
    predictd_config_t cfg;
    config(&cfg);
    store_t *st;
    sessions_t *s;
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    ASSERT_EQ_INT(sessions_admin_enabled(s), 0);
    ASSERT_EQ_INT(sessions_admin_ok(s, ""), 0);
    close_all(st, s);
    snprintf(cfg.sessions_admin_key, sizeof cfg.sessions_admin_key, "s3cret");
    ASSERT_EQ_INT(open_all(&cfg, &st, &s), 0);
    ASSERT_EQ_INT(sessions_admin_enabled(s), 1);
    ASSERT_EQ_INT(sessions_admin_ok(s, "s3cret"), 1);
    ASSERT_EQ_INT(sessions_admin_ok(s, "s3cre"), 0);
    ASSERT_EQ_INT(sessions_admin_ok(s, "s3cretx"), 0);
    ASSERT_EQ_INT(sessions_admin_ok(s, "S3cret"), 0);
    ASSERT_EQ_INT(sessions_admin_ok(s, NULL), 0);
    close_all(st, s);
    remove_dir();
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_submit_is_durable_and_idempotent), TEST_CASE(test_queue_bound),
        TEST_CASE(test_batches_exactly_once_bounded_reservoir_deterministic),
        TEST_CASE(test_failed_batch_changes_nothing), TEST_CASE(test_clear), TEST_CASE(test_admin_key),
    };
    return test_main("sessions", cases, (int)(sizeof cases / sizeof cases[0]));
}
