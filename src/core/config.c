#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

typedef enum { K_STR, K_INT, K_LONG } key_type_t;

typedef struct {
    const char *section, *key;
    key_type_t type;
    size_t offset, size;
    const char *def;
    long min, max; /* numbers only */
    const char *doc;
} key_def_t;

#define S(f) K_STR, offsetof(predictd_config_t, f), sizeof(((predictd_config_t *)0)->f)
#define I(f) K_INT, offsetof(predictd_config_t, f), sizeof(int)
#define L(f) K_LONG, offsetof(predictd_config_t, f), sizeof(long)

static const key_def_t KEYS[] = {
    {"server", "listen", S(listen), "127.0.0.1:8080", 0, 0, "HOST:PORT the HTTP API listens on"},
    {"server", "data_dir", S(data_dir), "./data", 0, 0, "directory of the SQLite database and other state"},
    {"server", "http_threads", I(http_threads), "0", 0, 256, "HTTP threads: 0 = one per connection (a waiting handler never delays another client); N = a pool of N threads sharing the connections"},
    {"server", "max_body_bytes", L(max_body_bytes), "67108864", 1024, 1L << 34, "request bodies larger than this get 413"},
    {"jobs", "workers", I(workers), "0", 0, 1024, "worker threads computing chunks; 0 = two per core (a chunk waiting on a commit, e.g. a pipeline chunk's synchronous store write, leaves its core to another)"},
    {"jobs", "chunk_size", I(chunk_size), "1000", 1, 1000000, "entities per chunk: the unit of work, progress and retry"},
    {"jobs", "max_chunks", L(max_chunks), "250", 1, 100000000, "a bigger job gets bigger chunks so that it has at most this many (each chunk costs a commit)"},
    {"jobs", "inline_max_entities", L(inline_max_entities), "1000", 0, 1000000, "a job whose entities still to compute (after the cache) number at most this many, for a per-entity model (ising analytic, ews, bifurcation), is computed during its submission and answered COMPLETED in one commit (no queue, no polling); 0 = always queue"},
    {"jobs", "recent_bytes", L(recent_bytes), "67108864", 0, 1L << 40, "memory for jobs done in their submission, record and results, so that the status and results reads right after need not go to the store (least recently used out first); 0 = off"},
    {"jobs", "retention_s", L(retention_s), "604800", 0, 315360000, "finished jobs (COMPLETED, FAILED, CANCELLED) are deleted with their results and dead letters this many seconds after they finished (a sweep at most a minute later; then GET answers 404); 0 = keep every job"},
    {"jobs", "max_entities", L(max_entities), "1000000", 1, 100000000, "entity ids per job; more gets 422"},
    {"jobs", "max_queue_chunks", L(max_queue_chunks), "100000", 1, 1L << 40, "chunks waiting; a submission over it gets 429 with Retry-After"},
    {"jobs", "max_attempts", I(max_attempts), "5", 1, 1000, "attempts per chunk before it goes to the dead-letter list"},
    {"jobs", "backoff_base_ms", I(backoff_base_ms), "200", 1, 3600000, "delay before the first retry; doubles per attempt, full jitter"},
    {"jobs", "backoff_max_ms", I(backoff_max_ms), "30000", 1, 86400000, "cap on the retry delay"},
    {"jobs", "lease_ms", I(lease_ms), "30000", 100, 86400000, "a chunk lease not renewed for this long is taken again"},
    {"jobs", "shutdown_deadline_ms", I(shutdown_deadline_ms), "10000", 0, 3600000, "on SIGTERM, finish the work in hand for at most this long, then release it"},
    {"store", "backend", S(store_backend), "sqlite", 0, 0, "durable store: sqlite"},
    {"store", "synchronous", S(store_synchronous), "full", 0, 0, "SQLite synchronous mode: full (fsync every commit: a 2xx survives power loss) or normal (survives a process crash)"},
    {"store", "wal_max_mb", L(store_wal_max_mb), "128", 4, 65536, "MiB of WAL (SQLite's log of recent commits) past which the writer starts the log over, between two group commits (a RESTART checkpoint: a pause of a few ms); smaller bounds the disk it takes, larger makes the pauses rarer"},
    {"cache", "enabled", I(cache_enabled), "1", 0, 1, "1: serve results from the cache when nothing they depend on changed; 0: compute every entity"},
    {"cache", "max_bytes", L(cache_max_bytes), "268435456", 0, 1L << 40, "memory bound of the result cache; least recently used entries go beyond it"},
    {"cache", "ttl_ising_s", I(cache_ttl_ising_s), "3600", 1, 31536000, "seconds a cached ising result may be served"},
    {"cache", "ttl_cascade_s", I(cache_ttl_cascade_s), "1800", 1, 31536000, "seconds a cached cascade result may be served"},
    {"cache", "ttl_ews_s", I(cache_ttl_ews_s), "900", 1, 31536000, "seconds a cached ews result may be served"},
    {"cache", "ttl_bifurcation_s", I(cache_ttl_bifurcation_s), "300", 1, 31536000, "seconds a cached bifurcation result may be served"},
    {"models", "dir", S(models_dir), "", 0, 0, "ONNX model repository (DIR/{name}/{version}/model.onnx + optional config.yaml) served at /v2; empty: no models"},
    {"log", "level", S(log_level), "info", 0, 0, "debug, info, warn or error"},
    {"sessions", "interval_s", I(sessions_interval_s), "30", 1, 86400, "session scheduler: seconds between looks at the queue"},
    {"sessions", "min_batch", I(sessions_min_batch), "10", 1, 100000, "session scheduler: run a batch when at least this many sessions are queued"},
    {"sessions", "max_wait_s", I(sessions_max_wait_s), "300", 0, 86400 * 7, "session scheduler: or when this many seconds passed since the last batch (and one is queued)"},
    {"sessions", "max_batch", I(sessions_max_batch), "50", 1, 100000, "sessions scored per batch, at most"},
    {"sessions", "retry_base_ms", I(sessions_retry_base_ms), "1000", 1, 3600000, "a failed batch is retried after this delay, doubled per consecutive failure"},
    {"sessions", "retry_max_ms", I(sessions_retry_max_ms), "300000", 1, 86400000, "cap on the retry delay of a failed batch"},
    {"sessions", "retention_s", I(sessions_retention_s), "604800", 1, 315360000, "processed sessions older than this (since their batch) are deleted"},
    {"sessions", "reference_max", I(sessions_reference_max), "10000", 0, 1000000, "reference rows the forest is fitted on besides the batch (reservoir sample of past batches, kept in SQLite)"},
    {"sessions", "trees", I(sessions_trees), "100", 1, 10000, "isolation forest: trees"},
    {"sessions", "subsample", I(sessions_subsample), "256", 2, 1000000, "isolation forest: rows drawn per tree"},
    {"sessions", "seed", L(sessions_seed), "20261125", 0, 1L << 62, "seed of the forest and the reservoir (batch k draws from streams 2k and 2k+1): same data, same scores"},
    {"sessions", "max_events", I(sessions_max_events), "10000", 1, 1000000, "events per telemetry array (pointer, clicks, keys); more gets 413"},
    {"sessions", "max_queued", L(sessions_max_queued), "100000", 1, 1L << 40, "queued sessions; a new submission over it gets 429 with Retry-After"},
    {"sessions", "autostart", I(sessions_autostart), "1", 0, 1, "1: the scheduler runs from the start; 0: only after POST /api/v1/batch/scheduler/start"},
    {"sessions", "heuristic_review_pm", I(sessions_heuristic_review_pm), "400", 0, 1000, "heuristic score (per mille) from which the verdict is suspicious"},
    {"sessions", "heuristic_bot_pm", I(sessions_heuristic_bot_pm), "700", 0, 1000, "heuristic score (per mille) from which the verdict is bot"},
    {"sessions", "forest_review_pm", I(sessions_forest_review_pm), "550", 0, 1000, "isolation forest score (per mille) from which the verdict is suspicious"},
    {"sessions", "forest_bot_pm", I(sessions_forest_bot_pm), "650", 0, 1000, "isolation forest score (per mille) from which the verdict is bot"},
    {"sessions", "admin_key", S(sessions_admin_key), "", 0, 0, "key for POST /api/v1/batch/clear (header X-Admin-Key or Authorization: Bearer); empty: that endpoint is disabled"},
    {"sessions", "fault_batch_failures", I(sessions_fault_batch_failures), "0", 0, 1000000, "testing: the first N session batch attempts fail (exercises the retry backoff)"},
    {"pipeline", "normal_model", S(pipeline_normal_model), "normal_day", 0, 0, "market pipeline: repository name of the normal-day model (input [B, K, 20])"},
    {"pipeline", "earnings_model", S(pipeline_earnings_model), "earnings_day", 0, 0, "market pipeline: repository name of the earnings-day model (input [B, K, 37])"},
    {"pipeline", "window_s", I(pipeline_window_s), "10", 0, 3600, "data.features.ready events are collected this long, then one run for their symbols"},
    {"pipeline", "interval_s", I(pipeline_interval_s), "0", 0, 86400, "run every symbol of the feature store this often; 0 = off"},
    {"pipeline", "fast_ttl_s", I(pipeline_fast_ttl_s), "120", 1, 86400, "time to live of pred:{symbol} in the fast layer"},
    {"pipeline", "batch_normal", I(pipeline_batch_normal), "128", 1, 65536, "symbols per inference batch, normal-day model (a job chunk holds pipeline.chunk_batches of them)"},
    {"pipeline", "batch_earnings", I(pipeline_batch_earnings), "32", 1, 65536, "symbols per inference batch, earnings-day model (a job chunk holds pipeline.chunk_batches of them)"},
    {"pipeline", "chunk_batches", I(pipeline_chunk_batches), "4", 1, 64, "inference batches per job chunk: a chunk's outcome is written to the store in one commit, so more batches per chunk means fewer commits per run (and a coarser unit of retry)"},
    {"pipeline", "passes", I(pipeline_passes), "20", 2, 1000, "MC-dropout passes per prediction"},
    {"pipeline", "seed", L(pipeline_seed), "42", 0, 1L << 62, "MC-dropout seed (the same seed and batch give the same predictions)"},
    {"pipeline", "missing_earnings", S(pipeline_missing_earnings), "zeros", 0, 0, "an earnings-day symbol without earnings features: zeros (fill in 0) or skip (fail it)"},
    {"pipeline", "timezone", S(pipeline_timezone), "America/New_York", 0, 0, "the exchange's time zone (an IANA name from /usr/share/zoneinfo, or UTC): the trading day a run routes for, when the request names none, is today's date there"},
    {"pipeline", "holidays", S(pipeline_holidays), "", 0, 0, "market holidays, comma-separated YYYY-MM-DD (weekends are never trading days)"},
    {"pipeline", "consistency_interval_s", I(pipeline_consistency_interval_s), "60", 0, 86400, "compare the fast layer with the store this often (repair + alert above 5 %); 0 = off"},
    {"pipeline", "max_symbols_per_run", L(pipeline_max_symbols_per_run), "100000", 1, 10000000, "symbols one run may hold; more gets 422"},
    {"pipeline", "calendar_refresh_s", I(pipeline_calendar_refresh_s), "3600", 1, 86400, "the calendar cache is reloaded this often (and after every change)"},
    {"pipeline", "fast_layer", S(pipeline_fast_layer), "mem", 0, 0, "fast-layer backend: mem (in-process key/value with TTL)"},
    {"pipeline", "fast_layer_down", I(pipeline_fast_layer_down), "0", 0, 1, "testing: 1 = the fast layer answers as if it were down (reads come from the store)"},
    {"pipeline", "breaker_open_s", I(pipeline_breaker_open_s), "30", 1, 3600, "an open circuit breaker lets a trial call through after this long"},
    {"pipeline", "outbox_max", I(pipeline_outbox_max), "10000", 0, 10000000, "events kept for retry when publishing fails (oldest dropped beyond)"},
    {"pipeline", "debug", I(pipeline_debug), "0", 0, 1, "testing: 1 = POST /api/v1/pipeline/debug may take the fast layer down or up"},
    {"pipeline", "fault_exit_after_chunks", I(pipeline_fault_exit_after_chunks), "0", 0, 1000000, "testing: the process exits (as if killed) right after the Nth pipeline chunk's outcome is stored, before the job engine settles that chunk; 0 = off"},
    {"faults", "chunk_failures", I(fault_chunk_failures), "0", 0, 1000000, "testing: the first N chunk attempts fail (exercises retry and dead letters)"},
    {"push", "rate_per_s", I(push_rate_per_s), "10", 1, 100000, "WebSocket: messages per second per client (bursts of as many); the excess waits in the client's outbox, prediction.updated coalesced per symbol (newest wins)"},
    {"push", "max_clients", I(push_max_clients), "100", 0, 900, "WebSocket clients at once; beyond it GET /api/v1/ws answers 503 with Retry-After (0: WebSocket off); each one also holds one of the HTTP server's 1000 connections"},
    {"push", "buffer_messages", I(push_buffer_messages), "256", 1, 1000000, "messages a WebSocket client's outbox holds; when full the oldest is dropped (counted)"},
    {"push", "buffer_bytes", L(push_buffer_bytes), "1048576", 1024, 1L << 30, "bytes a WebSocket client's outbox holds; beyond it the oldest are dropped (counted)"},
    {"push", "publish_route", I(push_publish_route), "0", 0, 1, "testing and operations: 1 enables POST /api/v1/events/publish, which publishes {topic, data} on the event bus (not stored); off by default"},
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

static const key_def_t *find_key(const char *section, const char *key) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].key, key) == 0) return &KEYS[i];
    return NULL;
}

