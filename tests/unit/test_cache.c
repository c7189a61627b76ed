/* cache: what the result cache promises (src/cache/cache.h). */
#include <pthread.h>
#include <stdlib.h>

#include "cache/cache.h"
#include "core/config.h"
#include "metrics/metrics.h"
#include "test.h"

/* The backend one entity at a time: parameter set h1 of model 0, 2 outputs, entity "slot". */
static cache_scope_t set_of(uint64_t h1) {
    cache_scope_t s = {.dep = CACHE_DEP_ENTITY, .model = 0, .ttl_s = 3600, .n_outputs = 2, .h1 = h1, .h2 = h1 * 7};
    return s;
}

static void put_in(cache_backend_t *b, uint64_t h1, int64_t slot, uint64_t stamp, double v, cache_counts_t *cnt) {
    cache_scope_t s = set_of(h1);
    double out[2] = {v, -v};
    uint8_t code = 0;
    const char *id = "unused";
    b->pMethods->xPutMany(b, &s, b->pMethods->xGeneration(b), 1, &id, &slot, &stamp, 0, &code, out, cnt);
}

static int get_in(cache_backend_t *b, uint64_t h1, int64_t slot, uint64_t stamp, double *v, cache_counts_t *cnt) {
    cache_scope_t s = set_of(h1);
    uint8_t code = 99, hit = 7;
    double out[2] = {0, 0};
    const char *id = "unused";
    long hits = b->pMethods->xGetMany(b, &s, 1, &id, &slot, &stamp, 0, &code, out, &hit, cnt);
    if (hits != hit) return -1;
    if (hit && v) *v = out[0];
    if (hit && out[1] != -out[0]) return -1;
    return hit;
}

static void put(cache_backend_t *b, int64_t slot, uint64_t stamp, double v, cache_counts_t *cnt) {
    put_in(b, 1, slot, stamp, v, cnt);
}
static int get(cache_backend_t *b, int64_t slot, uint64_t stamp, double *v, cache_counts_t *cnt) {
    return get_in(b, 1, slot, stamp, v, cnt);
}

/* Bytes of a parameter set holding one 2-output entry (its first table). */
static long one_set_bytes(void) {
    cache_backend_t *b = cache_mem_open(1L << 20);
    cache_counts_t cnt = {0};
    put(b, 0, 1, 1, &cnt);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    b->pMethods->xClose(b);
    return bytes;
}

/* A full cache drops a set for each new one and hands the dropped table to the next set of
 * its size: the new set holds its own entries and none of the dropped set's, and the bytes
 * stay within the budget. */
static void a_reused_table_holds_only_its_new_sets_entries(void) {
    cache_backend_t *b = cache_mem_open(64 << 10);
    cache_counts_t cnt = {0};
    enum { SETS = 200, N = 40 };
    for (int k = 1; k <= SETS; k++) {
        cache_scope_t s = set_of((uint64_t)k);
        int64_t slots[N];
        uint64_t stamps[N];
        uint8_t codes[N];
        double out[2 * N];
        const char *ids[N];
        for (int i = 0; i < N; i++) {
            slots[i] = (int64_t)k * 1000 + i;
            stamps[i] = 1;
            codes[i] = 0;
            out[2 * i] = k + i / 100.0;
            out[2 * i + 1] = -out[2 * i];
            ids[i] = "unused";
        }
        b->pMethods->xPutMany(b, &s, b->pMethods->xGeneration(b), N, ids, slots, stamps, 0, codes, out, &cnt);
        for (int i = 0; i < N; i++) {
            double v = 0;
            ASSERT_EQ_INT(get_in(b, (uint64_t)k, slots[i], 1, &v, &cnt), 1);
            ASSERT_NEAR(v, k + i / 100.0, 0);
        }
        /* the slots of the sets dropped before it: not in this one */
        for (int m = 1; m <= 30 && m < k; m++)
            for (int i = 0; i < N; i += 7) ASSERT_EQ_INT(get_in(b, (uint64_t)k, (int64_t)(k - m) * 1000 + i, 1, NULL, &cnt), 0);
        long bytes = 0, entries = 0;
        b->pMethods->xUsage(b, &bytes, &entries);
        ASSERT_TRUE(bytes <= 64 << 10);
    }
    ASSERT_TRUE(cnt.evictions[0] > 0); /* sets were dropped: their tables were there to reuse */
    b->pMethods->xClose(b);
}

