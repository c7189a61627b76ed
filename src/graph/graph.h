/* The in-memory entity graph: id -> index map, per-entity spin/field/version, and an
 * adjacency list per entity (undirected; parallel relationships add their weights; self-loops
 * are kept out). Built from the store at start and kept current by the store's commit hooks,
 * which run in commit order, so the graph always equals the last committed state.
 * Thread-safety: readers take graph_rdlock/graph_unlock around a batch of reads; mutators
 * take the write lock internally. */
#ifndef PREDICTD_GRAPH_H
#define PREDICTD_GRAPH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct {
    uint32_t *nbr;   /* neighbour indices */
    double *w;       /* summed weight per neighbour (owns the block all four arrays live in) */
    uint32_t *count; /* relationships behind each entry (an entry goes at 0) */
    uint32_t *out;   /* of those, how many point from this entity to the neighbour (the
                      * rest point in); directed models (cascade) read it */
    uint32_t n, cap;
} graph_adj_t;

typedef struct graph {
    pthread_rwlock_t lock; /* protects everything below */
    char **ids;            /* index -> id (owned); NULL for a deleted slot */
    double *spin;          /* NAN when the entity has no usable spin */
    double *field;
    double *threshold;     /* the 'threshold' property (cascade); NAN when absent */
    uint64_t *version;
    uint64_t *reach_version; /* max version of the entity and its neighbours (never lowered):
                              * changes whenever anything an Ising result reads changes */
    graph_adj_t *adj;
    uint32_t n, cap;       /* slots used / allocated */
    uint64_t *table;       /* open addressing: hash << 32 | (index + 1), 0 = empty */
    uint32_t table_cap;    /* power of two */
    uint32_t live;         /* entities present */
    uint64_t edges;        /* adjacency entries / 2 */
    uint64_t graph_version;/* bumped on every relationship change */
    uint64_t mutations;    /* bumped by every mutator: equal before and after = nothing changed
                            * (atomic: graph_mutations() reads it without the lock) */
} graph_t;

graph_t *graph_new(void);
void graph_free(graph_t *g);

/* The mutation count, read without the lock (it only grows). */
static inline uint64_t graph_mutations(const graph_t *g) { return __atomic_load_n(&g->mutations, __ATOMIC_ACQUIRE); }

void graph_rdlock(graph_t *g);
void graph_unlock(graph_t *g);

/* Lookups: call with the read lock held. -1 when unknown. */
int64_t graph_find(const graph_t *g, const char *id);
/* out[k] = graph_find(g, ids[k]) for n ids, with the memory accesses of many overlapped. */
void graph_find_many(const graph_t *g, const char *const *ids, size_t n, int64_t *out);

/* Mutators (take the write lock). props: the entity's full property object. */
void graph_upsert_entity(graph_t *g, const char *id, const json_t *props, uint64_t version);
void graph_delete_entity(graph_t *g, const char *id);
/* Adds (delta > 0 relationships) or removes (delta < 0) weight between two known entities. */
void graph_add_relationship(graph_t *g, const char *a, const char *b, double weight, int delta);
void graph_set_version(graph_t *g, const char *id, uint64_t version);

/* Bulk updates (an import of many rows) take the write lock once: graph_wrlock, then the
 * *_locked variants, then graph_unlock. Readers see all of the batch or none of it. */
void graph_wrlock(graph_t *g);
void graph_upsert_entity_locked(graph_t *g, const char *id, const json_t *props, uint64_t version);
void graph_add_relationship_locked(graph_t *g, const char *a, const char *b, double weight, int delta);
void graph_delete_entity_locked(graph_t *g, const char *id);
void graph_set_version_locked(graph_t *g, const char *id, uint64_t version);

#endif
