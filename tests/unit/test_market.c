/* Market pipeline pieces without a server: trading-day math and the earnings router on
 * hand-made dates, the circuit breaker and the fast layer's TTL on an injected clock, the
 * feature window, and input validation (JSON and CSV). Expected values come from the
 * calendar (2026-11-23 is a Monday) and the rules in MODELS.md, not from running the code. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "market/breaker.h"
#include "market/calendar.h"
#include "market/features.h"
#include "market/market_input.h"
#include "test.h"

static int32_t D(const char *s) {
    int32_t d = -999999;
    mkt_date_parse(s, &d);
    return d;
}

static void test_dates(void) {
    int32_t d;
    ASSERT_EQ_INT(mkt_date_parse("1970-01-01", &d), 0);
    ASSERT_EQ_INT(d, 0);
    ASSERT_EQ_INT(D("1970-01-02"), 1);
    ASSERT_EQ_INT(D("2000-01-01"), 10957);          /* 30 years, 7 leap days */
    ASSERT_EQ_INT(D("2000-03-01"), 10957 + 31 + 29);
    ASSERT_EQ_INT(mkt_date_parse("2024-02-29", &d), 0);
    ASSERT_EQ_INT(mkt_date_parse("2023-02-29", &d), -1);
    ASSERT_EQ_INT(mkt_date_parse("2026-13-01", &d), -1);
    ASSERT_EQ_INT(mkt_date_parse("2026-1-01", &d), -1);
    ASSERT_EQ_INT(mkt_date_parse("2026-11-31", &d), -1);
    ASSERT_EQ_INT(mkt_date_parse("2026-11-2x", &d), -1);
    ASSERT_EQ_INT(mkt_date_parse("", &d), -1);
    char out[11];
    mkt_date_format(D("2026-11-23"), out);
    ASSERT_EQ_STR(out, "2026-11-23");
    ASSERT_EQ_INT(mkt_weekday(0), 4);                 /* 1970-01-01: Thursday */
    ASSERT_EQ_INT(mkt_weekday(D("2026-11-21")), 6);   /* Saturday */
    ASSERT_EQ_INT(mkt_weekday(D("2026-11-22")), 0);   /* Sunday */
    ASSERT_EQ_INT(mkt_weekday(D("2026-11-23")), 1);   /* Monday */
}

/* "today" is the date in the exchange's zone. Etc/GMT+12 is UTC-12 and Etc/GMT-14 UTC+14
 * (POSIX signs): their dates are computed here from the clock, independently. */
static void test_today_in_the_exchange_zone(void) {
    char err[256];
    ASSERT_EQ_INT(mkt_set_timezone("Etc/GMT+12", err, sizeof err), 0);
    time_t t0 = time(NULL);
    int32_t west = mkt_today();
    time_t t1 = time(NULL);
    int32_t w0 = (int32_t)((t0 - 12 * 3600) / 86400), w1 = (int32_t)((t1 - 12 * 3600) / 86400);
    ASSERT_TRUE(west == w0 || west == w1);
    ASSERT_EQ_INT(mkt_set_timezone("Etc/GMT-14", err, sizeof err), 0);
    t0 = time(NULL);
    int32_t east = mkt_today();
    t1 = time(NULL);
    ASSERT_TRUE(east == (int32_t)((t0 + 14 * 3600) / 86400) || east == (int32_t)((t1 + 14 * 3600) / 86400));
    ASSERT_TRUE(east - west == 1 || east - west == 2); /* 26 hours apart */
    ASSERT_EQ_INT(mkt_set_timezone("", err, sizeof err), 0); /* UTC */
    t0 = time(NULL);
    int32_t utc = mkt_today();
    t1 = time(NULL);
    ASSERT_TRUE(utc == (int32_t)(t0 / 86400) || utc == (int32_t)(t1 / 86400));
    ASSERT_EQ_INT(mkt_set_timezone("Mars/Olympus", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "Mars/Olympus") != NULL);
    ASSERT_EQ_INT(mkt_set_timezone("../etc/passwd", err, sizeof err), -1);
    ASSERT_EQ_INT(mkt_set_timezone("UTC", err, sizeof err), 0);
}

