/* push/: subscription filters and client messages, the outbox (rate limit on an injected
 * clock, coalescing, bounds, counters) and the RFC 6455 handshake values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push/push_filter.h"
#include "push/push_hub.h"
#include "push/push_outbox.h"
#include "test.h"

static int apply(push_filter_t *f, const char *msg, push_err_t *e) {
    return push_filter_apply_msg(f, msg, strlen(msg), e);
}

static char *describe(const push_filter_t *f) {
    static char out[512];
    buf_t b = {0};
    push_filter_describe(f, &b);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    buf_free(&b);
    return out;
}

/* ---- filters ---- */

static void test_nothing_subscribed_matches_nothing(void) {
    push_filter_t f = {0};
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "AAPL", NULL));
    ASSERT_TRUE(!push_filter_match(&f, "job.progress", NULL, "j1"));
    ASSERT_TRUE(!push_filter_match(&f, "pipeline.alert", NULL, NULL));
    ASSERT_EQ_STR(describe(&f), "{\"symbols\":[],\"jobs\":[],\"topics\":null}");
}

static void test_symbols_and_jobs_select_keyed_events_of_any_topic(void) {
    push_filter_t f = {0};
    push_err_t e;
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"symbols\":[\"MSFT\",\"AAPL\",\"AAPL\"],\"jobs\":[\"j1\"]}}", &e),
                  PUSH_MSG_SUBSCRIBE);
    ASSERT_EQ_STR(describe(&f), "{\"symbols\":[\"AAPL\",\"MSFT\"],\"jobs\":[\"j1\"],\"topics\":null}");
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "AAPL", NULL));
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "MSFT", NULL));
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "IBM", NULL));
    ASSERT_TRUE(push_filter_match(&f, "job.progress", NULL, "j1"));
    ASSERT_TRUE(push_filter_match(&f, "job.completed", NULL, "j1"));
    ASSERT_TRUE(!push_filter_match(&f, "job.completed", NULL, "j2"));
    /* a keyed event goes when any of its keys is subscribed */
    ASSERT_TRUE(push_filter_match(&f, "x.y", "IBM", "j1"));
    ASSERT_TRUE(!push_filter_match(&f, "x.y", "IBM", "j2"));
    /* no topic list: keyless events are not sent */
    ASSERT_TRUE(!push_filter_match(&f, "pipeline.alert", NULL, NULL));
    push_filter_clear(&f);
}

static void test_topics_narrow_keyed_events_and_select_keyless_ones(void) {
    push_filter_t f = {0};
    push_err_t e;
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"symbols\":\"*\",\"topics\":[\"prediction.updated\",\"pipeline.*\"]}}", &e),
                  PUSH_MSG_SUBSCRIBE);
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "ANY", NULL));
    ASSERT_TRUE(!push_filter_match(&f, "other.topic", "ANY", NULL));
    ASSERT_TRUE(push_filter_match(&f, "pipeline.alert", NULL, NULL));
    ASSERT_TRUE(push_filter_match(&f, "pipeline.run.completed", NULL, NULL));
    ASSERT_TRUE(!push_filter_match(&f, "ews.alert", NULL, NULL));
    /* jobs not subscribed: a job event of a listed topic still does not go */
    ASSERT_TRUE(!push_filter_match(&f, "pipeline.alert", NULL, "j1"));
    ASSERT_EQ_INT(apply(&f, "{\"unsubscribe\":{\"topics\":[\"pipeline.*\"]}}", &e), PUSH_MSG_UNSUBSCRIBE);
    ASSERT_TRUE(!push_filter_match(&f, "pipeline.alert", NULL, NULL));
    /* the last topic gone: no topic list any more (keyed events of every topic) */
    ASSERT_EQ_INT(apply(&f, "{\"unsubscribe\":{\"topics\":[\"prediction.updated\"]}}", &e), PUSH_MSG_UNSUBSCRIBE);
    ASSERT_TRUE(push_filter_match(&f, "other.topic", "ANY", NULL));
    ASSERT_EQ_STR(describe(&f), "{\"symbols\":\"*\",\"jobs\":[],\"topics\":null}");
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"topics\":\"*\"}}", &e), PUSH_MSG_SUBSCRIBE);
    ASSERT_TRUE(push_filter_match(&f, "anything", NULL, NULL));
    push_filter_clear(&f);
}