/* Parameter sets are dropped least recently used first, whole, when the bytes are over. */
static void lru_over_parameter_sets_by_bytes(void) {
    long per = one_set_bytes();
    ASSERT_TRUE(per > 0);
    cache_backend_t *b = cache_mem_open(3 * per); /* room for exactly three sets */
    cache_counts_t cnt = {0};
    put_in(b, 1, 10, 1, 1, &cnt);
    put_in(b, 2, 10, 1, 2, &cnt);
    put_in(b, 2, 11, 1, 2.5, &cnt);
    put_in(b, 3, 10, 1, 3, &cnt);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(bytes, 3 * per);
    ASSERT_EQ_INT(entries, 4);
    ASSERT_EQ_INT(cnt.evictions[0], 0);
    double v = 0;
    ASSERT_EQ_INT(get_in(b, 1, 10, 1, &v, &cnt), 1); /* set 1 is now the most recent: 2 the least */
    ASSERT_NEAR(v, 1, 0);
    put_in(b, 4, 10, 1, 4, &cnt);
    ASSERT_EQ_INT(cnt.evictions[0], 2); /* set 2's two entries */
    ASSERT_EQ_INT(get_in(b, 2, 10, 1, NULL, &cnt), 0);
    ASSERT_EQ_INT(get_in(b, 2, 11, 1, NULL, &cnt), 0);
    ASSERT_EQ_INT(get_in(b, 1, 10, 1, NULL, &cnt), 1);
    ASSERT_EQ_INT(get_in(b, 3, 10, 1, NULL, &cnt), 1);
    ASSERT_EQ_INT(get_in(b, 4, 10, 1, &v, &cnt), 1);
    ASSERT_NEAR(v, 4, 0);
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_TRUE(bytes <= 3 * per);
    ASSERT_EQ_INT(entries, 3);
    /* a budget smaller than one set's first table stores nothing */
    cache_backend_t *tiny = cache_mem_open(per - 1);
    put(tiny, 1, 1, 1, &cnt);
    ASSERT_EQ_INT(get(tiny, 1, 1, NULL, &cnt), 0);
    tiny->pMethods->xUsage(tiny, &bytes, &entries);
    ASSERT_EQ_INT(bytes, 0);
    ASSERT_EQ_INT(entries, 0);
    tiny->pMethods->xClose(tiny);
    b->pMethods->xClose(b);
}

/* One set alone may hold half the budget; past that, a clock sweep evicts entries not read
 * since the hand last passed first. */
static void a_full_set_evicts_by_clock(void) {
    long per = one_set_bytes(); /* a set with a 64-entry table */
    cache_backend_t *b = cache_mem_open(2 * per + 16); /* so its table never grows */
    cache_counts_t cnt = {0};
    for (int64_t i = 0; i < 44; i++) put(b, i, 1, (double)i, &cnt); /* 44 = 7/10 of 64 */
    ASSERT_EQ_INT(cnt.evictions[0], 0);
    for (int64_t i = 0; i < 22; i++) ASSERT_EQ_INT(get(b, i, 1, NULL, &cnt), 1); /* read: spared */
    put(b, 1000, 1, 5, &cnt);
    ASSERT_TRUE(cnt.evictions[0] >= 1 && cnt.evictions[0] <= 8);
    for (int64_t i = 0; i < 22; i++) ASSERT_EQ_INT(get(b, i, 1, NULL, &cnt), 1);
    ASSERT_EQ_INT(get(b, 1000, 1, NULL, &cnt), 1);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(bytes, per);
    ASSERT_EQ_INT(entries, 45 - cnt.evictions[0]);
    b->pMethods->xClose(b);
}

/* The table itself: many entries, random removals (invalidation), growth; every lookup
 * agrees with a plain array of what should be there. */
