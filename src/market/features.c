#include "market/features.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct feat_win {
    struct feat_win *next;
    uint64_t hash;
    int n;               /* vectors held (<= k) */
    feat_row_t *v;       /* k slots, oldest first */
    char symbol[MKT_SYMBOL_MAX + 1];
};

int mkt_symbol_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > MKT_SYMBOL_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int features_init(features_t *f, int k) {
    memset(f, 0, sizeof *f);
    f->k = k > 0 ? k : 1;
    f->nb = 1024;
    f->b = calloc(f->nb, sizeof *f->b);
    if (!f->b) return -1;
    pthread_mutex_init(&f->mu, NULL);
    return 0;
}

void features_destroy(features_t *f) {
    if (!f->b) return;
    for (size_t i = 0; i < f->nb; i++)
        for (feat_win_t *w = f->b[i], *next; w; w = next) {
            next = w->next;
            free(w->v);
            free(w);
        }
    free(f->b);
    f->b = NULL;
    pthread_mutex_destroy(&f->mu);
}

static feat_win_t *find(features_t *f, const char *symbol, uint64_t h) {
    for (feat_win_t *w = f->b[h & (f->nb - 1)]; w; w = w->next)
        if (w->hash == h && !strcmp(w->symbol, symbol)) return w;
    return NULL;
}

static void grow(features_t *f) {
    size_t nb = f->nb * 2;
    feat_win_t **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < f->nb; i++)
        for (feat_win_t *w = f->b[i], *next; w; w = next) {
            next = w->next;
            w->next = b[w->hash & (nb - 1)];
            b[w->hash & (nb - 1)] = w;
        }
    free(f->b);
    f->b = b;
    f->nb = nb;
}

/* Inserts r in time order; keeps the newest k. */
static void win_put(feat_win_t *w, int k, const feat_row_t *r) {
    int i = w->n;
    while (i > 0 && w->v[i - 1].ts_ms > r->ts_ms) i--;
    if (i > 0 && w->v[i - 1].ts_ms == r->ts_ms) {
        w->v[i - 1] = *r;
        return;
    }
    if (w->n == k) {
        if (i == 0) return; /* older than everything in a full window */
        memmove(w->v, w->v + 1, (size_t)(i - 1) * sizeof *w->v);
        w->v[i - 1] = *r;
        return;
    }
    memmove(w->v + i + 1, w->v + i, (size_t)(w->n - i) * sizeof *w->v);
    w->v[i] = *r;
    w->n++;
}

int features_apply(features_t *f, const feat_row_t *rows, size_t n) {
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        const feat_row_t *r = &rows[i];
        uint64_t h = hash_fnv1a(r->symbol, strlen(r->symbol), 0);
        feat_win_t *w = find(f, r->symbol, h);
        if (!w) {
            w = calloc(1, sizeof *w);
            if (w) w->v = calloc((size_t)f->k, sizeof *w->v);
            if (!w || !w->v) {
                free(w);
                rc = -1;
                break;
            }
            w->hash = h;
            memcpy(w->symbol, r->symbol, sizeof w->symbol);
            w->next = f->b[h & (f->nb - 1)];
            f->b[h & (f->nb - 1)] = w;
            if (++f->n > f->nb) grow(f);
        }
        win_put(w, f->k, r);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int features_window(features_t *f, const char *symbol, int width, int want, float *x, feat_window_info_t *info) {
    memset(info, 0, sizeof *info);
    uint64_t h = hash_fnv1a(symbol, strlen(symbol), 0);
    pthread_mutex_lock(&f->mu);
    feat_win_t *w = find(f, symbol, h);
    if (!w) {
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    info->have = w->n;
    if (w->n > 0) {
        info->price = w->v[w->n - 1].price;
        info->ts_ms = w->v[w->n - 1].ts_ms;
    }
    for (int t = 0; w->n >= want && t < want; t++) {
        const feat_row_t *r = &w->v[w->n - want + t];
        float *row = x + (size_t)t * (size_t)width;
        memcpy(row, r->tech, sizeof r->tech);
        if (width > MKT_TECH) {
            if (r->has_earn) {
                memcpy(row + MKT_TECH, r->earn, sizeof r->earn);
            } else {
                memset(row + MKT_TECH, 0, sizeof r->earn);
                info->earn_missing++;
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int features_symbols(features_t *f, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&f->mu);
    size_t count = f->n;
    char **v = malloc((count ? count : 1) * (sizeof(char *) + MKT_SYMBOL_MAX + 1));
    if (!v) {
        pthread_mutex_unlock(&f->mu);
        return -1;
    }
    char *text = (char *)(v + (count ? count : 1));
    size_t k = 0;
    for (size_t i = 0; i < f->nb; i++)
        for (feat_win_t *w = f->b[i]; w; w = w->next) {
            if (w->n == 0 || k == count) continue;
            v[k] = text + k * (MKT_SYMBOL_MAX + 1);
            memcpy(v[k], w->symbol, MKT_SYMBOL_MAX + 1);
            k++;
        }
    pthread_mutex_unlock(&f->mu);
    qsort(v, k, sizeof *v, cmp_str);
    *out = v;
    *n = k;
    return 0;
}

size_t features_count(features_t *f) {
    pthread_mutex_lock(&f->mu);
    size_t n = f->n;
    pthread_mutex_unlock(&f->mu);
    return n;
}