static void test_trading_days(void) {
    mkt_holidays_t none = {0}, h;
    char err[128];
    ASSERT_EQ_INT(mkt_is_trading_day(&none, D("2026-11-21")), 0); /* Saturday */
    ASSERT_EQ_INT(mkt_is_trading_day(&none, D("2026-11-22")), 0); /* Sunday */
    ASSERT_EQ_INT(mkt_is_trading_day(&none, D("2026-11-23")), 1);
    ASSERT_EQ_INT(mkt_prev_trading_day(&none, D("2026-11-23")), D("2026-11-20")); /* Monday -> Friday */
    ASSERT_EQ_INT(mkt_prev_trading_day(&none, D("2026-11-24")), D("2026-11-23"));
    ASSERT_EQ_INT(mkt_prev_trading_day(&none, D("2026-11-22")), D("2026-11-20")); /* Sunday -> Friday */
    ASSERT_EQ_INT(mkt_holidays_parse(" 2026-11-26, 2026-11-20,2026-11-26 ,", &h, err, sizeof err), 0);
    ASSERT_EQ_INT(h.n, 2);
    ASSERT_EQ_INT(mkt_is_trading_day(&h, D("2026-11-26")), 0);     /* Thanksgiving */
    ASSERT_EQ_INT(mkt_prev_trading_day(&h, D("2026-11-27")), D("2026-11-25"));
    ASSERT_EQ_INT(mkt_prev_trading_day(&h, D("2026-11-23")), D("2026-11-19")); /* Friday is a holiday */
    mkt_holidays_free(&h);
    ASSERT_EQ_INT(mkt_holidays_parse("2026-11-26,26-11-2026", &h, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "26-11-2026") != NULL);
    ASSERT_EQ_INT(mkt_holidays_parse("", &h, err, sizeof err), 0);
    ASSERT_EQ_INT(h.n, 0);
    mkt_holidays_free(&h);
}

static cal_row_t row(const char *sym, const char *date, earn_time_t t) {
    cal_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.symbol, sizeof r.symbol, "%s", sym);
    r.date = D(date);
    r.time = t;
    return r;
}

static void test_router_rule(void) {
    mkt_holidays_t none = {0};
    const char *why;
    int32_t tue = D("2026-11-24"), mon = D("2026-11-23");
    cal_row_t r;
    ASSERT_EQ_INT(mkt_route(&none, tue, NULL, 0, &why), ROUTE_NORMAL);       /* calendar says nothing */
    ASSERT_EQ_STR(why, "no calendar entry");
    r = row("A", "2026-11-24", EARN_BMO);
    ASSERT_EQ_INT(mkt_route(&none, tue, &r, 1, &why), ROUTE_EARNINGS);       /* before the open today */
    r = row("A", "2026-11-24", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&none, tue, &r, 1, &why), ROUTE_NORMAL);         /* after the close today: tomorrow */
    r = row("A", "2026-11-23", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&none, tue, &r, 1, &why), ROUTE_EARNINGS);       /* after yesterday's close */
    r = row("A", "2026-11-23", EARN_BMO);
    ASSERT_EQ_INT(mkt_route(&none, tue, &r, 1, &why), ROUTE_NORMAL);         /* yesterday before the open */
    r = row("A", "2026-11-24", EARN_UNKNOWN);
    ASSERT_EQ_INT(mkt_route(&none, tue, &r, 1, &why), ROUTE_NORMAL);         /* unknown time */
    r = row("A", "2026-11-20", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&none, mon, &r, 1, &why), ROUTE_EARNINGS);       /* Monday after Friday amc */
    r = row("A", "2026-11-22", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&none, mon, &r, 1, &why), ROUTE_NORMAL);         /* Sunday is no trading day */
    r = row("A", "2026-11-19", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&none, mon, &r, 1, &why), ROUTE_NORMAL);         /* Thursday is two trading days back */
    mkt_holidays_t h;
    char err[64];
    ASSERT_EQ_INT(mkt_holidays_parse("2026-11-20", &h, err, sizeof err), 0);
    ASSERT_EQ_INT(mkt_route(&h, mon, &r, 1, &why), ROUTE_EARNINGS);          /* Friday a holiday: Thursday amc */
    mkt_holidays_free(&h);
    ASSERT_EQ_INT(mkt_holidays_parse("2026-11-26", &h, err, sizeof err), 0);
    r = row("A", "2026-11-25", EARN_AMC);
    ASSERT_EQ_INT(mkt_route(&h, D("2026-11-27"), &r, 1, &why), ROUTE_EARNINGS); /* Friday after Thanksgiving */
    mkt_holidays_free(&h);
    cal_row_t two[2] = {row("A", "2026-10-01", EARN_BMO), row("A", "2026-11-24", EARN_BMO)};
    ASSERT_EQ_INT(mkt_route(&none, tue, two, 2, &why), ROUTE_EARNINGS);      /* any matching row */
}

