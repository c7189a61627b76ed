/* graph: id lookup, entity upsert, undirected relationships whose parallel copies add their
 * weights, removal, entity deletion. */
#include <stdlib.h>

#include "graph/graph.h"
#include "test.h"

static json_t *props(double spin, double field) {
    return json_pack("{s:f, s:f}", "spin", spin, "field", field);
}

static void upsert(graph_t *g, const char *id, double spin, double field, uint64_t version) {
    json_t *p = props(spin, field);
    graph_upsert_entity(g, id, p, version);
    json_decref(p);
}

/* Weight and relationship count of the a->b entry; 0/0 when absent. */
static double weight(graph_t *g, const char *a, const char *b, uint32_t *count) {
    int64_t i = graph_find(g, a), j = graph_find(g, b);
    *count = 0;
    if (i < 0 || j < 0) return 0;
    const graph_adj_t *adj = &g->adj[i];
    for (uint32_t k = 0; k < adj->n; k++)
        if (adj->nbr[k] == (uint32_t)j) { *count = adj->count[k]; return adj->w[k]; }
    return 0;
}

static void test_upsert_and_find(void) {
    graph_t *g = graph_new();
    ASSERT_TRUE(g != NULL);
    ASSERT_EQ_INT(graph_find(g, "A"), -1); /* empty graph */
    upsert(g, "A", 1, 0.5, 1);
    upsert(g, "B", -1, 0, 1);
    ASSERT_EQ_INT(g->live, 2);
    int64_t a = graph_find(g, "A"), b = graph_find(g, "B");
    ASSERT_TRUE(a >= 0 && b >= 0 && a != b);
    ASSERT_EQ_STR(g->ids[a], "A");
    ASSERT_NEAR(g->spin[a], 1.0, 0);
    ASSERT_NEAR(g->field[a], 0.5, 0);
    ASSERT_NEAR(g->spin[b], -1.0, 0);
    ASSERT_EQ_INT(g->version[a], 1);
    ASSERT_EQ_INT(graph_find(g, "C"), -1);
    /* upsert of an existing id replaces its values in place */
    upsert(g, "A", -1, -2.25, 7);
    ASSERT_EQ_INT(graph_find(g, "A"), a);
    ASSERT_EQ_INT(g->live, 2);
    ASSERT_NEAR(g->spin[a], -1.0, 0);
    ASSERT_NEAR(g->field[a], -2.25, 0);
    ASSERT_EQ_INT(g->version[a], 7);
    graph_set_version(g, "A", 9);
    ASSERT_EQ_INT(g->version[a], 9);
    graph_set_version(g, "nobody", 9); /* unknown: no effect, no crash */
    graph_free(g);
    graph_free(NULL);
}

static void test_spin_and_field_defaults(void) {
    graph_t *g = graph_new();
    json_t *p = json_pack("{s:s}", "name", "x");
    graph_upsert_entity(g, "nospin", p, 1);
    json_decref(p);
    p = json_pack("{s:f}", "spin", 0.5);
    graph_upsert_entity(g, "halfspin", p, 1);
    json_decref(p);
    p = json_pack("{s:s, s:s}", "spin", "1", "field", "2");
    graph_upsert_entity(g, "strings", p, 1);
    json_decref(p);
    p = json_pack("{s:i}", "spin", -1); /* an integer spin counts */
    graph_upsert_entity(g, "intspin", p, 1);
    json_decref(p);
    graph_upsert_entity(g, "null", NULL, 1);
    int64_t i;
    i = graph_find(g, "nospin");   ASSERT_TRUE(isnan(g->spin[i])); ASSERT_NEAR(g->field[i], 0, 0);
    i = graph_find(g, "halfspin"); ASSERT_TRUE(isnan(g->spin[i]));
    i = graph_find(g, "strings");  ASSERT_TRUE(isnan(g->spin[i])); ASSERT_NEAR(g->field[i], 0, 0);
    i = graph_find(g, "intspin");  ASSERT_NEAR(g->spin[i], -1.0, 0);
    i = graph_find(g, "null");     ASSERT_TRUE(i >= 0 && isnan(g->spin[i]));
    graph_free(g);
}

