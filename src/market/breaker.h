/* A circuit breaker: after `threshold` consecutive failures it opens (calls are refused
 * without trying), after open_ms it lets one trial call through (half-open): a success
 * closes it, a failure opens it again for another open_ms. The clock is injected so that
 * tests step time by hand. Thread-safe (one mutex per breaker). */
#ifndef PREDICTD_MARKET_BREAKER_H
#define PREDICTD_MARKET_BREAKER_H

#include <pthread.h>
#include <stdint.h>

typedef enum { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 } breaker_state_t;

typedef int64_t (*breaker_clock_fn)(void *arg); /* ms, monotonic */

typedef struct {
    char name[32];
    int threshold;
    int64_t open_ms;
    breaker_clock_fn clock;
    void *clock_arg;
    pthread_mutex_t mu;      /* protects the fields below */
    breaker_state_t state;
    int failures;            /* consecutive, while closed */
    int64_t opened_at;
    int trial_out;           /* half-open: the one trial call is in flight */
    long opened_total;       /* times it opened */
} breaker_t;

/* clock NULL: the monotonic clock. */
void breaker_init(breaker_t *b, const char *name, int threshold, int64_t open_ms,
                  breaker_clock_fn clock, void *clock_arg);
void breaker_destroy(breaker_t *b);
/* 1: try the call (then report it with breaker_success/failure), 0: refused (open). */
int breaker_allow(breaker_t *b);
void breaker_success(breaker_t *b);
void breaker_failure(breaker_t *b);
/* The state now (an open breaker past open_ms reads half-open). */
breaker_state_t breaker_state(breaker_t *b);
const char *breaker_state_name(breaker_state_t s);

#endif