static void test_calendar_cache(void) {
    calendar_t c;
    calendar_init(&c);
    mkt_holidays_t none = {0};
    const char *why;
    ASSERT_EQ_INT(calendar_route(&c, &none, "A", D("2026-11-24"), &why), ROUTE_NORMAL);
    cal_row_t *rows = malloc(3 * sizeof *rows);
    rows[0] = row("ZED", "2026-11-24", EARN_BMO);
    rows[1] = row("A", "2026-11-23", EARN_AMC);
    rows[2] = row("M", "2026-11-24", EARN_AMC);
    calendar_replace(&c, rows, 3);
    ASSERT_EQ_INT(calendar_size(&c), 3);
    ASSERT_EQ_INT(calendar_route(&c, &none, "A", D("2026-11-24"), &why), ROUTE_EARNINGS);
    ASSERT_EQ_INT(calendar_route(&c, &none, "M", D("2026-11-24"), &why), ROUTE_NORMAL);
    ASSERT_EQ_INT(calendar_route(&c, &none, "ZED", D("2026-11-24"), &why), ROUTE_EARNINGS);
    ASSERT_EQ_INT(calendar_route(&c, &none, "B", D("2026-11-24"), &why), ROUTE_NORMAL);
    calendar_replace(&c, NULL, 0); /* a change replaces the cache whole */
    ASSERT_EQ_INT(calendar_route(&c, &none, "A", D("2026-11-24"), &why), ROUTE_NORMAL);
    calendar_destroy(&c);
}

/* ---- breaker and fast layer on a hand-stepped clock ---- */

static int64_t fake_now;
static int64_t fake_clock(void *arg) {
    (void)arg;
    return fake_now;
}

static void test_breaker(void) {
    breaker_t b;
    fake_now = 1000;
    breaker_init(&b, "inference", 10, 30000, fake_clock, NULL);
    for (int i = 0; i < 9; i++) {
        ASSERT_EQ_INT(breaker_allow(&b), 1);
        breaker_failure(&b);
    }
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_CLOSED);
    breaker_success(&b); /* a success resets the count */
    for (int i = 0; i < 9; i++) breaker_failure(&b);
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_CLOSED);
    breaker_failure(&b); /* the 10th in a row */
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_OPEN);
    ASSERT_EQ_INT(breaker_allow(&b), 0);
    fake_now += 29999;
    ASSERT_EQ_INT(breaker_allow(&b), 0);
    fake_now += 1;
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_HALF_OPEN);
    ASSERT_EQ_INT(breaker_allow(&b), 1); /* one trial */
    ASSERT_EQ_INT(breaker_allow(&b), 0); /* not two */
    breaker_failure(&b);                 /* the trial failed: open again for 30 s */
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_OPEN);
    fake_now += 29999;
    ASSERT_EQ_INT(breaker_allow(&b), 0);
    fake_now += 1;
    ASSERT_EQ_INT(breaker_allow(&b), 1);
    breaker_success(&b);
    ASSERT_EQ_INT(breaker_state(&b), BREAKER_CLOSED);
    ASSERT_EQ_INT(breaker_allow(&b), 1);
    ASSERT_EQ_INT(b.opened_total, 2);
    ASSERT_EQ_STR(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
    breaker_destroy(&b);
    breaker_t s;
    breaker_init(&s, "store", 5, 30000, fake_clock, NULL);
    for (int i = 0; i < 4; i++) breaker_failure(&s);
    ASSERT_EQ_INT(breaker_state(&s), BREAKER_CLOSED);
    breaker_failure(&s);
    ASSERT_EQ_INT(breaker_state(&s), BREAKER_OPEN);
    breaker_destroy(&s);
}