static void test_parallel_relationships_add_weights(void) {
    graph_t *g = graph_new();
    upsert(g, "A", 1, 0, 1);
    upsert(g, "B", 1, 0, 1);
    upsert(g, "C", 1, 0, 1);
    uint64_t v0 = g->graph_version;
    graph_add_relationship(g, "A", "B", 1.5, 1);
    graph_add_relationship(g, "B", "A", 0.25, 1); /* undirected: same pair */
    graph_add_relationship(g, "A", "C", -0.5, 1);
    uint32_t cnt;
    ASSERT_NEAR(weight(g, "A", "B", &cnt), 1.75, 0); ASSERT_EQ_INT(cnt, 2);
    ASSERT_NEAR(weight(g, "B", "A", &cnt), 1.75, 0); ASSERT_EQ_INT(cnt, 2);
    ASSERT_NEAR(weight(g, "A", "C", &cnt), -0.5, 0); ASSERT_EQ_INT(cnt, 1);
    ASSERT_NEAR(weight(g, "C", "A", &cnt), -0.5, 0); ASSERT_EQ_INT(cnt, 1);
    ASSERT_NEAR(weight(g, "B", "C", &cnt), 0, 0); ASSERT_EQ_INT(cnt, 0);
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 2);
    ASSERT_EQ_INT(g->adj[graph_find(g, "B")].n, 1);
    ASSERT_EQ_INT(g->edges, 2);
    ASSERT_TRUE(g->graph_version > v0);
    graph_free(g);
}

static void test_remove_relationships(void) {
    graph_t *g = graph_new();
    upsert(g, "A", 1, 0, 1);
    upsert(g, "B", 1, 0, 1);
    graph_add_relationship(g, "A", "B", 1.5, 1);
    graph_add_relationship(g, "A", "B", 0.5, 1);
    uint32_t cnt;
    graph_add_relationship(g, "B", "A", 0.5, -1); /* remove one of the two */
    ASSERT_NEAR(weight(g, "A", "B", &cnt), 1.5, 0); ASSERT_EQ_INT(cnt, 1);
    ASSERT_NEAR(weight(g, "B", "A", &cnt), 1.5, 0); ASSERT_EQ_INT(cnt, 1);
    ASSERT_EQ_INT(g->edges, 1);
    graph_add_relationship(g, "A", "B", 1.5, -1); /* the last one: the entry goes */
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 0);
    ASSERT_EQ_INT(g->adj[graph_find(g, "B")].n, 0);
    ASSERT_EQ_INT(g->edges, 0);
    graph_add_relationship(g, "A", "B", 1.0, -1); /* nothing left to remove: no effect */
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 0);
    ASSERT_EQ_INT(g->edges, 0);
    /* several at once */
    graph_add_relationship(g, "A", "B", 2.0, 3);
    ASSERT_NEAR(weight(g, "A", "B", &cnt), 2.0, 0); ASSERT_EQ_INT(cnt, 3);
    graph_add_relationship(g, "A", "B", 2.0, -3);
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 0);
    ASSERT_EQ_INT(g->edges, 0);
    graph_free(g);
}

static void test_self_loops_and_unknown_ends_ignored(void) {
    graph_t *g = graph_new();
    upsert(g, "A", 1, 0, 1);
    uint64_t v0 = g->graph_version;
    graph_add_relationship(g, "A", "A", 1.0, 1);
    graph_add_relationship(g, "A", "ghost", 1.0, 1);
    graph_add_relationship(g, "ghost", "A", 1.0, 1);
    ASSERT_EQ_INT(g->adj[graph_find(g, "A")].n, 0);
    ASSERT_EQ_INT(g->edges, 0);
    ASSERT_EQ_INT(g->graph_version, v0);
    graph_free(g);
}

static void test_delete_entity(void) {
    graph_t *g = graph_new();
    upsert(g, "A", 1, 0, 1);
    upsert(g, "B", 1, 0, 1);
    upsert(g, "C", 1, 0, 1);
    graph_add_relationship(g, "A", "B", 1.0, 1);
    graph_add_relationship(g, "A", "C", 2.0, 1);
    graph_add_relationship(g, "B", "C", 3.0, 1);
    ASSERT_EQ_INT(g->edges, 3);
    uint64_t v0 = g->graph_version;
    graph_delete_entity(g, "A");
    ASSERT_EQ_INT(graph_find(g, "A"), -1);
    ASSERT_EQ_INT(g->live, 2);
    ASSERT_EQ_INT(g->edges, 1);
    ASSERT_TRUE(g->graph_version > v0);
    uint32_t cnt;
    ASSERT_EQ_INT(g->adj[graph_find(g, "B")].n, 1); /* only B-C is left */
    ASSERT_NEAR(weight(g, "B", "C", &cnt), 3.0, 0);
    ASSERT_EQ_INT(g->adj[graph_find(g, "C")].n, 1);
    ASSERT_NEAR(weight(g, "C", "B", &cnt), 3.0, 0);
    graph_delete_entity(g, "A");      /* twice: no effect */
    graph_delete_entity(g, "ghost");
    ASSERT_EQ_INT(g->live, 2);
    /* the id can come back, with no relationships */
    upsert(g, "A", -1, 0, 2);
    int64_t a = graph_find(g, "A");
    ASSERT_TRUE(a >= 0);
    ASSERT_EQ_INT(g->adj[a].n, 0);
    ASSERT_NEAR(g->spin[a], -1.0, 0);
    ASSERT_EQ_INT(g->live, 3);
    graph_add_relationship(g, "A", "B", 0.5, 1);
    ASSERT_NEAR(weight(g, "B", "A", &cnt), 0.5, 0);
    graph_free(g);
}

