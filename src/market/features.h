/* The feature store's memory: per symbol, a rolling window of its last K feature vectors
 * (K = the models' sequence length), oldest first. A vector is (timestamp, price, the 20
 * technical features, optionally the 17 earnings features). The durable copy lives in the
 * store (market_store.c); this is what a chunk reads. Thread-safe (one mutex). */
#ifndef PREDICTD_MARKET_FEATURES_H
#define PREDICTD_MARKET_FEATURES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MKT_TECH 20
#define MKT_EARN 17
#define MKT_SYMBOL_MAX 32

typedef struct {
    char symbol[MKT_SYMBOL_MAX + 1];
    int64_t ts_ms;
    double price;
    float tech[MKT_TECH];
    float earn[MKT_EARN];
    int has_earn;
} feat_row_t;

typedef struct feat_win feat_win_t;

typedef struct {
    pthread_mutex_t mu;  /* protects everything below */
    int k;               /* vectors kept per symbol */
    feat_win_t **b;      /* hash buckets of windows */
    size_t nb, n;        /* buckets, symbols */
} features_t;

int features_init(features_t *f, int k);
void features_destroy(features_t *f);
/* Puts each row into its symbol's window: a timestamp already there is replaced, the
 * window keeps the newest k (a row older than a full window's oldest is dropped). -1 out of
 * memory (the rows before stay applied). */
int features_apply(features_t *f, const feat_row_t *rows, size_t n);

typedef struct {
    int have;            /* vectors in the window (the rest of x is not written) */
    int earn_missing;    /* vectors without earnings features */
    double price;        /* the newest vector's price */
    int64_t ts_ms;       /* the newest vector's timestamp */
} feat_window_info_t;
/* When symbol has at least `want` vectors (want <= k), writes its last `want` into x as
 * [want, width] floats, oldest first: width 20 (technical) or 37 (technical then earnings;
 * a vector without them gets zeros, counted in info->earn_missing). Returns 0 (info filled;
 * info->have < want: too few, x untouched), 1 unknown symbol. */
int features_window(features_t *f, const char *symbol, int width, int want, float *x, feat_window_info_t *info);
/* Every symbol with at least one vector, sorted: *out is n pointers into one block (free(*out)). */
int features_symbols(features_t *f, char ***out, size_t *n);
size_t features_count(features_t *f);

/* 1..32 bytes of [A-Za-z0-9._-]. */
int mkt_symbol_ok(const char *s);

#endif
