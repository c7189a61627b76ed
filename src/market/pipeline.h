/* The market prediction pipeline (issue #6, MODELS.md "Market prediction pipeline",
 * docs/pipeline.md): feature store, earnings calendar and router, runs as jobs on the
 * durable queue (models predict.normal / predict.earnings, one chunk = one inference batch
 * with MC dropout), outputs to the fast layer (kv/kv.h, pred:{symbol} with a TTL), the
 * store (latest + history) and the bus (prediction.updated, pipeline.run.completed,
 * pipeline.alert), reads, the consistency check, circuit breakers and metrics.
 *
 * Life: pipeline_open after the jobs, bus and model repository exist (it registers its
 * models with the job engine, which then recovers their unfinished jobs, and takes back its
 * unfinished runs); pipeline_stop before the job engine stops (its thread submits runs);
 * pipeline_free after jobs_free (the engine's workers call into it).
 * Thread-safe: every function may be called from any thread. */
#ifndef PREDICTD_MARKET_PIPELINE_H
#define PREDICTD_MARKET_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/util.h"
#include "jobs/jobs.h"
#include "market/calendar.h"
#include "market/features.h"
#include "metrics/metrics.h"
#include "store/store.h"

typedef struct pipeline pipeline_t;
struct serving;
struct bus;

/* On failure (-1, err) *out may still be set, because its models may already be in the job
 * engine: pipeline_free it after jobs_free as on success. */
int pipeline_open(pipeline_t **out, const predictd_config_t *cfg, store_t *st, jobs_t *jobs,
                  struct serving *sv, struct bus *bus, metrics_t *m, char *err, size_t errlen);
void pipeline_stop(pipeline_t *p);  /* stops its thread; NULL is a no-op */
void pipeline_free(pipeline_t *p);  /* NULL is a no-op */

int pipeline_window_k(pipeline_t *p); /* vectors kept per symbol */

/* Stores validated rows durably, then into memory; publishes data.features.ready with the
 * distinct symbols. 0 ok; -1 with err (store failing: nothing changed in memory). */
int pipeline_features_put(pipeline_t *p, const feat_row_t *rows, size_t n, size_t *symbols, char *err,
                          size_t errlen);
/* Stores calendar rows durably and reloads the router's cache. */
int pipeline_calendar_put(pipeline_t *p, const cal_row_t *rows, size_t n, char *err, size_t errlen);

/* Starts a run: routes the symbols (all = every symbol of the feature store) for trading
 * day `date`, records the run and submits its jobs. correlation_id NULL: a new one. 0 ok
 * (run_id, corr filled), -1 with err (an http_status, code, field: nothing recorded). */
int pipeline_run_start(pipeline_t *p, const char *const *symbols, size_t n, int all, int32_t date,
                       const char *trigger, const char *correlation_id, char run_id[40], char corr[48],
                       jobs_error_t *err);
/* GET /api/v1/pipeline/runs/{id} as JSON appended to out. 0 ok, 1 not found, -1 error. */
int pipeline_run_render(pipeline_t *p, const char *run_id, buf_t *out);

/* The prediction of symbol as JSON with "source" ("fast_layer" | "store"), appended to out.
 * 0 ok, 1 none, -1 both layers failing. */
int pipeline_prediction_get(pipeline_t *p, const char *symbol, buf_t *out);
/* History rows of symbol with from_ms <= timestamp <= to_ms, oldest first, at most limit,
 * appended as comma-separated objects. */
int pipeline_history(pipeline_t *p, const char *symbol, int64_t from_ms, int64_t to_ms, long limit, buf_t *out,
                     long *count);

/* Runs the fast layer vs store check now; its report (JSON object) appended to out. */
int pipeline_consistency_check(pipeline_t *p, buf_t *out);
/* Failure injection (pipeline.debug): the fast layer answers as if down (1) or not (0). */
void pipeline_set_fast_layer_down(pipeline_t *p, int down);
/* Failure injection (pipeline.debug): while down, every event publish fails, so events go to
 * the bounded outbox and are retried in order once it is up again. */
void pipeline_set_events_down(pipeline_t *p, int down);
int pipeline_debug_enabled(pipeline_t *p);

#endif
