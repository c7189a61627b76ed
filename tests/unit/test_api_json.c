/* The API's pure helpers: error bodies, ISO 8601 parsing, the job record as JSON. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_internal.h"
#include "test.h"
#include "batch_body_check.h"

static json_t *parse(const buf_t *b) {
    json_error_t e;
    return json_loadb(b->data, b->len, 0, &e);
}

static void error_body_is_valid_json_with_null_field(void) {
    api_resp_t rs = {0};
    api_error(&rs, 404, "not_found", NULL, "no route for \"%s\"\n", "/x");
    json_t *v = parse(&rs.body);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ_INT(rs.status, 404);
    json_t *err = json_object_get(v, "error");
    ASSERT_EQ_STR(json_string_value(json_object_get(err, "code")), "not_found");
    ASSERT_EQ_STR(json_string_value(json_object_get(err, "message")), "no route for \"/x\"\n");
    ASSERT_TRUE(json_is_null(json_object_get(err, "field")));
    ASSERT_EQ_INT(json_object_size(v), 1);
    ASSERT_EQ_INT(json_object_size(err), 3);
    json_decref(v);
    buf_free(&rs.body);
}

static void error_replaces_a_body_already_written(void) {
    api_resp_t rs = {0};
    buf_puts(&rs.body, "{\"jobs\":[");
    api_invalid(&rs, "[3].target", "bad %d", 3);
    json_t *v = parse(&rs.body);
    ASSERT_TRUE(v != NULL);
    ASSERT_EQ_INT(rs.status, 422);
    json_t *err = json_object_get(v, "error");
    ASSERT_EQ_STR(json_string_value(json_object_get(err, "code")), "invalid_field");
    ASSERT_EQ_STR(json_string_value(json_object_get(err, "field")), "[3].target");
    json_decref(v);
    buf_free(&rs.body);
}

static void iso8601_known_instants(void) {
    double t = -1;
    /* 2000-01-01T00:00:00Z is 946684800 s after the epoch (10957 days * 86400). */
    ASSERT_EQ_INT(api_parse_iso8601("1970-01-01T00:00:00Z", &t), 0);
    ASSERT_NEAR(t, 0.0, 0);
    ASSERT_EQ_INT(api_parse_iso8601("2000-01-01T00:00:00Z", &t), 0);
    ASSERT_NEAR(t, 946684800.0, 0);
    ASSERT_EQ_INT(api_parse_iso8601("2000-01-01T01:00:00+01:00", &t), 0);
    ASSERT_NEAR(t, 946684800.0, 0);
    ASSERT_EQ_INT(api_parse_iso8601("1999-12-31T19:00:00-0500", &t), 0);
    ASSERT_NEAR(t, 946684800.0, 0);
    ASSERT_EQ_INT(api_parse_iso8601("2000-01-01T00:00:00.25Z", &t), 0);
    ASSERT_NEAR(t, 946684800.25, 1e-6);
    ASSERT_EQ_INT(api_parse_iso8601("2000-01-01T00:01", &t), 0);
    ASSERT_NEAR(t, 946684860.0, 0);
    /* 2000 is a leap year: March 1st is 31 + 29 days after January 1st. */
    ASSERT_EQ_INT(api_parse_iso8601("2000-03-01", &t), 0);
    ASSERT_NEAR(t, 946684800.0 + 60 * 86400.0, 0);
}

static void iso8601_rejects_malformed(void) {
    double t;
    const char *bad[] = {"", "abc", "2026-02-30", "2026-13-01", "2026-1-01", "2026-01-01T25:00Z",
                         "2026-01-01T10:00:00Zjunk", "2026-01-01T10", "2026-01-01T10:00:00.Z",
                         "2026-01-01T10:00:00+25:00", "1700000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_parse_iso8601(bad[i], &t) == 0) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            ASSERT_TRUE(0);
        }
    }
}

