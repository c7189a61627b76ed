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
    int workers;               /* worker threads; 0 = one per core */
    int chunk_size;            /* entities per chunk: unit of work, progress and retry */
    long max_chunks;           /* a bigger job gets bigger chunks, at most this many */
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
