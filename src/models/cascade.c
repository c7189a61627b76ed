/* Granovetter threshold cascade (MODELS.md, `cascade`).
 *
 * Synchronous generations: the seeds are active at generation 0; at generation g + 1 every
 * inactive entity whose active-neighbour share (threshold_type "fraction") or count
 * ("count") over the state at the end of generation g reaches its threshold becomes active.
 * Stops at max_generations or when a generation activates nobody. Choices where MODELS.md
 * is silent, made here:
 *  - neighbours are counted, not weighted (Granovetter's model counts people); parallel
 *    relationships are one neighbour. directed: j influences i only through a relationship
 *    j -> i, and i's share is over those in-neighbours.
 *  - an entity with no (in-)neighbours never activates unless it is a seed, even with
 *    threshold 0; one with neighbours and threshold <= 0 activates at generation 1.
 *  - thresholds: the entity's numeric `threshold` property when use_entity_thresholds,
 *    else a draw: uniform on (0, 1], normal(mean, std) clipped to [0,1] (to [0, inf) for
 *    count thresholds), or fixed `value`. Each draw comes from the stream (seed, entity id,
 *    sample), so it does not depend on the graph's memory layout, the chunking or threads.
 *  - samples default 100, or 1 when no threshold is random (fixed distribution).
 *  - the summary's percentiles interpolate linearly between order statistics (numpy's
 *    default); sizes per generation are cumulative (active at the end of generation g).
 *
 * The whole cascade runs once per job (xPrepare), over every entity, samples split over
 * threads by index; chunks read per-entity counts. Per entity: p_active (share of samples
 * in which it ends active), mean_generation (mean activation generation over those samples;
 * null when it never activated). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/models_int.h"

#define MAX_SAMPLES 100000L
#define MAX_GENERATIONS 10000L
#define MAX_SIZES_CELLS 20000000L  /* samples * (max_generations + 1) kept for the summary */

enum { DIST_UNIFORM = 0, DIST_NORMAL, DIST_FIXED };

static const char *const OUTPUTS[] = {"p_active", "mean_generation"};
static const char *const KNOWN[] = {"seed_entities", "max_generations", "threshold_distribution",
                                    "mean", "std", "value", "threshold_type",
                                    "use_entity_thresholds", "directed", "samples", "seed"};
#define N_KNOWN (sizeof KNOWN / sizeof KNOWN[0])

/* ---- parameters ------------------------------------------------------------------ */

