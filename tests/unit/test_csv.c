/* CSV import: RFC 4180 quoting, typed entity properties, column order by header name,
 * timestamps, and bad rows reported by line number with nothing returned. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/csv.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_entities_typed_values(void) {
    const char csv[] = "entity_id,spin,name,field\n"
                       "A,1,Alice,0.5\n"
                       "B,-1,\"Smith, Bob\",\n"
                       "\"C\"\"q\",1e2,nan, -.5 \n";
    entity_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_entities(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_STR(rows[0].entity_id, "A");
    ASSERT_EQ_INT(rows[0].line, 2);
    ASSERT_TRUE(json_is_integer(json_object_get(rows[0].props, "spin")));
    ASSERT_EQ_INT(json_integer_value(json_object_get(rows[0].props, "spin")), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(rows[0].props, "name")), "Alice");
    ASSERT_NEAR(json_real_value(json_object_get(rows[0].props, "field")), 0.5, 0);
    ASSERT_EQ_INT(json_object_size(rows[0].props), 3);
    /* an empty cell leaves the property out; quoted commas stay in the value */
    ASSERT_EQ_INT(json_object_size(rows[1].props), 2);
    ASSERT_EQ_INT(json_integer_value(json_object_get(rows[1].props, "spin")), -1);
    ASSERT_EQ_STR(json_string_value(json_object_get(rows[1].props, "name")), "Smith, Bob");
    ASSERT_TRUE(json_object_get(rows[1].props, "field") == NULL);
    /* "" inside quotes is one quote; 1e2 is a number; "nan" is a word, not a number */
    ASSERT_EQ_STR(rows[2].entity_id, "C\"q");
    ASSERT_NEAR(json_number_value(json_object_get(rows[2].props, "spin")), 100, 0);
    ASSERT_EQ_STR(json_string_value(json_object_get(rows[2].props, "name")), "nan");
    ASSERT_NEAR(json_real_value(json_object_get(rows[2].props, "field")), -0.5, 0);
    ASSERT_EQ_INT(errs.len, 0);
    entity_rows_free(rows, (size_t)n);
    buf_free(&errs);
}

