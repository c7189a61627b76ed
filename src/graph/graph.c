#include "graph/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

graph_t *graph_new(void) {
    graph_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_rwlock_init(&g->lock, NULL);
    return g;
}

void graph_free(graph_t *g) {
    if (!g) return;
    for (uint32_t i = 0; i < g->n; i++) {
        free(g->ids[i]);
        free(g->adj[i].w); /* the block holding all four arrays */
    }
    free(g->threshold);
    free(g->ids); free(g->spin); free(g->field); free(g->version); free(g->reach_version); free(g->adj); free(g->table);
    pthread_rwlock_destroy(&g->lock);
    free(g);
}

void graph_rdlock(graph_t *g) { pthread_rwlock_rdlock(&g->lock); }
void graph_unlock(graph_t *g) { pthread_rwlock_unlock(&g->lock); }

/* Table entries: the id's hash in the high 32 bits, index + 1 in the low 32 (0 = empty):
 * a probe compares the hash first and touches the id string only on a match, so a lookup
 * costs about one cache miss instead of one per probe. */
static uint64_t id_hash64(const char *id) { return hash_bytes(id, strlen(id), 0x6a09e667f3bcc908ULL); }

static uint32_t slot_of(const graph_t *g, const char *id, int *found) {
    const uint64_t h64 = id_hash64(id);
    const uint32_t mask = g->table_cap - 1, tag = (uint32_t)(h64 >> 32);
    uint32_t h = (uint32_t)h64 & mask;
    for (;;) {
        uint64_t v = g->table[h];
        if (v == 0) { *found = 0; return h; }
        if ((uint32_t)(v >> 32) == tag) {
            const char *s = g->ids[(uint32_t)v - 1];
            if (s && strcmp(s, id) == 0) { *found = 1; return h; }
        }
        h = (h + 1) & mask;
    }
}

static uint64_t table_entry(const char *id, uint32_t index) {
    return (id_hash64(id) & 0xFFFFFFFF00000000ULL) | (uint64_t)(index + 1);
}

int64_t graph_find(const graph_t *g, const char *id) {
    if (!g->table_cap) return -1;
    int found;
    uint32_t h = slot_of(g, id, &found);
    return found ? (int64_t)(uint32_t)g->table[h] - 1 : -1;
}

/* A lookup is a chain of dependent loads (table slot, the slot's id pointer, the id string),
 * each a likely cache miss in a big graph. Many at once go in stages over a block of ids, each
 * stage prefetching what the next one reads, so the misses of a block overlap instead of
 * queueing one after another. */
#define FIND_BLOCK 32

void graph_find_many(const graph_t *g, const char *const *ids, size_t n, int64_t *out) {
    if (!g->table_cap) {
        for (size_t k = 0; k < n; k++) out[k] = -1;
        return;
    }
    const uint32_t mask = g->table_cap - 1;
    uint64_t h64[FIND_BLOCK];
    uint32_t cand[FIND_BLOCK];
    for (size_t base = 0; base < n; base += FIND_BLOCK) {
        const size_t m = n - base < FIND_BLOCK ? n - base : FIND_BLOCK;
        for (size_t k = 0; k < m; k++) {
            h64[k] = id_hash64(ids[base + k]);
            __builtin_prefetch(&g->table[(uint32_t)h64[k] & mask]);
        }
        for (size_t k = 0; k < m; k++) { /* the first slot with the id's tag: almost always it */
            const uint32_t tag = (uint32_t)(h64[k] >> 32);
            cand[k] = 0;
            for (uint32_t h = (uint32_t)h64[k] & mask;; h = (h + 1) & mask) {
                const uint64_t v = g->table[h];
                if (v == 0) break;
                if ((uint32_t)(v >> 32) == tag) {
                    cand[k] = (uint32_t)v;
                    __builtin_prefetch(&g->ids[cand[k] - 1]);
                    break;
                }
            }
        }
        for (size_t k = 0; k < m; k++)
            if (cand[k] && g->ids[cand[k] - 1]) __builtin_prefetch(g->ids[cand[k] - 1]);
        for (size_t k = 0; k < m; k++) {
            const char *s = cand[k] ? g->ids[cand[k] - 1] : NULL;
            out[base + k] = s && strcmp(s, ids[base + k]) == 0 ? (int64_t)cand[k] - 1 : graph_find(g, ids[base + k]);
        }
    }
}