/* reach_version: the highest version among an entity and its neighbours. A change to X
 * raises it for X and X's neighbours (whose Ising results read X's spin), not for others. */
static void test_reach_version_follows_neighbours(void) {
    graph_t *g = graph_new();
    upsert(g, "X", 1, 0, 1);
    upsert(g, "Y", 1, 0, 2);
    upsert(g, "Z", 1, 0, 3);
    graph_add_relationship(g, "X", "Y", 1.0, 1);
    graph_rdlock(g);
    int64_t x = graph_find(g, "X"), y = graph_find(g, "Y"), z = graph_find(g, "Z");
    ASSERT_EQ_INT(g->reach_version[x], 2); /* Y's version reaches X through the new edge */
    ASSERT_EQ_INT(g->reach_version[y], 2);
    ASSERT_EQ_INT(g->reach_version[z], 3);
    uint64_t m0 = g->mutations;
    graph_unlock(g);
    graph_set_version(g, "Y", 10);
    graph_rdlock(g);
    ASSERT_EQ_INT(g->reach_version[x], 10);
    ASSERT_EQ_INT(g->reach_version[y], 10);
    ASSERT_EQ_INT(g->reach_version[z], 3);
    ASSERT_TRUE(g->mutations > m0);
    graph_unlock(g);
    upsert(g, "Z", -1, 0, 11); /* Z is nobody's neighbour */
    graph_rdlock(g);
    ASSERT_EQ_INT(g->reach_version[x], 10);
    ASSERT_EQ_INT(g->reach_version[z], 11);
    graph_unlock(g);
    graph_free(g);
}

static void test_many_entities_survive_growth(void) {
    enum { N = 20000 };
    graph_t *g = graph_new();
    char id[32], prev[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "E-%06d", i);
        upsert(g, id, (i % 2) ? 1 : -1, i * 0.5, (uint64_t)i);
        if (i > 0) {
            snprintf(prev, sizeof prev, "E-%06d", i - 1);
            graph_add_relationship(g, id, prev, 1.0, 1);
        }
    }
    /* delete every third, then check every lookup */
    for (int i = 0; i < N; i += 3) {
        snprintf(id, sizeof id, "E-%06d", i);
        graph_delete_entity(g, id);
    }
    ASSERT_EQ_INT(g->live, N - (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "E-%06d", i);
        int64_t k = graph_find(g, id);
        if (i % 3 == 0) { ASSERT_EQ_INT(k, -1); continue; }
        ASSERT_TRUE(k >= 0);
        ASSERT_EQ_STR(g->ids[k], id);
        ASSERT_NEAR(g->field[k], i * 0.5, 0);
        ASSERT_EQ_INT(g->version[k], i);
    }
    /* the chain lost the links at deleted nodes: i-(i-1) remains when neither is a multiple of 3 */
    uint64_t expect = 0;
    for (int i = 1; i < N; i++) if (i % 3 && (i - 1) % 3) expect++;
    ASSERT_EQ_INT(g->edges, expect);
    /* many at once: the same answers as one at a time, unknown and deleted ids included, in
     * blocks that do not divide the count */
    enum { M = 1000 };
    static char names[M][32];
    const char *batch[M];
    int64_t got[M];
    for (int k = 0; k < M; k++) {
        int i = (k * 7919) % (N + 500); /* past N: never created */
        snprintf(names[k], sizeof names[k], "E-%06d", i);
        batch[k] = names[k];
    }
    graph_rdlock(g);
    for (size_t n = 0; n <= M; n += 333) {
        graph_find_many(g, batch, n, got);
        for (size_t k = 0; k < n; k++) ASSERT_EQ_INT(got[k], graph_find(g, batch[k]));
    }
    graph_find_many(g, batch, M, got);
    int unknown = 0;
    for (int k = 0; k < M; k++) {
        ASSERT_EQ_INT(got[k], graph_find(g, batch[k]));
        unknown += got[k] < 0;
    }
    ASSERT_TRUE(unknown > 300 && unknown < M); /* deleted thirds plus the never-created */
    graph_unlock(g);
    graph_free(g);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_upsert_and_find),
        TEST_CASE(test_spin_and_field_defaults),
        TEST_CASE(test_parallel_relationships_add_weights),
        TEST_CASE(test_remove_relationships),
        TEST_CASE(test_self_loops_and_unknown_ends_ignored),
        TEST_CASE(test_delete_entity),
        TEST_CASE(test_many_entities_survive_growth),
        TEST_CASE(test_reach_version_follows_neighbours),
    };
    return test_main("graph", cases, (int)(sizeof cases / sizeof cases[0]));
}