static void test_crlf_quoted_newline_and_line_numbers(void) {
    const char csv[] = "\xEF\xBB\xBF" "entity_id,note\r\n"
                       "A,\"line1\nline2\"\r\n"
                       "\r\n"
                       "B,z\r\n";
    entity_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_entities(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(rows[0].line, 2);
    ASSERT_EQ_STR(json_string_value(json_object_get(rows[0].props, "note")), "line1\nline2");
    ASSERT_EQ_INT(rows[1].line, 5); /* the quoted newline and the blank line count */
    ASSERT_EQ_STR(rows[1].entity_id, "B");
    ASSERT_EQ_STR(json_string_value(json_object_get(rows[1].props, "note")), "z");
    entity_rows_free(rows, (size_t)n);
    buf_free(&errs);
}

static void test_entities_bad_rows(void) {
    char longid[300];
    memset(longid, 'x', 257);
    longid[257] = 0;
    char csv[600];
    snprintf(csv, sizeof csv, "entity_id,v\n,1\n%s,2\nok,1e999\nq,\"open\n", longid);
    entity_row_t *rows = (entity_row_t *)1;
    buf_t errs = {0};
    long n = csv_parse_entities(csv, strlen(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_TRUE(rows == NULL);
    ASSERT_EQ_STR(errs.data, "line 2: entity_id is empty\n"
                             "line 3: entity_id is longer than 256 bytes\n"
                             "line 4: property 'v' value '1e999' is not a finite number\n"
                             "line 5: unterminated quoted field\n");
    buf_free(&errs);
    /* max_errors caps the report */
    n = csv_parse_entities(csv, strlen(csv), &rows, &errs, 2);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 2: entity_id is empty\n"
                             "line 3: entity_id is longer than 256 bytes\n"
                             "(2 more errors not shown)\n");
    buf_free(&errs);
    n = csv_parse_entities(S("id,v\nA,1\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: missing column 'entity_id'\n");
    buf_free(&errs);
    n = csv_parse_entities(S(""), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: missing header row\n");
    buf_free(&errs);
    n = csv_parse_entities(S("entity_id,a,a\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: duplicate column 'a'\n");
    buf_free(&errs);
    n = csv_parse_entities(S("entity_id,a\nA,1,2\n\"B\"x,1\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 2: expected 2 fields, got 3\n"
                             "line 3: unexpected character after a closing quote\n");
    buf_free(&errs);
    /* a header alone is an empty import */
    n = csv_parse_entities(S("entity_id,a\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, 0);
    entity_rows_free(rows, 0);
    buf_free(&errs);
}

static void test_relationships_columns_by_name(void) {
    const char csv[] = "target,source,type,weight\n"
                       "B,A,knows,2.5\n"
                       "C,A,,\n";
    rel_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_relationships(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_STR(rows[0].source, "A");
    ASSERT_EQ_STR(rows[0].target, "B");
    ASSERT_EQ_STR(rows[0].type, "knows");
    ASSERT_NEAR(rows[0].weight, 2.5, 0);
    ASSERT_EQ_STR(rows[1].type, "");
    ASSERT_NEAR(rows[1].weight, 1.0, 0); /* default */
    rel_rows_free(rows, (size_t)n);
    n = csv_parse_relationships(S("source,target\nA,B"), &rows, &errs, 10); /* no final newline */
    ASSERT_EQ_INT(n, 1);
    ASSERT_NEAR(rows[0].weight, 1.0, 0);
    ASSERT_EQ_STR(rows[0].type, "");
    rel_rows_free(rows, (size_t)n);
    buf_free(&errs);
}

static void test_relationships_bad_rows(void) {
    const char csv[] = "source,target,weight\n"
                       "A,B,1\n"
                       "A,B,abc\n"
                       "A,B,nan\n"
                       "A,,1\n"
                       "A,B,inf\n";
    rel_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_relationships(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_TRUE(rows == NULL);
    ASSERT_EQ_STR(errs.data, "line 3: weight 'abc' is not a number\n"
                             "line 4: weight 'nan' is not a number\n"
                             "line 5: target is empty\n"
                             "line 6: weight 'inf' is not a number\n");
    buf_free(&errs);
    n = csv_parse_relationships(S("source,target,colour\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: unknown column 'colour' (expected source,target[,weight][,type])\n");
    buf_free(&errs);
    n = csv_parse_relationships(S("source,weight\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: missing column 'target'\n");
    buf_free(&errs);
}

static void test_observations_timestamps(void) {
    /* 2000-01-01T00:00:00Z is 946684800 (30 years of 365 days + 7 leap days, times 86400) */
    const char csv[] = "entity_id,timestamp,value,series\n"
                       "A,946684800,1.5,\n"
                       "A,2000-01-01T00:00:00Z,2,temp\n"
                       "A,2000-01-01T00:00:00.250Z,3,temp\n"
                       "A,2000-01-01T01:30:00+01:00,4,temp\n"
                       "A,2000-03-01T00:00:00Z,5,temp\n"
                       "A,1999-12-31T19:00:00-05:00,6,temp\n"
                       "A,2000-01-01 00:00:01,7,temp\n";
    obs_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_observations(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, 7);
    ASSERT_NEAR(rows[0].ts, 946684800.0, 0);
    ASSERT_EQ_STR(rows[0].series, "value"); /* default */
    ASSERT_NEAR(rows[0].value, 1.5, 0);
    ASSERT_NEAR(rows[1].ts, 946684800.0, 0);
    ASSERT_EQ_STR(rows[1].series, "temp");
    ASSERT_NEAR(rows[2].ts, 946684800.25, 1e-6);
    ASSERT_NEAR(rows[3].ts, 946684800.0 + 1800, 0);        /* 01:30 at +01:00 = 00:30Z */
    ASSERT_NEAR(rows[4].ts, 946684800.0 + 60 * 86400, 0);  /* Jan 31 + Feb 29 (leap) */
    ASSERT_NEAR(rows[5].ts, 946684800.0, 0);               /* 19:00 at -05:00 = 00:00Z */
    ASSERT_NEAR(rows[6].ts, 946684801.0, 0);               /* no offset: UTC */
    obs_rows_free(rows, (size_t)n);
    buf_free(&errs);
}

static void test_observations_bad_rows(void) {
    const char csv[] = "entity_id,timestamp,value\n"
                       "A,yesterday,1\n"
                       "A,2000-02-30T00:00:00Z,1\n"
                       "A,2000-01-01T00:00:00Z,inf\n"
                       "A,1e999,1\n"
                       "A,2000-01-01T25:00:00Z,1\n";
    obs_row_t *rows;
    buf_t errs = {0};
    long n = csv_parse_observations(S(csv), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 2: timestamp 'yesterday' is neither epoch seconds nor ISO 8601\n"
                             "line 3: timestamp '2000-02-30T00:00:00Z' is neither epoch seconds nor ISO 8601\n"
                             "line 4: value 'inf' is not a number\n"
                             "line 5: timestamp '1e999' is neither epoch seconds nor ISO 8601\n"
                             "line 6: timestamp '2000-01-01T25:00:00Z' is neither epoch seconds nor ISO 8601\n");
    buf_free(&errs);
    n = csv_parse_observations(S("entity_id,value,colour\n"), &rows, &errs, 10);
    ASSERT_EQ_INT(n, -1);
    ASSERT_EQ_STR(errs.data, "line 1: missing column 'timestamp'\n"
                             "line 1: unknown column 'colour' (expected entity_id,timestamp,value[,series])\n");
    buf_free(&errs);
}

/* Random inputs from CSV's own alphabet: the parser never crashes (the sanitizer build
 * checks every access) and a successful parse returns only well-formed rows. */
static void test_random_inputs_are_safe(void) {
    static const char alphabet[] = "ab,\"\r\n1.e-+:TZ \xc3\xa9";
    static const char *const headers[] = {"entity_id,x\n", "source,target,weight,type\n",
                                          "entity_id,timestamp,value,series\n"};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    char data[256];
    for (int iter = 0; iter < 3000; iter++) {
        int kind = iter % 3;
        size_t hl = strlen(headers[kind]);
        memcpy(data, headers[kind], hl);
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        size_t len = hl + (size_t)(rng % 120);
        for (size_t i = hl; i < len; i++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            data[i] = alphabet[rng % (sizeof alphabet - 1)];
        }
        buf_t errs = {0};
        long n;
        if (kind == 0) {
            entity_row_t *rows;
            n = csv_parse_entities(data, len, &rows, &errs, 3);
            for (long i = 0; i < n; i++) ASSERT_TRUE(rows[i].entity_id[0] && json_is_object(rows[i].props));
            entity_rows_free(rows, n > 0 ? (size_t)n : 0);
        } else if (kind == 1) {
            rel_row_t *rows;
            n = csv_parse_relationships(data, len, &rows, &errs, 3);
            for (long i = 0; i < n; i++) ASSERT_TRUE(rows[i].source[0] && rows[i].target[0] && isfinite(rows[i].weight));
            rel_rows_free(rows, n > 0 ? (size_t)n : 0);
        } else {
            obs_row_t *rows;
            n = csv_parse_observations(data, len, &rows, &errs, 3);
            for (long i = 0; i < n; i++) ASSERT_TRUE(isfinite(rows[i].ts) && isfinite(rows[i].value) && rows[i].series[0]);
            obs_rows_free(rows, n > 0 ? (size_t)n : 0);
        }
        ASSERT_TRUE(n >= 0 || (errs.len > 0 && !strncmp(errs.data, "line ", 5)));
        buf_free(&errs);
    }
}

static void test_kind_parse(void) {
    csv_kind_t k;
    ASSERT_EQ_INT(csv_kind_parse("relationships", &k), 0);
    ASSERT_EQ_INT(k, CSV_RELATIONSHIPS);
    ASSERT_EQ_INT(csv_kind_parse("observations", &k), 0);
    ASSERT_EQ_INT(k, CSV_OBSERVATIONS);
    ASSERT_EQ_INT(csv_kind_parse("edges", &k), -1);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_entities_typed_values),
        TEST_CASE(test_crlf_quoted_newline_and_line_numbers),
        TEST_CASE(test_entities_bad_rows),
        TEST_CASE(test_relationships_columns_by_name),
        TEST_CASE(test_relationships_bad_rows),
        TEST_CASE(test_observations_timestamps),
        TEST_CASE(test_observations_bad_rows),
        TEST_CASE(test_random_inputs_are_safe),
        TEST_CASE(test_kind_parse),
    };
    return test_main("csv", cases, (int)(sizeof cases / sizeof cases[0]));
}