static void test_unsubscribe_removes_and_star_clears(void) {
    push_filter_t f = {0};
    push_err_t e;
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"symbols\":[\"A\",\"B\",\"C\"]}}", &e), PUSH_MSG_SUBSCRIBE);
    ASSERT_EQ_INT(apply(&f, "{\"unsubscribe\":{\"symbols\":[\"B\",\"NOT-THERE\"]}}", &e), PUSH_MSG_UNSUBSCRIBE);
    ASSERT_EQ_STR(describe(&f), "{\"symbols\":[\"A\",\"C\"],\"jobs\":[],\"topics\":null}");
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "B", NULL));
    ASSERT_EQ_INT(apply(&f, "{\"unsubscribe\":{\"symbols\":\"*\"}}", &e), PUSH_MSG_UNSUBSCRIBE);
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "A", NULL));
    /* subscribed to all: naming some to unsubscribe is refused, nothing changes */
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"jobs\":\"*\"}}", &e), PUSH_MSG_SUBSCRIBE);
    ASSERT_EQ_INT(apply(&f, "{\"unsubscribe\":{\"jobs\":[\"j1\"]}}", &e), -1);
    ASSERT_EQ_STR(e.field, "unsubscribe.jobs");
    ASSERT_TRUE(push_filter_match(&f, "job.progress", NULL, "j1"));
    /* a list added to "*" keeps "*" */
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"jobs\":[\"j2\"]}}", &e), PUSH_MSG_SUBSCRIBE);
    ASSERT_TRUE(push_filter_match(&f, "job.progress", NULL, "j9"));
    push_filter_clear(&f);
}

static void test_bad_messages_name_the_field_and_change_nothing(void) {
    push_filter_t f = {0};
    push_err_t e;
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"symbols\":[\"KEEP\"]}}", &e), PUSH_MSG_SUBSCRIBE);
    const char *before = "{\"symbols\":[\"KEEP\"],\"jobs\":[],\"topics\":null}";
    static const struct { const char *msg, *code, *field; } cases[] = {
        {"not json", "invalid_json", ""},
        {"[1,2]", "invalid_message", ""},
        {"{\"subscribe\":{\"symbols\":[\"A\"]},\"stats\":{}}", "invalid_message", ""},
        {"{\"subscrib\":{}}", "unknown_field", "subscrib"},
        {"{\"subscribe\":[]}", "invalid_field", "subscribe"},
        {"{\"subscribe\":{}}", "invalid_field", "subscribe"},
        {"{\"subscribe\":{\"symbol\":[\"A\"]}}", "unknown_field", "subscribe.symbol"},
        {"{\"subscribe\":{\"symbols\":\"AAPL\"}}", "invalid_field", "subscribe.symbols"},
        {"{\"subscribe\":{\"symbols\":[\"A\",\"bad symbol\"]}}", "invalid_field", "subscribe.symbols[1]"},
        {"{\"subscribe\":{\"symbols\":[\"A\",7]}}", "invalid_field", "subscribe.symbols[1]"},
        {"{\"subscribe\":{\"symbols\":[\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\"]}}", "invalid_field", "subscribe.symbols[0]"},
        /* valid symbols, bad jobs: the symbols are not added either */
        {"{\"subscribe\":{\"symbols\":[\"NEW\"],\"jobs\":[\"\"]}}", "invalid_field", "subscribe.jobs[0]"},
        {"{\"subscribe\":{\"topics\":[\"Bad.Topic\"]}}", "invalid_field", "subscribe.topics[0]"},
        {"{\"unsubscribe\":{\"symbols\":{}}}", "invalid_field", "unsubscribe.symbols"},
        {"{\"stats\":1}", "invalid_field", "stats"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&e, 0, sizeof e);
        int rc = apply(&f, cases[i].msg, &e);
        if (rc != -1 || strcmp(e.code, cases[i].code) || strcmp(e.field, cases[i].field))
            fprintf(stderr, "case %zu: %s -> rc %d code %s field %s (%s)\n", i, cases[i].msg, rc, e.code, e.field,
                    e.message);
        ASSERT_EQ_INT(rc, -1);
        ASSERT_EQ_STR(e.code, cases[i].code);
        ASSERT_EQ_STR(e.field, cases[i].field);
        ASSERT_TRUE(e.message[0] != '\0');
        ASSERT_EQ_STR(describe(&f), before);
    }
    ASSERT_EQ_INT(apply(&f, "{\"stats\":{}}", &e), PUSH_MSG_STATS);
    push_filter_clear(&f);
}

