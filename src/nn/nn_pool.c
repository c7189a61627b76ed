/* A fixed pool of worker threads for row-split work: nn_pool_run hands the same function
 * to every thread with its index and waits for all of them. The caller is thread 0, so a
 * pool of n threads starts n - 1 workers. One nn_pool_run at a time per pool. */
#include "nn/nn_internal.h"

#include <pthread.h>
#include <stdlib.h>

struct nn_pool {
    int n;                        /* threads including the caller */
    pthread_t *workers;
    pthread_mutex_t mu;           /* protects everything below */
    pthread_cond_t go, done;
    unsigned long generation;     /* bumped for each job */
    int pending;                  /* workers still running the current job */
    int quit;
    void (*fn)(void *arg, int ith, int nth);
    void *arg;
};

typedef struct { nn_pool_t *p; int ith; } worker_arg_t;

static void *worker(void *a) {
    worker_arg_t *wa = a;
    nn_pool_t *p = wa->p;
    int ith = wa->ith;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        void (*fn)(void *, int, int) = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, ith, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

nn_pool_t *nn_pool_create(int threads) {
    nn_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads < 1 ? 1 : threads;
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
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