static int set_value(predictd_config_t *cfg, const key_def_t *k, const char *v, char *err,
                     size_t errlen) {
    char *p = (char *)cfg + k->offset;
    if (k->type == K_STR) {
        if (strlen(v) >= k->size) {
            snprintf(err, errlen, "%s.%s: value longer than %zu bytes", k->section, k->key, k->size - 1);
            return -1;
        }
        if (strcmp(k->key, "level") == 0 && strcmp(k->section, "log") == 0 &&
            strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error")) {
            snprintf(err, errlen, "log.level: '%s' is not one of debug, info, warn, error", v);
            return -1;
        }
        if (strcmp(k->section, "store") == 0 && strcmp(k->key, "synchronous") == 0 &&
            strcmp(v, "full") && strcmp(v, "normal")) {
            snprintf(err, errlen, "store.synchronous: '%s' is not full or normal", v);
            return -1;
        }
        if (strcmp(k->section, "store") == 0 && strcmp(k->key, "backend") == 0 && strcmp(v, "sqlite")) {
            snprintf(err, errlen, "store.backend: '%s' is not supported (sqlite)", v);
            return -1;
        }
        strcpy(p, v);
        return 0;
    }
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    while (end && isspace((unsigned char)*end)) end++;
    if (errno || end == v || *end) {
        snprintf(err, errlen, "%s.%s: '%s' is not an integer", k->section, k->key, v);
        return -1;
    }
    if (n < k->min || n > k->max) {
        snprintf(err, errlen, "%s.%s: %ld is outside [%ld, %ld]", k->section, k->key, n, k->min, k->max);
        return -1;
    }
    if (k->type == K_INT) *(int *)p = (int)n;
    else *(long *)p = n;
    return 0;
}