static void test_kv_ttl(void) {
    kv_t *kv;
    char err[128];
    fake_now = 5000;
    ASSERT_EQ_INT(kv_open(&kv, "mem", fake_clock, NULL, err, sizeof err), 0);
    ASSERT_EQ_INT(kv_put(kv, "pred:A", "{\"a\":1}", 7, 120000), KV_OK);
    char *v = NULL;
    size_t len = 0;
    int64_t left = 0;
    fake_now += 119999;
    ASSERT_EQ_INT(kv_get(kv, "pred:A", &v, &len, &left), KV_OK);
    ASSERT_EQ_STR(v, "{\"a\":1}");
    ASSERT_EQ_INT(len, 7);
    ASSERT_EQ_INT(left, 1);
    free(v);
    fake_now += 1; /* 120 s after the put */
    ASSERT_EQ_INT(kv_get(kv, "pred:A", &v, &len, &left), KV_NOT_FOUND);
    ASSERT_TRUE(v == NULL);
    ASSERT_EQ_INT(kv_put(kv, "pred:B", "x", 1, 1000), KV_OK);
    fake_now += 500;
    ASSERT_EQ_INT(kv_put(kv, "pred:B", "yy", 2, 1000), KV_OK); /* overwrite renews */
    fake_now += 999;
    ASSERT_EQ_INT(kv_get(kv, "pred:B", &v, &len, NULL), KV_OK);
    ASSERT_EQ_STR(v, "yy");
    free(v);
    ASSERT_EQ_INT(kv_put(kv, "forever", "z", 1, 0), KV_OK);
    fake_now += 1000000000;
    ASSERT_EQ_INT(kv_count(kv), 1);
    ASSERT_EQ_INT(kv_del(kv, "forever"), KV_OK);
    ASSERT_EQ_INT(kv_del(kv, "forever"), KV_NOT_FOUND);
    /* many keys: the table grows and keeps them all */
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "pred:S%d", i);
        ASSERT_EQ_INT(kv_put(kv, key, key, strlen(key), 60000), KV_OK);
    }
    ASSERT_EQ_INT(kv_count(kv), 5000);
    ASSERT_EQ_INT(kv_get(kv, "pred:S4321", &v, &len, NULL), KV_OK);
    ASSERT_EQ_STR(v, "pred:S4321");
    free(v);
    kv_set_down(kv, 1); /* failure injection */
    ASSERT_EQ_INT(kv_get(kv, "pred:S4321", &v, &len, NULL), KV_ERR_DOWN);
    ASSERT_EQ_INT(kv_put(kv, "pred:X", "1", 1, 1000), KV_ERR_DOWN);
    ASSERT_EQ_INT(kv_count(kv), -1);
    kv_set_down(kv, 0);
    ASSERT_EQ_INT(kv_get(kv, "pred:X", &v, &len, NULL), KV_NOT_FOUND);
    fake_now += 60000; /* all expire */
    ASSERT_EQ_INT(kv_count(kv), 0);
    kv_free(kv);
    ASSERT_EQ_INT(kv_open(&kv, "redis", NULL, NULL, err, sizeof err), -1);
}

/* ---- feature window ---- */

static feat_row_t frow(const char *sym, int64_t ts, float v, int earn) {
    feat_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.symbol, sizeof r.symbol, "%s", sym);
    r.ts_ms = ts;
    r.price = 10.0 + (double)ts;
    for (int i = 0; i < MKT_TECH; i++) r.tech[i] = v + (float)i / 100.0f;
    for (int i = 0; earn && i < MKT_EARN; i++) r.earn[i] = -v;
    r.has_earn = earn;
    return r;
}

