/* Shared between serving.c (repository, config.yaml, load) and serving_batch.c (the
 * batcher thread and the runs). Not part of the contract in serving.h. */
#ifndef PREDICTD_SERVING_INT_H
#define PREDICTD_SERVING_INT_H

#include <pthread.h>

#include "serving/serving.h"

#define SERVING_MAX_IO 8
#define SERVING_PLAN_CACHE 8

typedef struct serving_job {
    struct serving_job *next;
    const serving_req_t *req;
    double enq_s;
    int done, rc;
    char err[256];
} serving_job_t;

struct serving_model {
    serving_t *owner;
    int refs; /* guarded by owner->mu */
    char name[128], version[32], type[64];
    nn_model_t *nn;
    int n_in, n_out;
    nn_tensor_t in_info[SERVING_MAX_IO];  /* dims[0] = -1 */
    int64_t in_row[SERVING_MAX_IO];
    nn_tensor_t out_info[SERVING_MAX_IO]; /* a one-row request's shape */
    int out_axis[SERVING_MAX_IO];
    int64_t out_row[SERVING_MAX_IO];
    float *mean[SERVING_MAX_IO], *inv_scale[SERVING_MAX_IO]; /* per feature, NULL: none */
    int max_batch, delay_ms, mc_passes, threads;
    metrics_t *metrics;

    /* the batcher */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;    /* guards head, tail, stop and every queued job's done/rc/err */
    pthread_cond_t wake;   /* the batcher: a job arrived or stop */
    pthread_cond_t done;   /* the callers: some job finished */
    serving_job_t *head, *tail;
    int stop;

    /* batcher thread only */
    struct {
        int64_t batch;
        int passes;
        nn_plan_t *plan;
        uint64_t used;
    } plans[SERVING_PLAN_CACHE];
    uint64_t clock;
    float *in_buf[SERVING_MAX_IO], *out_buf[SERVING_MAX_IO];
    size_t in_cap[SERVING_MAX_IO], out_cap[SERVING_MAX_IO];
};

/* serving_batch.c */
int serving_batcher_start(serving_model_t *m, char *err, size_t errlen);
void serving_batcher_stop(serving_model_t *m); /* runs what is queued, then joins */
/* A plan at (batch, passes) from the cache (made on a miss); batcher thread or before start. */
nn_plan_t *serving_plan(serving_model_t *m, int64_t batch, int passes, char *err, size_t errlen);
void serving_plans_free(serving_model_t *m);

#endif
