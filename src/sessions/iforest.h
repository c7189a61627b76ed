/* Isolation forest (Liu, Ting, Zhou 2008): n_trees random trees, each grown on a subsample
 * of psi = min(subsample, n) rows drawn without replacement, to a height limit of
 * ceil(log2(psi)); a node splits on a feature drawn uniformly among those not constant in
 * it (drawn without replacement until one is not constant), at a threshold uniform between that feature's min and max there. The path length of
 * x in a tree is the depth of the external node it reaches plus c(size of that node); the
 * anomaly score is s(x) = 2^(-E(h(x)) / c(psi)) with
 *     c(n) = 2 H(n-1) - 2 (n-1) / n,   H(i) = 1 + 1/2 + ... + 1/i  (c(1) = 0, c(0) = 0).
 * s near 1: isolated early (anomalous); about 0.5 or below: normal. With psi < 2 nothing
 * can be learnt and every score is 0.5.
 *
 * Deterministic: the same rows, parameters and seed give the same forest bit for bit (one
 * rng_t stream, core/rng.h). A fitted forest is read-only: scoring is thread-safe. */
#ifndef PREDICTD_SESSIONS_IFOREST_H
#define PREDICTD_SESSIONS_IFOREST_H

#include <stddef.h>
#include <stdint.h>

typedef struct iforest iforest_t;

typedef struct {
    int n_trees;     /* 100 */
    int subsample;   /* 256 */
    uint64_t seed;
} iforest_params_t;

/* c(n) above: the average path length of an unsuccessful search in a binary search tree of
 * n keys, the normaliser of the score and the adjustment at an external node of size n. */
double iforest_c(size_t n);

/* Fits on X: [n, d] row-major (n >= 1, d >= 1, n_trees >= 1, subsample >= 1). X is not kept.
 * 0 ok, -1 with err (bad arguments, out of memory). */
int iforest_fit(iforest_t **out, const double *X, size_t n, size_t d, const iforest_params_t *p, char *err,
                size_t errlen);
void iforest_free(iforest_t *f); /* NULL is a no-op */

/* E(h(x)) over the trees, x: [d]. */
double iforest_path_length(const iforest_t *f, const double *x);
/* s(x) in (0, 1]. */
double iforest_score(const iforest_t *f, const double *x);
/* out[i] = s(X[i]) for X: [n, d]. */
void iforest_score_rows(const iforest_t *f, const double *X, size_t n, double *out);

#endif
