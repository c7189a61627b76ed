/* Session telemetry checks and features: each feature of hand-made sessions against the
 * value worked out by hand from its definition (features.c), the heuristic's signals, and
 * the refusals of malformed telemetry (field and reason). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "sessions/features.h"
#include "sessions/telemetry.h"
#include "test.h"

static const sessions_limits_t LIM = {.max_duration_ms = 3600000.0, .max_events = 5};

/* Parses text into t; 0 ok. */
static int parse(const char *text, sessions_telemetry_t *t, sessions_error_t *e) {
    json_error_t je;
    json_t *b = json_loads(text, JSON_DECODE_ANY, &je);
    if (!b) {
        fprintf(stderr, "test body does not parse: %s\n", je.text);
        return -2;
    }
    int rc = sessions_telemetry_parse(b, &LIM, t, e);
    json_decref(b);
    return rc;
}

static void test_straight_constant_speed(void) {
    sessions_telemetry_t t;
    sessions_error_t e;
    ASSERT_EQ_INT(parse("{\"session_id\":\"a\",\"duration_ms\":1000,\"pointer\":[[0,0,0],[100,30,40],[200,60,80],"
                        "[300,90,120]],\"clicks\":[],\"keys\":[],\"client\":{}}", &t, &e), 0);
    double f[SESSIONS_N_FEATURES];
    sessions_features(&t, f);
    /* four moves of 50 px (3-4-5 triangles) every 100 ms */
    ASSERT_NEAR(f[SF_DURATION_S], 1.0, 0);
    ASSERT_NEAR(f[SF_POINTER_COUNT], 4, 0);
    ASSERT_NEAR(f[SF_PATH_PX], 150.0, 1e-12);
    ASSERT_NEAR(f[SF_SPEED_MEAN], 500.0, 1e-9);     /* 50 px / 0.1 s */
    ASSERT_NEAR(f[SF_SPEED_CV], 0.0, 1e-12);
    ASSERT_NEAR(f[SF_STRAIGHTNESS], 1.0, 1e-12);    /* |(90,120)| = 150 = path */
    ASSERT_NEAR(f[SF_CURVATURE_MEAN], 0.0, 1e-12);
    ASSERT_NEAR(f[SF_PAUSE_RATIO], 0.0, 0);
    ASSERT_NEAR(f[SF_EVENT_RATE], 4.0, 1e-12);
    ASSERT_NEAR(f[SF_CLICK_INTERVAL_MS], 0.0, 0);
    /* straight (0.25) + constant speed (0.20) */
    ASSERT_NEAR(sessions_heuristic(f), 0.45, 1e-12);
    ASSERT_EQ_STR(sessions_verdict(sessions_heuristic(f), 0.4, 0.7), "suspicious");
    sessions_telemetry_free(&t);
}

static void test_turn_pause_clicks_keys(void) {
    sessions_telemetry_t t;
    sessions_error_t e;
    ASSERT_EQ_INT(parse("{\"session_id\":\"b\",\"duration_ms\":2000,\"pointer\":[[0,0,0],[100,10,0],[300,10,10],"
                        "[700,10,10]],\"clicks\":[[500,10,10],[800,10,10],[1400,10,10]],"
                        "\"keys\":[[1000,\"a\"],[1100,\"b\"],[1200,\"c\"],[1300,\"d\"]],\"client\":{\"ua\":\"x\"},"
                        "\"extra\":[1,2]}", &t, &e), 0);
    double f[SESSIONS_N_FEATURES];
    sessions_features(&t, f);
    /* segments: 10 px in 100 ms (100 px/s), 10 px in 200 ms (50 px/s), 0 px in 400 ms (0) */
    ASSERT_NEAR(f[SF_PATH_PX], 20.0, 1e-12);
    ASSERT_NEAR(f[SF_SPEED_MEAN], 50.0, 1e-9);
    ASSERT_NEAR(f[SF_SPEED_CV], sqrt(2.0 / 3.0), 1e-12); /* std sqrt(5000/3) over mean 50 */
    ASSERT_NEAR(f[SF_STRAIGHTNESS], sqrt(2.0) / 2.0, 1e-12);
    ASSERT_NEAR(f[SF_CURVATURE_MEAN], M_PI / 2.0, 1e-12); /* (10,0) then (0,10); the still segment is skipped */
    ASSERT_NEAR(f[SF_PAUSE_RATIO], 4.0 / 7.0, 1e-12);      /* the 400 ms gap of 700 ms */
    ASSERT_NEAR(f[SF_CLICK_COUNT], 3, 0);
    ASSERT_NEAR(f[SF_CLICK_INTERVAL_MS], 450.0, 1e-12);    /* 300, 600 */
    ASSERT_NEAR(f[SF_CLICK_INTERVAL_CV], 1.0 / 3.0, 1e-12); /* std 150 / 450 */
    ASSERT_NEAR(f[SF_KEY_INTERVAL_MS], 100.0, 1e-12);
    ASSERT_NEAR(f[SF_KEY_INTERVAL_CV], 0.0, 1e-12);
    ASSERT_NEAR(f[SF_EVENT_RATE], 11.0 / 2.0, 1e-12);
    /* only the metronomic keys fire */
    ASSERT_NEAR(sessions_heuristic(f), 0.15, 1e-12);
    ASSERT_EQ_STR(sessions_verdict(0.15, 0.4, 0.7), "human");
    sessions_telemetry_free(&t);
}

