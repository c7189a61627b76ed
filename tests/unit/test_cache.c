/* cache: what the result cache promises (src/cache/cache.h). */
#include <pthread.h>
#include <stdlib.h>

#include "cache/cache.h"
#include "core/config.h"
#include "metrics/metrics.h"
#include "test.h"

static cache_key_t key(const char *id, uint64_t stamp) {
    cache_key_t k = {.model = 0, .h1 = 11, .h2 = 22, .entity_id = id, .stamp = stamp};
    return k;
}

static void put(cache_backend_t *b, const char *id, uint64_t stamp, double v, cache_counts_t *cnt) {
    cache_key_t k = key(id, stamp);
    double out[2] = {v, -v};
    b->pMethods->xPut(b, &k, b->pMethods->xGeneration(b, id), 0, 3600, 0, out, 2, cnt);
}

static int get(cache_backend_t *b, const char *id, uint64_t stamp, double *v, cache_counts_t *cnt) {
    cache_key_t k = key(id, stamp);
    uint8_t code = 99;
    double out[2] = {0, 0};
    int hit = b->pMethods->xGet(b, &k, 0, &code, out, 2, cnt);
    if (hit && v) *v = out[0];
    return hit;
}

/* Bytes one entity with one 2-output entry costs (ids of equal length cost the same). */
static long one_entry_bytes(void) {
    cache_backend_t *b = cache_mem_open(1L << 20, 1);
    cache_counts_t cnt = {0};
    put(b, "E-0", 1, 1, &cnt);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    b->pMethods->xClose(b);
    return bytes;
}

/* Per entity: at most 4 parameter sets of one model (the oldest goes), 8 entries in all
 * across models; replacing an entry of the same parameters never evicts another. */
static void variants_per_entity_are_bounded(void) {
    cache_backend_t *b = cache_mem_open(1L << 24, 1);
    cache_counts_t cnt = {0};
    double out[2] = {0, 0};
    uint8_t code;
    for (uint64_t p = 1; p <= 6; p++) { /* model 0, parameter sets 1..6 */
        cache_key_t k = {.model = 0, .h1 = p, .h2 = p, .entity_id = "E", .stamp = 1};
        out[0] = (double)p;
        b->pMethods->xPut(b, &k, b->pMethods->xGeneration(b, "E"), 0, 3600, 0, out, 2, &cnt);
    }
    ASSERT_EQ_INT(cnt.evictions[0], 2);
    for (uint64_t p = 1; p <= 6; p++) {
        cache_key_t k = {.model = 0, .h1 = p, .h2 = p, .entity_id = "E", .stamp = 1};
        int hit = b->pMethods->xGet(b, &k, 0, &code, out, 2, &cnt);
        ASSERT_EQ_INT(hit, p > 2);
        if (hit) ASSERT_NEAR(out[0], (double)p, 0);
    }
    /* a newer stamp of parameter set 6 replaces it in place: nothing else goes */
    cache_key_t k6 = {.model = 0, .h1 = 6, .h2 = 6, .entity_id = "E", .stamp = 2};
    b->pMethods->xPut(b, &k6, b->pMethods->xGeneration(b, "E"), 0, 3600, 0, out, 2, &cnt);
    ASSERT_EQ_INT(cnt.evictions[0], 2);
    /* other models fill the node up to 8 entries; the oldest entry overall goes then */
    for (int m = 1; m <= 5; m++) {
        cache_key_t k = {.model = m, .h1 = 1, .h2 = 1, .entity_id = "E", .stamp = 1};
        b->pMethods->xPut(b, &k, b->pMethods->xGeneration(b, "E"), 0, 3600, 0, out, 2, &cnt);
    }
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(entries, 8);
    cache_key_t k3 = {.model = 0, .h1 = 3, .h2 = 3, .entity_id = "E", .stamp = 1};
    ASSERT_TRUE(!b->pMethods->xGet(b, &k3, 0, &code, out, 2, &cnt)); /* the oldest, gone */
    ASSERT_EQ_INT(b->pMethods->xInvalidateEntity(b, "E", -1, &cnt), 8);
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(entries, 0);
    ASSERT_EQ_INT(bytes, 0);
    b->pMethods->xClose(b);
}

