/* The in-process cache backend, laid out by parameter set and graph slot.
 *
 * A parameter set (one model, one normalised parameter set: what a job's entries share) is
 * an open-addressing table keyed by graph slot, its entries inline (slot, code, stamp,
 * expiry, the outputs): a lookup is a multiply, a probe or two and a compare of integers,
 * with no string hashing, no allocation per entry and one lock per call of a chunk's worth of
 * entities. Sets are found by (model, h1, h2) in a small chained map.
 *
 * Bounded by bytes: a set counts its table (capacity x entry size) and its header. Sets are
 * kept in least-recently-used order (a lookup or a store moves a set to the front); while
 * the total is over the budget the least recently used set other than the one being stored
 * into is dropped whole. One set alone may use at most half the budget: when it is full its
 * entries are evicted a clock sweep at a time (an entry read since the hand last passed is
 * spared once), which approximates LRU within the set. Entries past their TTL are dropped
 * when met. The effect is LRU over parameter sets, and over entities within one.
 *
 * One mutex protects everything; calls are per chunk (hundreds to thousands of entities), so
 * the lock is taken a few thousand times a second at most. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "cache/cache.h"
#include "core/util.h"

/* A full cache drops a set for each new one; under a stream of new parameter sets (every job
 * a temperature of its own) that is a table freed and one allocated per job. The allocator
 * gave the new one fresh pages (each thread allocates from its own arena, the freed table
 * went back to another's), and zeroing them was a third of the server's CPU in a 1-client
 * submit phase after a long run. A dropped table is kept instead, up to SPARE_MAX of them and
 * 1/16 of the budget, and the next table of its size reuses it, its pages already mapped. */
#define SPARE_MAX 16

/* An entry inline in a set's table; stride = sizeof(mem_entry_t) + n_outputs doubles. */
typedef struct {
    uint32_t key;     /* graph slot + 1; 0 = empty */
    uint8_t code;
    uint8_t ref;      /* read since the clock hand passed */
    uint16_t pad;
    uint64_t stamp;
    int64_t expires_ms;
    double out[];
} mem_entry_t;

typedef struct mem_set {
    struct mem_set *lru_prev, *lru_next; /* head = most recently used */
    struct mem_set *hnext;               /* map chain */
    int model, n_out;
    uint64_t h1, h2;
    size_t stride;
    uint32_t cap, n, hand;               /* cap: a power of two (0 before the first store) */
    unsigned char *table;
    long bytes;
} mem_set_t;

typedef struct {
    cache_backend_t base;
    pthread_mutex_t mu;      /* protects everything below but gen's reads */
    long max_bytes, bytes, entries;
    mem_set_t *lru_head, *lru_tail;
    mem_set_t **map;         /* chained by (model, h1) */
    size_t map_cap, n_sets;
    _Atomic uint64_t gen;    /* invalidation generation: bumped under mu, read anywhere */
    /* Tables of dropped sets, kept for the next set of the same size (see table_alloc). */
    unsigned char *spare[SPARE_MAX];
    size_t spare_len[SPARE_MAX];
    int n_spare;
    long spare_bytes;
} mem_cache_t;

#define LOAD_NUM 7 /* a table grows (or sweeps, at its cap) past 7/10 full */
#define LOAD_DEN 10

static uint64_t set_hash(int model, uint64_t h1) {
    uint64_t h = h1 ^ ((uint64_t)(model + 1) * 0x9E3779B97F4A7C15ULL);
    h ^= h >> 31;
    return h * 0xff51afd7ed558ccdULL;
}

static inline mem_entry_t *entry_at(const mem_set_t *st, uint32_t i) {
    return (mem_entry_t *)(st->table + (size_t)i * st->stride);
}

static inline uint32_t home_of(const mem_set_t *st, uint32_t key) {
    return (uint32_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 32) & (st->cap - 1);
}

static long set_bytes(size_t cap, size_t stride) { return (long)(sizeof(mem_set_t) + cap * stride); }

/* ---- tables (mu held) ------------------------------------------------------------------ */

