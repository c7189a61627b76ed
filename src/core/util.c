#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void buf_reset(buf_t *b) { b->len = 0; if (b->data) b->data[0] = 0; }

int buf_reserve(buf_t *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) { b->oom = 1; return -1; }
    b->data = p;
    b->cap = cap;
    return 0;
}

void buf_append(buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_puts(buf_t *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_putc(buf_t *b, char c) {
    if (buf_reserve(b, 1)) return;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}

void buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { buf_append(b, tmp, (size_t)n); return; }
    if (buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_json_str(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n + 2)) return;
    buf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_append(b, s + start, i - start);
        start = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; buf_append(b, esc, 2); break;
        case '\\': esc[1] = '\\'; buf_append(b, esc, 2); break;
        case '\n': esc[1] = 'n'; buf_append(b, esc, 2); break;
        case '\r': esc[1] = 'r'; buf_append(b, esc, 2); break;
        case '\t': esc[1] = 't'; buf_append(b, esc, 2); break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            buf_append(b, esc, 6);
        }
    }
    buf_append(b, s + start, n - start);
    buf_putc(b, '"');
}

/* Shortest of 15, 16 or 17 significant digits that reads back as the same double, exactly,
 * without printf. For |v| in [1e-9, 1e17), v = m * 2^E; r = v * 10^k = m * 5^k * 2^(k+E)
 * with k chosen so r is in [1e16, 1e17). m * 5^k (k <= 26) fits in 128 bits, so r's integer
 * part N and its fraction are exact, and so are the rounding of r to 15, 16 or 17 digits and
 * the test that a candidate lies inside v's rounding interval (the midpoints to its
 * neighbours; an exact tie reads back as v when v's mantissa is even). No floating-point
 * error is involved anywhere, and nothing is guessed. The layout follows %.17g. An order of
 * magnitude faster than printf + strtod, which dominated the results pages of large jobs. */
typedef unsigned __int128 u128_t;

static const unsigned long long P10U[] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
    1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
    1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
    10000000000000000ULL, 100000000000000000ULL};

