/* The shortest decimal that reads back as the same double, for JSON output.
 *
 * The method is Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020): for
 * v = c 2^q, the rounding interval of v (the reals that read back as v) is
 * [v - 2^(q-1), v + 2^(q-1)] (its lower half is half as wide when c = 2^52: the double below
 * is closer); with k = floor(log10 of the interval's width), the grid 10^k holds at least one
 * point of the interval and the grid 10^(k+1) at most one. So: the one point of the coarse
 * grid when there is one (fewer digits), else the point of the fine grid closest to v. The
 * scaling by 10^-k uses a 126-bit g(-k) from a table (fmt_double_tab.c) and keeps the product
 * rounded to odd ("sticky" lowest bit), which is exactly enough for every comparison below to
 * be the comparison of the real numbers (the paper proves it for all doubles; the unit tests
 * check millions of values against the C library). Integers below 2^53 and subnormals take
 * their own paths. About 10x fewer instructions than the 15/16/17-digit search it replaces,
 * and it covers every exponent, where that one fell back to printf + strtod outside
 * [1e-9, 1e17) (tiny Ising rates are common). */
#include "core/fmt_double_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef unsigned __int128 u128_t;

#define MASK63 ((1ULL << 63) - 1)

/* floor(g cp / 2^127) with its lowest bit set when the division is inexact, g = g1 2^63 + g0;
 * the bits below 2^-63 are dropped on purpose (they are the table's own error). */
static inline uint64_t round_to_odd(uint64_t g1, uint64_t g0, uint64_t cp) {
    const uint64_t x1 = (uint64_t)(((u128_t)g0 * cp) >> 64);
    const u128_t y = (u128_t)g1 * cp;
    const uint64_t y0 = (uint64_t)y, y1 = (uint64_t)(y >> 64);
    const uint64_t z = (y0 >> 1) + x1;
    const uint64_t vbp = y1 + (z >> 63);
    return vbp | (((z & MASK63) + MASK63) >> 63);
}

static const char DIGIT_PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Lays out f 10^e10 (f > 0 without trailing zeros) the way %.17g does: fixed notation for
 * a first-digit exponent in [-4, 17), else d.ddde-XX. Returns the length. Writes up to
 * FMT_DOUBLE_ROOM bytes into out (fixed-size copies: the bytes past the returned length are
 * scratch), so that no copy has a variable length. */
/* x < 10000 as four digits; x < 10^8 as eight: 32-bit multiplications only. */
static inline void put4(char *p, uint32_t x) {
    const uint32_t hi = (x * 5243) >> 19; /* x / 100 for x < 43699 */
    memcpy(p, DIGIT_PAIRS + 2 * hi, 2);
    memcpy(p + 2, DIGIT_PAIRS + 2 * (x - hi * 100), 2);
}

static inline void put8(char *p, uint32_t x) {
    const uint32_t hi = x / 10000;
    put4(p, hi);
    put4(p + 4, x - hi * 10000);
}

