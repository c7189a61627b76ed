/* The server's context: every part a request or a worker needs, passed explicitly (no
 * globals). Built by `predictd serve` (cli/cmd_serve.c) in this order: config, store, graph
 * (loaded, then attached to the store), metrics, jobs, api; torn down in reverse. */
#ifndef PREDICTD_APP_H
#define PREDICTD_APP_H

#include <stdint.h>

#include "core/config.h"
#include "graph/graph.h"
#include "jobs/jobs.h"
#include "metrics/metrics.h"
#include "store/store.h"

typedef struct predictd {
    predictd_config_t cfg;
    store_t *store;
    graph_t *graph;
    metrics_t *metrics;
    jobs_t *jobs;
    struct cache *cache;   /* result cache (cache/cache.h); NULL when cache.enabled = 0 */
    struct serving *serving; /* ONNX model repository (serving/serving.h); NULL: none */
    struct bus *bus;       /* events (bus/bus.h): ews.alert, job.completed, job.failed */
    struct pipeline *pipeline; /* market prediction pipeline (market/pipeline.h) */
    int64_t started_ms;
    volatile int ready;    /* 1 once recovery is done and the API serves; 0 while stopping */
    volatile int stopping; /* SIGTERM received: /readyz answers 503 */
} predictd_t;

#endif