static unsigned char *table_alloc(mem_cache_t *mc, size_t len) {
    for (int i = 0; i < mc->n_spare; i++)
        if (mc->spare_len[i] == len) {
            unsigned char *t = mc->spare[i];
            mc->spare_bytes -= (long)len;
            mc->n_spare--;
            mc->spare[i] = mc->spare[mc->n_spare];
            mc->spare_len[i] = mc->spare_len[mc->n_spare];
            return t;
        }
    return malloc(len);
}

static void table_free(mem_cache_t *mc, unsigned char *t, size_t len) {
    if (!t) return;
    if (mc->n_spare < SPARE_MAX && mc->spare_bytes + (long)len <= mc->max_bytes / 16) {
        mc->spare[mc->n_spare] = t;
        mc->spare_len[mc->n_spare++] = len;
        mc->spare_bytes += (long)len;
        return;
    }
    free(t);
}

/* ---- one set (mu held) ---------------------------------------------------------------- */

static mem_entry_t *set_find(const mem_set_t *st, uint32_t key) {
    if (!st->cap) return NULL;
    for (uint32_t i = home_of(st, key);; i = (i + 1) & (st->cap - 1)) {
        mem_entry_t *e = entry_at(st, i);
        if (e->key == key) return e;
        if (e->key == 0) return NULL;
    }
}

/* Removes the entry at e (linear probing: the run after it moves back, no tombstones). */
static void set_remove(mem_cache_t *mc, mem_set_t *st, mem_entry_t *e) {
    uint32_t i = (uint32_t)(((unsigned char *)e - st->table) / st->stride);
    for (uint32_t j = (i + 1) & (st->cap - 1);; j = (j + 1) & (st->cap - 1)) {
        mem_entry_t *f = entry_at(st, j);
        if (f->key == 0) break;
        uint32_t h = home_of(st, f->key);
        /* f may fill the hole at i unless its home lies cyclically in (i, j] */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            memcpy(entry_at(st, i), f, st->stride);
            i = j;
        }
    }
    entry_at(st, i)->key = 0;
    st->n--;
    mc->entries--;
}

static void set_unlink_lru(mem_cache_t *mc, mem_set_t *st) {
    if (st->lru_prev) st->lru_prev->lru_next = st->lru_next; else mc->lru_head = st->lru_next;
    if (st->lru_next) st->lru_next->lru_prev = st->lru_prev; else mc->lru_tail = st->lru_prev;
    st->lru_prev = st->lru_next = NULL;
}

static void set_push_head(mem_cache_t *mc, mem_set_t *st) {
    st->lru_prev = NULL;
    st->lru_next = mc->lru_head;
    if (mc->lru_head) mc->lru_head->lru_prev = st; else mc->lru_tail = st;
    mc->lru_head = st;
}

static void set_touch(mem_cache_t *mc, mem_set_t *st) {
    if (mc->lru_head == st) return;
    set_unlink_lru(mc, st);
    set_push_head(mc, st);
}

static void set_drop(mem_cache_t *mc, mem_set_t *st) {
    size_t b = set_hash(st->model, st->h1) & (mc->map_cap - 1);
    mem_set_t **pp = &mc->map[b];
    while (*pp != st) pp = &(*pp)->hnext;
    *pp = st->hnext;
    set_unlink_lru(mc, st);
    mc->n_sets--;
    mc->bytes -= st->bytes;
    mc->entries -= st->n;
    table_free(mc, st->table, (size_t)st->cap * st->stride);
    free(st);
}

static mem_set_t *set_lookup(mem_cache_t *mc, const cache_scope_t *s) {
    if (!mc->map_cap) return NULL;
    for (mem_set_t *st = mc->map[set_hash(s->model, s->h1) & (mc->map_cap - 1)]; st; st = st->hnext)
        if (st->model == s->model && st->h1 == s->h1 && st->h2 == s->h2) return st;
    return NULL;
}

