/* In-memory fast layer: a chained hash table under one mutex. Expired entries are dropped
 * when a lookup meets them and by a sweep of a few buckets on every put, so memory follows
 * the live keys without a thread of its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kv/kv.h"

#define SWEEP_BUCKETS 4

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t expires_ms;  /* INT64_MAX: never */
    size_t len;
    char *val;           /* len bytes + NUL */
    char key[];
} entry_t;

typedef struct {
    pthread_mutex_t mu;  /* protects everything below */
    entry_t **b;
    size_t nb, n, sweep_at;
} mem_t;

static int64_t now_of(kv_t *kv) { return kv->clock(kv->clock_arg); }

static void entry_free(entry_t *e) {
    free(e->val);
    free(e);
}

/* Unlinks and frees expired entries of bucket i. mu held. */
static void sweep_bucket(mem_t *m, size_t i, int64_t now) {
    entry_t **pp = &m->b[i];
    while (*pp) {
        entry_t *e = *pp;
        if (e->expires_ms <= now) {
            *pp = e->next;
            entry_free(e);
            m->n--;
        } else {
            pp = &e->next;
        }
    }
}

static void grow(mem_t *m) {
    size_t nb = m->nb * 2;
    entry_t **b = calloc(nb, sizeof *b);
    if (!b) return; /* stays correct, only slower */
    for (size_t i = 0; i < m->nb; i++) {
        for (entry_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            size_t k = (size_t)(e->hash & (nb - 1));
            e->next = b[k];
            b[k] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

static int mem_put(kv_t *kv, const char *key, const void *val, size_t len, int64_t ttl_ms) {
    mem_t *m = kv->impl;
    size_t klen = strlen(key);
    uint64_t h = hash_fnv1a(key, klen, 0);
    char *copy = malloc(len + 1);
    if (!copy) return KV_ERR_NOMEM;
    memcpy(copy, val, len);
    copy[len] = 0;
    int64_t now = now_of(kv);
    int64_t exp = ttl_ms > 0 ? now + ttl_ms : INT64_MAX;
    pthread_mutex_lock(&m->mu);
    for (int s = 0; s < SWEEP_BUCKETS; s++) {
        sweep_bucket(m, m->sweep_at, now);
        m->sweep_at = (m->sweep_at + 1) & (m->nb - 1);
    }
    size_t i = (size_t)(h & (m->nb - 1));
    for (entry_t *e = m->b[i]; e; e = e->next) {
        if (e->hash == h && !strcmp(e->key, key)) {
            free(e->val);
            e->val = copy;
            e->len = len;
            e->expires_ms = exp;
            pthread_mutex_unlock(&m->mu);
            return KV_OK;
        }
    }
    entry_t *e = malloc(sizeof *e + klen + 1);
    if (!e) {
        pthread_mutex_unlock(&m->mu);
        free(copy);
        return KV_ERR_NOMEM;
    }
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->val = copy;
    e->len = len;
    e->expires_ms = exp;
    e->next = m->b[i];
    m->b[i] = e;
    if (++m->n > m->nb) grow(m);
    pthread_mutex_unlock(&m->mu);
    return KV_OK;
}

static int mem_get(kv_t *kv, const char *key, char **val, size_t *len, int64_t *ttl_left_ms) {
    mem_t *m = kv->impl;
    uint64_t h = hash_fnv1a(key, strlen(key), 0);
    int64_t now = now_of(kv);
    int rc = KV_NOT_FOUND;
    pthread_mutex_lock(&m->mu);
    size_t i = (size_t)(h & (m->nb - 1));
    sweep_bucket(m, i, now);
    for (entry_t *e = m->b[i]; e; e = e->next) {
        if (e->hash != h || strcmp(e->key, key)) continue;
        char *copy = malloc(e->len + 1);
        if (!copy) { rc = KV_ERR_NOMEM; break; }
        memcpy(copy, e->val, e->len + 1);
        *val = copy;
        if (len) *len = e->len;
        if (ttl_left_ms) *ttl_left_ms = e->expires_ms == INT64_MAX ? -1 : e->expires_ms - now;
        rc = KV_OK;
        break;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_del(kv_t *kv, const char *key) {
    mem_t *m = kv->impl;
    uint64_t h = hash_fnv1a(key, strlen(key), 0);
    int rc = KV_NOT_FOUND;
    pthread_mutex_lock(&m->mu);
    for (entry_t **pp = &m->b[h & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->hash == h && !strcmp(e->key, key)) {
            *pp = e->next;
            entry_free(e);
            m->n--;
            rc = KV_OK;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static long mem_count(kv_t *kv) {
    mem_t *m = kv->impl;
    int64_t now = now_of(kv);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nb; i++) sweep_bucket(m, i, now);
    long n = (long)m->n;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static void mem_free(kv_t *kv) {
    mem_t *m = kv->impl;
    if (!m) return;
    for (size_t i = 0; i < m->nb; i++)
        for (entry_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    free(m->b);
    pthread_mutex_destroy(&m->mu);
    free(m);
    kv->impl = NULL;
}

static const kv_ops_t MEM_OPS = {
    .name = "mem",
    .xPut = mem_put,
    .xGet = mem_get,
    .xDel = mem_del,
    .xCount = mem_count,
    .xFree = mem_free,
};

int kv_mem_open(kv_t *kv, char *err, size_t errlen) {
    mem_t *m = calloc(1, sizeof *m);
    if (m) m->nb = 1024, m->b = calloc(m->nb, sizeof *m->b);
    if (!m || !m->b) {
        if (m) free(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&m->mu, NULL);
    kv->impl = m;
    kv->ops = &MEM_OPS;
    return 0;
}
