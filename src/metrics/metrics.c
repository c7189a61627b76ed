/* Metrics registry: families (described once, rendered in that order) and series (name +
 * pre-formatted label text) in one open-addressing hash table under one mutex.
 * Rendering follows the Prometheus text format 0.0.4: # HELP / # TYPE per family, then its
 * series in creation order; a histogram series renders as cumulative _bucket{le=...} lines
 * (ending with le="+Inf"), _sum and _count. */
#include "metrics/metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double DEFAULT_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

typedef struct series series_t;

typedef struct {
    char *name, *help;
    metric_type_t type;
    double *buckets; /* histograms: ascending upper bounds, +Inf implied */
    int n_buckets;
    series_t *first, *last; /* this family's series in creation order */
} family_t;

struct series {
    family_t *fam;
    char *labels;        /* "" for none */
    double value;        /* counter / gauge */
    uint64_t *counts;    /* histogram: per bucket (not cumulative), n_buckets + 1 (+Inf) */
    double sum;
    uint64_t count;
    series_t *next;      /* next of the same family */
};

typedef struct {
    metrics_collect_fn fn;
    void *arg;
} collector_t;

struct metrics {
    pthread_mutex_t mu;  /* protects everything below */
    family_t **fams;
    int n_fams, cap_fams;
    series_t **table;    /* open addressing, NULL = empty */
    size_t table_cap, n_series;
    collector_t *collectors;
    int n_collectors, cap_collectors;
};

metrics_t *metrics_new(void) {
    metrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(metrics_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->table_cap; i++) {
        series_t *s = m->table[i];
        if (!s) continue;
        free(s->labels);
        free(s->counts);
        free(s);
    }
    for (int i = 0; i < m->n_fams; i++) {
        free(m->fams[i]->name);
        free(m->fams[i]->help);
        free(m->fams[i]->buckets);
        free(m->fams[i]);
    }
    free(m->fams);
    free(m->table);
    free(m->collectors);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static family_t *family_find(metrics_t *m, const char *name) {
    for (int i = 0; i < m->n_fams; i++)
        if (strcmp(m->fams[i]->name, name) == 0) return m->fams[i];
    return NULL;
}

void metrics_describe(metrics_t *m, const char *name, metric_type_t type, const char *help,
                      const double *buckets, int n_buckets) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (family_find(m, name)) goto out; /* described already: first description wins */
    if (m->n_fams == m->cap_fams) {
        int cap = m->cap_fams ? m->cap_fams * 2 : 16;
        family_t **p = realloc(m->fams, (size_t)cap * sizeof *p);
        if (!p) goto out;
        m->fams = p;
        m->cap_fams = cap;
    }
    family_t *f = calloc(1, sizeof *f);
    if (!f) goto out;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (type == METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = DEFAULT_BUCKETS;
            n_buckets = (int)(sizeof DEFAULT_BUCKETS / sizeof DEFAULT_BUCKETS[0]);
        }
        f->buckets = malloc((size_t)(n_buckets > 0 ? n_buckets : 1) * sizeof *f->buckets);
        if (f->buckets) {
            memcpy(f->buckets, buckets, (size_t)n_buckets * sizeof *buckets);
            f->n_buckets = n_buckets;
        }
    }
    if (!f->name || !f->help || (type == METRIC_HISTOGRAM && !f->buckets)) {
        free(f->name); free(f->help); free(f->buckets); free(f);
        goto out;
    }
    m->fams[m->n_fams++] = f;
out:
    pthread_mutex_unlock(&m->mu);
}

static size_t series_hash(const char *name, const char *labels) {
    uint64_t h = hash_fnv1a(name, strlen(name), 0);
    h = hash_fnv1a(labels, strlen(labels), h ^ 0x9e3779b97f4a7c15ULL);
    return (size_t)h;
}

static int table_grow(metrics_t *m) {
    size_t cap = m->table_cap ? m->table_cap * 2 : 64;
    series_t **t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < m->table_cap; i++) {
        series_t *s = m->table[i];
        if (!s) continue;
        size_t h = series_hash(s->fam->name, s->labels) & (cap - 1);
        while (t[h]) h = (h + 1) & (cap - 1);
        t[h] = s;
    }
    free(m->table);
    m->table = t;
    m->table_cap = cap;
    return 0;
}

/* The series (name, labels), created when absent; NULL when the family is undescribed, of
 * another type, or memory ran out. Call with m->mu held. */
static series_t *series_get(metrics_t *m, const char *name, const char *labels,
                            metric_type_t type) {
    if (!labels) labels = "";
    if (m->table_cap) {
        size_t mask = m->table_cap - 1;
        for (size_t h = series_hash(name, labels) & mask; m->table[h]; h = (h + 1) & mask) {
            series_t *s = m->table[h];
            if (strcmp(s->fam->name, name) == 0 && strcmp(s->labels, labels) == 0)
                return s->fam->type == type ? s : NULL;
        }
    }
    family_t *f = family_find(m, name);
    assert(f && "metric family used before metrics_describe");
    if (!f || f->type != type) return NULL;
    if ((m->n_series + 1) * 2 > m->table_cap && table_grow(m) < 0) return NULL;
    series_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->fam = f;
    s->labels = strdup(labels);
    if (type == METRIC_HISTOGRAM) s->counts = calloc((size_t)f->n_buckets + 1, sizeof *s->counts);
    if (!s->labels || (type == METRIC_HISTOGRAM && !s->counts)) {
        free(s->labels); free(s->counts); free(s);
        return NULL;
    }
    size_t mask = m->table_cap - 1;
    size_t h = series_hash(name, labels) & mask;
    while (m->table[h]) h = (h + 1) & mask;
    m->table[h] = s;
    m->n_series++;
    if (f->last) f->last->next = s; else f->first = s;
    f->last = s;
    return s;
}