static void many_entries_agree_with_a_reference(void) {
    enum { N = 20000 };
    cache_backend_t *b = cache_mem_open(1L << 30);
    cache_counts_t cnt = {0};
    static double want[N];
    for (int i = 0; i < N; i++) want[i] = -1;
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 4 * N; round++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int64_t slot = (int64_t)(x % N);
        if ((x >> 32) % 4 == 0) {
            long n = b->pMethods->xInvalidateEntity(b, "unused", slot, -1, &cnt);
            ASSERT_EQ_INT(n, want[slot] >= 0);
            want[slot] = -1;
        } else {
            double v = (double)round;
            put(b, slot, 1, v, &cnt);
            want[slot] = v;
        }
    }
    long entries = 0, live = 0;
    for (int i = 0; i < N; i++) {
        double v = -1;
        int hit = get(b, i, 1, &v, &cnt);
        ASSERT_EQ_INT(hit, want[i] >= 0);
        if (hit) ASSERT_NEAR(v, want[i], 0);
        live += want[i] >= 0;
    }
    b->pMethods->xUsage(b, NULL, &entries);
    ASSERT_EQ_INT(entries, live);
    b->pMethods->xClose(b);
}

static void a_newer_stamp_never_sees_the_older_result(void) {
    cache_backend_t *b = cache_mem_open(1L << 20);
    cache_counts_t cnt = {0};
    put(b, 5, 5, 1.5, &cnt);
    double v = 0;
    ASSERT_EQ_INT(get(b, 5, 5, &v, &cnt), 1);
    ASSERT_NEAR(v, 1.5, 0);
    ASSERT_EQ_INT(get(b, 5, 6, NULL, &cnt), 0); /* something it depends on changed */
    ASSERT_EQ_INT(cnt.invalidations[0], 1);     /* the dead entry went at once */
    ASSERT_EQ_INT(get(b, 5, 5, NULL, &cnt), 0);
    put(b, 5, 7, 2.5, &cnt);
    put(b, 5, 6, 9.9, &cnt);                    /* computed earlier, stored late: ignored */
    ASSERT_EQ_INT(get(b, 5, 7, &v, &cnt), 1);
    ASSERT_NEAR(v, 2.5, 0);
    ASSERT_EQ_INT(get(b, 5, 6, NULL, &cnt), 0);
    /* other parameters of the same entity are other entries */
    ASSERT_EQ_INT(get_in(b, 2, 5, 7, NULL, &cnt), 0);
    /* a slot reused by a newer entity: its stamp is newer than anything the old one had */
    ASSERT_EQ_INT(get(b, 5, 40, NULL, &cnt), 0);
    ASSERT_EQ_INT(cnt.invalidations[0], 2);
    long entries = 0;
    b->pMethods->xUsage(b, NULL, &entries);
    ASSERT_EQ_INT(entries, 0);
    /* a 0 stamp (an unknown entity) is neither stored nor looked up */
    put(b, 6, 0, 1, &cnt);
    b->pMethods->xUsage(b, NULL, &entries);
    ASSERT_EQ_INT(entries, 0);
    b->pMethods->xClose(b);
}

static int64_t fake_now;
static int64_t fake_clock(void *arg) {
    (void)arg;
    return fake_now;
}

static void ttl_expires_on_the_injected_clock(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    cfg.cache_ttl_ews_s = 10;
    metrics_t *m = metrics_new();
    cache_t *c = cache_new(cache_mem_open(1L << 20), &cfg, m);
    ASSERT_TRUE(c != NULL);
    fake_now = 1000000;
    cache_set_clock(c, fake_clock, NULL);
    cache_scope_t s;
    cache_scope(c, "ews", 2, 0, NULL, "{\"a\":1}", "E\0", 2, &s);
    ASSERT_EQ_INT(s.dep, CACHE_DEP_ENTITY);
    ASSERT_EQ_INT(s.ttl_s, 10);
    double in[2] = {0.25, 0.5}, out[2] = {0, 0};
    uint8_t code = 9, c0 = 0, hit = 0;
    const char *id = "E";
    int64_t slot = 0;
    uint64_t stamp = 3;
    cache_put_many(c, &s, cache_generation(c), 1, &id, &slot, &stamp, &c0, in);
    fake_now += 9999;
    ASSERT_EQ_INT(cache_get_many(c, &s, 1, &id, &slot, &stamp, &code, out, &hit), 1);
    ASSERT_EQ_INT(hit, 1);
    ASSERT_EQ_INT(code, 0);
    ASSERT_NEAR(out[1], 0.5, 0);
    fake_now += 1; /* exactly the TTL: no longer served */
    ASSERT_EQ_INT(cache_get_many(c, &s, 1, &id, &slot, &stamp, &code, out, &hit), 0);
    ASSERT_EQ_INT(hit, 0);
    ASSERT_NEAR(metrics_value(m, "predictd_cache_evictions_total", "model=\"ews\""), 1, 0);
    cache_free(c);
    metrics_free(m);
}