static void test_feature_window(void) {
    features_t f;
    ASSERT_EQ_INT(features_init(&f, 3), 0);
    feat_row_t rows[] = {frow("A", 2, 2, 1), frow("A", 1, 1, 1), frow("A", 4, 4, 0), frow("A", 3, 3, 1),
                         frow("B", 7, 7, 0)};
    ASSERT_EQ_INT(features_apply(&f, rows, 5), 0);
    float x[3 * 37];
    feat_window_info_t info;
    /* A kept 2, 3, 4 (the newest 3), oldest first */
    ASSERT_EQ_INT(features_window(&f, "A", MKT_TECH, 3, x, &info), 0);
    ASSERT_EQ_INT(info.have, 3);
    ASSERT_NEAR(x[0], 2.0, 0);
    ASSERT_NEAR(x[MKT_TECH], 3.0, 0);
    ASSERT_NEAR(x[2 * MKT_TECH], 4.0, 0);
    ASSERT_NEAR(x[2 * MKT_TECH + 19], 4.19f, 0);
    ASSERT_NEAR(info.price, 14.0, 0);
    ASSERT_EQ_INT(info.ts_ms, 4);
    /* earnings width: vector 4 has none -> zeros, counted */
    ASSERT_EQ_INT(features_window(&f, "A", MKT_TECH + MKT_EARN, 3, x, &info), 0);
    ASSERT_EQ_INT(info.earn_missing, 1);
    ASSERT_NEAR(x[MKT_TECH], -2.0, 0);
    ASSERT_NEAR(x[37 + MKT_TECH + 16], -3.0, 0);
    ASSERT_NEAR(x[2 * 37 + MKT_TECH], 0.0, 0);
    /* the last 2 only */
    ASSERT_EQ_INT(features_window(&f, "A", MKT_TECH, 2, x, &info), 0);
    ASSERT_NEAR(x[0], 3.0, 0);
    /* an older vector than a full window's oldest is dropped; the same timestamp replaces */
    feat_row_t more[] = {frow("A", 1, 100, 0), frow("A", 3, 33, 1)};
    features_apply(&f, more, 2);
    features_window(&f, "A", MKT_TECH, 3, x, &info);
    ASSERT_NEAR(x[0], 2.0, 0);
    ASSERT_NEAR(x[MKT_TECH], 33.0, 0);
    /* too few: have < want, x untouched */
    x[0] = -7;
    ASSERT_EQ_INT(features_window(&f, "B", MKT_TECH, 3, x, &info), 0);
    ASSERT_EQ_INT(info.have, 1);
    ASSERT_NEAR(x[0], -7.0, 0);
    ASSERT_EQ_INT(features_window(&f, "NOPE", MKT_TECH, 3, x, &info), 1);
    char **syms;
    size_t n;
    ASSERT_EQ_INT(features_symbols(&f, &syms, &n), 0);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_STR(syms[0], "A");
    ASSERT_EQ_STR(syms[1], "B");
    free(syms);
    /* many symbols: the table grows */
    for (int i = 0; i < 3000; i++) {
        char s[16];
        snprintf(s, sizeof s, "S%04d", i);
        feat_row_t r = frow(s, i, (float)i, 0);
        features_apply(&f, &r, 1);
    }
    ASSERT_EQ_INT(features_count(&f), 3002);
    ASSERT_EQ_INT(features_window(&f, "S2999", MKT_TECH, 1, x, &info), 0);
    ASSERT_NEAR(x[0], 2999.0, 0);
    features_destroy(&f);
}

/* ---- input validation ---- */

static void expect_bad(const char *json, const char *field) {
    json_error_t je;
    json_t *doc = json_loads(json, 0, &je);
    ASSERT_TRUE(doc != NULL);
    feat_row_t *rows = NULL;
    size_t n = 0;
    mkt_input_error_t e;
    memset(&e, 0, sizeof e);
    int rc = mkt_features_from_json(doc, &rows, &n, &e);
    json_decref(doc);
    ASSERT_EQ_INT(rc, -1);
    ASSERT_TRUE(rows == NULL);
    ASSERT_EQ_STR(e.field, field);
}

#define T20 "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]"
#define T19 "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18]"
#define E17 "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]"