/* Table holds every slot ever used (deleted slots keep their index with ids NULL, so
 * probing stays valid); rehash when 70% full. */
static int grow_table(graph_t *g) {
    uint32_t cap = g->table_cap ? g->table_cap * 2 : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) return -1;
    free(g->table);
    g->table = t;
    g->table_cap = cap;
    for (uint32_t i = 0; i < g->n; i++) {
        if (!g->ids[i]) continue;
        int found;
        uint32_t h = slot_of(g, g->ids[i], &found);
        g->table[h] = table_entry(g->ids[i], i);
    }
    return 0;
}

/* Sets i's version and raises reach_version (the highest version among an entity and its
 * neighbours) of i and of every neighbour: what reads i's state sees the change. Versions
 * come from one store-wide counter that only grows, so a raise is never undone. */
static void version_set(graph_t *g, uint32_t i, uint64_t version) {
    g->version[i] = version;
    if (version > g->reach_version[i]) g->reach_version[i] = version;
    const graph_adj_t *a = &g->adj[i];
    for (uint32_t k = 0; k < a->n; k++)
        if (version > g->reach_version[a->nbr[k]]) g->reach_version[a->nbr[k]] = version;
}

static int grow_nodes(graph_t *g) {
    uint32_t cap = g->cap ? g->cap * 2 : 1024;
#define GROW(field) do { void *p = realloc(g->field, (size_t)cap * sizeof *g->field); if (!p) return -1; g->field = p; } while (0)
    GROW(ids); GROW(spin); GROW(field); GROW(threshold); GROW(version); GROW(reach_version); GROW(adj);
#undef GROW
    memset(g->adj + g->cap, 0, (size_t)(cap - g->cap) * sizeof *g->adj);
    g->cap = cap;
    return 0;
}

static double prop_number(const json_t *props, const char *key, double def) {
    const json_t *v = props ? json_object_get(props, key) : NULL;
    return (v && json_is_number(v)) ? json_number_value(v) : def;
}

void graph_upsert_entity(graph_t *g, const char *id, const json_t *props, uint64_t version) {
    pthread_rwlock_wrlock(&g->lock);
    graph_upsert_entity_locked(g, id, props, version);
    pthread_rwlock_unlock(&g->lock);
}

void graph_upsert_entity_locked(graph_t *g, const char *id, const json_t *props, uint64_t version) {
    int64_t i = graph_find(g, id);
    if (i < 0) {
        if ((g->n + 1) * 10 >= g->table_cap * 7 && grow_table(g)) goto out;
        if (g->n == g->cap && grow_nodes(g)) goto out;
        char *copy = strdup(id);
        if (!copy) goto out;
        i = g->n++;
        g->ids[i] = copy;
        memset(&g->adj[i], 0, sizeof g->adj[i]);
        g->reach_version[i] = 0;
        int found;
        uint32_t h = slot_of(g, id, &found);
        g->table[h] = table_entry(id, (uint32_t)i);
        g->live++;
    }
    double s = prop_number(props, "spin", NAN);
    g->spin[i] = (s == 1.0 || s == -1.0) ? s : NAN;
    g->field[i] = prop_number(props, "field", 0.0);
    g->threshold[i] = prop_number(props, "threshold", NAN);
    version_set(g, (uint32_t)i, version);
    __atomic_add_fetch(&g->mutations, 1, __ATOMIC_RELEASE);
out:
    return;
}

static void adj_remove_at(graph_adj_t *a, uint32_t k) {
    a->n--;
    a->nbr[k] = a->nbr[a->n];
    a->w[k] = a->w[a->n];
    a->count[k] = a->count[a->n];
    a->out[k] = a->out[a->n];
}

static int64_t adj_find(const graph_adj_t *a, uint32_t j) {
    for (uint32_t k = 0; k < a->n; k++)
        if (a->nbr[k] == j) return k;
    return -1;
}

void graph_delete_entity(graph_t *g, const char *id) {
    pthread_rwlock_wrlock(&g->lock);
    graph_delete_entity_locked(g, id);
    pthread_rwlock_unlock(&g->lock);
}