/* One entity through the front end, its slot from the graph. */
static void fput(cache_t *c, graph_t *g, const cache_scope_t *s, const char *id, uint64_t gen) {
    double v[4] = {1, 2, 3, 4};
    uint8_t code = 0;
    graph_rdlock(g);
    int64_t slot = graph_find(g, id);
    graph_unlock(g);
    uint64_t stamp = 1;
    cache_put_many(c, s, gen, 1, &id, &slot, &stamp, &code, v);
}

static int fget(cache_t *c, graph_t *g, const cache_scope_t *s, const char *id) {
    double out[4];
    uint8_t code, hit;
    graph_rdlock(g);
    int64_t slot = graph_find(g, id);
    graph_unlock(g);
    uint64_t stamp = 1;
    return (int)cache_get_many(c, s, 1, &id, &slot, &stamp, &code, out, &hit);
}

static void invalidation_by_entity_model_and_all(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    metrics_t *m = metrics_new();
    cache_t *c = cache_new(cache_mem_open(1L << 20), &cfg, m);
    graph_t *g = graph_new();
    json_t *props = json_pack("{s:i}", "spin", 1);
    const char *ids[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) graph_upsert_entity(g, ids[i], props, 1);
    cache_attach_graph(c, g);
    cache_scope_t si, se;
    cache_scope(c, "ising", 4, 0, NULL, "{\"temperature\":1}", "A\0B\0", 4, &si);
    cache_scope(c, "ews", 4, 0, NULL, "{}", "A\0B\0", 4, &se);
    for (int i = 0; i < 3; i++) {
        fput(c, g, &si, ids[i], cache_generation(c));
        fput(c, g, &se, ids[i], cache_generation(c));
    }
    ASSERT_EQ_INT(cache_invalidate_entity(c, "A"), 2); /* the EWS-alert trigger: every model */
    ASSERT_EQ_INT(cache_invalidate_entity(c, "nope"), 0);
    ASSERT_EQ_INT(fget(c, g, &si, "A"), 0);
    ASSERT_EQ_INT(fget(c, g, &se, "A"), 0);
    ASSERT_EQ_INT(fget(c, g, &si, "B"), 1);
    const char *b_only[] = {"B"};
    ASSERT_EQ_INT(cache_invalidate(c, b_only, 1, "ews", 0), 1);
    ASSERT_EQ_INT(fget(c, g, &se, "B"), 0);
    ASSERT_EQ_INT(fget(c, g, &si, "B"), 1);
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, "ising", 0), 2); /* B and C */
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, "nope", 0), -1);
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, NULL, 1), 1);    /* C's ews entry */
    ASSERT_NEAR(metrics_value(m, "predictd_cache_invalidations_total", "model=\"ising\""), 3, 0);
    ASSERT_NEAR(metrics_value(m, "predictd_cache_invalidations_total", "model=\"ews\""), 3, 0);
    /* a result computed before an invalidation is not stored after it */
    uint64_t gen = cache_generation(c);
    cache_invalidate_entity(c, "A");
    fput(c, g, &si, "A", gen);
    ASSERT_EQ_INT(fget(c, g, &si, "A"), 0);
    fput(c, g, &si, "A", cache_generation(c));
    ASSERT_EQ_INT(fget(c, g, &si, "A"), 1);
    json_decref(props);
    cache_free(c);
    graph_free(g);
    metrics_free(m);
}

