/* core/util: durations, JSON number/string output, job ids. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/fmt_double_int.h"
#include "core/util.h"
#include "test.h"

static double dur(const char *s, int *rc) {
    double v = -12345;
    *rc = parse_duration_s(s, &v);
    return v;
}

static void test_duration_units(void) {
    int rc;
    ASSERT_NEAR(dur("90s", &rc), 90.0, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("30m", &rc), 30.0 * 60, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("24h", &rc), 24.0 * 3600, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("7d", &rc), 7.0 * 86400, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("1.5h", &rc), 1.5 * 3600, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("0s", &rc), 0.0, 0); ASSERT_EQ_INT(rc, 0);
}

static void test_duration_bare_number_is_seconds(void) {
    int rc;
    ASSERT_NEAR(dur("42", &rc), 42.0, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("0.25", &rc), 0.25, 0); ASSERT_EQ_INT(rc, 0);
    ASSERT_NEAR(dur("0", &rc), 0.0, 0); ASSERT_EQ_INT(rc, 0);
}

static void test_duration_rejects_malformed(void) {
    const char *bad[] = {"abc", "-5s", "", "   ", "5x", "h", "5 hours", "nan", "inf", "-1", "1.5hh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 7;
        int rc = parse_duration_s(bad[i], &v);
        if (rc != -1) fprintf(stderr, "parse_duration_s(\"%s\") accepted: %g\n", bad[i], v);
        ASSERT_EQ_INT(rc, -1);
    }
    double v;
    ASSERT_EQ_INT(parse_duration_s(NULL, &v), -1);
}

static void test_json_double_round_trips(void) {
    const double vals[] = {0.0, 1.0, -2.5, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e-300, 5e-324, DBL_MAX,
                           -DBL_MIN, 123456789.123456789, 0.30000000000000004, 1e21, 6.02214076e23};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        buf_t b = {0};
        buf_json_double(&b, vals[i]);
        ASSERT_TRUE(!b.oom && b.data);
        char *end;
        double back = strtod(b.data, &end);
        ASSERT_TRUE(*end == 0);
        if (back != vals[i]) fprintf(stderr, "%.17g printed as %s\n", vals[i], b.data);
        ASSERT_TRUE(back == vals[i]);
        buf_free(&b);
    }
}

/* The fast formatter against the C library: every output reads back as the same double,
 * and is never longer in significant digits than the shortest of %.15g/%.16g/%.17g that
 * round-trips (so it is the shortest form up to 17 digits). 400,000 values from a fixed
 * xorshift stream: uniform in [0,1), wide exponents, integers, and ties of short decimals. */
static int sig_digits(const char *s) {
    int n = 0, lead = 1, trail = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9') continue;
        if (lead && *s == '0') continue;
        lead = 0;
        n++;
        trail = *s == '0' ? trail + 1 : 0;
    }
    return n - trail;
}

static void test_json_double_random_round_trips(void) {
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    buf_t b = {0};
    for (int i = 0; i < 400000; i++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        double v;
        switch (i % 4) {
        case 0: v = (double)(st >> 11) * 0x1p-53; break;
        case 1: v = ldexp((double)(st >> 11) * 0x1p-53 + 0.5, (int)(st % 120) - 60); break;
        case 2: v = (double)(int64_t)(st >> 20) - (double)(1LL << 43); break;
        default: v = (double)(st % 100000) / 1000.0; break;
        }
        if (st & 1) v = -v;
        buf_reset(&b);
        buf_json_double(&b, v);
        char *end;
        double back = strtod(b.data, &end);
        if (back != v || *end) fprintf(stderr, "%.17g printed as %s\n", v, b.data);
        ASSERT_TRUE(back == v && *end == 0);
        char ref[40];
        int p;
        for (p = 15; p < 17; p++) {
            snprintf(ref, sizeof ref, "%.*g", p, v);
            if (strtod(ref, NULL) == v) break;
        }
        snprintf(ref, sizeof ref, "%.*g", p, v);
        if (sig_digits(b.data) > sig_digits(ref)) fprintf(stderr, "%s longer than %s\n", b.data, ref);
        ASSERT_TRUE(sig_digits(b.data) <= sig_digits(ref));
    }
    buf_free(&b);
}

/* The three floor(log) formulas of the formatter, for every exponent they can be asked
 * about, against long double logarithms (|q| <= 1100: q log10 2 is never within 1e-4 of an
 * integer there except at q = 0, far above long double's error). */
static void test_fmt_double_log_formulas(void) {
    for (int q = -1100; q <= 1100; q++) {
        ASSERT_EQ_INT(fmt_flog10_pow2(q), (int)floorl((long double)q * log10l(2.0L)));
        ASSERT_EQ_INT(fmt_flog10_34_pow2(q), (int)floorl((long double)q * log10l(2.0L) + log10l(0.75L)));
        ASSERT_EQ_INT(fmt_flog2_pow10(q), (int)floorl((long double)q * log2l(10.0L)));
    }
}