static mem_set_t *set_create(mem_cache_t *mc, const cache_scope_t *s) {
    if (mc->n_sets >= mc->map_cap) {
        size_t cap = mc->map_cap ? mc->map_cap * 2 : 64;
        mem_set_t **m = calloc(cap, sizeof *m);
        if (!m) return NULL;
        for (size_t i = 0; i < mc->map_cap; i++)
            for (mem_set_t *st = mc->map[i], *next; st; st = next) {
                next = st->hnext;
                size_t b = set_hash(st->model, st->h1) & (cap - 1);
                st->hnext = m[b];
                m[b] = st;
            }
        free(mc->map);
        mc->map = m;
        mc->map_cap = cap;
    }
    mem_set_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->model = s->model;
    st->n_out = s->n_outputs;
    st->h1 = s->h1;
    st->h2 = s->h2;
    st->stride = sizeof(mem_entry_t) + (size_t)s->n_outputs * sizeof(double);
    st->bytes = set_bytes(0, st->stride);
    size_t b = set_hash(s->model, s->h1) & (mc->map_cap - 1);
    st->hnext = mc->map[b];
    mc->map[b] = st;
    mc->n_sets++;
    mc->bytes += st->bytes;
    set_push_head(mc, st);
    return st;
}

/* Rehashes into a table of cap slots (a power of two above the entries held). */
static int set_resize(mem_cache_t *mc, mem_set_t *st, uint32_t cap) {
    /* malloc and an empty key written into each slot, not calloc: on fresh heap calloc skips
     * the clearing, the probes then read each page first (mapping the shared zero page) and
     * the first store takes a second fault that replaces it, with a TLB shootdown to the
     * other cores (measured: a quarter of the server's CPU while the cache fills). Written
     * first, a page faults once. (A memset would be turned back into calloc by the compiler;
     * only the key says whether a slot is in use.) */
    if ((size_t)cap > SIZE_MAX / st->stride) return -1;
    unsigned char *t = table_alloc(mc, (size_t)cap * st->stride);
    if (!t) return -1;
    for (uint32_t i = 0; i < cap; i++) ((mem_entry_t *)(t + (size_t)i * st->stride))->key = 0;
    mem_set_t old = *st;
    st->table = t;
    st->cap = cap;
    st->hand = 0;
    for (uint32_t i = 0; i < old.cap; i++) {
        mem_entry_t *e = entry_at(&old, i);
        if (!e->key) continue;
        uint32_t j = home_of(st, e->key);
        while (entry_at(st, j)->key) j = (j + 1) & (cap - 1);
        memcpy(entry_at(st, j), e, st->stride);
    }
    table_free(mc, old.table, (size_t)old.cap * old.stride);
    long nb = set_bytes(cap, st->stride);
    mc->bytes += nb - st->bytes;
    st->bytes = nb;
    return 0;
}

/* One clock sweep step at a time until an eighth of the entries are gone: an entry read
 * since the hand last passed it gets its bit cleared and is spared once. */
static void set_sweep(mem_cache_t *mc, mem_set_t *st, cache_counts_t *cnt) {
    uint32_t goal = st->n / 8 + 1, removed = 0;
    for (uint64_t steps = 0; removed < goal && st->n && steps < 3ULL * st->cap; steps++) {
        mem_entry_t *e = entry_at(st, st->hand);
        if (e->key && e->ref) {
            e->ref = 0;
        } else if (e->key) {
            set_remove(mc, st, e); /* the run shifts back into hand: look at it again */
            removed++;
            if (st->model >= 0 && st->model < CACHE_MAX_MODELS) cnt->evictions[st->model]++;
            continue;
        }
        st->hand = (st->hand + 1) & (st->cap - 1);
    }
}

/* Room for one more entry in st: grows the table, or sweeps at the set's cap. -1: none. */
static int set_make_room(mem_cache_t *mc, mem_set_t *st, cache_counts_t *cnt) {
    if (st->cap && (uint64_t)(st->n + 1) * LOAD_DEN <= (uint64_t)st->cap * LOAD_NUM) return 0;
    uint32_t cap = st->cap ? st->cap * 2 : 64;
    if (cap <= (1U << 30) && set_bytes(cap, st->stride) <= mc->max_bytes / 2) {
        if (set_resize(mc, st, cap) == 0) return 0;
    }
    if (!st->cap) return -1; /* not even the first table fits the budget */
    set_sweep(mc, st, cnt);
    return (uint64_t)(st->n + 1) * LOAD_DEN <= (uint64_t)st->cap * LOAD_NUM ? 0 : -1;
}