static void test_features_json(void) {
    json_error_t je;
    json_t *doc = json_loads("[{\"symbol\":\"BRK.B\",\"timestamp\":\"2026-11-24T15:30:00Z\",\"price\":412.5,"
                             "\"technical\":" T20 ",\"earnings\":" E17 "},"
                             "{\"symbol\":\"A\",\"timestamp\":1764000000.5,\"price\":1,\"technical\":" T20
                             ",\"earnings\":null}]",
                             0, &je);
    feat_row_t *rows;
    size_t n;
    mkt_input_error_t e;
    ASSERT_EQ_INT(mkt_features_from_json(doc, &rows, &n, &e), 0);
    json_decref(doc);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_STR(rows[0].symbol, "BRK.B");
    ASSERT_EQ_INT(rows[0].ts_ms, (int64_t)(D("2026-11-24")) * 86400000 + (15 * 3600 + 30 * 60) * 1000LL);
    ASSERT_EQ_INT(rows[0].has_earn, 1);
    ASSERT_NEAR(rows[0].earn[16], 16.0, 0);
    ASSERT_EQ_INT(rows[1].ts_ms, 1764000000500LL);
    ASSERT_EQ_INT(rows[1].has_earn, 0);
    free(rows);
    expect_bad("{}", "");
    expect_bad("[]", "");
    expect_bad("[1]", "[0]");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":" T20 ",\"volume\":3}]", "[0].volume");
    expect_bad("[{\"timestamp\":1,\"price\":1,\"technical\":" T20 "}]", "[0].symbol");
    expect_bad("[{\"symbol\":\"A B\",\"timestamp\":1,\"price\":1,\"technical\":" T20 "}]", "[0].symbol");
    expect_bad("[{\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"timestamp\":1,\"price\":1,\"technical\":" T20 "}]",
               "[0].symbol");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":\"yesterday\",\"price\":1,\"technical\":" T20 "}]", "[0].timestamp");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":-5,\"price\":1,\"technical\":" T20 "}]", "[0].timestamp");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":0,\"technical\":" T20 "}]", "[0].price");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":\"1\",\"technical\":" T20 "}]", "[0].price");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":" T19 "}]", "[0].technical");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1}]", "[0].technical");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":[0,1,2,1e39,4,5,6,7,8,9,10,11,12,13,"
               "14,15,16,17,18,19]}]",
               "[0].technical[3]");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":[0,1,2,\"3\",4,5,6,7,8,9,10,11,12,13,"
               "14,15,16,17,18,19]}]",
               "[0].technical[3]");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":" T20 ",\"earnings\":" T20 "}]",
               "[0].earnings");
    expect_bad("[{\"symbol\":\"A\",\"timestamp\":1,\"price\":1,\"technical\":" T20 "},"
               "{\"symbol\":\"B\",\"timestamp\":1,\"price\":1e39,\"technical\":" T20 "}]",
               "[1].price");
}

static void test_features_csv(void) {
    char csv[4096];
    int k = snprintf(csv, sizeof csv, "symbol,timestamp,price");
    for (int i = 0; i < 20; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",t%d", i);
    for (int i = 0; i < 17; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",e%d", i);
    k += snprintf(csv + k, sizeof csv - (size_t)k, "\nAAPL,2026-11-24T15:30:00Z,190.5");
    for (int i = 0; i < 20; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",%d.5", i);
    for (int i = 0; i < 17; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",");
    k += snprintf(csv + k, sizeof csv - (size_t)k, "\nMSFT,1764000000,400");
    for (int i = 0; i < 20; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",1");
    for (int i = 0; i < 17; i++) k += snprintf(csv + k, sizeof csv - (size_t)k, ",-%d", i);
    snprintf(csv + k, sizeof csv - (size_t)k, "\n");
    feat_row_t *rows;
    buf_t errors = {0};
    ASSERT_EQ_INT(mkt_features_from_csv(csv, strlen(csv), &rows, &errors, 10), 2);
    ASSERT_EQ_STR(rows[0].symbol, "AAPL");
    ASSERT_NEAR(rows[0].tech[19], 19.5, 0);
    ASSERT_EQ_INT(rows[0].has_earn, 0);
    ASSERT_EQ_INT(rows[1].has_earn, 1);
    ASSERT_NEAR(rows[1].earn[16], -16.0, 0);
    ASSERT_EQ_INT(rows[1].ts_ms, 1764000000000LL);
    free(rows);
    /* a bad cell: reported by line, nothing returned */
    char *bad = strdup(csv);
    char *p = strstr(bad, "MSFT,1764000000,400");
    memcpy(p, "MSFT,1764000000,abc", 19);
    ASSERT_EQ_INT(mkt_features_from_csv(bad, strlen(bad), &rows, &errors, 10), -1);
    ASSERT_TRUE(rows == NULL);
    ASSERT_TRUE(strstr(errors.data, "line 3: price 'abc'") != NULL);
    free(bad);
    buf_reset(&errors);
    const char *hdr = "symbol,timestamp,price,t0\nA,1,1,1\n";
    ASSERT_EQ_INT(mkt_features_from_csv(hdr, strlen(hdr), &rows, &errors, 10), -1);
    ASSERT_TRUE(strstr(errors.data, "line 1: missing column t1") != NULL);
    buf_reset(&errors);
    const char *unk = "symbol,timestamp,price,volume\n";
    ASSERT_EQ_INT(mkt_features_from_csv(unk, strlen(unk), &rows, &errors, 10), -1);
    ASSERT_TRUE(strstr(errors.data, "unknown column 'volume'") != NULL);
    buf_free(&errors);
}

