/* Ising spin flips by Monte Carlo (MODELS.md, method "monte_carlo"): continuous-time Glauber
 * dynamics for time_horizon H from the current spins.
 *
 * Simulated set D: the job's entities with a usable spin plus every entity within `radius`
 * hops of them (graph hops; an entity without a spin is passed through but not simulated);
 * radius "all" = every entity with a spin. Spins outside D are frozen at their current
 * values: they enter as a constant field. Each spin in D attempts at rate nu per hour; an
 * attempt flips it with probability 1 / (1 + exp(dE/T)), dE = 2 s_i (sum_j J_ij s_j + h_i)
 * with its neighbours' current spins. Sampled exactly: the next attempt of the whole set
 * comes after Exp(|D| nu), at a uniformly chosen spin (superposition of |D| Poisson clocks).
 * Each spin's local field is kept current (a flip adds 2 J s_new to its neighbours'), so an
 * attempt costs O(1) and only a flip costs O(degree).
 *
 * Per entity: p_flip = share of samples in which it flipped at least once, p_changed = share
 * in which its spin at H differs from now, stderr = sqrt(p_flip (1 - p_flip) / samples).
 *
 * The whole job is simulated once (xPrepare) and chunks read the counts, so results do not
 * depend on chunking. Sample k uses the stream rng_seed2(seed, k), and samples are split
 * over threads by index with integer counts summed after: results do not depend on the
 * number of threads either. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/models_int.h"

typedef struct {
    uint32_t n_global;  /* graph slots when simulated */
    int32_t *local;     /* [n_global] graph index -> index in D, -1 outside */
    uint32_t n;         /* |D| */
    long samples;
    uint32_t *flipped;  /* [n] samples with at least one flip */
    uint32_t *changed;  /* [n] samples whose final spin differs */
} mc_state_t;

/* The simulated subgraph, CSR over D: neighbours of d are nbr[off[d] .. off[d+1]). */
typedef struct {
    uint32_t n;
    int8_t *s0;         /* [n] spins now */
    double *h;          /* [n] field + frozen neighbours' sum_j J_ij s_j */
    double *m0;         /* [n] local field now: h + sum over simulated neighbours J s0 */
    uint64_t *off;      /* [n + 1] */
    uint32_t *nbr;      /* [off[n]] indices in D */
    double *J;          /* [off[n]] */
    double T, nu, H_h;
    long samples;
    uint64_t seed;
    uint32_t **flipped, **changed; /* per thread [n] */
} mc_sim_t;

int ising_is_mc(const json_t *params) {
    const json_t *m = json_object_get(params, "method");
    return m && json_is_string(m) && strcmp(json_string_value(m), "monte_carlo") == 0;
}

void ising_mc_free(void *p) {
    mc_state_t *s = p;
    if (!s) return;
    free(s->local);
    free(s->flipped);
    free(s->changed);
    free(s);
}

/* 1 / (1 + exp(x)) without overflow */
static double glauber_p(double x) {
    if (x > 0) {
        double e = exp(-x);
        return e / (1.0 + e);
    }
    return 1.0 / (1.0 + exp(x));
}

/* Samples [ith * S / nth, (ith + 1) * S / nth) into thread ith's counts. */
static void sim_thread(void *arg, int ith, int nth) {
    mc_sim_t *m = arg;
    const uint32_t n = m->n;
    long from = (long)((double)m->samples * ith / nth), to = (long)((double)m->samples * (ith + 1) / nth);
    int8_t *s = malloc(n ? n : 1);
    uint8_t *fl = malloc(n ? n : 1);
    double *field = malloc((size_t)(n ? n : 1) * sizeof *field); /* [n] local fields, kept current */
    uint32_t *cf = m->flipped[ith], *cc = m->changed[ith];
    if (!s || !fl || !field || !cf || !cc) { free(s); free(fl); free(field); return; }
    const double rate = (double)n * m->nu; /* attempts per hour, whole set */
    for (long k = from; k < to; k++) {
        rng_t r;
        rng_seed2(&r, m->seed, (uint64_t)k);
        memcpy(s, m->s0, n);
        memcpy(field, m->m0, (size_t)n * sizeof *field);
        memset(fl, 0, n);
        double t = 0;
        for (;;) {
            t += rng_exp(&r) / rate;
            if (t > m->H_h) break;
            uint32_t d = (uint32_t)rng_below(&r, n);
            double de = 2.0 * s[d] * field[d];
            if (rng_uniform(&r) < glauber_p(de / m->T)) {
                /* the flip moves each neighbour's field by 2 J s_new: an attempt costs O(1),
                 * a flip O(degree) */
                s[d] = (int8_t)-s[d];
                fl[d] = 1;
                double two_s = 2.0 * s[d];
                for (uint64_t e = m->off[d]; e < m->off[d + 1]; e++) field[m->nbr[e]] += two_s * m->J[e];
            }
        }
        for (uint32_t d = 0; d < n; d++) {
            cf[d] += fl[d];
            cc[d] += s[d] != m->s0[d];
        }
    }
    free(s);
    free(fl);
    free(field);
}