static const uint64_t POW10[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
    10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

static int layout(uint64_t f, int e10, int neg, char *out) {
    /* f < 10^17 (the shortest of a double has at most 17 digits): 20 digits, zeros in front */
    char dig[48] = {0};
    const uint64_t q = f / 100000000;
    const uint32_t a = (uint32_t)(q / 100000000);
    put4(dig, a);
    put8(dig + 4, (uint32_t)(q - (uint64_t)a * 100000000));
    put8(dig + 12, (uint32_t)(f - q * 100000000));
    char *const end = dig + 20;
    int nd = ((64 - __builtin_clzll(f)) * 1233) >> 12; /* digits, or one less */
    nd += f >= POW10[nd];
    const char *t = end - nd;
    const int x = e10 + nd - 1; /* exponent of the first digit */
    char *p = out;
    *p = '-';
    p += neg;
    if (x >= -4 && x < 17) {
        if (x < 0) { /* 0.000ddd */
            memcpy(p, "0.000000", 8);
            p += 1 - x;
            memcpy(p, t, 24);
            p += nd;
        } else if (x >= nd - 1) { /* ddd000 */
            memcpy(p, t, 24);
            memcpy(p + nd, "0000000000000000", 16);
            p += x + 1;
        } else { /* dd.ddd */
            memcpy(p, t, 24);
            p[x + 1] = '.';
            memcpy(p + x + 2, t + x + 1, 24);
            p += nd + 1;
        }
    } else {
        p[0] = t[0];
        p[1] = '.';
        memcpy(p + 2, t + 1, 24);
        p += nd > 1 ? nd + 1 : 1;
        *p++ = 'e';
        int ax = x;
        *p++ = x < 0 ? '-' : '+';
        if (x < 0) ax = -x;
        if (ax >= 100) { *p++ = (char)('0' + ax / 100); ax %= 100; }
        memcpy(p, DIGIT_PAIRS + 2 * ax, 2);
        p += 2;
    }
    *p = 0;
    return (int)(p - out);
}

/* Subnormals (never produced by our models, but a double is a double): the shortest of
 * %.1e .. %.17e that reads back, re-laid out like the others. */
static int slow_path(double v, char *out) {
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v || prec == 17) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    const char *s = tmp;
    int neg = *s == '-';
    if (neg) s++;
    uint64_t f = 0;
    int nfrac = 0, seen_dot = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s == '.') { seen_dot = 1; continue; }
        f = f * 10 + (uint64_t)(*s - '0');
        nfrac += seen_dot;
    }
    int e10 = (*s == 'e' ? atoi(s + 1) : 0) - nfrac;
    while (f % 10 == 0) { f /= 10; e10++; }
    return layout(f, e10, neg, out);
}

int fmt_double_shortest(double v, char *out) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    const int neg = (int)(bits >> 63);
    const int be = (int)((bits >> 52) & 0x7ff);
    const uint64_t frac = bits & ((1ULL << 52) - 1);
    if (be == 0x7ff) return -1;
    if (be == 0) {
        if (frac == 0) {
            if (neg) { memcpy(out, "-0", 3); return 2; }
            memcpy(out, "0", 2);
            return 1;
        }
        return slow_path(v, out);
    }
    const uint64_t c = frac | (1ULL << 52);
    const int q = be - 1075;
    uint64_t f;
    int e10;
    if (q <= 0 && q >= -52 && (c & ((1ULL << -q) - 1)) == 0) {
        f = c >> -q; /* an integer below 2^53: its own digits */
        e10 = 0;
    } else {
        const uint64_t out_open = c & 1; /* odd c: the interval's ends do not read back as v */
        const uint64_t cb = c << 2, cbr = cb + 2;
        uint64_t cbl;
        int k;
        if (c != 1ULL << 52 || be == 1) {
            cbl = cb - 2;
            k = fmt_flog10_pow2(q);
        } else {
            cbl = cb - 1;
            k = fmt_flog10_34_pow2(q);
        }
        const int h = q + fmt_flog2_pow10(-k) + 2;
        const uint64_t *g = FMT_POW10_G[-k - FMT_POW10_MIN];
        const uint64_t vb = round_to_odd(g[0], g[1], cb << h);
        const uint64_t vbl = round_to_odd(g[0], g[1], cbl << h);
        const uint64_t vbr = round_to_odd(g[0], g[1], cbr << h);
        const uint64_t s = vb >> 2;
        const uint64_t sp10 = s / 10 * 10, tp10 = sp10 + 10;
        const int upin = vbl + out_open <= sp10 << 2, wpin = (tp10 << 2) + out_open <= vbr;
        if (upin != wpin) {
            f = upin ? sp10 : tp10;
        } else {
            const uint64_t t = s + 1;
            const int uin = vbl + out_open <= s << 2, win = (t << 2) + out_open <= vbr;
            if (uin != win) {
                f = uin ? s : t;
            } else {
                const int64_t cmp = (int64_t)(vb - ((s + t) << 1));
                f = cmp < 0 || (cmp == 0 && (s & 1) == 0) ? s : t;
            }
        }
        e10 = k;
    }
    while (f % 10 == 0) { f /= 10; e10++; }
    return layout(f, e10, neg, out);
}
