/* The bus's backend choice, NULL-safe wrappers and its metrics (see bus.h). */
#include "bus/bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bus_topic_valid(const char *topic) {
    if (!topic) return 0;
    size_t n = strnlen(topic, BUS_TOPIC_MAX);
    if (n == 0 || n >= BUS_TOPIC_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = topic[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int bus_topic_match(const char *patterns, const char *topic) {
    if (!patterns || !*patterns) return 1;
    size_t tlen = strlen(topic);
    const char *p = patterns;
    /* each pass consumes one pattern; a pattern list is at most its own length long */
    for (size_t guard = strlen(patterns) + 1; guard > 0 && *p; guard--) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && p[0] == '*') return 1;
        if (n >= 2 && p[n - 1] == '*' && p[n - 2] == '.') {
            if (tlen >= n - 1 && memcmp(topic, p, n - 1) == 0) return 1; /* "job.*" */
        } else if (n == tlen && memcmp(topic, p, n) == 0) {
            return 1;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

int bus_open(bus_t **out, const char *kind, metrics_t *m, char *err, size_t errlen) {
    *out = NULL;
    if (kind && *kind && strcmp(kind, "inproc") != 0) {
        snprintf(err, errlen, "unknown bus backend '%.64s' (known: inproc)", kind);
        return -1;
    }
    bus_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->metrics = m;
    if (bus_inproc_open(b, err, errlen) != 0) {
        free(b);
        return -1;
    }
    if (m) {
        metrics_describe(m, "predictd_bus_published_total", METRIC_COUNTER,
                         "Events published on the bus, by topic.", NULL, 0);
        metrics_describe(m, "predictd_bus_dropped_total", METRIC_COUNTER,
                         "Events a slow subscriber lost because its queue was full.", NULL, 0);
        metrics_counter_add(m, "predictd_bus_dropped_total", NULL, 0);
    }
    *out = b;
    return 0;
}

void bus_free(bus_t *b) {
    if (!b) return;
    b->ops->xClose(b);
    b->ops->xFree(b);
    free(b);
}

int bus_set_topics(bus_t *b, bus_sub_t *s, const char *topics) {
    return b && s ? b->ops->xSetTopics(b, s, topics) : -1;
}

int bus_wants(bus_t *b, const char *topic) { return b ? b->ops->xWants(b, topic) : 0; }

void bus_count_unheard(bus_t *b, const char *topic) {
    if (!b || !b->metrics || !bus_topic_valid(topic)) return;
    char lab[BUS_TOPIC_MAX + 16];
    snprintf(lab, sizeof lab, "topic=\"%s\"", topic);
    metrics_counter_add(b->metrics, "predictd_bus_published_total", lab, 1);
}

int bus_publish(bus_t *b, const char *topic, const char *json, size_t len) {
    if (!b || !bus_topic_valid(topic) || !json) return -1;
    int dropped = b->ops->xPublish(b, topic, json, len);
    if (dropped < 0) return -1;
    if (b->metrics) {
        char lab[BUS_TOPIC_MAX + 16];
        snprintf(lab, sizeof lab, "topic=\"%s\"", topic);
        metrics_counter_add(b->metrics, "predictd_bus_published_total", lab, 1);
        if (dropped) metrics_counter_add(b->metrics, "predictd_bus_dropped_total", NULL, dropped);
    }
    return 0;
}

bus_sub_t *bus_subscribe(bus_t *b, const char *topics, size_t queue_cap) {
    return b ? b->ops->xSubscribe(b, topics, queue_cap) : NULL;
}

void bus_unsubscribe(bus_t *b, bus_sub_t *s) {
    if (b && s) b->ops->xUnsubscribe(b, s);
}

int bus_next(bus_t *b, bus_sub_t *s, int wait_ms, bus_event_t *ev) {
    if (!b || !s) return -1;
    return b->ops->xNext(b, s, wait_ms, ev);
}

uint64_t bus_sub_dropped(bus_t *b, const bus_sub_t *s) {
    return b && s ? b->ops->xSubDropped(b, s) : 0;
}

void bus_close(bus_t *b) {
    if (b) b->ops->xClose(b);
}

void bus_stats(bus_t *b, bus_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (b) b->ops->xStats(b, out);
}

void bus_event_clear(bus_event_t *ev) {
    if (!ev) return;
    free(ev->data);
    ev->data = NULL;
    ev->len = 0;
}
