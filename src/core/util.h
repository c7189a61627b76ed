/* Small shared helpers: growable byte buffer, clocks, durations, ids, hashing. */
#ifndef PREDICTD_UTIL_H
#define PREDICTD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Growable buffer. Zero-initialise; buf_free releases. On allocation failure the
 * buffer sets .oom and further appends are ignored (checked once at the end). */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} buf_t;

void buf_free(buf_t *b);
void buf_reset(buf_t *b);
/* Room for extra more bytes (and the NUL after them): 0, or -1 once out of memory. The
 * appends are inline: results pages make millions of them. */
int buf_grow(buf_t *b, size_t extra);
static inline int buf_reserve(buf_t *b, size_t extra) {
    return !b->oom && b->len + extra + 1 <= b->cap ? 0 : buf_grow(b, extra);
}
static inline void buf_append(buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}
static inline void buf_puts(buf_t *b, const char *s) { buf_append(b, s, strlen(s)); }
static inline void buf_putc(buf_t *b, char c) {
    if (buf_reserve(b, 1)) return;
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes and escapes included). */
void buf_json_str(buf_t *b, const char *s, size_t n);
/* Appends a double the shortest way that reads back identically, laid out like %.17g;
 * NaN/inf become null. */
void buf_json_double(buf_t *b, double v);
/* The same into out, NUL-terminated: its length, or -1 for NaN/inf. out must have
 * FMT_DOUBLE_ROOM bytes (the bytes past the length are scratch). */
#define FMT_DOUBLE_ROOM 64
int fmt_double_shortest(double v, char *out);
/* Takes ownership of the data; the buffer is left empty. NUL-terminated. */
char *buf_steal(buf_t *b);

int64_t now_ms(void);          /* wall clock, ms since the epoch */
int64_t mono_ms(void);         /* monotonic, ms */
double mono_s(void);           /* monotonic, seconds */
/* "2026-11-24T10:00:00.123Z" into out (>= 25 bytes). */
void iso8601_ms(int64_t ms, char *out, size_t outlen);

/* Duration: "90s", "30m", "24h", "7d", "1.5h" or a bare number of seconds (string or
 * number). Returns 0 and seconds in *out, -1 if malformed or negative. */
int parse_duration_s(const char *s, double *out);

/* A job id: "JOB-" + 12 hex of ms time + 8 hex random: sortable by creation. */
void make_job_id(char out[32]);

/* 1 when s[0..n) is well-formed UTF-8 without NUL bytes (ids, names, CSV cells). */
int utf8_valid(const char *s, size_t n);

uint64_t hash_fnv1a(const void *p, size_t n, uint64_t seed);
/* A faster 64-bit hash for in-memory tables (8 bytes a step; never stored: it may change):
 * entity ids in the graph's index, a request's id list. */
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

/* Sets *out to the number of online CPUs (at least 1). */
int cpu_count(void);

#endif
