/* Private to src/jobs: the engine's state, shared by jobs.c (queue, workers, submission)
 * and jobs_results.c (result pages). */
#ifndef PREDICTD_JOBS_INT_H
#define PREDICTD_JOBS_INT_H

#include <pthread.h>

#include "jobs/jobs.h"
#include "models/model.h"

/* What a job's chunks need to run: loaded once (from the submission, or store_job_load_work)
 * and shared by its chunks; freed with the job's runtime record. */
typedef struct {
    json_t *params;
    char *ids_blob;         /* n NUL-terminated ids back to back */
    const char **ids;       /* n pointers into ids_blob */
    long n;
} job_work_t;

/* A job with chunks in memory (queued, delayed, leased or committing). */
typedef struct job_rt {
    char id[32];
    const model_t *model;
    int priority;
    int chunk_size;
    long n_entities;
    int cancelled;
    int started_marked;     /* store_job_mark_started sent */
    int loading;            /* a worker is loading work (others wait on work_cv) */
    job_work_t *work;       /* NULL until loaded */
    long refs;              /* chunk items alive + executions in flight */
    struct job_rt *prev, *next;
} job_rt_t;

typedef struct chunk_item {
    job_rt_t *rt;
    uint32_t chunk;
    int attempts;           /* failed attempts so far */
    uint64_t seq;           /* FIFO order within a priority */
    int64_t due_ms;         /* delayed: when it may run again (mono) */
    uint64_t token;         /* leased: the lease's id */
    int64_t deadline_ms;    /* leased: mono deadline, renewed while it runs */
    int committing;         /* leased: commit or dead letter handed to the store */
    struct chunk_item *lprev, *lnext; /* leased list */
} chunk_item_t;

struct jobs {
    predictd_config_t cfg;
    store_t *st;
    graph_t *g;
    metrics_t *m;
    model_env_t env;

    pthread_mutex_t mu;     /* protects everything below */
    pthread_cond_t work_cv; /* workers: new chunk, delay due, stop, work loaded */
    pthread_cond_t idle_cv; /* jobs_stop: an execution or commit finished */
    chunk_item_t **heap;    /* ready chunks: priority desc, then seq asc */
    size_t heap_n, heap_cap;
    chunk_item_t **delayed; /* waiting for their retry delay */
    size_t delayed_n, delayed_cap;
    chunk_item_t *leased;   /* leased list (running or committing) */
    long leased_n;
    job_rt_t *rts;          /* jobs with chunks in memory */
    long reserved_chunks;   /* admitted, being committed, not yet queued */
    uint64_t next_seq, next_token, rng;
    long faults_injected;
    long executing;         /* model runs in progress */
    long commits_inflight;  /* store callbacks not yet called */
    int busy;
    double chunk_ms_avg;    /* exponential moving average; 0 = no sample yet */
    int stopping, abandon, stopped;
    long released;          /* chunks given up at stop */

    int n_workers;
    pthread_t *threads;
    pthread_t watchdog;
    int threads_started, watchdog_started;
};

#endif
