/* Minimal unit-test helpers: each TEST is a function; failures print both values.
 * A test binary prints "N passed, N failed" and exits non-zero when any failed. */
#ifndef PREDICTD_TEST_H
#define PREDICTD_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int t_failed_checks;

#define ASSERT_TRUE(c) do { if (!(c)) { fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #c); t_failed_checks++; return; } } while (0)
#define ASSERT_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); if (_a != _b) { fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, _a, #b, _b); t_failed_checks++; return; } } while (0)
#define ASSERT_EQ_STR(a, b) do { const char *_a = (a), *_b = (b); if (!_a || !_b || strcmp(_a, _b)) { fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)"); t_failed_checks++; return; } } while (0)
#define ASSERT_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(fabs(_a - _b) <= (tol))) { fprintf(stderr, "%s:%d: %s == %.17g, expected %.17g (tol %g)\n", __FILE__, __LINE__, #a, _a, _b, (double)(tol)); t_failed_checks++; return; } } while (0)

typedef struct { const char *name; void (*fn)(void); } test_case_t;

static int test_main(const char *suite, const test_case_t *cases, int n) {
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int before = t_failed_checks;
        cases[i].fn();
        if (t_failed_checks == before) { passed++; printf("ok   %s.%s\n", suite, cases[i].name); }
        else { failed++; printf("FAIL %s.%s\n", suite, cases[i].name); }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#define TEST_CASE(f) { #f, f }

#endif