static void stamps_follow_what_a_result_depends_on(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    cache_t *c = cache_new(cache_mem_open(1L << 20), &cfg, NULL);
    graph_t *g = graph_new();
    json_t *props = json_pack("{s:i}", "spin", 1);
    graph_upsert_entity(g, "A", props, 3);
    graph_upsert_entity(g, "B", props, 4);
    graph_upsert_entity(g, "C", props, 5);
    graph_upsert_entity(g, "D", props, 9);
    graph_add_relationship(g, "A", "B", 1.0, 1);
    graph_add_relationship(g, "B", "C", 1.0, 1);
    cache_scope_t nb, en, gl;
    cache_scope(c, "ising", 4, 1, NULL, "{\"method\":\"analytic\"}", "A\0", 2, &nb);
    cache_scope(c, "bifurcation", 4, 0, NULL, "{}", "A\0", 2, &en);
    cache_scope(c, "cascade", 2, 0, NULL, "{}", "A\0", 2, &gl);
    ASSERT_EQ_INT(nb.dep, CACHE_DEP_NEIGHBOURS);
    ASSERT_EQ_INT(en.dep, CACHE_DEP_ENTITY);
    ASSERT_EQ_INT(gl.dep, CACHE_DEP_GLOBAL);
    graph_rdlock(g);
    int64_t a = graph_find(g, "A"), b = graph_find(g, "B");
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, a), 4);   /* max(A 3, B 4) */
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, b), 5);   /* max(B 4, A 3, C 5) */
    ASSERT_EQ_INT(cache_stamp(c, &en, g, a), 3);
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, graph_find(g, "nope")), 0);
    uint64_t g0 = cache_stamp(c, &gl, g, a);
    ASSERT_TRUE(g0 != 0);
    graph_unlock(g);
    /* C's spin changes (version 10): B's Ising key moves, A's does not (not a neighbour) */
    graph_upsert_entity(g, "C", props, 10);
    cache_on_graph_change(c, 10);
    graph_rdlock(g);
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, b), 10);
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, a), 4);
    ASSERT_TRUE(cache_stamp(c, &gl, g, a) > g0);   /* cascades: any change */
    graph_unlock(g);
    /* a relationship A-D bumps both ends (as the store does): A's key moves */
    graph_add_relationship(g, "A", "D", 2.0, 1);
    graph_set_version(g, "A", 11);
    graph_set_version(g, "D", 11);
    graph_rdlock(g);
    ASSERT_EQ_INT(cache_stamp(c, &nb, g, a), 11);
    graph_unlock(g);
    json_decref(props);
    graph_free(g);
    cache_free(c);
}

static void scope_separates_parameters_and_skips_job_level_models(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    cache_t *c = cache_new(cache_mem_open(1L << 20), &cfg, NULL);
    json_t *mc = json_pack("{s:s}", "method", "monte_carlo");
    cache_scope_t s1, s2, s3, s4;
    cache_scope(c, "ising", 4, 1, NULL, "{\"temperature\":1.0}", "A\0", 2, &s1);
    cache_scope(c, "ising", 4, 1, NULL, "{\"temperature\":2.0}", "A\0", 2, &s2);
    ASSERT_TRUE(s1.h1 != s2.h1 && s1.h2 != s2.h2);
    cache_scope(c, "ising", 4, 1, NULL, "{\"temperature\":1.0}", "B\0", 2, &s3);
    ASSERT_TRUE(s1.h1 == s3.h1 && s1.h2 == s3.h2); /* analytic: per entity, not per request */
    ASSERT_EQ_INT(s1.ttl_s, 3600);
    cache_scope(c, "ising", 4, 1, mc, "{\"method\":\"monte_carlo\"}", "A\0", 2, &s4);
    ASSERT_EQ_INT(s4.dep, CACHE_DEP_NONE);         /* simulated once per job (xPrepare) */
    cache_scope(c, "cascade", 2, 1, NULL, "{}", "A\0", 2, &s4);
    ASSERT_EQ_INT(s4.dep, CACHE_DEP_NONE);         /* job summary: not per-entity */
    cache_scope(c, "cascade", 2, 0, NULL, "{}", "A\0", 2, &s3);
    cache_scope(c, "cascade", 2, 0, NULL, "{}", "B\0", 2, &s4);
    ASSERT_TRUE(s3.h1 != s4.h1);                   /* whole-graph models: per request */
    ASSERT_EQ_INT(s3.ttl_s, 1800);
    cache_scope(c, "session", 2, 0, NULL, "{}", "A\0", 2, &s4);
    ASSERT_EQ_INT(s4.dep, CACHE_DEP_NONE);
    cache_scope(NULL, "ising", 4, 0, NULL, "{}", "A\0", 2, &s4);
    ASSERT_EQ_INT(s4.dep, CACHE_DEP_NONE);
    json_decref(mc);
    cache_free(c);
}

