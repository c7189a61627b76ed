/* The in-process cache backend.
 *
 * Entries live in shards chosen by a hash of the entity id, so every entry of one entity is
 * in one shard (invalidating an entity takes one lock). A shard is a chained hash table of
 * entity nodes; a node holds that entity's entries in a small inline array, oldest first,
 * each with a tag (hash of model and parameters) beside it, so finding one reads the node's
 * own cache lines and touches an entry only on a tag match (one per model and parameter set:
 * a put replaces the entry of the same model and parameters, whose older stamp can never be
 * asked for again; at most MEM_MAX_VARIANTS per model and MEM_NODE_SLOTS in all, the oldest
 * going first). Each shard keeps its own LRU list and byte budget
 * (max_bytes / n_shards): a sharded LRU approximates a global one and keeps the locks
 * short. Bytes counted: the entry structs with their outputs, and the nodes with their ids.
 * Expired entries are dropped when met (lookup) or when the LRU reaches them. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "cache/cache.h"
#include "core/util.h"

typedef struct mem_node mem_node_t;

#define MEM_MAX_VARIANTS 4
#define MEM_NODE_SLOTS 8

typedef struct mem_entry {
    struct mem_entry *lru_prev, *lru_next; /* shard LRU: head = most recently used */
    mem_node_t *node;
    uint64_t h1, h2, stamp;
    int64_t expires_ms;
    size_t bytes;
    uint8_t model, code;
    uint16_t n_out;
    double out[];
} mem_entry_t;

struct mem_node {
    mem_node_t *next;      /* bucket chain */
    uint64_t hash;
    size_t bytes;
    uint8_t n;                          /* slots used, oldest first */
    uint8_t model[MEM_NODE_SLOTS];
    uint64_t tag[MEM_NODE_SLOTS];       /* entry_tag() of each entry */
    mem_entry_t *ent[MEM_NODE_SLOTS];
    char id[];
};

static uint64_t entry_tag(int model, uint64_t h1) {
    return h1 ^ ((uint64_t)(model + 1) * 0x9E3779B97F4A7C15ULL);
}

typedef struct {
    pthread_mutex_t mu;    /* protects everything below but gen's reads */
    mem_node_t **buckets;
    size_t n_buckets, n_nodes;
    mem_entry_t *lru_head, *lru_tail;
    long bytes, entries;
    _Atomic uint64_t gen;  /* invalidation generation: written under mu, read anywhere */
} mem_shard_t;

typedef struct {
    cache_backend_t base;
    long shard_max_bytes;
    int n_shards;
    mem_shard_t *shards;
} mem_cache_t;

