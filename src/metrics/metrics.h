/* Metrics: counters, gauges and histograms with labels, rendered as Prometheus text
 * (text/plain; version=0.0.4). A series is (name, labels) where labels is the label text
 * as it appears between the braces, e.g. `route="/api/v1/jobs/{id}",code="200"` (NULL or ""
 * for none). Families are described once (type + help) before use; an undescribed name is
 * a programmer error. Thread-safe: one mutex guards the series table (updates are a lookup
 * and an add, cheap next to an HTTP request or a chunk). */
#ifndef PREDICTD_METRICS_H
#define PREDICTD_METRICS_H

#include "core/util.h"

typedef struct metrics metrics_t;

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m); /* NULL is a no-op */

/* Declares a family. buckets (ascending upper bounds, +Inf implied) only for histograms;
 * NULL gives the default latency buckets in seconds (0.0005 .. 10). */
void metrics_describe(metrics_t *m, const char *name, metric_type_t type, const char *help,
                      const double *buckets, int n_buckets);

void metrics_counter_add(metrics_t *m, const char *name, const char *labels, double v);
void metrics_gauge_set(metrics_t *m, const char *name, const char *labels, double v);
void metrics_gauge_add(metrics_t *m, const char *name, const char *labels, double v);
void metrics_observe(metrics_t *m, const char *name, const char *labels, double v);

/* Collectors run at the start of every render (outside the metrics lock), to set gauges
 * whose value lives elsewhere (queue depth, jobs by state). */
typedef void (*metrics_collect_fn)(void *arg, metrics_t *m);
void metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *arg);
/* Removes the collector (fn, arg): call before arg is freed. */
void metrics_remove_collector(metrics_t *m, metrics_collect_fn fn, void *arg);

/* Appends the whole exposition, families in the order they were described. */
void metrics_render(metrics_t *m, buf_t *out);

/* Reads a counter or gauge back (a histogram: its count) for tests and the API's own
 * summaries; 0 when absent. All calls take a NULL metrics_t as a no-op. */
double metrics_value(metrics_t *m, const char *name, const char *labels);

#endif
