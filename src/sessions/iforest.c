/* Isolation forest: trees are flat arrays of nodes in pre-order (the left child follows its
 * parent; the right child's index is kept), all trees in one allocation. An external node
 * stores its whole contribution depth + c(size), so scoring a row is a walk and one add
 * per tree. Growing a tree partitions an index array in place: no allocation per node. */
#include "sessions/iforest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

typedef struct {
    int32_t feat;   /* split feature; -1: external node */
    int32_t right;  /* index of the right child within the tree (internal nodes) */
    double value;   /* threshold (x[feat] <= value goes left), or depth + c(size) (external) */
} node_t;

struct iforest {
    size_t d;
    int n_trees;
    size_t psi;
    size_t max_nodes; /* per tree: 2 psi - 1 */
    double c_psi;
    node_t *nodes;    /* [n_trees * max_nodes] */
};

double iforest_c(size_t n) {
    if (n <= 1) return 0.0;
    double h = 0; /* H(n-1), summed from the small terms up */
    for (size_t i = n - 1; i >= 1; i--) h += 1.0 / (double)i;
    return 2.0 * h - 2.0 * (double)(n - 1) / (double)n;
}

/* What growing one tree needs: the rows, the tree being written, c() of every size. */
typedef struct {
    const double *X;
    size_t d;
    int height_limit;
    const double *c_tab; /* c_tab[k] = c(k), k <= psi */
    node_t *tree;
    size_t used;
    rng_t *rng;
    int *cand;        /* [d] scratch: the features in the order drawn */
} grow_t;

/* The range of feature j over rows idx[0..n). */
static void feature_range(const grow_t *g, const size_t *idx, size_t n, int j, double *lo, double *hi) {
    double a = g->X[idx[0] * g->d + (size_t)j], b = a;
    for (size_t i = 1; i < n; i++) {
        double v = g->X[idx[i] * g->d + (size_t)j];
        a = v < a ? v : a;
        b = v > b ? v : b;
    }
    *lo = a;
    *hi = b;
}

/* Grows the subtree over the rows idx[0..n) at depth; returns its node index. The split
 * feature is drawn uniformly among those not constant in the node: features are drawn
 * without replacement until one is not constant (as scikit-learn does), so only the
 * drawn features' ranges are computed. */
static int32_t grow(grow_t *g, size_t *idx, size_t n, int depth) {
    int32_t me = (int32_t)g->used++;
    node_t *nd = &g->tree[me];
    int j = -1;
    double lo = 0, hi = 0;
    if (depth < g->height_limit && n > 1) {
        int *perm = g->cand;
        for (size_t k = 0; k < g->d; k++) perm[k] = (int)k;
        for (size_t k = 0; k < g->d && j < 0; k++) {
            size_t pick = k + (size_t)rng_below(g->rng, (uint64_t)(g->d - k));
            int tmp = perm[k];
            perm[k] = perm[pick];
            perm[pick] = tmp;
            feature_range(g, idx, n, perm[k], &lo, &hi);
            if (hi > lo) j = perm[k];
        }
    }
    if (j < 0) { /* external: height limit, one row, or all rows equal */
        nd->feat = -1;
        nd->right = -1;
        nd->value = (double)depth + g->c_tab[n];
        return me;
    }
    double thr = lo + rng_uniform(g->rng) * (hi - lo);
    if (!(thr < hi)) thr = lo; /* rounding: keep the max on the right so both sides have rows */
    size_t a = 0, b = n; /* partition: x[j] <= thr first */
    while (a < b) {
        if (g->X[idx[a] * g->d + (size_t)j] <= thr) a++;
        else {
            size_t t = idx[a];
            idx[a] = idx[--b];
            idx[b] = t;
        }
    }
    nd->feat = j;
    nd->value = thr;
    grow(g, idx, a, depth + 1);
    int32_t r = grow(g, idx + a, n - a, depth + 1);
    nd->right = r; /* the array does not move: nd is still this node */
    return me;
}