static int cascade_parse(const json_t *req, json_t **out, model_error_t *err) {
    json_t *src = models_gather_params(req, "cascade", KNOWN, N_KNOWN, err);
    if (!src) return -1;
    json_t *o = NULL;
    const json_t *seeds = json_object_get(src, "seed_entities");
    if (!seeds || !json_is_array(seeds) || json_array_size(seeds) == 0) {
        models_set_err(err, "seed_entities", "seed_entities is required: a non-empty array of entity ids");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(seeds); i++) {
        const json_t *s = json_array_get(seeds, i);
        if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > 256) {
            snprintf(err->field, sizeof err->field, "parameters.seed_entities[%zu]", i);
            snprintf(err->message, sizeof err->message, "seed entity ids are strings of 1 to 256 bytes");
            goto fail;
        }
    }
    long long max_gen = 5, samples = -1, seed = 0;
    int use_entity = 1, directed = 0, dist = DIST_UNIFORM, count = 0;
    double mean = 0.5, sd = 0.1, value = NAN;
    if (models_int_param(src, "max_generations", 0, MAX_GENERATIONS, &max_gen, err) < 0) goto fail;
    if (models_int_param(src, "samples", 1, MAX_SAMPLES, &samples, err) < 0) goto fail;
    if (models_int_param(src, "seed", 0, MODELS_MAX_SEED, &seed, err) < 0) goto fail;
    if (models_bool_param(src, "use_entity_thresholds", &use_entity, err) < 0) goto fail;
    if (models_bool_param(src, "directed", &directed, err) < 0) goto fail;
    const json_t *tt = json_object_get(src, "threshold_type");
    if (tt && !json_is_null(tt)) {
        const char *s = json_is_string(tt) ? json_string_value(tt) : "";
        if (strcmp(s, "count") == 0) count = 1;
        else if (strcmp(s, "fraction") != 0) {
            models_set_err(err, "threshold_type", "threshold_type must be \"fraction\" or \"count\"");
            goto fail;
        }
    }
    /* threshold_distribution: "uniform" | "normal" | "fixed", or {type, mean, std, value} */
    const json_t *td = json_object_get(src, "threshold_distribution");
    const json_t *dsrc = src;
    if (td && json_is_object(td)) {
        dsrc = td;
        td = json_object_get(td, "type");
    }
    if (td && !json_is_null(td)) {
        const char *s = json_is_string(td) ? json_string_value(td) : "";
        if (strcmp(s, "normal") == 0) dist = DIST_NORMAL;
        else if (strcmp(s, "fixed") == 0) dist = DIST_FIXED;
        else if (strcmp(s, "uniform") != 0) {
            models_set_err(err, "threshold_distribution",
                           "threshold_distribution must be \"uniform\", \"normal\" (mean, std) or \"fixed\" (value)");
            goto fail;
        }
    }
    if (dist == DIST_NORMAL) {
        if (models_num_param(dsrc, "mean", -1e9, 1e9, &mean, err) < 0) goto fail;
        if (models_num_param(dsrc, "std", 0, 1e9, &sd, err) < 0) goto fail;
    }
    if (dist == DIST_FIXED) {
        int rc = models_num_param(dsrc, "value", count ? 0 : -1e9, 1e9, &value, err);
        if (rc < 0) goto fail;
        if (rc == 1) {
            models_set_err(err, "value", "threshold_distribution \"fixed\" needs value (the threshold)");
            goto fail;
        }
    }
    if (samples < 0) samples = dist == DIST_FIXED ? 1 : 100;
    if (samples * (max_gen + 1) > MAX_SIZES_CELLS) {
        models_set_err(err, "samples", "samples * (max_generations + 1) must be at most %ld", MAX_SIZES_CELLS);
        goto fail;
    }
    static const char *const DN[] = {"uniform", "normal", "fixed"};
    o = json_pack("{s:s, s:O, s:I, s:s, s:s, s:b, s:b, s:I, s:I}", "prediction_type", "cascade",
                  "seed_entities", seeds, "max_generations", (json_int_t)max_gen,
                  "threshold_distribution", DN[dist], "threshold_type", count ? "count" : "fraction",
                  "use_entity_thresholds", use_entity, "directed", directed,
                  "samples", (json_int_t)samples, "seed", (json_int_t)seed);
    if (!o) goto fail;
    if (dist == DIST_NORMAL) {
        json_object_set_new(o, "mean", json_real(mean));
        json_object_set_new(o, "std", json_real(sd));
    }
    if (dist == DIST_FIXED) json_object_set_new(o, "value", json_real(value));
    json_decref(src);
    *out = o;
    return 0;
fail:
    json_decref(src);
    return -1;
}

static int cascade_validate(const model_env_t *env, const json_t *params, model_error_t *err) {
    const json_t *seeds = json_object_get(params, "seed_entities");
    int rc = 0;
    graph_rdlock(env->graph);
    for (size_t i = 0; i < json_array_size(seeds) && rc == 0; i++) {
        const char *id = json_string_value(json_array_get(seeds, i));
        if (graph_find(env->graph, id) < 0) {
            snprintf(err->field, sizeof err->field, "parameters.seed_entities[%zu]", i);
            snprintf(err->message, sizeof err->message, "seed entity '%.200s' does not exist", id);
            rc = -1;
        }
    }
    graph_unlock(env->graph);
    return rc;
}

/* Every entity, in the graph's order: the cascade reaches anywhere. */
static int cascade_entities(const model_env_t *env, const json_t *params, buf_t *blob, long *n,
                            model_error_t *err) {
    (void)params; (void)err;
    graph_t *g = env->graph;
    long k = 0;
    graph_rdlock(g);
    for (uint32_t i = 0; i < g->n; i++)
        if (g->ids[i]) {
            buf_append(blob, g->ids[i], strlen(g->ids[i]) + 1);
            k++;
        }
    graph_unlock(g);
    *n = k;
    return blob->oom ? -1 : 0;
}

/* ---- simulation ------------------------------------------------------------------ */