void graph_delete_entity_locked(graph_t *g, const char *id) {
    int64_t i = graph_find(g, id);
    __atomic_add_fetch(&g->mutations, 1, __ATOMIC_RELEASE);
    if (i >= 0) {
        graph_adj_t *a = &g->adj[i];
        for (uint32_t k = 0; k < a->n; k++) {
            graph_adj_t *b = &g->adj[a->nbr[k]];
            int64_t back = adj_find(b, (uint32_t)i);
            if (back >= 0) adj_remove_at(b, (uint32_t)back);
            g->edges--;
        }
        free(a->w);
        memset(a, 0, sizeof *a);
        /* keep the slot in the hash table (probe chains stay intact) but make it unmatchable */
        free(g->ids[i]);
        g->ids[i] = NULL;
        g->live--;
        g->graph_version++;
    }
}

/* outward: the relationships point from a's entity to j (else from j to it). */
static int adj_add(graph_adj_t *a, uint32_t j, double w, int delta, int outward) {
    int64_t k = adj_find(a, j);
    if (k >= 0) {
        a->w[k] += w * (delta > 0 ? 1 : -1);
        if (delta < 0 && a->count[k] <= (uint32_t)-delta) { adj_remove_at(a, (uint32_t)k); return -1; }
        a->count[k] += (uint32_t)delta;
        if (outward) {
            if (delta < 0 && a->out[k] < (uint32_t)-delta) a->out[k] = 0;
            else a->out[k] += (uint32_t)delta;
        }
        return 0;
    }
    if (delta < 0) return 0;
    if (a->n == a->cap) {
        /* one block per entity, the arrays back to back (w first: doubles stay aligned), so
         * a model reading an entity's neighbours and weights touches neighbouring lines */
        uint32_t cap = a->cap ? a->cap * 2 : 4;
        char *blk = malloc((size_t)cap * (sizeof *a->w + 3 * sizeof *a->nbr));
        if (!blk) return 0;
        double *w2 = (double *)blk;
        uint32_t *nbr2 = (uint32_t *)(w2 + cap), *cnt2 = nbr2 + cap, *out2 = cnt2 + cap;
        if (a->n) {
            memcpy(w2, a->w, a->n * sizeof *w2);
            memcpy(nbr2, a->nbr, a->n * sizeof *nbr2);
            memcpy(cnt2, a->count, a->n * sizeof *cnt2);
            memcpy(out2, a->out, a->n * sizeof *out2);
        }
        free(a->w);
        a->w = w2;
        a->nbr = nbr2;
        a->count = cnt2;
        a->out = out2;
        a->cap = cap;
    }
    a->nbr[a->n] = j;
    a->w[a->n] = w;
    a->count[a->n] = (uint32_t)delta;
    a->out[a->n] = outward ? (uint32_t)delta : 0;
    a->n++;
    return 1;
}

void graph_add_relationship(graph_t *g, const char *a, const char *b, double weight, int delta) {
    pthread_rwlock_wrlock(&g->lock);
    graph_add_relationship_locked(g, a, b, weight, delta);
    pthread_rwlock_unlock(&g->lock);
}

void graph_add_relationship_locked(graph_t *g, const char *a, const char *b, double weight, int delta) {
    int64_t i = graph_find(g, a), j = graph_find(g, b);
    if (i >= 0 && j >= 0 && i != j && delta != 0) {
        int r = adj_add(&g->adj[i], (uint32_t)j, weight, delta, 1);
        adj_add(&g->adj[j], (uint32_t)i, weight, delta, 0);
        g->edges += r;
        g->graph_version++;
        /* each end now reads the other (the store bumps both versions as well) */
        if (g->version[j] > g->reach_version[i]) g->reach_version[i] = g->version[j];
        if (g->version[i] > g->reach_version[j]) g->reach_version[j] = g->version[i];
        __atomic_add_fetch(&g->mutations, 1, __ATOMIC_RELEASE);
    }
}

void graph_set_version(graph_t *g, const char *id, uint64_t version) {
    pthread_rwlock_wrlock(&g->lock);
    graph_set_version_locked(g, id, version);
    pthread_rwlock_unlock(&g->lock);
}

void graph_set_version_locked(graph_t *g, const char *id, uint64_t version) {
    int64_t i = graph_find(g, id);
    if (i >= 0) version_set(g, (uint32_t)i, version);
    __atomic_add_fetch(&g->mutations, 1, __ATOMIC_RELEASE);
}

void graph_wrlock(graph_t *g) { pthread_rwlock_wrlock(&g->lock); }
