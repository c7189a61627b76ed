/* Configuration: compiled-in defaults < YAML file < PREDICTD_<SECTION>_<KEY> environment.
 * Every key is one row of a table in config.c (name, type, default, doc); `predictd config
 * show` prints the effective values and docs/configuration.md is generated from the table. */
#ifndef PREDICTD_CONFIG_H
#define PREDICTD_CONFIG_H

#include <stdio.h>

typedef struct predictd_config {
    /* server */
    char listen[128];          /* HOST:PORT the HTTP API binds */
    char data_dir[512];        /* SQLite file and other state live here */
    int http_threads;          /* libmicrohttpd worker threads */
    long max_body_bytes;       /* larger request bodies get 413 */
    /* jobs */
    int workers;               /* worker threads; 0 = two per core */
    int chunk_size;            /* entities per chunk: unit of work, progress and retry */
    long max_chunks;           /* a bigger job gets bigger chunks, at most this many */
    long inline_max_entities;  /* a job needing at most this many computed is done in its submission */
    long recent_bytes;         /* jobs done in their submission kept in memory for their reads */
    long retention_s;          /* finished jobs are deleted this long after they finished; 0 = never */
    long max_entities;         /* ids per job; more gets 422 */
    long max_queue_chunks;     /* pending chunks; over it submissions get 429 */
    int max_attempts;          /* attempts per chunk before it goes to the dead letters */
    int backoff_base_ms;       /* first retry delay; doubles each attempt, with jitter */
    int backoff_max_ms;        /* retry delay cap */
    int lease_ms;              /* a chunk lease not renewed in this long is taken again */
    int shutdown_deadline_ms;  /* SIGTERM: finish work in hand for at most this long */
    /* store */
    char store_backend[32];    /* sqlite */
    char store_synchronous[16];/* full | normal (SQLite PRAGMA synchronous) */
    long store_wal_max_mb;     /* WAL size past which the writer starts it over */
    /* cache */
    int cache_enabled;         /* 0: every entity is computed */
    long cache_max_bytes;      /* memory bound of the result cache (LRU beyond it) */
    int cache_ttl_ising_s;     /* time to live of a cached result, per model */
    int cache_ttl_cascade_s;
    int cache_ttl_ews_s;
    int cache_ttl_bifurcation_s;
    /* models */
    char models_dir[512];      /* ONNX model repository served over KServe v2; "" = none */
    /* log */
    char log_level[16];        /* debug | info | warn | error */
    /* sessions (session anomaly scoring, docs/sessions.md) */
    int sessions_interval_s;       /* scheduler: how often the queue is looked at */
    int sessions_min_batch;        /* run when at least this many are queued ... */
    int sessions_max_wait_s;       /* ... or this long after the last run */
    int sessions_max_batch;        /* sessions per batch */
    int sessions_retry_base_ms;    /* failed batch: first retry delay, doubling */
    int sessions_retry_max_ms;     /* cap on that delay */
    int sessions_retention_s;      /* processed sessions older than this are deleted */
    int sessions_reference_max;    /* reference rows kept for the forest (reservoir) */
    int sessions_trees;            /* isolation forest trees */
    int sessions_subsample;        /* rows per tree */
    long sessions_seed;            /* forest and reservoir seed */
    int sessions_max_events;       /* per telemetry array */
    long sessions_max_queued;      /* queued sessions; over it submissions get 429 */
    int sessions_autostart;        /* 1: the scheduler runs from the start */
    int sessions_heuristic_review_pm, sessions_heuristic_bot_pm; /* verdict thresholds, per mille */
    int sessions_forest_review_pm, sessions_forest_bot_pm;
    char sessions_admin_key[128];  /* POST /api/v1/batch/clear needs it; "" = disabled */
    int sessions_fault_batch_failures; /* testing: the first N batch attempts fail */
    /* pipeline (market prediction pipeline, docs/pipeline.md) */
    char pipeline_normal_model[64];   /* repository name of the normal-day model */
    char pipeline_earnings_model[64]; /* repository name of the earnings-day model */
    int pipeline_window_s;            /* data.features.ready collected this long, then one run */
    int pipeline_interval_s;          /* periodic run of every symbol; 0 = off */
    int pipeline_fast_ttl_s;          /* time to live of pred:{symbol} in the fast layer */
    int pipeline_batch_normal;        /* symbols per inference batch, normal model */
    int pipeline_batch_earnings;      /* symbols per chunk, earnings model */
    int pipeline_chunk_batches;       /* inference batches per job chunk (one store commit each) */
    int pipeline_passes;              /* MC-dropout passes */
    long pipeline_seed;               /* MC-dropout seed */
    char pipeline_missing_earnings[16]; /* zeros | skip */
    char pipeline_holidays[2048];     /* comma-separated YYYY-MM-DD */
    char pipeline_timezone[64];       /* IANA zone of the exchange: what "today" means */
    int pipeline_consistency_interval_s; /* fast layer vs store check; 0 = off */
    long pipeline_max_symbols_per_run;
    int pipeline_calendar_refresh_s;  /* calendar cache reload period */
    char pipeline_fast_layer[16];     /* mem */
    int pipeline_fast_layer_down;     /* testing: the fast layer answers as if down */
    int pipeline_breaker_open_s;      /* an open circuit breaker tries again after this long */
    int pipeline_outbox_max;          /* events held for retry when publishing fails */
    int pipeline_debug;               /* 1: POST /api/v1/pipeline/debug (failure injection) */
    int pipeline_fault_exit_after_chunks; /* testing: _exit after the Nth chunk's outcome is stored */
    /* faults (testing the failure paths) */
    int fault_chunk_failures;  /* the first N chunk attempts fail (0 = off) */
    /* push (WebSocket /api/v1/ws, push/push_hub.h) */
    int push_rate_per_s;       /* messages per second per WebSocket client */
    int push_max_clients;      /* WebSocket clients at once; more get 503 */
    int push_buffer_messages;  /* a client's outbox holds at most this many messages */
    long push_buffer_bytes;    /* ... and at most this many bytes */
    int push_publish_route;    /* 1: POST /api/v1/events/publish is enabled (tests, ops) */
} predictd_config_t;

void config_defaults(predictd_config_t *cfg);
/* Loads path (NULL: ./predictd.yaml if it exists) over the defaults, then the environment.
 * Returns 0, or -1 with a message naming the key and the reason in err. */
int config_load(predictd_config_t *cfg, const char *path, char *err, size_t errlen);
/* Sets one key ("server.listen" or section+key) from text; -1 + err if unknown or bad. */
int config_set(predictd_config_t *cfg, const char *dotted_key, const char *value,
               char *err, size_t errlen);
/* Applies PREDICTD_<SECTION>_<KEY> variables; -1 + err on a bad value. */
int config_apply_env(predictd_config_t *cfg, char *err, size_t errlen);
void config_print_yaml(const predictd_config_t *cfg, FILE *out);
void config_print_docs_md(FILE *out);

#endif