static void job_json_progress_counts_settled_chunks(void) {
    store_job_t job;
    memset(&job, 0, sizeof job);
    snprintf(job.id, sizeof job.id, "JOB-1");
    snprintf(job.model, sizeof job.model, "ising");
    job.status = JOB_PROCESSING;
    job.n_chunks = 4;
    job.chunks_done = 2;
    job.chunks_dead = 1;
    job.n_entities = 10;
    job.created_at = 946684800000LL;
    buf_t b = {0};
    api_put_job(&b, &job);
    json_t *v = parse(&b);
    ASSERT_TRUE(v != NULL);
    ASSERT_NEAR(json_number_value(json_object_get(v, "progress")), 0.75, 0);
    ASSERT_TRUE(json_is_false(json_object_get(v, "results_ready")));
    ASSERT_EQ_STR(json_string_value(json_object_get(v, "status")), "PROCESSING");
    ASSERT_EQ_STR(json_string_value(json_object_get(v, "created_at")), "2000-01-01T00:00:00.000Z");
    ASSERT_TRUE(json_is_null(json_object_get(v, "started_at")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(v, "total_entities")), 10);
    json_decref(v);
    buf_free(&b);
}

static void job_json_finished_without_chunks_is_complete(void) {
    store_job_t job;
    memset(&job, 0, sizeof job);
    job.status = JOB_COMPLETED;
    buf_t b = {0};
    api_put_job(&b, &job);
    json_t *v = parse(&b);
    ASSERT_TRUE(v != NULL);
    ASSERT_NEAR(json_number_value(json_object_get(v, "progress")), 1.0, 0);
    ASSERT_TRUE(json_is_true(json_object_get(v, "results_ready")));
    json_decref(v);
    buf_free(&b);
}

static void scalars_are_numbers_strings_booleans(void) {
    json_t *arr = json_loads("[1, 2.5, \"s\", true, null, {}, []]", 0, NULL);
    ASSERT_TRUE(arr != NULL);
    int expect_strict[] = {1, 1, 1, 1, 0, 0, 0}, expect_null[] = {1, 1, 1, 1, 1, 0, 0};
    for (size_t i = 0; i < 7; i++) {
        ASSERT_EQ_INT(api_scalar_ok(json_array_get(arr, i), 0), expect_strict[i]);
        ASSERT_EQ_INT(api_scalar_ok(json_array_get(arr, i), 1), expect_null[i]);
    }
    json_decref(arr);
}

/* The one-pass batch body parser against jansson on the same bytes: the same success or the
 * same error body, and on success the same document once entity_ids is put back. fast: 1 when
 * the one pass must have taken it (entity_ids collected), 0 when jansson must have. */
static int same_as_jansson(const char *body, size_t len, int fast) {
    int used;
    int ok = batch_body_same_as_jansson(body, len, &used);
    if (ok && fast >= 0) ok = used == fast;
    if (!ok)
        fprintf(stderr, "differs from jansson (fast path %d, expected %d): %.*s\n", used, fast,
                (int)(len > 200 ? 200 : len), body);
    return ok;
}