static void test_a_client_holds_at_most_max_keys(void) {
    push_filter_t f = {0};
    push_err_t e;
    buf_t b = {0};
    buf_puts(&b, "{\"subscribe\":{\"symbols\":[");
    for (int i = 0; i < PUSH_FILTER_MAX_KEYS; i++) buf_printf(&b, "%s\"S%d\"", i ? "," : "", i);
    buf_puts(&b, "]}}");
    ASSERT_EQ_INT(push_filter_apply_msg(&f, b.data, b.len, &e), PUSH_MSG_SUBSCRIBE);
    ASSERT_EQ_INT(f.symbols.n, PUSH_FILTER_MAX_KEYS);
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "S9999", NULL));
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "S10000", NULL));
    /* one more is refused, and the set stays as it was */
    ASSERT_EQ_INT(apply(&f, "{\"subscribe\":{\"symbols\":[\"ONE-MORE\"]}}", &e), -1);
    ASSERT_EQ_STR(e.code, "too_many");
    ASSERT_EQ_INT(f.symbols.n, PUSH_FILTER_MAX_KEYS);
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "ONE-MORE", NULL));
    buf_free(&b);
    push_filter_clear(&f);
}

static void test_sse_query_filters(void) {
    push_filter_t f = {0};
    push_err_t e;
    push_filter_all(&f);
    ASSERT_TRUE(push_filter_match(&f, "anything", NULL, NULL));
    ASSERT_EQ_INT(push_filter_from_query(&f, "AAPL,MSFT", NULL, &e), 0);
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "AAPL", NULL));
    ASSERT_TRUE(!push_filter_match(&f, "prediction.updated", "IBM", NULL));
    ASSERT_TRUE(push_filter_match(&f, "job.completed", NULL, "j1")); /* jobs absent = "*" */
    ASSERT_TRUE(push_filter_match(&f, "pipeline.alert", NULL, NULL));
    push_filter_all(&f);
    ASSERT_EQ_INT(push_filter_from_query(&f, "*", "j1,j2", &e), 0);
    ASSERT_TRUE(push_filter_match(&f, "prediction.updated", "IBM", NULL));
    ASSERT_TRUE(push_filter_match(&f, "job.progress", NULL, "j2"));
    ASSERT_TRUE(!push_filter_match(&f, "job.progress", NULL, "j3"));
    push_filter_all(&f);
    ASSERT_EQ_INT(push_filter_from_query(&f, "A,,B", NULL, &e), -1);
    ASSERT_EQ_STR(e.field, "symbols");
    ASSERT_EQ_INT(push_filter_from_query(&f, NULL, "a b", &e), -1);
    ASSERT_EQ_STR(e.field, "jobs");
    ASSERT_EQ_INT(push_filter_from_query(&f, "", NULL, &e), -1);
    push_filter_clear(&f);
}

