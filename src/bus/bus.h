/* The event bus: topics ("ews.alert", "job.completed", ...) carrying one JSON object each,
 * behind an ops struct with one file per backend (bus_inproc.c now; NATS later, same topic
 * names). Publishing never blocks on a subscriber: each subscriber has its own bounded queue
 * and a slow one loses its oldest events, counted (predictd_bus_dropped_total).
 * Thread-safe: any thread may publish, subscribe, unsubscribe; one thread at a time reads a
 * given subscription (bus_next). */
#ifndef PREDICTD_BUS_H
#define PREDICTD_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

#define BUS_TOPIC_MAX 64       /* bytes of a topic name, NUL included */
#define BUS_QUEUE_DEFAULT 1024 /* events a subscriber may hold before the oldest are dropped */
#define BUS_TOPICS_NONE "-"    /* a topic list matching nothing ("-" is not a valid topic) */

typedef struct bus bus_t;
typedef struct bus_sub bus_sub_t;

/* One delivered event; free its data with bus_event_clear. */
typedef struct {
    char topic[BUS_TOPIC_MAX];
    char *data;      /* the JSON payload, NUL-terminated, owned by the receiver */
    size_t len;
    uint64_t seq;    /* the bus's publish sequence number (grows by one per publish) */
} bus_event_t;

typedef struct {
    uint64_t published;  /* events accepted by xPublish */
    uint64_t delivered;  /* events queued to a subscriber (one per matching subscriber) */
    uint64_t dropped;    /* queued events lost because a subscriber's queue was full */
    long subscribers;
} bus_stats_t;

typedef struct bus_ops {
    const char *name;
    /* Queues a copy of json (len bytes) to every matching subscriber. Returns how many queued
     * events were dropped to make room (>= 0), or -1: out of memory or closed (nothing
     * delivered). Never waits on a subscriber. */
    int (*xPublish)(bus_t *b, const char *topic, const char *json, size_t len);
    /* topics: comma-separated names; "*" (or NULL/"") matches all, "job.*" a prefix.
     * queue_cap: events held before the oldest are dropped (0: BUS_QUEUE_DEFAULT).
     * NULL: out of memory, bad topic list, or the bus is closed. */
    bus_sub_t *(*xSubscribe)(bus_t *b, const char *topics, size_t queue_cap);
    void (*xUnsubscribe)(bus_t *b, bus_sub_t *s); /* NULL is a no-op; frees queued events */
    /* Replaces the subscription's topics (same syntax; BUS_TOPICS_NONE: none for now): a
     * subscriber that needs some topics only at times is not woken by them otherwise. Events
     * already queued stay. 0 ok, -1 out of memory (the old topics stay). */
    int (*xSetTopics)(bus_t *b, bus_sub_t *s, const char *topics);
    /* 1 when some subscription would take an event of topic: a publisher may skip building
     * one nobody listens to. */
    int (*xWants)(bus_t *b, const char *topic);
    /* Takes the oldest queued event, waiting up to wait_ms (0: do not wait). 1 got one (ev
     * filled), 0 none in time, -1 the bus is closed (after the queue was emptied). */
    int (*xNext)(bus_t *b, bus_sub_t *s, int wait_ms, bus_event_t *ev);
    /* Events this subscription lost to a full queue. */
    uint64_t (*xSubDropped)(bus_t *b, const bus_sub_t *s);
    /* Wakes every waiting xNext; later publishes fail, subscribers drain then read -1. */
    void (*xClose)(bus_t *b);
    void (*xStats)(bus_t *b, bus_stats_t *out);
    void (*xFree)(bus_t *b);
} bus_ops_t;

struct bus {
    const bus_ops_t *ops;
    metrics_t *metrics;      /* may be NULL */
    void *impl;              /* the backend's state */
};

/* Opens the backend named kind ("inproc", NULL = inproc). m may be NULL. 0 ok, -1 with err. */
int bus_open(bus_t **out, const char *kind, metrics_t *m, char *err, size_t errlen);
void bus_free(bus_t *b); /* NULL is a no-op; closes first */

/* Thin wrappers over ops, NULL-safe (a NULL bus publishes nothing): callers need not check.
 * bus_publish also counts predictd_bus_published_total{topic} and predictd_bus_dropped_total;
 * it returns 0 or -1 (a bad topic, out of memory, closed). */
int bus_publish(bus_t *b, const char *topic, const char *json, size_t len);
bus_sub_t *bus_subscribe(bus_t *b, const char *topics, size_t queue_cap);
void bus_unsubscribe(bus_t *b, bus_sub_t *s);
int bus_set_topics(bus_t *b, bus_sub_t *s, const char *topics);
/* 0 for a NULL bus. */
int bus_wants(bus_t *b, const char *topic);
/* Counts an event of topic that nobody subscribed to (bus_wants said 0) as published. */
void bus_count_unheard(bus_t *b, const char *topic);
int bus_next(bus_t *b, bus_sub_t *s, int wait_ms, bus_event_t *ev);
uint64_t bus_sub_dropped(bus_t *b, const bus_sub_t *s);
void bus_close(bus_t *b);
void bus_stats(bus_t *b, bus_stats_t *out);
void bus_event_clear(bus_event_t *ev);

/* Does topic match the comma-separated pattern list (see xSubscribe)? */
int bus_topic_match(const char *patterns, const char *topic);
/* A topic name is 1..63 bytes of [a-z0-9_.-]. */
int bus_topic_valid(const char *topic);

/* ---- backends ---- */
int bus_inproc_open(bus_t *b, char *err, size_t errlen);

#endif