static void count(long *arr, int model, long n) {
    if (model >= 0 && model < CACHE_MAX_MODELS) arr[model] += n;
}

/* ---- methods -------------------------------------------------------------------------- */

static long mem_get_many(cache_backend_t *b, const cache_scope_t *s, size_t n, const char *const *ids,
                         const int64_t *slots, const uint64_t *stamps, int64_t now_ms, uint8_t *codes,
                         double *out, uint8_t *hit, cache_counts_t *cnt) {
    (void)ids;
    mem_cache_t *mc = (mem_cache_t *)b;
    memset(hit, 0, n);
    long hits = 0;
    pthread_mutex_lock(&mc->mu);
    mem_set_t *st = set_lookup(mc, s);
    if (st && st->n_out == s->n_outputs) {
        set_touch(mc, st);
        const size_t out_bytes = (size_t)st->n_out * sizeof(double);
        for (size_t k = 0; k < n; k++) {
            if (!stamps[k] || slots[k] < 0 || slots[k] >= UINT32_MAX) continue;
            mem_entry_t *e = set_find(st, (uint32_t)slots[k] + 1);
            if (!e || e->stamp > stamps[k]) continue;
            if (e->stamp < stamps[k]) {
                /* something it depends on changed since: it can never be asked for again */
                set_remove(mc, st, e);
                count(cnt->invalidations, s->model, 1);
            } else if (e->expires_ms <= now_ms) {
                set_remove(mc, st, e);
                count(cnt->evictions, s->model, 1);
            } else {
                codes[k] = e->code;
                memcpy(out + k * (size_t)st->n_out, e->out, out_bytes);
                e->ref = 1;
                hit[k] = 1;
                hits++;
            }
        }
    }
    pthread_mutex_unlock(&mc->mu);
    return hits;
}

static void mem_put_many(cache_backend_t *b, const cache_scope_t *s, uint64_t gen, size_t n,
                         const char *const *ids, const int64_t *slots, const uint64_t *stamps,
                         int64_t now_ms, const uint8_t *codes, const double *out, cache_counts_t *cnt) {
    (void)ids;
    mem_cache_t *mc = (mem_cache_t *)b;
    if (s->n_outputs < 0 || s->n_outputs > CACHE_MAX_OUTPUTS || s->model < 0 || s->model >= CACHE_MAX_MODELS)
        return;
    pthread_mutex_lock(&mc->mu);
    if (atomic_load(&mc->gen) != gen) goto out; /* an invalidation ran since they were computed */
    mem_set_t *st = set_lookup(mc, s);
    if (!st) st = set_create(mc, s);
    if (!st || st->n_out != s->n_outputs) goto out;
    set_touch(mc, st);
    /* a new set sized for the whole batch at once (not grown through every power of two) */
    if (!st->cap && n > 32) {
        uint32_t cap = 64;
        while (cap < (1U << 30) && (uint64_t)cap * LOAD_NUM < (uint64_t)n * LOAD_DEN) cap *= 2;
        while (cap > 64 && set_bytes(cap, st->stride) > mc->max_bytes / 2) cap /= 2;
        if (set_bytes(cap, st->stride) <= mc->max_bytes / 2) set_resize(mc, st, cap);
    }
    const int64_t expires = now_ms + (int64_t)s->ttl_s * 1000;
    const size_t out_bytes = (size_t)st->n_out * sizeof(double);
    for (size_t k = 0; k < n; k++) {
        if (!stamps[k] || slots[k] < 0 || slots[k] >= UINT32_MAX) continue;
        const uint32_t key = (uint32_t)slots[k] + 1;
        mem_entry_t *e = set_find(st, key);
        if (e) {
            if (e->stamp > stamps[k]) continue; /* a newer result is already here */
            if (e->stamp < stamps[k]) count(cnt->invalidations, s->model, 1);
        } else {
            if (set_make_room(mc, st, cnt) < 0) break;
            uint32_t i = home_of(st, key);
            while (entry_at(st, i)->key) i = (i + 1) & (st->cap - 1);
            e = entry_at(st, i);
            e->key = key;
            st->n++;
            mc->entries++;
        }
        e->code = codes[k];
        e->ref = 0;
        e->stamp = stamps[k];
        e->expires_ms = expires;
        memcpy(e->out, out + k * (size_t)st->n_out, out_bytes);
    }
    /* over the budget: the least recently used other sets go, whole */
    while (mc->bytes > mc->max_bytes && mc->lru_tail && mc->lru_tail != st) {
        count(cnt->evictions, mc->lru_tail->model, mc->lru_tail->n);
        set_drop(mc, mc->lru_tail);
    }
    if (st->n == 0) set_drop(mc, st); /* nothing fit: an empty set is no use */
out:
    pthread_mutex_unlock(&mc->mu);
}