static void test_event_keys(void) {
    char s[PUSH_KEY_MAX], j[PUSH_KEY_MAX];
    int hs, hj;
    const char *ev = "{\"symbol\":\"AAPL\",\"job_id\":\"j7\",\"x\":1}";
    ASSERT_EQ_INT(push_event_keys(ev, strlen(ev), s, &hs, j, &hj), 0);
    ASSERT_TRUE(hs && hj);
    ASSERT_EQ_STR(s, "AAPL");
    ASSERT_EQ_STR(j, "j7");
    ev = "{\"symbol\":5,\"other\":\"AAPL\"}";
    ASSERT_EQ_INT(push_event_keys(ev, strlen(ev), s, &hs, j, &hj), 0);
    ASSERT_TRUE(!hs && !hj);
    ev = "[1]";
    ASSERT_EQ_INT(push_event_keys(ev, strlen(ev), s, &hs, j, &hj), -1);
}

/* ---- outbox ---- */

static push_frame_t *frame(const char *text) { return push_frame_raw(text, strlen(text)); }

static void push1(push_outbox_t *o, const char *text, const char *key, int64_t now) {
    push_frame_t *f = frame(text);
    push_outbox_push(o, f, key, now, NULL);
    push_frame_unref(f);
}

/* Takes one at now: its text, or "" when none may leave. */
static const char *take1(push_outbox_t *o, int64_t now, int64_t *wait) {
    static char out[256];
    push_frame_t *f;
    int64_t w;
    out[0] = '\0';
    if (push_outbox_take(o, now, &f, &w) == 1) {
        snprintf(out, sizeof out, "%s", f->text);
        push_frame_unref(f);
    }
    if (wait) *wait = w;
    return out;
}

static void test_frame_is_type_and_data(void) {
    push_frame_t *f = push_frame_new("prediction.updated", "{\"symbol\":\"A\"}", 14);
    ASSERT_EQ_STR(f->text, "{\"type\":\"prediction.updated\",\"data\":{\"symbol\":\"A\"}}");
    ASSERT_EQ_INT(f->len, strlen(f->text));
    push_frame_unref(f);
}

static void test_rate_limit_is_a_token_bucket(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 1000, .max_bytes = 1 << 20, .rate_per_s = 10};
    push_outbox_t *o = push_outbox_new(&cfg, 1000);
    char t[32];
    for (int i = 0; i < 30; i++) {
        snprintf(t, sizeof t, "m%d", i);
        push1(o, t, NULL, 1000);
    }
    /* the bucket starts full: a burst of 10 at t=1000, then one per 100 ms */
    for (int i = 0; i < 10; i++) {
        snprintf(t, sizeof t, "m%d", i);
        ASSERT_EQ_STR(take1(o, 1000, NULL), t);
    }
    int64_t wait = 0;
    ASSERT_EQ_STR(take1(o, 1000, &wait), "");
    ASSERT_EQ_INT(wait, 100);
    ASSERT_EQ_STR(take1(o, 1060, &wait), "");
    ASSERT_EQ_INT(wait, 40);
    ASSERT_EQ_STR(take1(o, 1100, NULL), "m10");
    ASSERT_EQ_STR(take1(o, 1100, NULL), "");
    /* a long pause refills to the burst size only: 10 more at once, not 100 */
    for (int i = 11; i < 21; i++) {
        snprintf(t, sizeof t, "m%d", i);
        ASSERT_EQ_STR(take1(o, 11100, NULL), t);
    }
    ASSERT_EQ_STR(take1(o, 11100, NULL), "");
    /* a clock that goes back refills nothing */
    ASSERT_EQ_STR(take1(o, 5000, NULL), "");
    push_outbox_stats_t st;
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.sent, 21);
    ASSERT_EQ_INT(st.queued, 9);
    ASSERT_EQ_INT(st.dropped, 0);
    push_outbox_free(o);
    /* empty: take says so with wait -1 */
    o = push_outbox_new(&cfg, 0);
    ASSERT_EQ_STR(take1(o, 0, &wait), "");
    ASSERT_EQ_INT(wait, -1);
    push_outbox_free(o);
}

