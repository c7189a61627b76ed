/* The session scheduler's decisions (sched.h) with an injected clock. */
#include "sessions/sched.h"
#include "test.h"

static const sessions_sched_cfg_t CFG = {30, 10, 300, 50, 1000, 300000}; /* the seed's defaults */
#define T0 1700000000000LL

static void test_nothing_queued_waits_an_interval(void) {
    sessions_sched_in_t in = {.now_ms = T0, .queued = 0, .last_run_ms = T0 - 3600000};
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 0);
    ASSERT_EQ_INT(o.next_check_ms, T0 + 30000);
    ASSERT_EQ_STR(o.reason, "empty");
}

static void test_min_batch_runs(void) {
    sessions_sched_in_t in = {.now_ms = T0, .queued = 10, .last_run_ms = T0};
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 1);
    ASSERT_EQ_INT(o.batch_size, 10);
    ASSERT_EQ_STR(o.reason, "min_batch");
    in.queued = 9;
    o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 0);
    ASSERT_EQ_STR(o.reason, "waiting");
}

static void test_batch_size_capped(void) {
    sessions_sched_in_t in = {.now_ms = T0, .queued = 120, .last_run_ms = T0};
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 1);
    ASSERT_EQ_INT(o.batch_size, 50);
}

static void test_max_wait_runs_a_small_batch(void) {
    sessions_sched_in_t in = {.now_ms = T0, .queued = 3, .last_run_ms = T0 - 300000};
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 1);
    ASSERT_EQ_INT(o.batch_size, 3);
    ASSERT_EQ_STR(o.reason, "max_wait");
    in.last_run_ms = T0 - 299999; /* 1 ms early: wait, and look again when it is due */
    o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 0);
    ASSERT_EQ_INT(o.next_check_ms, T0 + 1);
}

static void test_backoff_doubles_and_caps(void) {
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 0), 0);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 1), 1000);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 2), 2000);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 5), 16000);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 9), 256000);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 10), 300000);
    ASSERT_EQ_INT(sessions_sched_backoff_ms(&CFG, 1000), 300000);
}

static void test_failed_batch_waits_for_its_retry(void) {
    sessions_sched_in_t in = {.now_ms = T0, .queued = 20, .last_run_ms = T0 - 60000, .failures = 3,
                              .last_failure_ms = T0 - 3999};
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 0);
    ASSERT_EQ_STR(o.reason, "backoff");
    ASSERT_EQ_INT(o.next_check_ms, T0 + 1); /* 4000 ms after the third failure */
    in.now_ms = T0 + 1;
    o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 1);
    /* a long backoff still looks again after one interval */
    in.failures = 12;
    in.last_failure_ms = in.now_ms;
    o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 0);
    ASSERT_EQ_INT(o.next_check_ms, in.now_ms + 30000);
}

/* The scheduler loop on a simulated clock: 3 sessions queued at t = 0 wait for max_wait;
 * the decisions are taken at 0, 30 s, ..., and the run happens at exactly 300 s. */
static void test_simulated_clock(void) {
    sessions_sched_in_t in = {.now_ms = 0, .queued = 3, .last_run_ms = 0};
    int checks = 0;
    for (;;) {
        sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
        checks++;
        if (o.run) break;
        ASSERT_TRUE(o.next_check_ms > in.now_ms);
        in.now_ms = o.next_check_ms;
        ASSERT_TRUE(checks < 100);
    }
    ASSERT_EQ_INT(in.now_ms, 300000);
    ASSERT_EQ_INT(checks, 11);
    /* then 12 more arrive at once: the next decision runs without waiting for max_wait */
    in.last_run_ms = in.now_ms;
    in.queued = 12;
    sessions_sched_out_t o = sessions_sched_decide(&CFG, &in);
    ASSERT_EQ_INT(o.run, 1);
    ASSERT_EQ_INT(o.batch_size, 12);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_nothing_queued_waits_an_interval), TEST_CASE(test_min_batch_runs),
        TEST_CASE(test_batch_size_capped), TEST_CASE(test_max_wait_runs_a_small_batch),
        TEST_CASE(test_backoff_doubles_and_caps), TEST_CASE(test_failed_batch_waits_for_its_retry),
        TEST_CASE(test_simulated_clock),
    };
    return test_main("sessions_sched", cases, (int)(sizeof cases / sizeof cases[0]));
}