static void batch_body_one_pass_matches_jansson(void) {
    static const struct { const char *doc; int fast; } docs[] = {
        {"{\"entity_ids\":[\"a\",\"b\",\"a\"],\"prediction_type\":\"spin_flip_probability\","
         "\"parameters\":{\"temperature\":0.5,\"time_horizon\":\"24h\",\"n\":[1,-2,{\"x\":null,\"y\":true,"
         "\"z\":false}],\"e\":[]},\"priority\":3}", 1},
        {" \n{\"parameters\":{\"t\":1e3,\"u\":-0.0,\"v\":1.5E-7,\"w\":9223372036854775807,\"x\":-9223372036854775808},"
         "\"entity_ids\":[\"x\\\"y\",\"tab\\t\",\"sl\\\\\\/\",\"caf\xc3\xa9\"]}\t", 1},
        {"{\"entity_ids\":[]}", 1},
        {"{\"parameters\":{\"entity_ids\":[\"nested\"]},\"entity_ids\":[\"top\"]}", 1},
        {"{\"parameters\":{}}", -1},
        {"{}", -1},
        {"{\"entity_ids\":\"abc\"}", -1},
        {"{\"entity_ids\":null}", -1},
        {"{\"entity_ids\":{\"a\":1}}", -1},
        {"{\"entity_ids\":[1,\"a\"]}", 0},
        {"{\"entity_ids\":[\"a\",[\"b\"]]}", 0},
        {"{\"entity_ids\":[\"a\",null]}", 0},
        {"{\"entity_ids\":[\"a\"],\"entity_ids\":[\"b\"]}", 0},
        {"{\"entity_ids\":\"a\",\"entity_ids\":[\"b\"]}", 0},
        {"{\"a\":1,\"a\":2}", 0},
        {"{\"p\":{\"a\":1,\"a\":2}}", 0},
        {"{\"w\":9223372036854775808}", 0},
        {"{\"w\":1e400}", 0},
        {"{\"entity_ids\":[\"\\u00e9\"]}", 0},
        {"{\"entity_ids\":[\"\\u0000\"]}", 0},
        {"{\"entity_ids\":[\"\\ud800\"]}", 0},
        {"{\"entity_ids\":[\"a\",]}", 0},
        {"{\"entity_ids\":[\"a\"]", 0},
        {"{\"entity_ids\":[\"a\"]} x", 0},
        {"{\"entity_ids\":[\"a\"]}{}", 0},
        {"{\"entity_ids\":[\"\xff\"]}", 0},
        {"{\"k\":tru}", 0},
        {"{\"k\":01}", 0},
        {"{\"k\":.5}", 0},
        {"{'k':1}", 0},
        {"{\"k\":1,}", 0},
        {"{\"k\" 1}", 0},
        {"{\"k\":\"a\nb\"}", 0},
        {"[\"a\"]", 0},
        {"3", 0},
        {"\"s\"", 0},
        {"", 0},
        {"   ", 0},
        {"{/* c */}", 0},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        ASSERT_TRUE(same_as_jansson(docs[i].doc, strlen(docs[i].doc), docs[i].fast));
    /* nesting: 60 levels in one pass, 100 beyond its limit (jansson's turn, same result) */
    for (int depth = 60; depth <= 100; depth += 40) {
        char doc[512];
        size_t n = 0;
        n += (size_t)snprintf(doc + n, sizeof doc - n, "{\"entity_ids\":[\"a\"],\"p\":");
        for (int d = 0; d < depth; d++) doc[n++] = '[';
        for (int d = 0; d < depth; d++) doc[n++] = ']';
        doc[n++] = '}';
        ASSERT_TRUE(same_as_jansson(doc, n, depth <= 60));
    }
    /* an embedded NUL byte in the body is malformed JSON for both */
    ASSERT_TRUE(same_as_jansson("{\"entity_ids\":[\"a\0b\"]}", 21, 0));
    /* many ids: the buffers grow */
    buf_t big = {0};
    buf_puts(&big, "{\"entity_ids\":[");
    for (int i = 0; i < 5000; i++) buf_printf(&big, "%s\"ACTOR-%06d\"", i ? "," : "", i % 3000);
    buf_puts(&big, "],\"parameters\":{\"temperature\":2}}");
    ASSERT_TRUE(same_as_jansson(big.data, big.len, 1));
    buf_free(&big);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(error_body_is_valid_json_with_null_field),
        TEST_CASE(error_replaces_a_body_already_written),
        TEST_CASE(iso8601_known_instants),
        TEST_CASE(iso8601_rejects_malformed),
        TEST_CASE(job_json_progress_counts_settled_chunks),
        TEST_CASE(job_json_finished_without_chunks_is_complete),
        TEST_CASE(scalars_are_numbers_strings_booleans),
        TEST_CASE(batch_body_one_pass_matches_jansson),
    };
    return test_main("api_json", cases, (int)(sizeof cases / sizeof cases[0]));
}
