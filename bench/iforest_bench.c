/* iforest_bench: times predictd's isolation forest (src/sessions/iforest.c) on a data file
 * written by bench/iforest_bench.py, which times scikit-learn's IsolationForest on the same
 * file and compares the two (time ratio, AUC on the labelled outliers).
 *
 *   iforest_bench --data FILE --batch 50 [--repeat 21] [--trees 100] [--subsample 256]
 *                 [--seed 1] [--scores OUT]
 *
 * FILE: one row per line, "label,x1,...,xd" (label 1 = planted outlier); the first --batch
 * rows are the batch, the rest the reference set. The timed operation is what a session
 * batch does: fit on all rows (batch + reference), then score the batch rows. Each of
 * --repeat runs uses seed + run; the median and the best are printed. --scores writes the
 * scores of every row (one per line, from the forest of the first run) for the AUC.
 * Prints one JSON line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "sessions/iforest.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads FILE: returns rows in *X ([n, d]) and labels; -1 on a malformed file. */
static int load(const char *path, double **X, int **labels, size_t *n_out, size_t *d_out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1024, n = 0, d = 0;
    double *x = malloc(cap * 64 * sizeof *x);
    int *lab = malloc(cap * sizeof *lab);
    char line[8192];
    while (x && lab && fgets(line, sizeof line, f)) {
        char *p = line, *end;
        long l = strtol(p, &end, 10);
        if (end == p) continue;
        p = end;
        double row[64];
        size_t k = 0;
        while (*p == ',' && k < 64) {
            row[k++] = strtod(p + 1, &end);
            p = end;
        }
        if (d == 0) d = k;
        if (k != d || d == 0) {
            fprintf(stderr, "%s: row %zu has %zu values, expected %zu\n", path, n + 1, k, d);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            x = realloc(x, cap * 64 * sizeof *x);
            lab = realloc(lab, cap * sizeof *lab);
            if (!x || !lab) break;
        }
        memcpy(x + n * d, row, d * sizeof *row);
        lab[n++] = (int)l;
    }
    fclose(f);
    if (!x || !lab) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    *X = x;
    *labels = lab;
    *n_out = n;
    *d_out = d;
    return 0;
}

int main(int argc, char **argv) {
    const char *data = NULL, *scores_path = NULL;
    long batch = 50, repeat = 21;
    iforest_params_t p = {100, 256, 1};
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"repeat", required_argument, 0, 'r'}, {"trees", required_argument, 0, 't'},
        {"subsample", required_argument, 0, 's'}, {"seed", required_argument, 0, 'S'},
        {"scores", required_argument, 0, 'o'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'b': batch = atol(optarg); break;
        case 'r': repeat = atol(optarg); break;
        case 't': p.n_trees = atoi(optarg); break;
        case 's': p.subsample = atoi(optarg); break;
        case 'S': p.seed = strtoull(optarg, NULL, 10); break;
        case 'o': scores_path = optarg; break;
        default: return 2;
        }
    }
    if (!data || batch < 1 || repeat < 1) {
        fprintf(stderr, "usage: iforest_bench --data FILE [--batch 50] [--repeat 21] [--trees 100] "
                        "[--subsample 256] [--seed 1] [--scores OUT]\n");
        return 2;
    }
    double *X = NULL;
    int *labels = NULL;
    size_t n = 0, d = 0;
    if (load(data, &X, &labels, &n, &d)) return 1;
    if ((size_t)batch > n) batch = (long)n;
    double *t_fit_batch = malloc((size_t)repeat * sizeof(double));
    double *t_fit = malloc((size_t)repeat * sizeof(double));
    double *t_all = malloc((size_t)repeat * sizeof(double));
    double *s = malloc(n * sizeof *s);
    char err[256];
    for (long r = 0; r < repeat; r++) {
        iforest_params_t q = p;
        q.seed = p.seed + (uint64_t)r;
        iforest_t *f = NULL;
        double t0 = mono_s();
        if (iforest_fit(&f, X, n, d, &q, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double t1 = mono_s();
        iforest_score_rows(f, X, (size_t)batch, s);
        double t2 = mono_s();
        iforest_score_rows(f, X, n, s); /* every row: the AUC, and the cost of scoring 10k */
        double t3 = mono_s();
        t_fit[r] = t1 - t0;
        t_fit_batch[r] = t2 - t0;
        t_all[r] = t3 - t2;
        if (r == 0 && scores_path) {
            FILE *o = fopen(scores_path, "w");
            if (!o) {
                perror(scores_path);
                return 1;
            }
            for (size_t i = 0; i < n; i++) fprintf(o, "%.17g\n", s[i]);
            fclose(o);
        }
        iforest_free(f);
    }
    double best = t_fit_batch[0];
    for (long r = 1; r < repeat; r++)
        if (t_fit_batch[r] < best) best = t_fit_batch[r];
    qsort(t_fit_batch, (size_t)repeat, sizeof(double), cmp_double);
    qsort(t_fit, (size_t)repeat, sizeof(double), cmp_double);
    qsort(t_all, (size_t)repeat, sizeof(double), cmp_double);
    printf("{\"rows\":%zu,\"features\":%zu,\"batch\":%ld,\"trees\":%d,\"subsample\":%d,\"repeat\":%ld,"
           "\"fit_score_batch_ms_median\":%.4f,\"fit_score_batch_ms_best\":%.4f,\"fit_ms_median\":%.4f,"
           "\"score_all_ms_median\":%.4f}\n",
           n, d, batch, p.n_trees, p.subsample, repeat, t_fit_batch[repeat / 2] * 1e3, best * 1e3,
           t_fit[repeat / 2] * 1e3, t_all[repeat / 2] * 1e3);
    free(t_fit_batch);
    free(t_fit);
    free(t_all);
    free(s);
    free(X);
    free(labels);
    return 0;
}
