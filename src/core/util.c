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

int buf_grow(buf_t *b, size_t extra) {
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

/* 1 for the bytes a JSON string must escape: controls, '"' and '\\'. */
static const unsigned char JSON_ESCAPED[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

void buf_json_str(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n + 2)) return;
    size_t i = 0;
    while (i < n && !JSON_ESCAPED[(unsigned char)s[i]]) i++;
    if (i == n) { /* nothing to escape: the common case */
        char *p = b->data + b->len;
        *p = '"';
        memcpy(p + 1, s, n);
        p[n + 1] = '"';
        b->len += n + 2;
        b->data[b->len] = 0;
        return;
    }
    buf_putc(b, '"');
    size_t start = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!JSON_ESCAPED[c]) continue;
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

void buf_json_double(buf_t *b, double v) {
    if (buf_reserve(b, FMT_DOUBLE_ROOM)) return;
    int n = fmt_double_shortest(v, b->data + b->len);
    if (n < 0) { buf_puts(b, "null"); return; }
    b->len += (size_t)n;
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

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94d049bb133111ebULL;
    h ^= h >> 32;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 29);
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