static void test_rate_limited_counts_pushes_without_a_token(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 100, .max_bytes = 1 << 20, .rate_per_s = 2};
    push_outbox_t *o = push_outbox_new(&cfg, 0);
    push1(o, "a", NULL, 0);
    push1(o, "b", NULL, 0);
    ASSERT_EQ_STR(take1(o, 0, NULL), "a");
    ASSERT_EQ_STR(take1(o, 0, NULL), "b");
    push_frame_t *f = frame("c");
    push_outbox_result_t r;
    push_outbox_push(o, f, NULL, 0, &r); /* both tokens spent */
    ASSERT_EQ_INT(r.rate_limited, 1);
    push_outbox_push(o, f, NULL, 500, &r); /* one token back after 500 ms at 2/s */
    ASSERT_EQ_INT(r.rate_limited, 0);
    push_frame_unref(f);
    push_outbox_stats_t st;
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.rate_limited, 1);
    push_outbox_free(o);
}

static void test_coalescing_keeps_the_turn_and_the_newest_value(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 100, .max_bytes = 1 << 20, .rate_per_s = 1000};
    push_outbox_t *o = push_outbox_new(&cfg, 0);
    push1(o, "A1", "A", 0);
    push1(o, "B1", "B", 0);
    push1(o, "x", NULL, 0);
    push1(o, "A2", "A", 0);
    push1(o, "x", NULL, 0); /* no key: FIFO, never coalesced */
    push1(o, "A3", "A", 0);
    push1(o, "B2", "B", 0);
    ASSERT_EQ_INT(push_outbox_len(o), 4);
    ASSERT_EQ_STR(take1(o, 0, NULL), "A3");
    ASSERT_EQ_STR(take1(o, 0, NULL), "B2");
    ASSERT_EQ_STR(take1(o, 0, NULL), "x");
    ASSERT_EQ_STR(take1(o, 0, NULL), "x");
    /* once sent, a key queues afresh */
    push1(o, "A4", "A", 0);
    ASSERT_EQ_STR(take1(o, 0, NULL), "A4");
    push_outbox_stats_t st;
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.coalesced, 3);
    ASSERT_EQ_INT(st.pushed, 8);
    ASSERT_EQ_INT(st.sent, 5);
    ASSERT_EQ_INT(st.queued_bytes, 0);
    push_outbox_free(o);
}

static void test_many_keys_coalesce_in_order(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 5000, .max_bytes = 1 << 24, .rate_per_s = 100000};
    push_outbox_t *o = push_outbox_new(&cfg, 0);
    char k[32], t[32];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof k, "S%d", i);
            snprintf(t, sizeof t, "S%d=%d", i, round);
            push1(o, t, k, 0);
        }
    }
    ASSERT_EQ_INT(push_outbox_len(o), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(t, sizeof t, "S%d=2", i);
        ASSERT_EQ_STR(take1(o, 0, NULL), t);
    }
    push_outbox_stats_t st;
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.coalesced, 2000);
    ASSERT_EQ_INT(st.dropped, 0);
    push_outbox_free(o);
}

