/* When the session scheduler runs a batch: a pure function of its settings, the clock and
 * the queue, so that every decision is tested with an injected clock (no thread, no sleep).
 *
 *   nothing queued                           -> wait one interval
 *   failures > 0 and now < retry time        -> wait for the retry time (backoff)
 *   queued >= min_batch                      -> run  (reason "min_batch")
 *   now - last_run_ms >= max_wait            -> run  (reason "max_wait")
 *   otherwise                                -> wait one interval (or until max_wait is due)
 * A run takes min(queued, max_batch) sessions. The retry time after k consecutive failures
 * is last_failure_ms + min(retry_base_ms * 2^(k-1), retry_max_ms). */
#ifndef PREDICTD_SESSIONS_SCHED_H
#define PREDICTD_SESSIONS_SCHED_H

#include <stdint.h>

typedef struct {
    int interval_s;     /* 30: how often the queue is looked at */
    int min_batch;      /* 10 */
    int max_wait_s;     /* 300 */
    int max_batch;      /* 50 */
    int retry_base_ms;  /* first retry delay after a failed batch */
    int retry_max_ms;   /* cap on the retry delay */
} sessions_sched_cfg_t;

typedef struct {
    int64_t now_ms;
    long queued;             /* sessions waiting */
    int64_t last_run_ms;     /* last successful batch, or when the scheduler started */
    int failures;            /* consecutive failed batches since the last success */
    int64_t last_failure_ms; /* when the last of them failed */
} sessions_sched_in_t;

typedef struct {
    int run;                 /* 1: run a batch of batch_size now */
    long batch_size;
    int64_t next_check_ms;   /* when to decide again if nothing changes (run: now) */
    const char *reason;      /* empty, backoff, min_batch, max_wait, waiting */
} sessions_sched_out_t;

sessions_sched_out_t sessions_sched_decide(const sessions_sched_cfg_t *c, const sessions_sched_in_t *in);

/* Delay before the retry after `failures` consecutive failures (0 for none). */
int64_t sessions_sched_backoff_ms(const sessions_sched_cfg_t *c, int failures);

#endif