typedef struct {
    uint32_t n;           /* graph slots */
    uint8_t *live;        /* [n] */
    uint64_t *idh;        /* [n] hash of the id: the entity's random stream */
    double *own;          /* [n] entity threshold or NAN */
    uint32_t *deg;        /* [n] (in-)neighbours */
    uint64_t *off;        /* [n + 1] CSR: whom i influences */
    uint32_t *to;         /* [off[n]] */
    uint32_t *seeds;
    uint32_t n_seeds;
    uint32_t *zero;       /* entities whose threshold may be <= 0 (see maybe_zero) */
    uint32_t n_zero;
    /* parameters */
    long max_gen, samples;
    uint64_t seed;
    int dist, count, use_entity;
    double mean, sd, value;
    /* results */
    int nth;
    uint32_t **active;    /* per thread [n]: samples ending active */
    uint64_t **gen_sum;   /* per thread [n]: sum of activation generations */
    uint32_t *sizes;      /* [samples][max_gen + 1]: active at the end of generation g */
} sim_t;

static double draw_threshold(const sim_t *m, uint32_t i, long sample) {
    if (m->use_entity && !isnan(m->own[i])) return m->own[i];
    if (m->dist == DIST_FIXED) return m->value;
    rng_t r;
    rng_seed2(&r, m->seed ^ m->idh[i], (uint64_t)sample);
    /* uniform on (0, 1]: a draw of exactly 0 would activate without any active neighbour */
    double x = m->dist == DIST_UNIFORM ? rng_uniform_pos(&r) : m->mean + m->sd * rng_normal(&r);
    if (m->dist == DIST_NORMAL) {
        if (x < 0) x = 0;
        if (!m->count && x > 1) x = 1;
    }
    return x;
}

/* Whether i's threshold can be <= 0 in some sample (then it activates at generation 1
 * without an active neighbour, and must be looked at even if no neighbour changed). */
static int maybe_zero(const sim_t *m, uint32_t i) {
    if (!m->live[i] || m->deg[i] == 0) return 0;
    if (m->use_entity && !isnan(m->own[i])) return m->own[i] <= 0;
    if (m->dist == DIST_FIXED) return m->value <= 0;
    return m->dist == DIST_NORMAL;
}

static int reaches(const sim_t *m, uint32_t i, uint32_t cnt, double theta) {
    if (m->deg[i] == 0) return 0;
    if (m->count) return (double)cnt >= theta;
    return (double)cnt / (double)m->deg[i] >= theta;
}

/* One entity's state in one sample: kept together so that touching it is one cache line
 * (a big cascade is a random walk over the graph's memory). */
typedef struct {
    uint32_t stamp;   /* sample + 1 this state belongs to (else: inactive, nothing counted) */
    int32_t gen;      /* activation generation, -1 inactive */
    uint32_t cnt;     /* active influencers */
    uint32_t mark;    /* queued as a candidate this generation */
    double th;        /* threshold; NAN until drawn */
} node_t;

/* One thread's samples [ith * S / nth, (ith + 1) * S / nth). Per-entity state carries the
 * sample it belongs to (stamp), so a sample costs what it touches, not the whole graph;
 * thresholds are drawn only for entities a cascade reaches. */