/* The shortest significant-digit count that reads back as v, from the C library: %.{p-1}e for
 * p = 1 .. 17. */
static int libc_shortest(double v) {
    char ref[40];
    for (int p = 1; p < 17; p++) {
        snprintf(ref, sizeof ref, "%.*e", p - 1, v);
        if (strtod(ref, NULL) == v) return p;
    }
    return 17;
}

/* One value: reads back, and is exactly as short as the shortest correctly rounded %.{p-1}e
 * that reads back (shorter only at powers of two, see below). */
static int check_shortest(double v) {
    char out[FMT_DOUBLE_ROOM];
    int n = fmt_double_shortest(v, out);
    char *end;
    double back = strtod(out, &end);
    if (n != (int)strlen(out) || *end || back != v) {
        fprintf(stderr, "%.17g (%a) printed as \"%s\"\n", v, v, out);
        return 0;
    }
    int p = libc_shortest(v), got = sig_digits(out);
    /* fewer digits than the library's nearest rounding is right only at a power of two, where
     * the interval's lower half is half as wide: the nearest decimal of p - 1 digits can fall
     * below it while the next one up is inside */
    int pow2 = frexp(fabs(v), &(int){0}) == 0.5;
    if (v != 0 && (got > p || (got < p && !pow2))) {
        fprintf(stderr, "%.17g (%a) printed as \"%s\": %d digits, shortest is %d\n", v, v, out, got, p);
        return 0;
    }
    return 1;
}

static void test_fmt_double_shortest_random_bits(void) {
    /* uniform over the bit patterns of finite doubles: every exponent, normal and subnormal */
    uint64_t st = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < 300000; i++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        double v;
        uint64_t bits = st;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        ASSERT_TRUE(check_shortest(v));
    }
}

static void test_fmt_double_shortest_edges(void) {
    /* around every power of two (the interval's lower half is halved at c = 2^52), every power
     * of ten (exact decimals, the coarse grid), the ends of the range, integers near 2^53 */
    for (int e = -1074; e <= 1023; e++) {
        double p = ldexp(1.0, e);
        ASSERT_TRUE(check_shortest(p));
        ASSERT_TRUE(check_shortest(nextafter(p, 0)));
        ASSERT_TRUE(check_shortest(nextafter(p, INFINITY)));
    }
    for (int e = -323; e <= 308; e++) {
        char s[16];
        snprintf(s, sizeof s, "1e%d", e);
        double p = strtod(s, NULL);
        ASSERT_TRUE(check_shortest(p));
        ASSERT_TRUE(check_shortest(nextafter(p, 0)));
        ASSERT_TRUE(check_shortest(nextafter(p, INFINITY)));
        if (isfinite(-3 * p)) ASSERT_TRUE(check_shortest(-3 * p));
    }
    const double vals[] = {DBL_MAX, DBL_MIN, 5e-324, 2.2250738585072009e-308, 9007199254740992.0,
                           9007199254740993.0, 9007199254740991.0, 1e23, 8.41e21, 5e-310, 0.3,
                           2.98023223876953125e-8, 1.9567681139809767e-08, 123456789012345680.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) ASSERT_TRUE(check_shortest(vals[i]));
    for (int64_t i = -100000; i <= 100000; i += 7) ASSERT_TRUE(check_shortest((double)i));
    char out[FMT_DOUBLE_ROOM];
    fmt_double_shortest(1e-7, out);
    ASSERT_EQ_STR(out, "1e-07");
    fmt_double_shortest(1.5e300, out);
    ASSERT_EQ_STR(out, "1.5e+300");
    fmt_double_shortest(-0.00012, out);
    ASSERT_EQ_STR(out, "-0.00012");
    fmt_double_shortest(1e16, out);
    ASSERT_EQ_STR(out, "10000000000000000");
    fmt_double_shortest(1e17, out);
    ASSERT_EQ_STR(out, "1e+17");
    fmt_double_shortest(123.25, out);
    ASSERT_EQ_STR(out, "123.25");
    fmt_double_shortest(-0.0, out);
    ASSERT_EQ_STR(out, "-0");
    ASSERT_EQ_INT(fmt_double_shortest(NAN, out), -1);
}

static void test_json_double_short_forms(void) {
    buf_t b = {0};
    buf_json_double(&b, 0.1);
    ASSERT_EQ_STR(b.data, "0.1");
    buf_reset(&b);
    buf_json_double(&b, 1.0);
    ASSERT_EQ_STR(b.data, "1");
    buf_reset(&b);
    buf_json_double(&b, -2.5);
    ASSERT_EQ_STR(b.data, "-2.5");
    buf_free(&b);
}

