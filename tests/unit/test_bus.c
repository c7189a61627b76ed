/* bus/: topics, bounded per-subscriber queues that drop the oldest (counted), publishers
 * that never wait, close semantics, thread safety, metrics. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/util.h"
#include "test.h"

static bus_t *open_bus(metrics_t *m) {
    bus_t *b = NULL;
    char err[128] = "";
    if (bus_open(&b, "inproc", m, err, sizeof err) != 0) return NULL;
    return b;
}

static void test_topic_matching(void) {
    ASSERT_TRUE(bus_topic_match("ews.alert,job.completed", "job.completed"));
    ASSERT_TRUE(bus_topic_match("ews.alert,job.completed", "ews.alert"));
    ASSERT_TRUE(!bus_topic_match("ews.alert,job.completed", "job.failed"));
    ASSERT_TRUE(!bus_topic_match("ews.alert", "ews.alerts"));
    ASSERT_TRUE(!bus_topic_match("ews.alerts", "ews.alert"));
    ASSERT_TRUE(bus_topic_match("job.*", "job.failed"));
    ASSERT_TRUE(!bus_topic_match("job.*", "jobs.failed"));
    ASSERT_TRUE(bus_topic_match("*", "anything"));
    ASSERT_TRUE(bus_topic_match("", "anything"));
    ASSERT_TRUE(bus_topic_match(NULL, "anything"));
    ASSERT_TRUE(bus_topic_valid("ews.alert"));
    ASSERT_TRUE(!bus_topic_valid(""));
    ASSERT_TRUE(!bus_topic_valid("Ews.Alert"));
    ASSERT_TRUE(!bus_topic_valid("a b"));
}

static void test_unknown_backend_is_refused(void) {
    bus_t *b = (bus_t *)1;
    char err[128] = "";
    ASSERT_EQ_INT(bus_open(&b, "carrier-pigeon", NULL, err, sizeof err), -1);
    ASSERT_TRUE(b == NULL);
    ASSERT_TRUE(strstr(err, "carrier-pigeon") != NULL);
}

static void test_subscriber_gets_only_its_topics_in_order(void) {
    bus_t *b = open_bus(NULL);
    ASSERT_TRUE(b != NULL);
    bus_sub_t *s = bus_subscribe(b, "ews.alert,job.completed", 0);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ_INT(bus_publish(b, "ews.alert", "{\"a\":1}", 7), 0);
    ASSERT_EQ_INT(bus_publish(b, "job.failed", "{\"b\":2}", 7), 0);
    ASSERT_EQ_INT(bus_publish(b, "job.completed", "{\"c\":3}", 7), 0);
    bus_event_t ev;
    ASSERT_EQ_INT(bus_next(b, s, 0, &ev), 1);
    ASSERT_EQ_STR(ev.topic, "ews.alert");
    ASSERT_EQ_STR(ev.data, "{\"a\":1}");
    ASSERT_EQ_INT(ev.seq, 1);
    bus_event_clear(&ev);
    ASSERT_EQ_INT(bus_next(b, s, 0, &ev), 1);
    ASSERT_EQ_STR(ev.topic, "job.completed");
    ASSERT_EQ_INT(ev.seq, 3); /* seq counts every publish, matched or not */
    bus_event_clear(&ev);
    ASSERT_EQ_INT(bus_next(b, s, 0, &ev), 0);
    ASSERT_EQ_INT(bus_next(b, s, 20, &ev), 0); /* waits, then times out */
    bus_unsubscribe(b, s);
    bus_free(b);
}

static void test_bad_topic_is_refused(void) {
    bus_t *b = open_bus(NULL);
    ASSERT_TRUE(b != NULL);
    ASSERT_EQ_INT(bus_publish(b, "Bad Topic", "{}", 2), -1);
    ASSERT_EQ_INT(bus_publish(NULL, "ews.alert", "{}", 2), -1);
    bus_stats_t st;
    bus_stats(b, &st);
    ASSERT_EQ_INT(st.published, 0);
    bus_free(b);
}

