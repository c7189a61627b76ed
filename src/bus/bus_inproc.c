/* The in-process bus backend: subscribers in a list, each with a ring of copied events.
 * One mutex (inproc_t.mu) guards the list, every ring and the counters; a publish copies the
 * payload once per matching subscriber and signals that subscriber's condition variable.
 * A full ring drops its oldest event (the reader sees a gap in seq), so a publisher never
 * waits on a reader. */
#include "bus/bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bus_sub {
    char *topics;            /* the subscription's pattern list (owned) */
    bus_event_t *ring;       /* cap slots; head = oldest */
    size_t cap, head, n;
    uint64_t dropped;
    pthread_cond_t cv;       /* an event queued, or the bus closed */
    struct bus_sub *next;
};

typedef struct {
    pthread_mutex_t mu;      /* protects everything below and every subscriber's ring */
    bus_sub_t *subs;
    long n_subs;
    uint64_t seq, published, delivered, dropped;
    int closed;
} inproc_t;

static int ip_publish(bus_t *b, const char *topic, const char *json, size_t len) {
    inproc_t *ip = b->impl;
    int dropped = 0;
    pthread_mutex_lock(&ip->mu);
    if (ip->closed) {
        pthread_mutex_unlock(&ip->mu);
        return -1;
    }
    uint64_t seq = ++ip->seq;
    ip->published++;
    for (bus_sub_t *s = ip->subs; s; s = s->next) {
        if (!bus_topic_match(s->topics, topic)) continue;
        char *copy = malloc(len + 1);
        if (!copy) continue; /* this subscriber misses it; counted as dropped */
        memcpy(copy, json, len);
        copy[len] = '\0';
        if (s->n == s->cap) { /* full: the oldest goes */
            bus_event_clear(&s->ring[s->head]);
            s->head = (s->head + 1) % s->cap;
            s->n--;
            s->dropped++;
            ip->dropped++;
            dropped++;
        }
        bus_event_t *ev = &s->ring[(s->head + s->n) % s->cap];
        snprintf(ev->topic, sizeof ev->topic, "%s", topic);
        ev->data = copy;
        ev->len = len;
        ev->seq = seq;
        s->n++;
        ip->delivered++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&ip->mu);
    return dropped;
}

static bus_sub_t *ip_subscribe(bus_t *b, const char *topics, size_t queue_cap) {
    inproc_t *ip = b->impl;
    if (queue_cap == 0) queue_cap = BUS_QUEUE_DEFAULT;
    bus_sub_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->topics = strdup(topics ? topics : "");
    s->ring = calloc(queue_cap, sizeof *s->ring);
    if (!s->topics || !s->ring) {
        free(s->topics);
        free(s->ring);
        free(s);
        return NULL;
    }
    s->cap = queue_cap;
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_lock(&ip->mu);
    if (ip->closed) {
        pthread_mutex_unlock(&ip->mu);
        pthread_cond_destroy(&s->cv);
        free(s->topics);
        free(s->ring);
        free(s);
        return NULL;
    }
    s->next = ip->subs;
    ip->subs = s;
    ip->n_subs++;
    pthread_mutex_unlock(&ip->mu);
    return s;
}

static void sub_free(bus_sub_t *s) {
    for (size_t i = 0; i < s->n; i++) bus_event_clear(&s->ring[(s->head + i) % s->cap]);
    pthread_cond_destroy(&s->cv);
    free(s->ring);
    free(s->topics);
    free(s);
}

static void ip_unsubscribe(bus_t *b, bus_sub_t *s) {
    inproc_t *ip = b->impl;
    pthread_mutex_lock(&ip->mu);
    for (bus_sub_t **pp = &ip->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            ip->n_subs--;
            break;
        }
    }
    pthread_mutex_unlock(&ip->mu);
    sub_free(s);
}

static int ip_set_topics(bus_t *b, bus_sub_t *s, const char *topics) {
    inproc_t *ip = b->impl;
    char *t = strdup(topics ? topics : "");
    if (!t) return -1;
    pthread_mutex_lock(&ip->mu);
    char *old = s->topics;
    s->topics = t;
    pthread_mutex_unlock(&ip->mu);
    free(old);
    return 0;
}

static int ip_wants(bus_t *b, const char *topic) {
    inproc_t *ip = b->impl;
    int any = 0;
    pthread_mutex_lock(&ip->mu);
    for (bus_sub_t *s = ip->subs; s && !any; s = s->next) any = bus_topic_match(s->topics, topic);
    pthread_mutex_unlock(&ip->mu);
    return any;
}

static int ip_next(bus_t *b, bus_sub_t *s, int wait_ms, bus_event_t *ev) {
    inproc_t *ip = b->impl;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (wait_ms > 0) {
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&ip->mu);
    /* spurious wake-ups loop again; the deadline bounds the wait */
    while (s->n == 0 && !ip->closed && wait_ms > 0) {
        if (pthread_cond_timedwait(&s->cv, &ip->mu, &until) == ETIMEDOUT) break;
    }
    int rc;
    if (s->n > 0) {
        *ev = s->ring[s->head];
        memset(&s->ring[s->head], 0, sizeof s->ring[s->head]);
        s->head = (s->head + 1) % s->cap;
        s->n--;
        rc = 1;
    } else {
        rc = ip->closed ? -1 : 0;
    }
    pthread_mutex_unlock(&ip->mu);
    return rc;
}

static uint64_t ip_sub_dropped(bus_t *b, const bus_sub_t *s) {
    inproc_t *ip = b->impl;
    pthread_mutex_lock(&ip->mu);
    uint64_t d = s->dropped;
    pthread_mutex_unlock(&ip->mu);
    return d;
}

static void ip_close(bus_t *b) {
    inproc_t *ip = b->impl;
    pthread_mutex_lock(&ip->mu);
    ip->closed = 1;
    for (bus_sub_t *s = ip->subs; s; s = s->next) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&ip->mu);
}

static void ip_stats(bus_t *b, bus_stats_t *out) {
    inproc_t *ip = b->impl;
    pthread_mutex_lock(&ip->mu);
    out->published = ip->published;
    out->delivered = ip->delivered;
    out->dropped = ip->dropped;
    out->subscribers = ip->n_subs;
    pthread_mutex_unlock(&ip->mu);
}

/* Subscriptions still open belong to their owners, who must unsubscribe before this. */
static void ip_free(bus_t *b) {
    inproc_t *ip = b->impl;
    if (!ip) return;
    bus_sub_t *s = ip->subs;
    for (long guard = ip->n_subs; s && guard >= 0; guard--) {
        bus_sub_t *next = s->next;
        sub_free(s);
        s = next;
    }
    pthread_mutex_destroy(&ip->mu);
    free(ip);
    b->impl = NULL;
}

static const bus_ops_t INPROC_OPS = {
    .name = "inproc",
    .xPublish = ip_publish,
    .xSubscribe = ip_subscribe,
    .xUnsubscribe = ip_unsubscribe,
    .xSetTopics = ip_set_topics,
    .xWants = ip_wants,
    .xNext = ip_next,
    .xSubDropped = ip_sub_dropped,
    .xClose = ip_close,
    .xStats = ip_stats,
    .xFree = ip_free,
};

int bus_inproc_open(bus_t *b, char *err, size_t errlen) {
    inproc_t *ip = calloc(1, sizeof *ip);
    if (!ip) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&ip->mu, NULL);
    b->ops = &INPROC_OPS;
    b->impl = ip;
    return 0;
}
