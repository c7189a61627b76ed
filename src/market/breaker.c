#include "market/breaker.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

static int64_t mono_clock(void *arg) {
    (void)arg;
    return mono_ms();
}

void breaker_init(breaker_t *b, const char *name, int threshold, int64_t open_ms,
                  breaker_clock_fn clock, void *clock_arg) {
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->threshold = threshold > 0 ? threshold : 1;
    b->open_ms = open_ms > 0 ? open_ms : 0;
    b->clock = clock ? clock : mono_clock;
    b->clock_arg = clock_arg;
    pthread_mutex_init(&b->mu, NULL);
}

void breaker_destroy(breaker_t *b) { pthread_mutex_destroy(&b->mu); }

/* An open breaker whose time is up becomes half-open. mu held. */
static void tick(breaker_t *b) {
    if (b->state == BREAKER_OPEN && b->clock(b->clock_arg) - b->opened_at >= b->open_ms) {
        b->state = BREAKER_HALF_OPEN;
        b->trial_out = 0;
    }
}

int breaker_allow(breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    tick(b);
    int ok = 1;
    if (b->state == BREAKER_OPEN) ok = 0;
    else if (b->state == BREAKER_HALF_OPEN) {
        ok = !b->trial_out;
        b->trial_out = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void breaker_success(breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    b->state = BREAKER_CLOSED;
    b->failures = 0;
    b->trial_out = 0;
    pthread_mutex_unlock(&b->mu);
}

void breaker_failure(breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    tick(b);
    if (b->state == BREAKER_HALF_OPEN || (b->state == BREAKER_CLOSED && ++b->failures >= b->threshold)) {
        b->state = BREAKER_OPEN;
        b->opened_at = b->clock(b->clock_arg);
        b->failures = 0;
        b->trial_out = 0;
        b->opened_total++;
    }
    pthread_mutex_unlock(&b->mu);
}

breaker_state_t breaker_state(breaker_t *b) {
    pthread_mutex_lock(&b->mu);
    tick(b);
    breaker_state_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

const char *breaker_state_name(breaker_state_t s) {
    switch (s) {
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half_open";
    default: return "closed";
    }
}