int ising_mc_prepare(const model_env_t *env, const json_t *params, const char *const *ids,
                     long n_ids, void **state, char *err, size_t errlen) {
    *state = NULL;
    if (!ising_is_mc(params)) return 0;
    mc_sim_t m;
    memset(&m, 0, sizeof m);
    m.T = json_number_value(json_object_get(params, "temperature"));
    m.H_h = json_number_value(json_object_get(params, "time_horizon_s")) / 3600.0;
    m.nu = json_number_value(json_object_get(params, "attempt_rate"));
    m.samples = (long)json_integer_value(json_object_get(params, "samples"));
    m.seed = (uint64_t)json_integer_value(json_object_get(params, "seed"));
    long radius = (long)json_integer_value(json_object_get(params, "radius"));
    mc_state_t *st = calloc(1, sizeof *st);
    uint32_t *queue = NULL;
    int32_t *hops = NULL;
    int nth = 1;
    if (!st) goto oom;
    st->samples = m.samples;

    graph_t *g = env->graph;
    graph_rdlock(g);
    const uint32_t G = g->n;
    st->n_global = G;
    st->local = malloc((size_t)(G ? G : 1) * sizeof *st->local);
    hops = malloc((size_t)(G ? G : 1) * sizeof *hops);   /* -1 unvisited */
    queue = malloc((size_t)(G ? G : 1) * sizeof *queue);
    if (!st->local || !hops || !queue) { graph_unlock(g); goto oom; }
    for (uint32_t i = 0; i < G; i++) hops[i] = -1, st->local[i] = -1;
    /* BFS from the requested entities out to radius hops */
    uint32_t qh = 0, qt = 0;
    if (radius < 0) {
        for (uint32_t i = 0; i < G; i++)
            if (g->ids[i]) hops[i] = 0, queue[qt++] = i;
    } else {
        for (long k = 0; k < n_ids; k++) {
            int64_t i = graph_find(g, ids[k]);
            if (i >= 0 && hops[i] < 0) hops[i] = 0, queue[qt++] = (uint32_t)i;
        }
        while (qh < qt) {
            uint32_t i = queue[qh++];
            if (hops[i] >= radius) continue;
            const graph_adj_t *a = &g->adj[i];
            for (uint32_t e = 0; e < a->n; e++) {
                uint32_t j = a->nbr[e];
                if (hops[j] < 0) hops[j] = hops[i] + 1, queue[qt++] = j;
            }
        }
    }
    /* D = visited with a spin, in BFS order */
    uint32_t n = 0;
    for (uint32_t q = 0; q < qt; q++)
        if (!isnan(g->spin[queue[q]])) st->local[queue[q]] = (int32_t)n++;
    m.n = st->n = n;
    m.s0 = malloc(n ? n : 1);
    m.h = malloc((size_t)(n ? n : 1) * sizeof *m.h);
    m.off = calloc((size_t)n + 1, sizeof *m.off);
    if (!m.s0 || !m.h || !m.off) { graph_unlock(g); goto oom; }
    for (uint32_t q = 0, d = 0; q < qt; q++) {
        uint32_t i = queue[q];
        if (st->local[i] < 0) continue;
        const graph_adj_t *a = &g->adj[i];
        uint64_t k = 0;
        for (uint32_t e = 0; e < a->n; e++) k += st->local[a->nbr[e]] >= 0;
        m.off[d + 1] = m.off[d] + k;
        d++;
    }
    m.nbr = malloc((size_t)(m.off[n] ? m.off[n] : 1) * sizeof *m.nbr);
    m.J = malloc((size_t)(m.off[n] ? m.off[n] : 1) * sizeof *m.J);
    if (!m.nbr || !m.J) { graph_unlock(g); goto oom; }
    for (uint32_t q = 0, d = 0; q < qt; q++) {
        uint32_t i = queue[q];
        if (st->local[i] < 0) continue;
        const graph_adj_t *a = &g->adj[i];
        double h = g->field[i];
        uint64_t k = m.off[d];
        for (uint32_t e = 0; e < a->n; e++) {
            uint32_t j = a->nbr[e];
            if (st->local[j] >= 0) { m.nbr[k] = (uint32_t)st->local[j]; m.J[k] = a->w[e]; k++; }
            else if (!isnan(g->spin[j])) h += a->w[e] * g->spin[j]; /* frozen */
        }
        m.s0[d] = (int8_t)g->spin[i];
        m.h[d] = h;
        d++;
    }
    graph_unlock(g);
    m.m0 = malloc((size_t)(n ? n : 1) * sizeof *m.m0);
    if (!m.m0) goto oom;
    for (uint32_t d = 0; d < n; d++) {
        double f = m.h[d];
        for (uint64_t e = m.off[d]; e < m.off[d + 1]; e++) f += m.J[e] * m.s0[m.nbr[e]];
        m.m0[d] = f;
    }

    st->flipped = calloc(n ? n : 1, sizeof *st->flipped);
    st->changed = calloc(n ? n : 1, sizeof *st->changed);
    nth = n ? models_threads_for(m.samples, env->threads) : 1;
    m.flipped = calloc((size_t)nth, sizeof *m.flipped);
    m.changed = calloc((size_t)nth, sizeof *m.changed);
    if (!st->flipped || !st->changed || !m.flipped || !m.changed) goto oom;
    for (int t = 0; t < nth; t++) {
        m.flipped[t] = calloc(n ? n : 1, sizeof **m.flipped);
        m.changed[t] = calloc(n ? n : 1, sizeof **m.changed);
        if (!m.flipped[t] || !m.changed[t]) goto oom;
    }
    if (n) models_parallel(nth, sim_thread, &m);
    for (int t = 0; t < nth; t++)
        for (uint32_t d = 0; d < n; d++) {
            st->flipped[d] += m.flipped[t][d];
            st->changed[d] += m.changed[t][d];
        }
    for (int t = 0; t < nth; t++) { free(m.flipped[t]); free(m.changed[t]); }
    free(m.flipped); free(m.changed);
    free(m.s0); free(m.h); free(m.m0); free(m.off); free(m.nbr); free(m.J);
    free(hops); free(queue);
    *state = st;
    return 0;
oom:
    if (m.flipped) for (int t = 0; t < nth; t++) free(m.flipped[t]);
    if (m.changed) for (int t = 0; t < nth; t++) free(m.changed[t]);
    free(m.flipped); free(m.changed);
    free(m.s0); free(m.h); free(m.m0); free(m.off); free(m.nbr); free(m.J);
    free(hops); free(queue);
    ising_mc_free(st);
    snprintf(err, errlen, "out of memory preparing the Monte Carlo simulation");
    return -1;
}