static void sim_thread(void *arg, int ith, int nth) {
    sim_t *m = arg;
    const uint32_t n = m->n;
    long from = (long)((double)m->samples * ith / nth), to = (long)((double)m->samples * (ith + 1) / nth);
    node_t *st = calloc(n ? n : 1, sizeof *st);                         /* [n] */
    uint32_t *act_list = malloc((size_t)(n ? n : 1) * sizeof *act_list); /* active, by generation */
    uint32_t *cand = malloc((size_t)(n ? n : 1) * sizeof *cand);
    uint32_t *act = m->active[ith];
    uint64_t *gs = m->gen_sum[ith];
    if (!st || !act_list || !cand || !act || !gs) goto out;
    const long G = m->max_gen;
#define TOUCH(x) do { if ((x)->stamp != cur) { (x)->stamp = cur; (x)->gen = -1; (x)->cnt = 0; (x)->mark = 0; (x)->th = NAN; } } while (0)
    for (long s = from; s < to; s++) {
        const uint32_t cur = (uint32_t)s + 1;
        uint32_t *sizes = m->sizes + (size_t)s * (size_t)(G + 1);
        uint32_t total = 0;
        for (uint32_t k = 0; k < m->n_seeds; k++) {
            node_t *x = &st[m->seeds[k]];
            TOUCH(x);
            if (x->gen < 0) x->gen = 0, act_list[total++] = m->seeds[k];
        }
        sizes[0] = total;
        uint32_t f0 = 0, f1 = total; /* generation g's newly active: act_list[f0 .. f1) */
        long g = 0;
        while (g < G) {
            /* the counts at the end of generation g, then who reaches the threshold */
            uint32_t nc = 0;
            for (uint32_t f = f0; f < f1; f++) {
                uint32_t j = act_list[f];
                for (uint64_t e = m->off[j]; e < m->off[j + 1]; e++) {
                    uint32_t i = m->to[e];
                    node_t *x = &st[i];
                    TOUCH(x);
                    x->cnt++;
                    if (x->gen < 0 && !x->mark) x->mark = 1, cand[nc++] = i;
                }
            }
            if (g == 0)
                for (uint32_t z = 0; z < m->n_zero; z++) {
                    uint32_t i = m->zero[z];
                    node_t *x = &st[i];
                    TOUCH(x);
                    if (x->gen < 0 && !x->mark) x->mark = 1, cand[nc++] = i;
                }
            uint32_t added = 0;
            for (uint32_t c = 0; c < nc; c++) {
                uint32_t i = cand[c];
                node_t *x = &st[i];
                x->mark = 0;
                if (isnan(x->th)) x->th = draw_threshold(m, i, s);
                if (reaches(m, i, x->cnt, x->th)) act_list[f1 + added++] = i;
            }
            if (added == 0) break;
            g++;
            for (uint32_t a = f1; a < f1 + added; a++) st[act_list[a]].gen = (int32_t)g;
            f0 = f1;
            f1 += added;
            total += added;
            sizes[g] = total;
        }
        for (long k = g + 1; k <= G; k++) sizes[k] = total;
        for (uint32_t a = 0; a < total; a++) {
            uint32_t i = act_list[a];
            act[i]++;
            gs[i] += (uint64_t)st[i].gen;
        }
    }
#undef TOUCH
out:
    free(st); free(act_list); free(cand);
}

typedef struct {
    uint32_t n;
    long samples;
    uint32_t *active;
    uint64_t *gen_sum;
    char *summary;       /* JSON text */
} cascade_state_t;