static void lru_evicts_the_least_recently_used_by_bytes(void) {
    long per = one_entry_bytes();
    ASSERT_TRUE(per > 0);
    cache_backend_t *b = cache_mem_open(3 * per, 1); /* room for exactly three */
    cache_counts_t cnt = {0};
    put(b, "E-1", 1, 1, &cnt);
    put(b, "E-2", 1, 2, &cnt);
    put(b, "E-3", 1, 3, &cnt);
    long bytes = 0, entries = 0;
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_EQ_INT(bytes, 3 * per);
    ASSERT_EQ_INT(entries, 3);
    ASSERT_EQ_INT(cnt.evictions[0], 0);
    double v = 0;
    ASSERT_TRUE(get(b, "E-1", 1, &v, &cnt)); /* E-1 is now the most recent: E-2 the least */
    ASSERT_NEAR(v, 1, 0);
    put(b, "E-4", 1, 4, &cnt);
    ASSERT_EQ_INT(cnt.evictions[0], 1);
    ASSERT_TRUE(!get(b, "E-2", 1, NULL, &cnt));
    ASSERT_TRUE(get(b, "E-1", 1, NULL, &cnt));
    ASSERT_TRUE(get(b, "E-3", 1, NULL, &cnt));
    ASSERT_TRUE(get(b, "E-4", 1, &v, &cnt));
    ASSERT_NEAR(v, 4, 0);
    b->pMethods->xUsage(b, &bytes, &entries);
    ASSERT_TRUE(bytes <= 3 * per);
    ASSERT_EQ_INT(entries, 3);
    /* an entry larger than the whole budget is not stored (and evicts nothing) */
    cache_backend_t *tiny = cache_mem_open(per - 1, 1);
    put(tiny, "E-1", 1, 1, &cnt);
    ASSERT_TRUE(!get(tiny, "E-1", 1, NULL, &cnt));
    tiny->pMethods->xClose(tiny);
    b->pMethods->xClose(b);
}

static void a_newer_stamp_never_sees_the_older_result(void) {
    cache_backend_t *b = cache_mem_open(1L << 20, 4);
    cache_counts_t cnt = {0};
    put(b, "X", 5, 1.5, &cnt);
    double v = 0;
    ASSERT_TRUE(get(b, "X", 5, &v, &cnt));
    ASSERT_NEAR(v, 1.5, 0);
    ASSERT_TRUE(!get(b, "X", 6, NULL, &cnt));   /* something it depends on changed */
    ASSERT_EQ_INT(cnt.invalidations[0], 1);     /* the dead entry went at once */
    ASSERT_TRUE(!get(b, "X", 5, NULL, &cnt));
    put(b, "X", 7, 2.5, &cnt);
    put(b, "X", 6, 9.9, &cnt);                  /* computed earlier, stored late: ignored */
    ASSERT_TRUE(get(b, "X", 7, &v, &cnt));
    ASSERT_NEAR(v, 2.5, 0);
    ASSERT_TRUE(!get(b, "X", 6, NULL, &cnt));
    /* other parameters of the same entity are other entries */
    cache_key_t k2 = key("X", 7);
    k2.h1 = 12;
    uint8_t code;
    double out[2];
    ASSERT_TRUE(!b->pMethods->xGet(b, &k2, 0, &code, out, 2, &cnt));
    long entries = 0;
    b->pMethods->xUsage(b, NULL, &entries);
    ASSERT_EQ_INT(entries, 1);
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
    cache_t *c = cache_new(cache_mem_open(1L << 20, 0), &cfg, m);
    ASSERT_TRUE(c != NULL);
    fake_now = 1000000;
    cache_set_clock(c, fake_clock, NULL);
    cache_scope_t s;
    cache_scope(c, "ews", 2, 0, NULL, "{\"a\":1}", "E\0", 2, &s);
    ASSERT_EQ_INT(s.dep, CACHE_DEP_ENTITY);
    ASSERT_EQ_INT(s.ttl_s, 10);
    double in[2] = {0.25, 0.5}, out[2] = {0, 0};
    uint8_t code = 9;
    cache_put(c, &s, "E", 3, cache_generation(c, "E"), 0, in);
    fake_now += 9999;
    ASSERT_EQ_INT(cache_get(c, &s, "E", 3, &code, out), 1);
    ASSERT_EQ_INT(code, 0);
    ASSERT_NEAR(out[1], 0.5, 0);
    fake_now += 1; /* exactly the TTL: no longer served */
    ASSERT_EQ_INT(cache_get(c, &s, "E", 3, &code, out), 0);
    ASSERT_NEAR(metrics_value(m, "predictd_cache_evictions_total", "model=\"ews\""), 1, 0);
    cache_free(c);
    metrics_free(m);
}

