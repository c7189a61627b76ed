#include "sessions/sched.h"

int64_t sessions_sched_backoff_ms(const sessions_sched_cfg_t *c, int failures) {
    if (failures <= 0) return 0;
    int64_t d = c->retry_base_ms;
    for (int k = 1; k < failures && d < c->retry_max_ms; k++) d *= 2;
    return d < c->retry_max_ms ? d : c->retry_max_ms;
}

sessions_sched_out_t sessions_sched_decide(const sessions_sched_cfg_t *c, const sessions_sched_in_t *in) {
    sessions_sched_out_t o = {0, 0, in->now_ms + (int64_t)c->interval_s * 1000, "waiting"};
    if (in->queued <= 0) {
        o.reason = "empty";
        return o;
    }
    if (in->failures > 0) {
        int64_t retry_at = in->last_failure_ms + sessions_sched_backoff_ms(c, in->failures);
        if (in->now_ms < retry_at) {
            o.reason = "backoff";
            if (retry_at < o.next_check_ms) o.next_check_ms = retry_at;
            return o;
        }
    }
    if (in->queued >= c->min_batch) o.reason = "min_batch";
    else if (in->now_ms - in->last_run_ms >= (int64_t)c->max_wait_s * 1000) o.reason = "max_wait";
    else {
        int64_t due = in->last_run_ms + (int64_t)c->max_wait_s * 1000;
        if (due < o.next_check_ms) o.next_check_ms = due;
        return o;
    }
    o.run = 1;
    o.batch_size = in->queued < c->max_batch ? in->queued : c->max_batch;
    o.next_check_ms = in->now_ms;
    return o;
}