/* cap 4, 10 published: the reader sees the newest 4 (7..10) and 6 counted as dropped, in
 * the subscription, the bus stats and the metric. */
static void test_slow_subscriber_loses_oldest_counted(void) {
    metrics_t *m = metrics_new();
    bus_t *b = open_bus(m);
    ASSERT_TRUE(b != NULL);
    bus_sub_t *slow = bus_subscribe(b, "t.x", 4);
    bus_sub_t *other = bus_subscribe(b, "t.y", 4);
    char msg[32];
    for (int i = 1; i <= 10; i++) {
        int n = snprintf(msg, sizeof msg, "{\"i\":%d}", i);
        ASSERT_EQ_INT(bus_publish(b, "t.x", msg, (size_t)n), 0);
    }
    ASSERT_EQ_INT(bus_sub_dropped(b, slow), 6);
    ASSERT_EQ_INT(bus_sub_dropped(b, other), 0);
    bus_event_t ev;
    for (int i = 7; i <= 10; i++) {
        ASSERT_EQ_INT(bus_next(b, slow, 0, &ev), 1);
        snprintf(msg, sizeof msg, "{\"i\":%d}", i);
        ASSERT_EQ_STR(ev.data, msg);
        ASSERT_EQ_INT(ev.seq, i);
        bus_event_clear(&ev);
    }
    ASSERT_EQ_INT(bus_next(b, slow, 0, &ev), 0);
    bus_stats_t st;
    bus_stats(b, &st);
    ASSERT_EQ_INT(st.published, 10);
    ASSERT_EQ_INT(st.delivered, 10);
    ASSERT_EQ_INT(st.dropped, 6);
    ASSERT_EQ_INT(st.subscribers, 2);
    ASSERT_NEAR(metrics_value(m, "predictd_bus_dropped_total", NULL), 6, 0);
    ASSERT_NEAR(metrics_value(m, "predictd_bus_published_total", "topic=\"t.x\""), 10, 0);
    bus_unsubscribe(b, slow);
    bus_unsubscribe(b, other);
    bus_stats(b, &st);
    ASSERT_EQ_INT(st.subscribers, 0);
    bus_free(b);
    metrics_free(m);
}

/* close wakes a reader waiting without a deadline in sight; queued events still drain. */
typedef struct {
    bus_t *b;
    bus_sub_t *s;
    int rc;
    double waited_s;
} waiter_t;

static void *wait_long(void *arg) {
    waiter_t *w = arg;
    bus_event_t ev;
    double t0 = mono_s();
    w->rc = bus_next(w->b, w->s, 10000, &ev);
    w->waited_s = mono_s() - t0;
    if (w->rc == 1) bus_event_clear(&ev);
    return NULL;
}

static void test_close_wakes_readers_and_drains(void) {
    bus_t *b = open_bus(NULL);
    ASSERT_TRUE(b != NULL);
    waiter_t w = {.b = b, .s = bus_subscribe(b, "*", 0), .rc = 99};
    bus_sub_t *s2 = bus_subscribe(b, "*", 0);
    ASSERT_TRUE(w.s && s2);
    ASSERT_EQ_INT(bus_publish(b, "a.b", "{}", 2), 0);
    pthread_t t;
    bus_event_t ev;
    ASSERT_EQ_INT(bus_next(b, w.s, 0, &ev), 1);
    bus_event_clear(&ev);
    ASSERT_EQ_INT(pthread_create(&t, NULL, wait_long, &w), 0);
    usleep(50 * 1000);
    bus_close(b);
    pthread_join(t, NULL);
    ASSERT_EQ_INT(w.rc, -1);
    ASSERT_TRUE(w.waited_s < 5.0);
    ASSERT_EQ_INT(bus_publish(b, "a.b", "{}", 2), -1); /* closed: refused */
    ASSERT_TRUE(bus_subscribe(b, "*", 0) == NULL);
    ASSERT_EQ_INT(bus_next(b, s2, 0, &ev), 1); /* what was queued before the close drains */
    bus_event_clear(&ev);
    ASSERT_EQ_INT(bus_next(b, s2, 0, &ev), -1);
    bus_unsubscribe(b, w.s);
    bus_unsubscribe(b, s2);
    bus_free(b);
}

