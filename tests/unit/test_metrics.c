/* metrics: exposition text is exactly what Prometheus 0.0.4 expects. */
#include <stdlib.h>

#include "metrics/metrics.h"
#include "test.h"

static void counter_and_gauge_render_with_help_and_type(void) {
    metrics_t *m = metrics_new();
    metrics_describe(m, "req_total", METRIC_COUNTER, "Requests.\nBy code \\ route", NULL, 0);
    metrics_describe(m, "depth", METRIC_GAUGE, "Queue depth", NULL, 0);
    metrics_counter_add(m, "req_total", "code=\"200\"", 2);
    metrics_counter_add(m, "req_total", "code=\"404\"", 1);
    metrics_counter_add(m, "req_total", "code=\"200\"", 0.5);
    metrics_counter_add(m, "req_total", "code=\"200\"", -7); /* ignored: counters only go up */
    metrics_gauge_set(m, "depth", NULL, 10);
    metrics_gauge_add(m, "depth", "", -3);
    buf_t b = {0};
    metrics_render(m, &b);
    ASSERT_EQ_STR(b.data,
                  "# HELP req_total Requests.\\nBy code \\\\ route\n"
                  "# TYPE req_total counter\n"
                  "req_total{code=\"200\"} 2.5\n"
                  "req_total{code=\"404\"} 1\n"
                  "# HELP depth Queue depth\n"
                  "# TYPE depth gauge\n"
                  "depth 7\n");
    ASSERT_NEAR(metrics_value(m, "req_total", "code=\"200\""), 2.5, 0);
    ASSERT_NEAR(metrics_value(m, "depth", NULL), 7, 0);
    ASSERT_NEAR(metrics_value(m, "absent", NULL), 0, 0);
    buf_free(&b);
    metrics_free(m);
}

static void histogram_buckets_are_cumulative(void) {
    metrics_t *m = metrics_new();
    const double bounds[] = {0.1, 1, 5};
    metrics_describe(m, "lat_seconds", METRIC_HISTOGRAM, "Latency", bounds, 3);
    /* 0.05 -> le 0.1; 0.1 -> le 0.1 (bound inclusive); 0.5 -> le 1; 7 -> +Inf only */
    const double obs[] = {0.05, 0.1, 0.5, 7};
    for (int i = 0; i < 4; i++) metrics_observe(m, "lat_seconds", "model=\"ising\"", obs[i]);
    buf_t b = {0};
    metrics_render(m, &b);
    ASSERT_EQ_STR(b.data,
                  "# HELP lat_seconds Latency\n"
                  "# TYPE lat_seconds histogram\n"
                  "lat_seconds_bucket{model=\"ising\",le=\"0.1\"} 2\n"
                  "lat_seconds_bucket{model=\"ising\",le=\"1\"} 3\n"
                  "lat_seconds_bucket{model=\"ising\",le=\"5\"} 3\n"
                  "lat_seconds_bucket{model=\"ising\",le=\"+Inf\"} 4\n"
                  "lat_seconds_sum{model=\"ising\"} 7.65\n"
                  "lat_seconds_count{model=\"ising\"} 4\n");
    ASSERT_NEAR(metrics_value(m, "lat_seconds", "model=\"ising\""), 4, 0);
    buf_free(&b);
    metrics_free(m);
}

static void histogram_without_labels_and_default_buckets(void) {
    metrics_t *m = metrics_new();
    metrics_describe(m, "h", METRIC_HISTOGRAM, "H", NULL, 0);
    metrics_observe(m, "h", NULL, 20); /* above every default bound (max 10) */
    buf_t b = {0};
    metrics_render(m, &b);
    ASSERT_TRUE(strstr(b.data, "h_bucket{le=\"0.0005\"} 0\n") != NULL);
    ASSERT_TRUE(strstr(b.data, "h_bucket{le=\"10\"} 0\n") != NULL);
    ASSERT_TRUE(strstr(b.data, "h_bucket{le=\"+Inf\"} 1\nh_sum 20\nh_count 1\n") != NULL);
    buf_free(&b);
    metrics_free(m);
}

static void collect(void *arg, metrics_t *m) {
    int *calls = arg;
    (*calls)++;
    metrics_gauge_set(m, "jobs", "status=\"QUEUED\"", 40 + *calls);
}

static void collectors_run_at_each_render(void) {
    metrics_t *m = metrics_new();
    int calls = 0;
    metrics_describe(m, "jobs", METRIC_GAUGE, "Jobs", NULL, 0);
    metrics_add_collector(m, collect, &calls);
    buf_t b = {0};
    metrics_render(m, &b);
    buf_reset(&b);
    metrics_render(m, &b);
    ASSERT_EQ_INT(calls, 2);
    ASSERT_TRUE(strstr(b.data, "jobs{status=\"QUEUED\"} 42\n") != NULL);
    buf_free(&b);
    metrics_free(m);
}

static void many_series_survive_table_growth(void) {
    metrics_t *m = metrics_new();
    metrics_describe(m, "c", METRIC_COUNTER, "C", NULL, 0);
    char lab[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(lab, sizeof lab, "i=\"%d\"", i);
        metrics_counter_add(m, "c", lab, i);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(lab, sizeof lab, "i=\"%d\"", i);
        ASSERT_NEAR(metrics_value(m, "c", lab), i, 0);
    }
    metrics_free(m);
    metrics_free(NULL);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(counter_and_gauge_render_with_help_and_type),
        TEST_CASE(histogram_buckets_are_cumulative),
        TEST_CASE(histogram_without_labels_and_default_buckets),
        TEST_CASE(collectors_run_at_each_render),
        TEST_CASE(many_series_survive_table_growth),
    };
    return test_main("metrics", cases, (int)(sizeof cases / sizeof cases[0]));
}