static void test_calendar_input(void) {
    json_error_t je;
    json_t *doc = json_loads("[{\"symbol\":\"A\",\"date\":\"2026-11-24\",\"time\":\"bmo\"},"
                             "{\"symbol\":\"B\",\"date\":\"2026-11-23\",\"time\":\"amc\"}]", 0, &je);
    cal_row_t *rows;
    size_t n;
    mkt_input_error_t e;
    ASSERT_EQ_INT(mkt_calendar_from_json(doc, &rows, &n, &e), 0);
    json_decref(doc);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(rows[1].date, D("2026-11-23"));
    ASSERT_EQ_INT(rows[1].time, EARN_AMC);
    free(rows);
    const char *bad[][2] = {
        {"[{\"symbol\":\"A\",\"date\":\"2026-02-30\",\"time\":\"bmo\"}]", "[0].date"},
        {"[{\"symbol\":\"A\",\"date\":\"2026-11-24\",\"time\":\"noon\"}]", "[0].time"},
        {"[{\"symbol\":\"A\",\"date\":\"2026-11-24\"}]", "[0].time"},
        {"[{\"symbol\":\"A\",\"date\":\"2026-11-24\",\"time\":\"bmo\",\"eps\":1}]", "[0].eps"},
        {"[{\"symbol\":\"\",\"date\":\"2026-11-24\",\"time\":\"bmo\"}]", "[0].symbol"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = json_loads(bad[i][0], 0, &je);
        rows = NULL;
        ASSERT_EQ_INT(mkt_calendar_from_json(doc, &rows, &n, &e), -1);
        json_decref(doc);
        ASSERT_EQ_STR(e.field, bad[i][1]);
    }
    const char *csv = "time,symbol,date\nbmo,A,2026-11-24\namc,B,2026-11-23\n";
    buf_t errors = {0};
    ASSERT_EQ_INT(mkt_calendar_from_csv(csv, strlen(csv), &rows, &errors, 10), 2);
    ASSERT_EQ_STR(rows[1].symbol, "B");
    ASSERT_EQ_INT(rows[0].time, EARN_BMO);
    free(rows);
    const char *bad_csv = "symbol,date,time\nA,2026-11-24,bmo\nB,24/11/2026,amc\n";
    ASSERT_EQ_INT(mkt_calendar_from_csv(bad_csv, strlen(bad_csv), &rows, &errors, 10), -1);
    ASSERT_TRUE(strstr(errors.data, "line 3: date '24/11/2026'") != NULL);
    buf_free(&errors);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_dates),         TEST_CASE(test_trading_days),  TEST_CASE(test_today_in_the_exchange_zone),  TEST_CASE(test_router_rule),
        TEST_CASE(test_calendar_cache), TEST_CASE(test_breaker),      TEST_CASE(test_kv_ttl),
        TEST_CASE(test_feature_window), TEST_CASE(test_features_json), TEST_CASE(test_features_csv),
        TEST_CASE(test_calendar_input),
    };
    return test_main("market", cases, (int)(sizeof cases / sizeof cases[0]));
}