/* ids: n -> codes[n], out[n][4] = {p_flip, p_changed, stderr, -1 (marks a Monte Carlo row)} */
int ising_mc_run(const model_env_t *env, const json_t *params, const char *const *ids,
                 uint32_t n, uint8_t *codes, double *out, char *err, size_t errlen) {
    (void)params;
    const mc_state_t *st = env->job_state;
    if (!st) {
        snprintf(err, errlen, "the Monte Carlo simulation has not run");
        return -1;
    }
    graph_t *g = env->graph;
    const double S = (double)st->samples;
    graph_rdlock(g);
    for (uint32_t k = 0; k < n; k++) {
        double *o = out + (size_t)k * 4;
        memset(o, 0, 4 * sizeof *o);
        int64_t i = graph_find(g, ids[k]);
        if (i < 0) { codes[k] = MODEL_ERR_UNKNOWN_ENTITY; continue; }
        if ((uint64_t)i >= st->n_global) { codes[k] = MODEL_ERR_NOT_SIMULATED; continue; }
        int32_t d = st->local[i];
        if (d < 0) { codes[k] = MODEL_ERR_INVALID_SPIN; continue; }
        double p = st->flipped[d] / S;
        codes[k] = MODEL_OK;
        o[0] = p;
        o[1] = st->changed[d] / S;
        o[2] = sqrt(p * (1.0 - p) / S);
        o[3] = -1.0;
    }
    graph_unlock(g);
    return 0;
}