static uint64_t id_hash(const char *id) {
    uint64_t h = hash_fnv1a(id, strlen(id), 0);
    h ^= h >> 33; /* fold high bits in: the shard and the bucket use different ones */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static mem_shard_t *shard_of(mem_cache_t *mc, uint64_t h) {
    return &mc->shards[(h >> 40) % (uint64_t)mc->n_shards];
}

/* ---- shard internals (mu held) -------------------------------------------------------- */

static mem_node_t *node_find(mem_shard_t *s, const char *id, uint64_t h) {
    if (!s->n_buckets) return NULL;
    for (mem_node_t *n = s->buckets[h & (s->n_buckets - 1)]; n; n = n->next)
        if (n->hash == h && strcmp(n->id, id) == 0) return n;
    return NULL;
}

static void table_grow(mem_shard_t *s) {
    size_t cap = s->n_buckets ? s->n_buckets * 2 : 64;
    mem_node_t **b = calloc(cap, sizeof *b);
    if (!b) return; /* chains just get longer */
    for (size_t i = 0; i < s->n_buckets; i++) {
        for (mem_node_t *n = s->buckets[i], *next; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (cap - 1)];
            b[n->hash & (cap - 1)] = n;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = cap;
}

static mem_node_t *node_get(mem_shard_t *s, const char *id, uint64_t h) {
    mem_node_t *n = node_find(s, id, h);
    if (n) return n;
    if (s->n_nodes >= s->n_buckets) table_grow(s);
    if (!s->n_buckets) return NULL;
    size_t len = strlen(id);
    n = malloc(sizeof *n + len + 1);
    if (!n) return NULL;
    memcpy(n->id, id, len + 1);
    n->hash = h;
    n->n = 0;
    n->bytes = sizeof *n + len + 1;
    n->next = s->buckets[h & (s->n_buckets - 1)];
    s->buckets[h & (s->n_buckets - 1)] = n;
    s->n_nodes++;
    s->bytes += (long)n->bytes;
    return n;
}

static void node_drop_if_empty(mem_shard_t *s, mem_node_t *n) {
    if (n->n) return;
    mem_node_t **pp = &s->buckets[n->hash & (s->n_buckets - 1)];
    while (*pp != n) pp = &(*pp)->next;
    *pp = n->next;
    s->n_nodes--;
    s->bytes -= (long)n->bytes;
    free(n);
}

static void lru_unlink(mem_shard_t *s, mem_entry_t *e) {
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next; else s->lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev; else s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(mem_shard_t *s, mem_entry_t *e) {
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head) s->lru_head->lru_prev = e; else s->lru_tail = e;
    s->lru_head = e;
}

/* Unlinks e from its node, the LRU and the byte count, and frees it (and the node when it
 * was its last entry). */
static void entry_remove(mem_shard_t *s, mem_entry_t *e) {
    mem_node_t *n = e->node;
    int i = 0;
    while (i < n->n && n->ent[i] != e) i++;
    if (i < n->n) { /* keep the order: oldest first */
        int rest = n->n - i - 1;
        memmove(&n->ent[i], &n->ent[i + 1], (size_t)rest * sizeof n->ent[0]);
        memmove(&n->tag[i], &n->tag[i + 1], (size_t)rest * sizeof n->tag[0]);
        memmove(&n->model[i], &n->model[i + 1], (size_t)rest);
        n->n--;
    }
    lru_unlink(s, e);
    s->bytes -= (long)e->bytes;
    s->entries--;
    free(e);
    node_drop_if_empty(s, n);
}

static mem_entry_t *entry_find(mem_node_t *n, const cache_key_t *k) {
    const uint64_t t = entry_tag(k->model, k->h1);
    for (int i = 0; i < n->n; i++) {
        if (n->tag[i] != t) continue;
        mem_entry_t *e = n->ent[i];
        if (e->model == (uint8_t)k->model && e->h1 == k->h1 && e->h2 == k->h2) return e;
    }
    return NULL;
}

static void count(long *arr, int model) {
    if (model >= 0 && model < CACHE_MAX_MODELS) arr[model]++;
}

/* ---- methods -------------------------------------------------------------------------- */

static int mem_get(cache_backend_t *b, const cache_key_t *k, int64_t now_ms, uint8_t *code,
                   double *out, int n_outputs, cache_counts_t *cnt) {
    mem_cache_t *mc = (mem_cache_t *)b;
    uint64_t h = id_hash(k->entity_id);
    mem_shard_t *s = shard_of(mc, h);
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    mem_node_t *n = node_find(s, k->entity_id, h);
    mem_entry_t *e = n ? entry_find(n, k) : NULL;
    if (e && e->stamp < k->stamp) {
        /* something it depends on changed since: it can never be asked for again */
        entry_remove(s, e);
        count(cnt->invalidations, k->model);
    } else if (e && e->stamp == k->stamp && e->expires_ms <= now_ms) {
        entry_remove(s, e);
        count(cnt->evictions, k->model);
    } else if (e && e->stamp == k->stamp && e->n_out == n_outputs) {
        *code = e->code;
        memcpy(out, e->out, (size_t)n_outputs * sizeof *out);
        lru_unlink(s, e);
        lru_push_head(s, e);
        hit = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return hit;
}

static void mem_put(cache_backend_t *b, const cache_key_t *k, uint64_t gen, int64_t now_ms,
                    int ttl_s, uint8_t code, const double *out, int n_outputs, cache_counts_t *cnt) {
    mem_cache_t *mc = (mem_cache_t *)b;
    if (n_outputs < 0 || n_outputs > CACHE_MAX_OUTPUTS || k->model < 0 || k->model >= CACHE_MAX_MODELS)
        return;
    size_t bytes = sizeof(mem_entry_t) + (size_t)n_outputs * sizeof(double);
    size_t node_bytes = sizeof(mem_node_t) + strlen(k->entity_id) + 1;
    if ((long)(bytes + node_bytes) > mc->shard_max_bytes) return; /* could never fit */
    uint64_t h = id_hash(k->entity_id);
    mem_shard_t *s = shard_of(mc, h);
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->gen) != gen) goto out; /* an invalidation ran since it was computed */
    mem_node_t *n = node_get(s, k->entity_id, h);
    if (!n) goto out;
    /* one walk of the node's short list: the entry this replaces, and the oldest variant
     * of the same model once there are MEM_MAX_VARIANTS */
    mem_entry_t *old = entry_find(n, k), *victim = NULL;
    int same = 0;
    for (int i = 0; i < n->n; i++) /* the oldest other variant of this model */
        if (n->model[i] == (uint8_t)k->model && n->ent[i] != old && same++ == 0) victim = n->ent[i];
    if (same < MEM_MAX_VARIANTS) victim = NULL;
    if (!victim && !old && n->n == MEM_NODE_SLOTS) victim = n->ent[0]; /* full: the oldest */
    if (old && old->stamp > k->stamp) goto out; /* a newer result is already here */
    mem_entry_t *e = malloc(bytes);
    if (!e) {
        node_drop_if_empty(s, n);
        goto out;
    }
    e->h1 = k->h1;
    e->h2 = k->h2;
    e->stamp = k->stamp;
    e->expires_ms = now_ms + (int64_t)ttl_s * 1000;
    e->bytes = bytes;
    e->model = (uint8_t)k->model;
    e->code = code;
    e->n_out = (uint16_t)n_outputs;
    memcpy(e->out, out, (size_t)n_outputs * sizeof *out);
    e->node = n;
    if (old) {
        if (old->stamp < k->stamp) count(cnt->invalidations, k->model);
        if (n->n == MEM_NODE_SLOTS) { entry_remove(s, old); old = NULL; } /* room for e; n keeps 7 */
    }
    if (victim && n->n == MEM_NODE_SLOTS) {
        count(cnt->evictions, victim->model);
        entry_remove(s, victim);
        victim = NULL;
    }
    n->ent[n->n] = e; /* newest last */
    n->tag[n->n] = entry_tag(k->model, k->h1);
    n->model[n->n] = (uint8_t)k->model;
    n->n++;
    lru_push_head(s, e);
    s->bytes += (long)bytes;
    s->entries++;
    if (old) entry_remove(s, old); /* n still holds e: the node stays */
    /* At most MEM_MAX_VARIANTS entries per entity and model (one per parameter set): a
     * client sweeping parameters keeps the newest few, and lookups stay a short walk. */
    if (victim) {
        count(cnt->evictions, victim->model);
        entry_remove(s, victim);
    }
    while (s->bytes > mc->shard_max_bytes && s->lru_tail && s->lru_tail != e) {
        count(cnt->evictions, s->lru_tail->model);
        entry_remove(s, s->lru_tail);
    }
out:
    pthread_mutex_unlock(&s->mu);
}

static uint64_t mem_generation(cache_backend_t *b, const char *entity_id) {
    mem_cache_t *mc = (mem_cache_t *)b;
    return atomic_load(&shard_of(mc, id_hash(entity_id))->gen);
}

static long mem_invalidate_entity(cache_backend_t *b, const char *entity_id, int model,
                                  cache_counts_t *cnt) {
    mem_cache_t *mc = (mem_cache_t *)b;
    uint64_t h = id_hash(entity_id);
    mem_shard_t *s = shard_of(mc, h);
    long removed = 0;
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add(&s->gen, 1);
    mem_node_t *n = node_find(s, entity_id, h);
    if (n) {
        /* newest first; the node is freed with its last entry, so stop there */
        for (int i = n->n - 1; i >= 0; i--) {
            mem_entry_t *e = n->ent[i];
            if (model >= 0 && e->model != (uint8_t)model) continue;
            int last = n->n == 1;
            count(cnt->invalidations, e->model);
            removed++;
            entry_remove(s, e);
            if (last) break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return removed;
}

static long mem_invalidate_model(cache_backend_t *b, int model, cache_counts_t *cnt) {
    mem_cache_t *mc = (mem_cache_t *)b;
    long removed = 0;
    for (int i = 0; i < mc->n_shards; i++) {
        mem_shard_t *s = &mc->shards[i];
        pthread_mutex_lock(&s->mu);
        atomic_fetch_add(&s->gen, 1);
        for (mem_entry_t *e = s->lru_head, *next; e; e = next) {
            next = e->lru_next;
            if (model >= 0 && e->model != (uint8_t)model) continue;
            count(cnt->invalidations, e->model);
            removed++;
            entry_remove(s, e);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return removed;
}

static void mem_usage(cache_backend_t *b, long *bytes, long *entries) {
    mem_cache_t *mc = (mem_cache_t *)b;
    long by = 0, en = 0;
    for (int i = 0; i < mc->n_shards; i++) {
        mem_shard_t *s = &mc->shards[i];
        pthread_mutex_lock(&s->mu);
        by += s->bytes;
        en += s->entries;
        pthread_mutex_unlock(&s->mu);
    }
    if (bytes) *bytes = by;
    if (entries) *entries = en;
}

static void mem_close(cache_backend_t *b) {
    mem_cache_t *mc = (mem_cache_t *)b;
    if (!mc) return;
    for (int i = 0; i < mc->n_shards; i++) {
        mem_shard_t *s = &mc->shards[i];
        for (mem_entry_t *e = s->lru_head, *next; e; e = next) {
            next = e->lru_next;
            free(e);
        }
        for (size_t k = 0; k < s->n_buckets; k++) {
            for (mem_node_t *n = s->buckets[k], *next; n; n = next) {
                next = n->next;
                free(n);
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(mc->shards);
    free(mc);
}

static const cache_methods_t MEM_METHODS = {
    .xGet = mem_get,
    .xPut = mem_put,
    .xGeneration = mem_generation,
    .xInvalidateEntity = mem_invalidate_entity,
    .xInvalidateModel = mem_invalidate_model,
    .xUsage = mem_usage,
    .xClose = mem_close,
};

cache_backend_t *cache_mem_open(long max_bytes, int n_shards) {
    if (n_shards <= 0) {
        /* enough shards that workers rarely meet on a lock, but each shard big enough that
         * its own LRU still means something (at least 1 MiB) */
        n_shards = 64;
        while (n_shards > 1 && max_bytes / n_shards < (1L << 20)) n_shards /= 2;
    }
    mem_cache_t *mc = calloc(1, sizeof *mc);
    if (!mc) return NULL;
    mc->shards = calloc((size_t)n_shards, sizeof *mc->shards);
    if (!mc->shards) {
        free(mc);
        return NULL;
    }
    mc->base.pMethods = &MEM_METHODS;
    mc->n_shards = n_shards;
    mc->shard_max_bytes = max_bytes / n_shards;
    for (int i = 0; i < n_shards; i++) {
        pthread_mutex_init(&mc->shards[i].mu, NULL);
        atomic_init(&mc->shards[i].gen, 0);
    }
    return &mc->base;
}
