/* A fixed pool of worker threads for row-split work: nn_pool_run hands the same function
 * to every thread with its index and waits for all of them. The caller is thread 0, so a
 * pool of n threads starts n - 1 workers. One nn_pool_run at a time per pool.
 *
 * Hand-offs spin for a short while (SPIN_NS) before they sleep on a condition variable:
 * the steps of a run come microseconds apart, and waking a sleeping thread costs a futex
 * call and, on a virtual machine, the wake-up of an idle virtual CPU (tens of us, as much
 * as a batch-32 LSTM takes on 2 threads). After the first microseconds the spin yields the
 * CPU at each turn, so that a thread it shares the CPU with (a busy machine) runs. */
#include "nn/nn_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define SPIN_NS 200000 /* 0.2 ms */

struct nn_pool {
    int n;                        /* threads including the caller */
    pthread_t *workers;
    pthread_mutex_t mu;           /* with go and done: the sleeping side of the hand-offs */
    pthread_cond_t go, done;
    atomic_ulong generation;      /* bumped (under mu) for each job; fn and arg are set first */
    atomic_int pending;           /* workers still running the current job */
    int quit;                     /* under mu */
    void (*fn)(void *arg, int ith, int nth);
    void *arg;
};

typedef struct { nn_pool_t *p; int ith; } worker_arg_t;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One turn of a spin: a pause, then from the 1024th turn on (about 10-40 us) also a yield. */
static inline int spin_turn(int i, int64_t t0) {
    cpu_relax();
    if (i < 1024) return 1;
    sched_yield();
    return i % 16 != 0 || now_ns() - t0 <= SPIN_NS;
}

/* Spins until *v != old (then returns 1) or about SPIN_NS pass (0). */
static int spin_while_ulong(atomic_ulong *v, unsigned long old) {
    int64_t t0 = now_ns();
    for (int i = 0;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
        if (!spin_turn(i, t0)) return 0;
    }
}

/* Spins until *v == 0 (then returns 1) or about SPIN_NS pass (0). */
static int spin_while_int(atomic_int *v) {
    int64_t t0 = now_ns();
    for (int i = 0;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) == 0) return 1;
        if (!spin_turn(i, t0)) return 0;
    }
}

static void *worker(void *a) {
    worker_arg_t *wa = a;
    nn_pool_t *p = wa->p;
    int ith = wa->ith;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        if (!spin_while_ulong(&p->generation, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!p->quit && atomic_load(&p->generation) == seen) pthread_cond_wait(&p->go, &p->mu);
            int quit = p->quit;
            pthread_mutex_unlock(&p->mu);
            if (quit) break;
        }
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (seen == (unsigned long)-1) break; /* nn_pool_free while spinning */
        p->fn(p->arg, ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

nn_pool_t *nn_pool_create(int threads) {
    nn_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads < 1 ? 1 : threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = calloc((size_t)p->n, sizeof(pthread_t));
    if (!p->workers) { nn_pool_free(p); return NULL; }
    for (int i = 1; i < p->n; i++) {
        worker_arg_t *wa = malloc(sizeof *wa);
        if (!wa) { p->n = i; nn_pool_free(p); return NULL; }
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->workers[i], NULL, worker, wa)) {
            free(wa);
            p->n = i;
            nn_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void nn_pool_free(nn_pool_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    atomic_store(&p->generation, (unsigned long)-1); /* a spinning worker stops too */
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->workers; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int nn_pool_threads(const nn_pool_t *p) { return p ? p->n : 1; }

void nn_pool_run(nn_pool_t *p, void (*fn)(void *arg, int ith, int nth), void *arg) {
    if (!p || p->n == 1) { fn(arg, 0, 1); return; }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    unsigned long g = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    if (g == (unsigned long)-1) g = 1; /* -1 means quit */
    atomic_store_explicit(&p->generation, g, memory_order_release);
    pthread_cond_broadcast(&p->go); /* no system call when no worker sleeps */
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    if (spin_while_int(&p->pending)) return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending)) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