int iforest_fit(iforest_t **out, const double *X, size_t n, size_t d, const iforest_params_t *p, char *err,
                size_t errlen) {
    *out = NULL;
    if (n < 1 || d < 1 || !p || p->n_trees < 1 || p->subsample < 1) {
        snprintf(err, errlen, "iforest: need n >= 1 rows, d >= 1 features, n_trees >= 1, subsample >= 1");
        return -1;
    }
    size_t psi = (size_t)p->subsample < n ? (size_t)p->subsample : n;
    iforest_t *f = calloc(1, sizeof *f);
    size_t *idx = malloc(n * sizeof *idx);
    double *c_tab = malloc((psi + 1) * sizeof *c_tab);
    int *cand = malloc(d * sizeof *cand);
    double *sample = malloc(psi * d * sizeof *sample);
    size_t *local = malloc(psi * sizeof *local);
    if (!f || !idx || !c_tab || !cand || !sample || !local) goto oom;
    f->d = d;
    f->n_trees = p->n_trees;
    f->psi = psi;
    f->max_nodes = 2 * psi - 1;
    f->c_psi = iforest_c(psi);
    f->nodes = malloc((size_t)p->n_trees * f->max_nodes * sizeof *f->nodes);
    if (!f->nodes) goto oom;
    /* c(k) for k = 0..psi, by the recurrence on H rather than one sum per k */
    double h = 0;
    c_tab[0] = 0;
    for (size_t k = 1; k <= psi; k++) {
        if (k >= 2) h += 1.0 / (double)(k - 1); /* h = H(k-1) */
        c_tab[k] = k <= 1 ? 0.0 : 2.0 * h - 2.0 * (double)(k - 1) / (double)k;
    }
    int height_limit = (int)ceil(log2((double)(psi < 2 ? 2 : psi)));
    rng_t rng;
    rng_seed(&rng, p->seed);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    grow_t g = {.X = sample, .d = d, .height_limit = height_limit, .c_tab = c_tab, .rng = &rng,
                .cand = cand};
    for (int t = 0; t < p->n_trees; t++) {
        /* psi rows without replacement: a partial Fisher-Yates shuffle. idx is a permutation
         * of 0..n-1 whatever earlier trees left in it, so the first psi are a uniform draw. */
        for (size_t i = 0; i < psi; i++) {
            size_t k = i + (size_t)rng_below(&rng, (uint64_t)(n - i));
            size_t tmp = idx[i];
            idx[i] = idx[k];
            idx[k] = tmp;
        }
        /* the sample is copied next to each other (psi x d doubles: in L1 for 256 x 15),
         * so growing the tree reads no row of X at random */
        for (size_t i = 0; i < psi; i++) {
            memcpy(sample + i * d, X + idx[i] * d, d * sizeof *sample);
            local[i] = i;
        }
        g.tree = f->nodes + (size_t)t * f->max_nodes;
        g.used = 0;
        grow(&g, local, psi, 0);
    }
    free(idx);
    free(c_tab);
    free(cand);
    free(sample);
    free(local);
    *out = f;
    return 0;
oom:
    snprintf(err, errlen, "iforest: out of memory for %zu rows", n);
    free(idx);
    free(c_tab);
    free(cand);
    free(sample);
    free(local);
    iforest_free(f);
    return -1;
}

void iforest_free(iforest_t *f) {
    if (!f) return;
    free(f->nodes);
    free(f);
}

double iforest_path_length(const iforest_t *f, const double *x) {
    double sum = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const node_t *tree = f->nodes + (size_t)t * f->max_nodes;
        int32_t i = 0;
        while (tree[i].feat >= 0) i = x[tree[i].feat] <= tree[i].value ? i + 1 : tree[i].right;
        sum += tree[i].value;
    }
    return sum / (double)f->n_trees;
}

double iforest_score(const iforest_t *f, const double *x) {
    if (f->c_psi <= 0) return 0.5;
    return exp2(-iforest_path_length(f, x) / f->c_psi);
}

/* The same sums as iforest_score (trees added in the same order, so the same bits), tree by
 * tree over the rows: one tree's nodes stay in cache for all the rows. */
void iforest_score_rows(const iforest_t *f, const double *X, size_t n, double *out) {
    for (size_t i = 0; i < n; i++) out[i] = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const node_t *tree = f->nodes + (size_t)t * f->max_nodes;
        for (size_t r = 0; r < n; r++) {
            const double *x = X + r * f->d;
            int32_t i = 0;
            while (tree[i].feat >= 0) i = x[tree[i].feat] <= tree[i].value ? i + 1 : tree[i].right;
            out[r] += tree[i].value;
        }
    }
    for (size_t r = 0; r < n; r++) out[r] = f->c_psi > 0 ? exp2(-(out[r] / (double)f->n_trees) / f->c_psi) : 0.5;
}