void metrics_counter_add(metrics_t *m, const char *name, const char *labels, double v) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, name, labels, METRIC_COUNTER);
    if (s && v >= 0) s->value += v; /* counters only go up */
    pthread_mutex_unlock(&m->mu);
}

void metrics_gauge_set(metrics_t *m, const char *name, const char *labels, double v) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, name, labels, METRIC_GAUGE);
    if (s) s->value = v;
    pthread_mutex_unlock(&m->mu);
}

void metrics_gauge_add(metrics_t *m, const char *name, const char *labels, double v) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, name, labels, METRIC_GAUGE);
    if (s) s->value += v;
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe(metrics_t *m, const char *name, const char *labels, double v) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    series_t *s = series_get(m, name, labels, METRIC_HISTOGRAM);
    if (s && !isnan(v)) {
        int b = 0;
        while (b < s->fam->n_buckets && v > s->fam->buckets[b]) b++; /* le: v <= bound */
        s->counts[b]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *arg) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (m->n_collectors == m->cap_collectors) {
        int cap = m->cap_collectors ? m->cap_collectors * 2 : 4;
        collector_t *p = realloc(m->collectors, (size_t)cap * sizeof *p);
        if (!p) goto out;
        m->collectors = p;
        m->cap_collectors = cap;
    }
    m->collectors[m->n_collectors++] = (collector_t){fn, arg};
out:
    pthread_mutex_unlock(&m->mu);
}

void metrics_remove_collector(metrics_t *m, metrics_collect_fn fn, void *arg) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_collectors; i++) {
        if (m->collectors[i].fn != fn || m->collectors[i].arg != arg) continue;
        memmove(&m->collectors[i], &m->collectors[i + 1],
                (size_t)(m->n_collectors - i - 1) * sizeof *m->collectors);
        m->n_collectors--;
        break;
    }
    pthread_mutex_unlock(&m->mu);
}

/* A sample value: shortest text that reads back the same; Prometheus spells the
 * non-finite ones NaN, +Inf, -Inf. */
static void put_value(buf_t *b, double v) {
    if (isnan(v)) { buf_puts(b, "NaN"); return; }
    if (isinf(v)) { buf_puts(b, v > 0 ? "+Inf" : "-Inf"); return; }
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    buf_puts(b, tmp);
}

/* HELP text escapes backslash and newline (format 0.0.4). */
static void put_help(buf_t *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') buf_puts(b, "\\\\");
        else if (*s == '\n') buf_puts(b, "\\n");
        else buf_putc(b, *s);
    }
}

static void put_labels(buf_t *b, const char *labels, const char *extra) {
    int has = labels && *labels;
    if (!has && !extra) return;
    buf_putc(b, '{');
    if (has) buf_puts(b, labels);
    if (extra) {
        if (has) buf_putc(b, ',');
        buf_puts(b, extra);
    }
    buf_putc(b, '}');
}

static const char *type_name(metric_type_t t) {
    switch (t) {
    case METRIC_COUNTER: return "counter";
    case METRIC_GAUGE: return "gauge";
    default: return "histogram";
    }
}

void metrics_render(metrics_t *m, buf_t *out) {
    if (!m) return;
    /* collectors set gauges through the public calls, so they run unlocked */
    pthread_mutex_lock(&m->mu);
    int n = m->n_collectors;
    collector_t *cs = n ? malloc((size_t)n * sizeof *cs) : NULL;
    if (cs) memcpy(cs, m->collectors, (size_t)n * sizeof *cs);
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; cs && i < n; i++) cs[i].fn(cs[i].arg, m);
    free(cs);

    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_fams; i++) {
        const family_t *f = m->fams[i];
        buf_printf(out, "# HELP %s ", f->name);
        put_help(out, f->help);
        buf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (const series_t *s = f->first; s; s = s->next) {
            if (f->type != METRIC_HISTOGRAM) {
                buf_puts(out, f->name);
                put_labels(out, s->labels, NULL);
                buf_putc(out, ' ');
                put_value(out, s->value);
                buf_putc(out, '\n');
                continue;
            }
            uint64_t cum = 0;
            for (int k = 0; k <= f->n_buckets; k++) {
                cum += s->counts[k];
                char le[48];
                if (k < f->n_buckets) {
                    buf_t tmp = {0};
                    put_value(&tmp, f->buckets[k]);
                    snprintf(le, sizeof le, "le=\"%s\"", tmp.data ? tmp.data : "0");
                    buf_free(&tmp);
                } else {
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                }
                buf_printf(out, "%s_bucket", f->name);
                put_labels(out, s->labels, le);
                buf_printf(out, " %llu\n", (unsigned long long)cum);
            }
            buf_printf(out, "%s_sum", f->name);
            put_labels(out, s->labels, NULL);
            buf_putc(out, ' ');
            put_value(out, s->sum);
            buf_printf(out, "\n%s_count", f->name);
            put_labels(out, s->labels, NULL);
            buf_printf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->mu);
}

double metrics_value(metrics_t *m, const char *name, const char *labels) {
    if (!m) return 0;
    if (!labels) labels = "";
    double v = 0;
    pthread_mutex_lock(&m->mu);
    if (m->table_cap) {
        size_t mask = m->table_cap - 1;
        for (size_t h = series_hash(name, labels) & mask; m->table[h]; h = (h + 1) & mask) {
            series_t *s = m->table[h];
            if (strcmp(s->fam->name, name) == 0 && strcmp(s->labels, labels) == 0) {
                v = s->fam->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return v;
}