static void test_clicks_without_pointer_is_bot(void) {
    sessions_telemetry_t t;
    sessions_error_t e;
    ASSERT_EQ_INT(parse("{\"session_id\":\"c\",\"duration_ms\":500,\"pointer\":[],"
                        "\"clicks\":[[100,5,5],[200,5,5],[300,5,5]],\"keys\":[],\"client\":{}}", &t, &e), 0);
    double f[SESSIONS_N_FEATURES];
    sessions_features(&t, f);
    ASSERT_NEAR(f[SF_SPEED_MEAN], 0.0, 0);
    ASSERT_NEAR(f[SF_STRAIGHTNESS], 0.0, 0);
    ASSERT_NEAR(f[SF_EVENT_RATE], 6.0, 1e-12); /* 3 events in 0.5 s */
    /* no pointer (0.35) + under 1 s (0.25) + metronomic clicks (0.15) */
    ASSERT_NEAR(sessions_heuristic(f), 0.75, 1e-12);
    ASSERT_EQ_STR(sessions_verdict(0.75, 0.4, 0.7), "bot");
    sessions_telemetry_free(&t);
}

static void test_heuristic_is_capped(void) {
    double f[SESSIONS_N_FEATURES] = {0};
    f[SF_DURATION_S] = 0.1;
    f[SF_CLICK_COUNT] = 5;
    f[SF_KEY_COUNT] = 5;
    f[SF_SPEED_MEAN] = 1e6; /* 0.35 + 0.25 + 0.15 + 0.15 + 0.25 > 1 */
    ASSERT_NEAR(sessions_heuristic(f), 1.0, 0);
}

static void test_same_times_do_not_divide_by_zero(void) {
    sessions_telemetry_t t;
    sessions_error_t e;
    ASSERT_EQ_INT(parse("{\"session_id\":\"d\",\"duration_ms\":10,\"pointer\":[[5,0,0],[5,3,4],[5,3,4]],"
                        "\"clicks\":[[5,0,0],[5,0,0]],\"keys\":[],\"client\":{}}", &t, &e), 0);
    double f[SESSIONS_N_FEATURES];
    sessions_features(&t, f);
    for (int i = 0; i < SESSIONS_N_FEATURES; i++) ASSERT_TRUE(isfinite(f[i]));
    ASSERT_NEAR(f[SF_SPEED_MEAN], 0.0, 0);      /* no segment with dt > 0 */
    ASSERT_NEAR(f[SF_PATH_PX], 5.0, 1e-12);
    ASSERT_NEAR(f[SF_PAUSE_RATIO], 0.0, 0);     /* span 0 */
    ASSERT_NEAR(f[SF_CLICK_INTERVAL_MS], 0.0, 0);
    ASSERT_NEAR(f[SF_CLICK_INTERVAL_CV], 0.0, 0);
    sessions_telemetry_free(&t);
}