void config_defaults(predictd_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (size_t i = 0; i < NKEYS; i++) set_value(cfg, &KEYS[i], KEYS[i].def, err, sizeof err);
}

int config_set(predictd_config_t *cfg, const char *dotted, const char *value, char *err, size_t errlen) {
    const char *dot = strchr(dotted, '.');
    char section[64];
    if (!dot || (size_t)(dot - dotted) >= sizeof section) {
        snprintf(err, errlen, "%s: keys are written section.key", dotted);
        return -1;
    }
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = 0;
    const key_def_t *k = find_key(section, dot + 1);
    if (!k) {
        snprintf(err, errlen, "%s: unknown configuration key", dotted);
        return -1;
    }
    return set_value(cfg, k, value, err, errlen);
}

int config_apply_env(predictd_config_t *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < NKEYS; i++) {
        char name[128];
        int n = snprintf(name, sizeof name, "PREDICTD_%s_%s", KEYS[i].section, KEYS[i].key);
        for (int j = 0; j < n; j++) name[j] = (char)toupper((unsigned char)name[j]);
        const char *v = getenv(name);
        if (v && set_value(cfg, &KEYS[i], v, err, errlen)) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " (from %s)", name);
            return -1;
        }
    }
    return 0;
}

/* Walks the YAML document: a mapping of sections, each a mapping of scalar keys. */
static int load_yaml(predictd_config_t *cfg, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) { rc = 0; goto done; } /* empty file: defaults */
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: the top level must be a mapping of sections", path);
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *sk = yaml_document_get_node(&doc, p->key);
        yaml_node_t *sv = yaml_document_get_node(&doc, p->value);
        const char *section = (const char *)sk->data.scalar.value;
        if (sk->type != YAML_SCALAR_NODE || sv->type != YAML_MAPPING_NODE) {
            snprintf(err, errlen, "%s:%zu: section '%s' must be a mapping", path,
                     sk->start_mark.line + 1, sk->type == YAML_SCALAR_NODE ? section : "?");
            goto done;
        }
        for (yaml_node_pair_t *q = sv->data.mapping.pairs.start; q < sv->data.mapping.pairs.top; q++) {
            yaml_node_t *kk = yaml_document_get_node(&doc, q->key);
            yaml_node_t *kv = yaml_document_get_node(&doc, q->value);
            if (kk->type != YAML_SCALAR_NODE || kv->type != YAML_SCALAR_NODE) {
                snprintf(err, errlen, "%s:%zu: %s: values must be scalars", path,
                         kk->start_mark.line + 1, section);
                goto done;
            }
            const char *key = (const char *)kk->data.scalar.value;
            const key_def_t *k = find_key(section, key);
            if (!k) {
                snprintf(err, errlen, "%s:%zu: %s.%s: unknown configuration key", path,
                         kk->start_mark.line + 1, section, key);
                goto done;
            }
            char sub[256];
            if (set_value(cfg, k, (const char *)kv->data.scalar.value, sub, sizeof sub)) {
                snprintf(err, errlen, "%s:%zu: %s", path, kv->start_mark.line + 1, sub);
                goto done;
            }
        }
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int config_load(predictd_config_t *cfg, const char *path, char *err, size_t errlen) {
    if (!path && access("predictd.yaml", R_OK) == 0) path = "predictd.yaml";
    if (path && load_yaml(cfg, path, err, errlen)) return -1;
    return config_apply_env(cfg, err, errlen);
}