static void cascade_free(void *p) {
    cascade_state_t *s = p;
    if (!s) return;
    free(s->active);
    free(s->gen_sum);
    free(s->summary);
    free(s);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between order statistics of sorted v[0..n) (numpy's default). */
static double quantile(const uint32_t *v, long n, double q) {
    double pos = q * (double)(n - 1);
    long lo = (long)floor(pos);
    long hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * ((double)v[hi] - (double)v[lo]);
}

static void put_stats(buf_t *b, uint32_t *v, long n) {
    double sum = 0;
    for (long k = 0; k < n; k++) sum += v[k];
    qsort(v, (size_t)n, sizeof *v, cmp_u32);
    buf_puts(b, "\"mean\":");
    buf_json_double(b, sum / (double)n);
    buf_puts(b, ",\"p10\":");
    buf_json_double(b, quantile(v, n, 0.10));
    buf_puts(b, ",\"p50\":");
    buf_json_double(b, quantile(v, n, 0.50));
    buf_puts(b, ",\"p90\":");
    buf_json_double(b, quantile(v, n, 0.90));
}

/* {samples, generations:[{generation, mean, p10, p50, p90}], final_size:{mean, p10, p50,
 *  p90, min, max, distribution:[{size, samples}] }} */
static char *make_summary(const sim_t *m, long n_entities) {
    const long S = m->samples, G = m->max_gen;
    uint32_t *col = malloc((size_t)S * sizeof *col);
    if (!col) return NULL;
    buf_t b = {0};
    buf_printf(&b, "{\"samples\":%ld,\"entities\":%ld,\"seed_entities\":%u,\"generations\":[", S,
               n_entities, m->n_seeds);
    long last = 0; /* the last generation in which any sample grew */
    for (long g = 1; g <= G; g++)
        for (long s = 0; s < S; s++)
            if (m->sizes[(size_t)s * (size_t)(G + 1) + (size_t)g] != m->sizes[(size_t)s * (size_t)(G + 1) + (size_t)g - 1])
                last = g;
    for (long g = 0; g <= last; g++) {
        for (long s = 0; s < S; s++) col[s] = m->sizes[(size_t)s * (size_t)(G + 1) + (size_t)g];
        buf_printf(&b, "%s{\"generation\":%ld,", g ? "," : "", g);
        put_stats(&b, col, S);
        buf_putc(&b, '}');
    }
    for (long s = 0; s < S; s++) col[s] = m->sizes[(size_t)s * (size_t)(G + 1) + (size_t)G];
    buf_puts(&b, "],\"final_size\":{");
    put_stats(&b, col, S); /* sorts col */
    buf_printf(&b, ",\"min\":%u,\"max\":%u,\"distribution\":[", col[0], col[S - 1]);
    for (long s = 0; s < S;) {
        long e = s;
        while (e < S && col[e] == col[s]) e++;
        buf_printf(&b, "%s{\"size\":%u,\"samples\":%ld}", s ? "," : "", col[s], e - s);
        s = e;
    }
    buf_puts(&b, "]}}");
    free(col);
    if (b.oom) { buf_free(&b); return NULL; }
    return buf_steal(&b);
}

static int cascade_prepare(const model_env_t *env, const json_t *params, const char *const *ids,
                           long n_ids, void **state, char *err, size_t errlen) {
    (void)ids; (void)n_ids;
    *state = NULL;
    sim_t m;
    memset(&m, 0, sizeof m);
    m.max_gen = (long)json_integer_value(json_object_get(params, "max_generations"));
    m.samples = (long)json_integer_value(json_object_get(params, "samples"));
    m.seed = (uint64_t)json_integer_value(json_object_get(params, "seed"));
    const char *d = json_string_value(json_object_get(params, "threshold_distribution"));
    m.dist = d && !strcmp(d, "normal") ? DIST_NORMAL : d && !strcmp(d, "fixed") ? DIST_FIXED : DIST_UNIFORM;
    const char *tt = json_string_value(json_object_get(params, "threshold_type"));
    m.count = tt && !strcmp(tt, "count");
    m.use_entity = json_is_true(json_object_get(params, "use_entity_thresholds"));
    int directed = json_is_true(json_object_get(params, "directed"));
    m.mean = json_number_value(json_object_get(params, "mean"));
    m.sd = json_number_value(json_object_get(params, "std"));
    m.value = json_number_value(json_object_get(params, "value"));
    const json_t *seeds = json_object_get(params, "seed_entities");
    cascade_state_t *st = calloc(1, sizeof *st);
    if (!st) goto oom;

    graph_t *g = env->graph;
    graph_rdlock(g);
    const uint32_t n = g->n;
    m.n = n;
    m.live = calloc(n ? n : 1, 1);
    m.idh = malloc((size_t)(n ? n : 1) * sizeof *m.idh);
    m.own = malloc((size_t)(n ? n : 1) * sizeof *m.own);
    m.deg = calloc(n ? n : 1, sizeof *m.deg);
    m.off = calloc((size_t)n + 1, sizeof *m.off);
    m.seeds = malloc((json_array_size(seeds) + 1) * sizeof *m.seeds);
    if (!m.live || !m.idh || !m.own || !m.deg || !m.off || !m.seeds) { graph_unlock(g); goto oom; }
    /* j influences i: undirected, every neighbour; directed, a relationship j -> i, i.e. an
     * entry of adj[j] with out > 0 */
    for (uint32_t j = 0; j < n; j++) {
        m.live[j] = g->ids[j] != NULL;
        m.idh[j] = g->ids[j] ? hash_fnv1a(g->ids[j], strlen(g->ids[j]), 0) : 0;
        m.own[j] = g->threshold[j];
        const graph_adj_t *a = &g->adj[j];
        uint64_t k = 0;
        for (uint32_t e = 0; e < a->n; e++)
            if (!directed || a->out[e] > 0) k++, m.deg[a->nbr[e]]++;
        m.off[j + 1] = m.off[j] + k;
    }
    m.to = malloc((size_t)(m.off[n] ? m.off[n] : 1) * sizeof *m.to);
    if (!m.to) { graph_unlock(g); goto oom; }
    for (uint32_t j = 0; j < n; j++) {
        const graph_adj_t *a = &g->adj[j];
        uint64_t k = m.off[j];
        for (uint32_t e = 0; e < a->n; e++)
            if (!directed || a->out[e] > 0) m.to[k++] = a->nbr[e];
    }
    for (size_t k = 0; k < json_array_size(seeds); k++) {
        int64_t i = graph_find(g, json_string_value(json_array_get(seeds, k)));
        if (i >= 0) m.seeds[m.n_seeds++] = (uint32_t)i;
    }
    long n_live = g->live;
    graph_unlock(g);
    m.zero = malloc((size_t)(n ? n : 1) * sizeof *m.zero);
    if (!m.zero) goto oom;
    for (uint32_t i = 0; i < n; i++)
        if (maybe_zero(&m, i)) m.zero[m.n_zero++] = i;

    /* threads: as many as help, within ~1 GiB of per-thread arrays */
    long per_thread = (long)n * 40 + 1;
    long cap = (1L << 30) / per_thread;
    m.nth = models_threads_for(m.samples, env->threads);
    if (m.nth > cap) m.nth = cap > 0 ? (int)cap : 1;
    m.active = calloc((size_t)m.nth, sizeof *m.active);
    m.gen_sum = calloc((size_t)m.nth, sizeof *m.gen_sum);
    m.sizes = calloc((size_t)m.samples * (size_t)(m.max_gen + 1), sizeof *m.sizes);
    if (!m.active || !m.gen_sum || !m.sizes) goto oom;
    for (int t = 0; t < m.nth; t++) {
        m.active[t] = calloc(n ? n : 1, sizeof **m.active);
        m.gen_sum[t] = calloc(n ? n : 1, sizeof **m.gen_sum);
        if (!m.active[t] || !m.gen_sum[t]) goto oom;
    }
    models_parallel(m.nth, sim_thread, &m);
    st->n = n;
    st->samples = m.samples;
    st->active = m.active[0];
    st->gen_sum = m.gen_sum[0];
    m.active[0] = NULL;
    m.gen_sum[0] = NULL;
    for (int t = 1; t < m.nth; t++)
        for (uint32_t i = 0; i < n; i++) st->active[i] += m.active[t][i], st->gen_sum[i] += m.gen_sum[t][i];
    st->summary = make_summary(&m, n_live);
    if (!st->summary) goto oom;
    *state = st;
    st = NULL;
oom:
    if (m.active) for (int t = 0; t < m.nth; t++) free(m.active[t]);
    if (m.gen_sum) for (int t = 0; t < m.nth; t++) free(m.gen_sum[t]);
    free(m.active); free(m.gen_sum); free(m.sizes);
    free(m.live); free(m.idh); free(m.own); free(m.deg); free(m.off); free(m.to); free(m.seeds); free(m.zero);
    if (st) {
        cascade_free(st);
        snprintf(err, errlen, "out of memory running the cascade");
        return -1;
    }
    return 0;
}

static int cascade_summary(const void *state, buf_t *out) {
    const cascade_state_t *st = state;
    if (!st || !st->summary) return -1;
    buf_puts(out, st->summary);
    return 0;
}

/* ids: n -> codes[n], out[n][2] = {p_active, mean_generation (NAN: never active)} */
static int cascade_run(const model_env_t *env, const json_t *params, const char *const *ids,
                       uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen) {
    (void)params;
    const cascade_state_t *st = env->job_state;
    if (!st) {
        snprintf(err, errlen, "the cascade has not run");
        return -1;
    }
    graph_t *g = env->graph;
    graph_rdlock(g);
    for (uint32_t k = 0; k < n; k++) {
        double *o = out + (size_t)k * 2;
        o[0] = 0;
        o[1] = NAN;
        int64_t i = graph_find(g, ids[k]);
        if (i < 0) { codes[k] = MODEL_ERR_UNKNOWN_ENTITY; continue; }
        if ((uint64_t)i >= st->n) { codes[k] = MODEL_ERR_NOT_SIMULATED; continue; }
        codes[k] = MODEL_OK;
        o[0] = (double)st->active[i] / (double)st->samples;
        if (st->active[i]) o[1] = (double)st->gen_sum[i] / (double)st->active[i];
    }
    graph_unlock(g);
    return 0;
}

const model_t MODEL_CASCADE = {
    .name = "cascade",
    .n_outputs = 2,
    .output_names = OUTPUTS,
    .xParse = cascade_parse,
    .xRunChunk = cascade_run,
    .xPrepare = cascade_prepare,
    .xFreeState = cascade_free,
    .xSummary = cascade_summary,
    .xValidate = cascade_validate,
    .xDefaultEntities = cascade_entities,
};