/* The refusal catalogue: body -> status, field. */
static void test_refusals(void) {
    static const struct {
        const char *body;
        int status;
        const char *field;
    } C[] = {
        {"[1,2]", 422, ""},
        {"{\"duration_ms\":1,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "session_id"},
        {"{\"session_id\":7,\"duration_ms\":1,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "session_id"},
        {"{\"session_id\":\"a b\",\"duration_ms\":1,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "session_id"},
        {"{\"session_id\":\"\",\"duration_ms\":1,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "session_id"},
        {"{\"session_id\":\"a\",\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "duration_ms"},
        {"{\"session_id\":\"a\",\"duration_ms\":\"5\",\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "duration_ms"},
        {"{\"session_id\":\"a\",\"duration_ms\":true,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "duration_ms"},
        {"{\"session_id\":\"a\",\"duration_ms\":0,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "duration_ms"},
        {"{\"session_id\":\"a\",\"duration_ms\":3600001,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "duration_ms"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":{},\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,2]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,2,3,4]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[7],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,2,3],[\"2\",2,3]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[1][0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,null,3]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0][1]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,2,1e8]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0][2]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[5,0,0],[4,0,0]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[1][0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[-1,0,0]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0][0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[10,0,0]],\"clicks\":[],\"keys\":[],\"client\":{}}", 422, "pointer[0][0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[[1,0,0],[1,0,0],[1,0,0],[1,0,0],[1,0,0],[1,0,0]],\"clicks\":[],\"keys\":[],\"client\":{}}", 413, "pointer"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[[1,0]],\"keys\":[],\"client\":{}}", 422, "clicks[0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[[1,2]],\"client\":{}}", 422, "keys[0][1]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[[1,\"\"]],\"client\":{}}", 422, "keys[0][1]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[[3,\"a\"],[2,\"b\"]],\"client\":{}}", 422, "keys[1][0]"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[]}", 422, "client"},
        {"{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":[]}", 422, "client"},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        sessions_telemetry_t t;
        sessions_error_t e;
        int rc = parse(C[i].body, &t, &e);
        if (rc != -1 || e.status != C[i].status || strcmp(e.field, C[i].field)) {
            fprintf(stderr, "case %zu %s: rc %d status %d field '%s' (%s), expected %d '%s'\n", i, C[i].body, rc,
                    e.status, e.field, e.message, C[i].status, C[i].field);
            ASSERT_TRUE(0);
        }
        ASSERT_TRUE(t.pointer == NULL && t.client_json == NULL); /* nothing kept */
    }
}

static void test_same_body_same_hash(void) {
    sessions_telemetry_t a, b, c;
    sessions_error_t e;
    ASSERT_EQ_INT(parse("{\"session_id\":\"a\",\"duration_ms\":9,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{\"x\":1,\"y\":2}}", &a, &e), 0);
    ASSERT_EQ_INT(parse("{\"client\":{\"y\":2,\"x\":1},\"keys\":[],\"clicks\":[],\"pointer\":[],\"duration_ms\":9,\"session_id\":\"a\"}", &b, &e), 0);
    ASSERT_EQ_INT(parse("{\"session_id\":\"a\",\"duration_ms\":8,\"pointer\":[],\"clicks\":[],\"keys\":[],\"client\":{\"x\":1,\"y\":2}}", &c, &e), 0);
    ASSERT_TRUE(a.body_hash == b.body_hash); /* key order does not matter */
    ASSERT_TRUE(a.body_hash != c.body_hash);
    ASSERT_EQ_STR(a.client_json, "{\"x\":1,\"y\":2}");
    sessions_telemetry_free(&a);
    sessions_telemetry_free(&b);
    sessions_telemetry_free(&c);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_straight_constant_speed), TEST_CASE(test_turn_pause_clicks_keys),
        TEST_CASE(test_clicks_without_pointer_is_bot), TEST_CASE(test_heuristic_is_capped),
        TEST_CASE(test_same_times_do_not_divide_by_zero), TEST_CASE(test_refusals),
        TEST_CASE(test_same_body_same_hash),
    };
    return test_main("sessions_features", cases, (int)(sizeof cases / sizeof cases[0]));
}