static void invalidation_by_entity_model_and_all(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    metrics_t *m = metrics_new();
    cache_t *c = cache_new(cache_mem_open(1L << 20, 0), &cfg, m);
    cache_scope_t si, se;
    cache_scope(c, "ising", 4, 0, NULL, "{\"temperature\":1}", "A\0B\0", 4, &si);
    cache_scope(c, "ews", 4, 0, NULL, "{}", "A\0B\0", 4, &se);
    double v[4] = {1, 2, 3, 4}, out[4];
    uint8_t code;
    const char *ids[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        cache_put(c, &si, ids[i], 1, cache_generation(c, ids[i]), 0, v);
        cache_put(c, &se, ids[i], 1, cache_generation(c, ids[i]), 0, v);
    }
    ASSERT_EQ_INT(cache_invalidate_entity(c, "A"), 2); /* the EWS-alert trigger: every model */
    ASSERT_EQ_INT(cache_get(c, &si, "A", 1, &code, out), 0);
    ASSERT_EQ_INT(cache_get(c, &se, "A", 1, &code, out), 0);
    ASSERT_EQ_INT(cache_get(c, &si, "B", 1, &code, out), 1);
    const char *b_only[] = {"B"};
    ASSERT_EQ_INT(cache_invalidate(c, b_only, 1, "ews", 0), 1);
    ASSERT_EQ_INT(cache_get(c, &se, "B", 1, &code, out), 0);
    ASSERT_EQ_INT(cache_get(c, &si, "B", 1, &code, out), 1);
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, "ising", 0), 2); /* B and C */
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, "nope", 0), -1);
    ASSERT_EQ_INT(cache_invalidate(c, NULL, 0, NULL, 1), 1);    /* C's ews entry */
    long entries = -1;
    ASSERT_NEAR(metrics_value(m, "predictd_cache_invalidations_total", "model=\"ising\""), 3, 0);
    ASSERT_NEAR(metrics_value(m, "predictd_cache_invalidations_total", "model=\"ews\""), 3, 0);
    (void)entries;
    /* a result computed before an invalidation is not stored after it */
    uint64_t gen = cache_generation(c, "A");
    cache_invalidate_entity(c, "A");
    cache_put(c, &si, "A", 1, gen, 0, v);
    ASSERT_EQ_INT(cache_get(c, &si, "A", 1, &code, out), 0);
    cache_put(c, &si, "A", 1, cache_generation(c, "A"), 0, v);
    ASSERT_EQ_INT(cache_get(c, &si, "A", 1, &code, out), 1);
    cache_free(c);
    metrics_free(m);
}

static void stamps_follow_what_a_result_depends_on(void) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    cache_t *c = cache_new(cache_mem_open(1L << 20, 0), &cfg, NULL);
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
    cache_t *c = cache_new(cache_mem_open(1L << 20, 0), &cfg, NULL);
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
    cache_t *c = cache_new(cache_mem_open(1L << 20, 0), &cfg, m);
    cache_scope_t s;
    cache_scope(c, "ising", 4, 0, NULL, "{}", "A\0", 2, &s);
    cache_count(c, &s, 7, 3);
    double v[4] = {0};
    cache_put(c, &s, "A", 1, cache_generation(c, "A"), 0, v);
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
        char id[16];
        snprintf(id, sizeof id, "E-%d", (int)(x % 500));
        uint64_t stamp = 1 + (x >> 20) % 3;
        int op = (int)((x >> 40) % 10);
        if (op < 5) put(a->b, id, stamp, (double)stamp, &cnt);
        else if (op < 9) {
            double v = 0;
            if (get(a->b, id, stamp, &v, &cnt) && v != (double)stamp) return (void *)1;
        } else {
            a->b->pMethods->xInvalidateEntity(a->b, id, -1, &cnt);
        }
    }
    return NULL;
}

static void concurrent_use_keeps_the_budget(void) {
    long per = one_entry_bytes();
    long max = 100 * per;
    cache_backend_t *b = cache_mem_open(max, 4);
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
        TEST_CASE(lru_evicts_the_least_recently_used_by_bytes),
        TEST_CASE(variants_per_entity_are_bounded),
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