static void metrics_count_hits_misses_and_bytes(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    metrics_t *m = metrics_new();
    cache_t *c = cache_new(cache_mem_open(1L << 20), &cfg, m);
    cache_scope_t s;
    cache_scope(c, "ising", 4, 0, NULL, "{}", "A\0", 2, &s);
    cache_count(c, &s, 7, 3);
    double v[4] = {0};
    uint8_t code = 0;
    const char *id = "A";
    int64_t slot = 0;
    uint64_t stamp = 1;
    cache_put_many(c, &s, cache_generation(c), 1, &id, &slot, &stamp, &code, v);
    buf_t b = {0};
    metrics_render(m, &b);
    ASSERT_TRUE(b.data && strstr(b.data, "predictd_cache_hits_total{model=\"ising\"} 7\n"));
    ASSERT_TRUE(strstr(b.data, "predictd_cache_misses_total{model=\"ising\"} 3\n"));
    ASSERT_TRUE(strstr(b.data, "predictd_cache_hits_total{model=\"ews\"} 0\n"));
    ASSERT_TRUE(metrics_value(m, "predictd_cache_bytes", NULL) > 0);
    ASSERT_NEAR(metrics_value(m, "predictd_cache_entries", NULL), 1, 0);
    buf_free(&b);
    cache_free(c);
    metrics_free(m);
}

/* Many threads putting, getting and invalidating over a small budget: no corruption (the
 * sanitizer build checks memory), and the budget holds. */
typedef struct {
    cache_backend_t *b;
    int seed;
} stress_arg_t;

static void *stress(void *arg) {
    stress_arg_t *a = arg;
    uint64_t x = (uint64_t)a->seed * 0x9e3779b97f4a7c15ULL + 1;
    cache_counts_t cnt = {0};
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int64_t slot = (int64_t)(x % 500);
        uint64_t stamp = 1 + (x >> 20) % 3, set = 1 + (x >> 50) % 6;
        int op = (int)((x >> 40) % 10);
        if (op < 5) put_in(a->b, set, slot, stamp, (double)stamp, &cnt);
        else if (op < 9) {
            double v = 0;
            int hit = get_in(a->b, set, slot, stamp, &v, &cnt);
            if (hit < 0 || (hit && v != (double)stamp)) return (void *)1;
        } else {
            a->b->pMethods->xInvalidateEntity(a->b, "unused", slot, -1, &cnt);
        }
    }
    return NULL;
}

static void concurrent_use_keeps_the_budget(void) {
    long per = one_set_bytes();
    long max = 12 * per;
    cache_backend_t *b = cache_mem_open(max);
    pthread_t t[8];
    stress_arg_t args[8];
    for (int i = 0; i < 8; i++) {
        args[i].b = b;
        args[i].seed = i + 1;
        pthread_create(&t[i], NULL, stress, &args[i]);
    }
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    ASSERT_EQ_INT(bad, 0);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_TRUE(bytes <= max);
    ASSERT_TRUE(entries > 0);
    b->pMethods->xInvalidateModel(b, -1, &(cache_counts_t){0});
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(bytes, 0);
    ASSERT_EQ_INT(entries, 0);
    b->pMethods->xClose(b);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(lru_over_parameter_sets_by_bytes),
        TEST_CASE(a_full_set_evicts_by_clock),
        TEST_CASE(a_reused_table_holds_only_its_new_sets_entries),
        TEST_CASE(many_entries_agree_with_a_reference),
        TEST_CASE(a_newer_stamp_never_sees_the_older_result),
        TEST_CASE(ttl_expires_on_the_injected_clock),
        TEST_CASE(invalidation_by_entity_model_and_all),
        TEST_CASE(stamps_follow_what_a_result_depends_on),
        TEST_CASE(scope_separates_parameters_and_skips_job_level_models),
        TEST_CASE(metrics_count_hits_misses_and_bytes),
        TEST_CASE(concurrent_use_keeps_the_budget),
    };
    return test_main("cache", cases, (int)(sizeof cases / sizeof cases[0]));
}
