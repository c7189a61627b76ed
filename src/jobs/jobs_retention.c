/* Retention of finished jobs (jobs.retention_s).
 *
 * Every job keeps its record, its ids and its results in the store until it is deleted; at
 * the benchmark's rate that is gigabytes an hour. A finished job (COMPLETED, FAILED or
 * CANCELLED) is deleted with its results and dead letters once retention_s passed since it
 * finished; a job still queued or running is never touched, however old. The watchdog runs
 * the sweep every quarter of the retention (at least every second, at most every minute),
 * in batches of EXPIRE_BATCH jobs, each its own short write, so submissions keep their turn
 * at the store's writer in between. What memory holds about those jobs goes first (the
 * recent-jobs table, the reuse table), then the rows: no read is answered from memory for a
 * job the store no longer has. */
#include "jobs/jobs_int.h"

#include "core/log.h"

#define EXPIRE_BATCH 256      /* jobs per store write */
#define EXPIRE_MAX_BATCHES 64 /* per sweep; a longer backlog continues EXPIRE_BACKLOG_MS later */
#define EXPIRE_BACKLOG_MS 100

int64_t jobs_retention_sweep(jobs_t *j) {
    const int64_t keep_ms = (int64_t)j->cfg.retention_s * 1000;
    int64_t interval_ms = keep_ms / 4;
    if (interval_ms < 1000) interval_ms = 1000;
    if (interval_ms > 60000) interval_ms = 60000;
    if (keep_ms <= 0) return interval_ms;
    const int64_t cutoff = now_ms() - keep_ms;
    jobs_recent_expire(j->recent, cutoff);
    jobs_reuse_expire(j->reuse, cutoff);
    long total = 0;
    int backlog = 0;
    for (int b = 0; b < EXPIRE_MAX_BATCHES; b++) {
        long n = store_jobs_expire(j->st, cutoff, EXPIRE_BATCH);
        if (n < 0) break; /* logged by the store; tried again next time */
        total += n;
        backlog = n == EXPIRE_BATCH;
        if (!backlog) break;
    }
    if (total > 0) {
        metrics_counter_add(j->m, "predictd_jobs_expired_total", NULL, (double)total);
        LOG_I("finished jobs deleted (retention)", "jobs=%ld retention_s=%ld more=%d", total, j->cfg.retention_s, backlog);
    }
    return backlog ? EXPIRE_BACKLOG_MS : interval_ms;
}