static void test_json_double_nonfinite_is_null(void) {
    buf_t b = {0};
    buf_json_double(&b, NAN);
    buf_putc(&b, ',');
    buf_json_double(&b, INFINITY);
    buf_putc(&b, ',');
    buf_json_double(&b, -INFINITY);
    ASSERT_EQ_STR(b.data, "null,null,null");
    buf_free(&b);
}

static void test_json_str_escapes(void) {
    buf_t b = {0};
    const char s[] = "a\"b\\c\nd\te\x01" "f\xc3\xa9";
    buf_json_str(&b, s, sizeof s - 1);
    ASSERT_EQ_STR(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9\"");
    buf_reset(&b);
    buf_json_str(&b, "x\0y", 3); /* embedded NUL is escaped, not a terminator */
    ASSERT_EQ_STR(b.data, "\"x\\u0000y\"");
    buf_free(&b);
}

static void test_buf_grows_and_steals(void) {
    buf_t b = {0};
    for (int i = 0; i < 10000; i++) buf_printf(&b, "%d,", i % 10);
    ASSERT_EQ_INT(b.len, 20000);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    buf_printf(&b, "%s", big); /* longer than buf_printf's stack buffer */
    ASSERT_EQ_INT(b.len, 20000 + 1999);
    ASSERT_TRUE(b.data[b.len] == 0);
    ASSERT_TRUE(b.data[b.len - 1] == 'x');
    size_t len = b.len;
    char *p = buf_steal(&b);
    ASSERT_EQ_INT(strlen(p), len);
    ASSERT_TRUE(b.data == NULL && b.len == 0);
    free(p);
    buf_t e = {0};
    p = buf_steal(&e); /* an empty buffer steals as "" */
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ_STR(p, "");
    free(p);
    buf_free(&b);
}

static void test_job_ids_sortable_and_unique(void) {
    enum { N = 5000 };
    static char ids[N][32];
    for (int i = 0; i < N; i++) make_job_id(ids[i]);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_INT(strlen(ids[i]), 26);
        ASSERT_TRUE(strncmp(ids[i], "JOB-", 4) == 0);
        for (int k = 4; k < 26; k++) ASSERT_TRUE(strchr("0123456789abcdef", ids[i][k]) != NULL);
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fprintf(stderr, "not increasing: %s then %s\n", ids[i - 1], ids[i]);
        if (i > 0) ASSERT_TRUE(strcmp(ids[i - 1], ids[i]) < 0);
    }
    /* the first 12 hex digits are the creation time in ms */
    char a[32];
    int64_t before = now_ms();
    make_job_id(a);
    int64_t after = now_ms();
    long long ms = strtoll((char[13]){a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], 0}, NULL, 16);
    ASSERT_TRUE(ms >= before - 1000 && ms <= after + 1000);
}

static void test_iso8601(void) {
    char out[32];
    iso8601_ms(0, out, sizeof out);
    ASSERT_EQ_STR(out, "1970-01-01T00:00:00.000Z");
    /* 2026-11-24T10:00:00.123Z = 1795514400 s since the epoch (+123 ms) */
    iso8601_ms(1795514400123LL, out, sizeof out);
    ASSERT_EQ_STR(out, "2026-11-24T10:00:00.123Z");
}

static void test_fnv1a_known_values(void) {
    /* FNV-1a 64 reference values: "" -> offset basis, "a" -> 0xaf63dc4c8601ec8c */
    ASSERT_TRUE(hash_fnv1a("", 0, 0) == 0xcbf29ce484222325ULL);
    ASSERT_TRUE(hash_fnv1a("a", 1, 0) == 0xaf63dc4c8601ec8cULL);
    ASSERT_TRUE(hash_fnv1a("foobar", 6, 0) == 0x85944171f73967e8ULL);
}

static void test_clocks_advance(void) {
    int64_t a = mono_ms();
    double s = mono_s();
    ASSERT_TRUE(a > 0 && s > 0);
    ASSERT_TRUE(now_ms() > 1700000000000LL);
    ASSERT_TRUE(mono_ms() >= a);
    ASSERT_TRUE(cpu_count() >= 1);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_duration_units),
        TEST_CASE(test_duration_bare_number_is_seconds),
        TEST_CASE(test_duration_rejects_malformed),
        TEST_CASE(test_json_double_round_trips),
        TEST_CASE(test_json_double_short_forms),
        TEST_CASE(test_json_double_random_round_trips),
        TEST_CASE(test_json_double_nonfinite_is_null),
        TEST_CASE(test_fmt_double_log_formulas),
        TEST_CASE(test_fmt_double_shortest_random_bits),
        TEST_CASE(test_fmt_double_shortest_edges),
        TEST_CASE(test_json_str_escapes),
        TEST_CASE(test_buf_grows_and_steals),
        TEST_CASE(test_job_ids_sortable_and_unique),
        TEST_CASE(test_iso8601),
        TEST_CASE(test_fnv1a_known_values),
        TEST_CASE(test_clocks_advance),
    };
    return test_main("util", cases, (int)(sizeof cases / sizeof cases[0]));
}