/* Writes D (nd digits, maybe 10^nd after rounding up) times 10^(x - nd + 1) like %.17g. */
static int fmt_digits(unsigned long long d, int nd, int x, int neg, char *out) {
    if (d >= P10U[nd]) { d /= 10; x++; } /* rounded up to 10^nd: one digit more in front */
    char dig[18];
    for (int i = nd - 1; i >= 0; i--) { dig[i] = (char)('0' + d % 10); d /= 10; }
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    char *p = out;
    if (neg) *p++ = '-';
    if (x >= -4 && x < 17) {
        if (x < 0) {
            *p++ = '0'; *p++ = '.';
            for (int i = -1; i > x; i--) *p++ = '0';
            memcpy(p, dig, (size_t)nd); p += nd;
        } else {
            for (int i = 0; i <= x; i++) *p++ = i < nd ? dig[i] : '0';
            if (nd > x + 1) { *p++ = '.'; memcpy(p, dig + x + 1, (size_t)(nd - x - 1)); p += nd - x - 1; }
        }
    } else {
        *p++ = dig[0];
        if (nd > 1) { *p++ = '.'; memcpy(p, dig + 1, (size_t)(nd - 1)); p += nd - 1; }
        p += sprintf(p, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    }
    *p = 0;
    return (int)(p - out);
}


static int fmt_double_fast(double v, char *out) {
    double a = fabs(v);
    if (a == 0) { if (signbit(v)) { memcpy(out, "-0", 3); return 2; } memcpy(out, "0", 2); return 1; }
    if (!(a >= 1e-9 && a < 1e17)) return -1;
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    const int be = (int)(bits >> 52);
    const uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    const int E = be - 1075;
    const int boundary = m == 1ULL << 52; /* the neighbour below is half as far */
    int x = (int)floor(log10(a));        /* decimal exponent of the first digit, maybe off by one */
    int k = 16 - x;
    uint64_t N = 0, p5 = 1;
    u128_t rem = 0;
    int S = 0, t = 0; /* r = N + rem / 2^S, or r = m 5^k 2^t exactly (t >= 0, rem = 0) */
    for (int tries = 0;; tries++) {
        if (tries == 3 || k < 0 || k > 26) return -1;
        p5 = 1;
        for (int i = 0; i < k; i++) p5 *= 5;
        const u128_t X = (u128_t)m * p5;
        const int sh = -(k + E);
        u128_t q;
        if (sh > 0) {
            if (sh > 64) return -1;
            S = sh; t = 0;
            q = X >> sh;
            rem = X & (((u128_t)1 << sh) - 1);
        } else {
            S = 0; t = -sh;
            if (t > 8) return -1;
            q = X << t;
            rem = 0;
        }
        if (q >= (u128_t)P10U[17]) { k--; x++; continue; }
        if (q < (u128_t)P10U[16]) { k++; x--; continue; }
        N = (uint64_t)q;
        break;
    }
    /* below, everything is in units of 2^-(S+2) of r: v itself and its rounding interval */
    const u128_t a_s = ((u128_t)m * p5 << 2) << t;
    const u128_t hu = ((u128_t)p5 << 1) << t;            /* half an ulp above v */
    const u128_t hl = boundary && be > 1 ? hu >> 1 : hu; /* and below */
    const u128_t hi = a_s + hu, lo = a_s - hl;
    for (int nd = 15; nd <= 17; nd++) {
        const int j = 17 - nd;
        const uint64_t pj = P10U[j];
        const uint64_t qi = N / pj, qr = N % pj;
        /* fraction of r / 10^j against one half: 2 (qr 2^S + rem) vs 10^j 2^S */
        const u128_t twice = (((u128_t)qr << S) + rem) << 1, whole = (u128_t)pj << S;
        uint64_t c[2] = {qi + (twice > whole), 0};
        int nc = 1;
        if (twice == whole) c[nc++] = qi + 1; /* an exact tie: try both neighbours */
        for (int i = 0; i < nc; i++) {
            const u128_t cand = (u128_t)c[i] * pj << (S + 2);
            if ((cand > lo && cand < hi) || ((cand == lo || cand == hi) && !(m & 1)))
                return fmt_digits(c[i], nd, x, v < 0, out);
        }
    }
    return -1;
}

void buf_json_double(buf_t *b, double v) {
    if (!isfinite(v)) { buf_puts(b, "null"); return; }
    char tmp[40];
    int n = fmt_double_fast(v, tmp);
    for (int prec = 15; n < 0; prec++) { /* rare: outside the fast path's range */
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec < 17 && strtod(tmp, NULL) != v) n = -1;
    }
    buf_append(b, tmp, (size_t)n);
}

char *buf_steal(buf_t *b) {
    if (!b->data) buf_reserve(b, 0);
    char *p = b->data;
    if (p) p[b->len] = 0;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void iso8601_ms(int64_t ms, char *out, size_t outlen) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int parse_duration_s(const char *s, double *out) {
    if (!s) return -1;
    while (*s == ' ') s++;
    if (!*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return -1;
    double mul = 1;
    switch (*end) {
    case 's': mul = 1; end++; break;
    case 'm': mul = 60; end++; break;
    case 'h': mul = 3600; end++; break;
    case 'd': mul = 86400; end++; break;
    default: break;
    }
    while (*end == ' ') end++;
    if (*end) return -1;
    *out = v * mul;
    return 0;
}

void make_job_id(char out[32]) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t last_ms, seq; /* protected by mu: keeps ids strictly increasing */
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint32_t)mono_ms();
    pthread_mutex_lock(&mu);
    uint64_t ms = (uint64_t)now_ms();
    if (ms <= last_ms) { ms = last_ms; seq++; } else { last_ms = ms; seq = 0; }
    uint64_t s = seq;
    pthread_mutex_unlock(&mu);
    /* 12 hex of ms, 4 hex of in-ms sequence, 6 hex random */
    snprintf(out, 32, "JOB-%012llx%04llx%06x", (unsigned long long)ms,
             (unsigned long long)(s & 0xffff), rnd & 0xffffff);
}

uint64_t hash_fnv1a(const void *p, size_t n, uint64_t seed) {
    const unsigned char *c = p;
    uint64_t h = 14695981039346656037ULL ^ seed;
    for (size_t i = 0; i < n; i++) { h ^= c[i]; h *= 1099511628211ULL; }
    return h;
}

int cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF), no NUL. */
int utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { if (c == 0) return 0; i++; continue; }
        size_t k;
        unsigned min;
        unsigned cp;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}
