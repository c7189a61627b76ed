/* Private to src/market: the pipeline's state, shared by pipeline.c (life, trigger, runs),
 * pipeline_chunk.c (the job models: one chunk = one batch) and pipeline_read.c (reads,
 * consistency check, metrics). */
#ifndef PREDICTD_MARKET_PIPELINE_INT_H
#define PREDICTD_MARKET_PIPELINE_INT_H

#include <pthread.h>

#include <jansson.h>

#include "bus/bus.h"
#include "kv/kv.h"
#include "market/breaker.h"
#include "market/market_store.h"
#include "market/pipeline.h"
#include "models/model.h"
#include "serving/serving.h"

#define PIPE_OUTPUTS 6 /* predicted_return, predicted_price, uncertainty, p10, p50, p90 */

/* Time per stage of a run still in memory (ms, summed over its chunks). */
typedef struct {
    double inference, store, fast_layer, events;
} stages_t;

/* A run not yet finalized. */
typedef struct active_run {
    char run_id[40];
    char correlation_id[48];
    char jobs[2][32];      /* "" when the route has no symbols */
    double route_ms;
    stages_t st;
    struct active_run *next;
} active_run_t;

typedef struct outbox_ev {
    char topic[BUS_TOPIC_MAX];
    char *json;
    struct outbox_ev *next;
} outbox_ev_t;

struct pipeline {
    predictd_config_t cfg;
    store_t *st;
    jobs_t *jobs;
    serving_t *sv;
    bus_t *bus;
    metrics_t *m;
    kv_t *kv;
    features_t feat;
    calendar_t cal;
    mkt_holidays_t holidays;
    int k;                      /* vectors kept per symbol */
    int skip_missing_earnings;  /* missing_earnings = skip */
    breaker_t br_inference, br_fast, br_store;
    model_t models[2];          /* index mkt_route_t: predict.normal, predict.earnings */
    const char *model_names[2]; /* repository names (cfg) */

    pthread_mutex_t mu;         /* protects everything below */
    pthread_cond_t cv;          /* the thread: stop */
    active_run_t *active;
    int submitting;             /* runs between submit_jobs and active_add (or their failure) */
    json_t *pending;            /* symbols of data.features.ready waiting for the window: {sym: true} */
    int64_t window_started_ms;  /* mono; 0 = no window open */
    outbox_ev_t *outbox, *outbox_tail;
    long outbox_n;
    int events_down;            /* failure injection (pipeline.debug): every publish fails */
    int stop;
    long chunks_stored;         /* for pipeline.fault_exit_after_chunks */

    bus_sub_t *sub;             /* data.features.ready, job.completed, job.failed */
    pthread_t thread;
    int thread_started;
};

/* pipeline_chunk.c: the two job models (filled in p->models). */
void pipeline_models_init(pipeline_t *p);

/* pipeline.c: adds a chunk's stage times to its run (if in memory). */
void pipeline_run_add_stages(pipeline_t *p, const char *run_id, const stages_t *s);
/* Publishes, or keeps the event in the bounded outbox for the thread to retry. */
void pipeline_publish(pipeline_t *p, const char *topic, const char *json, size_t len);

/* pipeline_read.c */
void pipeline_metrics_describe(pipeline_t *p);
void pipeline_metrics_collect(void *arg, metrics_t *m);
int pipeline_consistency_run(pipeline_t *p, buf_t *report);

#endif