/* 4 publishers x 5000 events, 2 readers (one fast with a big queue, one never reading with a
 * small one): the fast reader gets every event exactly once, in seq order per publisher; the
 * slow one's received + dropped = published; publishers finish although nobody reads. */
enum { PUBS = 4, PER_PUB = 5000 };

typedef struct {
    bus_t *b;
    int id;
} pub_arg_t;

static void *publisher(void *arg) {
    pub_arg_t *p = arg;
    char msg[64];
    for (int i = 0; i < PER_PUB; i++) {
        int n = snprintf(msg, sizeof msg, "{\"p\":%d,\"i\":%d}", p->id, i);
        bus_publish(p->b, "load.test", msg, (size_t)n);
    }
    return NULL;
}

typedef struct {
    bus_t *b;
    bus_sub_t *s;
    long got;
    int in_order;
} reader_t;

static void *reader(void *arg) {
    reader_t *r = arg;
    int last[PUBS];
    for (int k = 0; k < PUBS; k++) last[k] = -1;
    r->in_order = 1;
    bus_event_t ev;
    for (long guard = 0; guard < (long)PUBS * PER_PUB * 4 && r->got < (long)PUBS * PER_PUB; guard++) {
        int rc = bus_next(r->b, r->s, 2000, &ev);
        if (rc != 1) break;
        int p = -1, i = -1;
        if (sscanf(ev.data, "{\"p\":%d,\"i\":%d}", &p, &i) == 2 && p >= 0 && p < PUBS) {
            if (i != last[p] + 1) r->in_order = 0;
            last[p] = i;
        }
        r->got++;
        bus_event_clear(&ev);
    }
    return NULL;
}

static void test_concurrent_publishers_never_block(void) {
    metrics_t *m = metrics_new();
    bus_t *b = open_bus(m);
    ASSERT_TRUE(b != NULL);
    reader_t fast = {.b = b, .s = bus_subscribe(b, "load.*", (size_t)PUBS * PER_PUB)};
    bus_sub_t *never = bus_subscribe(b, "load.test", 16);
    ASSERT_TRUE(fast.s && never);
    pthread_t rt, pt[PUBS];
    pub_arg_t pa[PUBS];
    ASSERT_EQ_INT(pthread_create(&rt, NULL, reader, &fast), 0);
    for (int k = 0; k < PUBS; k++) {
        pa[k] = (pub_arg_t){b, k};
        ASSERT_EQ_INT(pthread_create(&pt[k], NULL, publisher, &pa[k]), 0);
    }
    for (int k = 0; k < PUBS; k++) pthread_join(pt[k], NULL);
    pthread_join(rt, NULL);
    ASSERT_EQ_INT(fast.got, (long)PUBS * PER_PUB);
    ASSERT_TRUE(fast.in_order);
    ASSERT_EQ_INT(bus_sub_dropped(b, fast.s), 0);
    ASSERT_EQ_INT(bus_sub_dropped(b, never), (long)PUBS * PER_PUB - 16);
    ASSERT_NEAR(metrics_value(m, "predictd_bus_dropped_total", NULL), (double)PUBS * PER_PUB - 16, 0);
    bus_unsubscribe(b, fast.s);
    bus_unsubscribe(b, never);
    bus_free(b);
    metrics_free(m);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_topic_matching),
        TEST_CASE(test_unknown_backend_is_refused),
        TEST_CASE(test_subscriber_gets_only_its_topics_in_order),
        TEST_CASE(test_bad_topic_is_refused),
        TEST_CASE(test_slow_subscriber_loses_oldest_counted),
        TEST_CASE(test_close_wakes_readers_and_drains),
        TEST_CASE(test_concurrent_publishers_never_block),
    };
    return test_main("bus", cases, (int)(sizeof cases / sizeof cases[0]));
}