static void test_bounds_drop_the_oldest_and_count(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 3, .max_bytes = 1 << 20, .rate_per_s = 1000};
    push_outbox_t *o = push_outbox_new(&cfg, 0);
    push_frame_t *f;
    push_outbox_result_t r;
    char t[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(t, sizeof t, "m%d", i);
        f = frame(t);
        push_outbox_push(o, f, NULL, 0, &r);
        push_frame_unref(f);
        ASSERT_EQ_INT(r.dropped, i > 3 ? 1 : 0);
    }
    ASSERT_EQ_STR(take1(o, 0, NULL), "m3");
    ASSERT_EQ_STR(take1(o, 0, NULL), "m4");
    ASSERT_EQ_STR(take1(o, 0, NULL), "m5");
    push_outbox_free(o);

    /* bytes: frames of 10 bytes in 25 bytes: two fit */
    cfg = (push_outbox_cfg_t){.max_msgs = 100, .max_bytes = 25, .rate_per_s = 1000};
    o = push_outbox_new(&cfg, 0);
    push1(o, "aaaaaaaaa1", NULL, 0);
    push1(o, "aaaaaaaaa2", NULL, 0);
    push1(o, "aaaaaaaaa3", NULL, 0);
    push_outbox_stats_t st;
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.queued, 2);
    ASSERT_EQ_INT(st.queued_bytes, 20);
    ASSERT_EQ_INT(st.dropped, 1);
    /* one frame bigger than the whole buffer: dropped, the others stay */
    f = frame("this frame is longer than twenty-five bytes");
    push_outbox_push(o, f, NULL, 0, &r);
    push_frame_unref(f);
    ASSERT_EQ_INT(r.dropped, 1);
    ASSERT_EQ_STR(take1(o, 0, NULL), "aaaaaaaaa2");
    ASSERT_EQ_STR(take1(o, 0, NULL), "aaaaaaaaa3");
    ASSERT_EQ_STR(take1(o, 0, NULL), "");
    /* a coalesced value that grows pushes out other entries (the oldest first), never itself */
    push1(o, "k1", "K", 0);
    push1(o, "0123456789", NULL, 0);
    push1(o, "k1-newer-and-longer-v", "K", 0); /* 21 + 10 > 25 */
    push_outbox_stats(o, &st);
    ASSERT_EQ_INT(st.queued, 1);
    ASSERT_EQ_INT(st.queued_bytes, 21);
    ASSERT_EQ_INT(st.dropped, 3);
    ASSERT_EQ_STR(take1(o, 0, NULL), "k1-newer-and-longer-v");
    ASSERT_EQ_STR(take1(o, 0, NULL), "");
    push_outbox_free(o);
}

static void test_frames_are_shared_by_reference(void) {
    push_outbox_cfg_t cfg = {.max_msgs = 10, .max_bytes = 1 << 20, .rate_per_s = 10};
    push_outbox_t *a = push_outbox_new(&cfg, 0), *b = push_outbox_new(&cfg, 0);
    push_frame_t *f = frame("shared");
    push_outbox_push(a, f, NULL, 0, NULL);
    push_outbox_push(b, f, NULL, 0, NULL);
    ASSERT_EQ_INT(atomic_load(&f->refs), 3);
    push_frame_unref(f);
    push_outbox_free(a); /* b still holds it */
    ASSERT_EQ_STR(take1(b, 0, NULL), "shared");
    push_outbox_free(b);
}

/* ---- handshake ---- */

static void test_websocket_accept_matches_rfc6455(void) {
    /* RFC 6455 section 1.3's worked example */
    char acc[29];
    push_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
    ASSERT_EQ_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ASSERT_TRUE(push_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    ASSERT_TRUE(!push_ws_key_valid(""));
    ASSERT_TRUE(!push_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ"));    /* no padding */
    ASSERT_TRUE(!push_ws_key_valid("dGhlIHNhbXBsZSBub25jZ!=="));  /* not base64 */
    ASSERT_TRUE(!push_ws_key_valid("dGhlIHNhbXBsZSBub25jZXh4"));  /* 18 bytes */
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_nothing_subscribed_matches_nothing),
        TEST_CASE(test_symbols_and_jobs_select_keyed_events_of_any_topic),
        TEST_CASE(test_topics_narrow_keyed_events_and_select_keyless_ones),
        TEST_CASE(test_unsubscribe_removes_and_star_clears),
        TEST_CASE(test_bad_messages_name_the_field_and_change_nothing),
        TEST_CASE(test_a_client_holds_at_most_max_keys),
        TEST_CASE(test_sse_query_filters),
        TEST_CASE(test_event_keys),
        TEST_CASE(test_frame_is_type_and_data),
        TEST_CASE(test_rate_limit_is_a_token_bucket),
        TEST_CASE(test_rate_limited_counts_pushes_without_a_token),
        TEST_CASE(test_coalescing_keeps_the_turn_and_the_newest_value),
        TEST_CASE(test_many_keys_coalesce_in_order),
        TEST_CASE(test_bounds_drop_the_oldest_and_count),
        TEST_CASE(test_frames_are_shared_by_reference),
        TEST_CASE(test_websocket_accept_matches_rfc6455),
    };
    return test_main("push", cases, (int)(sizeof cases / sizeof cases[0]));
}