static int mem_may_hold(cache_backend_t *b, const cache_scope_t *s) {
    mem_cache_t *mc = (mem_cache_t *)b;
    pthread_mutex_lock(&mc->mu);
    mem_set_t *st = set_lookup(mc, s);
    int held = st && st->n > 0;
    pthread_mutex_unlock(&mc->mu);
    return held;
}

static uint64_t mem_generation(cache_backend_t *b) { return atomic_load(&((mem_cache_t *)b)->gen); }

static long mem_invalidate_entity(cache_backend_t *b, const char *entity_id, int64_t slot, int model,
                                  cache_counts_t *cnt) {
    (void)entity_id;
    mem_cache_t *mc = (mem_cache_t *)b;
    long removed = 0;
    pthread_mutex_lock(&mc->mu);
    atomic_fetch_add(&mc->gen, 1);
    if (slot >= 0 && slot < UINT32_MAX) {
        for (mem_set_t *st = mc->lru_head; st; st = st->lru_next) {
            if (model >= 0 && st->model != model) continue;
            mem_entry_t *e = set_find(st, (uint32_t)slot + 1);
            if (!e) continue;
            set_remove(mc, st, e);
            count(cnt->invalidations, st->model, 1);
            removed++;
        }
    }
    pthread_mutex_unlock(&mc->mu);
    return removed;
}

static long mem_invalidate_model(cache_backend_t *b, int model, cache_counts_t *cnt) {
    mem_cache_t *mc = (mem_cache_t *)b;
    long removed = 0;
    pthread_mutex_lock(&mc->mu);
    atomic_fetch_add(&mc->gen, 1);
    for (mem_set_t *st = mc->lru_head, *next; st; st = next) {
        next = st->lru_next;
        if (model >= 0 && st->model != model) continue;
        count(cnt->invalidations, st->model, st->n);
        removed += st->n;
        set_drop(mc, st);
    }
    pthread_mutex_unlock(&mc->mu);
    return removed;
}

static void mem_usage(cache_backend_t *b, long *bytes, long *entries) {
    mem_cache_t *mc = (mem_cache_t *)b;
    pthread_mutex_lock(&mc->mu);
    if (bytes) *bytes = mc->bytes;
    if (entries) *entries = mc->entries;
    pthread_mutex_unlock(&mc->mu);
}

static void mem_close(cache_backend_t *b) {
    mem_cache_t *mc = (mem_cache_t *)b;
    if (!mc) return;
    while (mc->lru_head) set_drop(mc, mc->lru_head);
    for (int i = 0; i < mc->n_spare; i++) free(mc->spare[i]);
    free(mc->map);
    pthread_mutex_destroy(&mc->mu);
    free(mc);
}

static const cache_methods_t MEM_METHODS = {
    .xGetMany = mem_get_many,
    .xPutMany = mem_put_many,
    .xMayHold = mem_may_hold,
    .xGeneration = mem_generation,
    .xInvalidateEntity = mem_invalidate_entity,
    .xInvalidateModel = mem_invalidate_model,
    .xUsage = mem_usage,
    .xClose = mem_close,
};

cache_backend_t *cache_mem_open(long max_bytes) {
    mem_cache_t *mc = calloc(1, sizeof *mc);
    if (!mc) return NULL;
    mc->base.pMethods = &MEM_METHODS;
    mc->max_bytes = max_bytes > 0 ? max_bytes : 0;
    pthread_mutex_init(&mc->mu, NULL);
    atomic_init(&mc->gen, 0);
    return &mc->base;
}