static void print_value(const predictd_config_t *cfg, const key_def_t *k, FILE *out) {
    const char *p = (const char *)cfg + k->offset;
    if (k->type == K_STR) fprintf(out, "\"%s\"", p);
    else if (k->type == K_INT) fprintf(out, "%d", *(const int *)p);
    else fprintf(out, "%ld", *(const long *)p);
}

void config_print_yaml(const predictd_config_t *cfg, FILE *out) {
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(section, KEYS[i].section)) {
            section = KEYS[i].section;
            fprintf(out, "%s:\n", section);
        }
        fprintf(out, "  %s: ", KEYS[i].key);
        if (strcmp(KEYS[i].key, "admin_key") == 0 && cfg->sessions_admin_key[0]) fprintf(out, "\"(set, not shown)\"");
        else print_value(cfg, &KEYS[i], out);
        fprintf(out, "   # %s\n", KEYS[i].doc);
    }
}

void config_print_docs_md(FILE *out) {
    fprintf(out, "| key | environment | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        char env[128];
        int n = snprintf(env, sizeof env, "PREDICTD_%s_%s", KEYS[i].section, KEYS[i].key);
        for (int j = 0; j < n; j++) env[j] = (char)toupper((unsigned char)env[j]);
        fprintf(out, "| `%s.%s` | `%s` | `%s` | %s |\n", KEYS[i].section, KEYS[i].key, env,
                KEYS[i].def, KEYS[i].doc);
    }
}
