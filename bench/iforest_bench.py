#!/usr/bin/python3
"""predictd's isolation forest beside scikit-learn's IsolationForest on the same data, in one
run: the time to fit on a batch of 50 sessions plus 10,000 reference rows and score the
batch (what one session batch does), and the AUC of both on labelled synthetic outliers.

    /usr/bin/python3 bench/iforest_bench.py [--bin build/bench/iforest_bench] [--repeat 21]

Data (numpy, seeded): 15 features like a session's feature row; inliers from a mixture of
three correlated Gaussian clusters, outliers (2% of the reference set and 5 of the batch)
shifted by 4.5 to 7.5 in 3 random features (the clusters spread about 1 per feature).
Both forests: 100 trees, max_samples 256, one thread; each of --repeat runs uses another
seed; medians compared.
Run with Debian's python3 (python3-sklearn, python3-numpy)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

D = 15


def make_data(rng, n_batch=50, n_ref=10000, batch_out=5, ref_out_frac=0.02):
    """Rows: the batch first, then the reference set. Labels: 1 for a planted outlier."""
    n = n_batch + n_ref
    centres = rng.normal(0, 3, size=(3, D))
    chol = [np.linalg.cholesky(np.eye(D) * 0.5 + 0.5 * np.outer(v, v) / (v @ v) * D * 0.3)
            for v in rng.normal(size=(3, D))]
    k = rng.integers(0, 3, size=n)
    X = np.empty((n, D))
    for i in range(n):
        X[i] = centres[k[i]] + chol[k[i]] @ rng.normal(size=D)
    y = np.zeros(n, dtype=int)
    outs = list(rng.choice(n_batch, size=batch_out, replace=False)) + \
        list(n_batch + rng.choice(n_ref, size=int(n_ref * ref_out_frac), replace=False))
    for i in outs:
        dims = rng.choice(D, size=3, replace=False)
        X[i, dims] += rng.choice([-1, 1], size=3) * rng.uniform(3, 5, size=3) * 1.5
        y[i] = 1
    return X, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bench/iforest_bench")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--reference", type=int, default=10000)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    X, y = make_data(rng, n_batch=a.batch, n_ref=a.reference)
    tmp = tempfile.mkdtemp(prefix="iforest-bench-")
    data = os.path.join(tmp, "data.csv")
    scores_path = os.path.join(tmp, "scores.txt")
    with open(data, "w") as f:
        for lab, row in zip(y, X):
            f.write("%d,%s\n" % (lab, ",".join(repr(float(v)) for v in row)))

    # predictd's forest (C), on the file just written
    out = subprocess.run([a.bin, "--data", data, "--batch", str(a.batch), "--repeat", str(a.repeat),
                          "--seed", "1", "--scores", scores_path], check=True, capture_output=True, text=True)
    c = json.loads(out.stdout.strip().splitlines()[-1])
    c_scores = np.loadtxt(scores_path)
    X = np.loadtxt(data, delimiter=",")[:, 1:]  # exactly the values the C program read

    # scikit-learn, same rows, same parameters, same timed operation
    times, fit_times, all_times, sk_scores = [], [], [], None
    for r in range(a.repeat):
        t0 = time.perf_counter()
        f = IsolationForest(n_estimators=100, max_samples=256, random_state=1 + r, n_jobs=1).fit(X)
        t1 = time.perf_counter()
        f.score_samples(X[:a.batch])
        t2 = time.perf_counter()
        s_all = -f.score_samples(X)  # score_samples is the opposite of the paper's score
        t3 = time.perf_counter()
        times.append(t2 - t0)
        fit_times.append(t1 - t0)
        all_times.append(t3 - t2)
        if r == 0:
            sk_scores = s_all
    med = lambda v: float(np.median(v)) * 1e3  # noqa: E731
    sk = {"fit_score_batch_ms_median": med(times), "fit_ms_median": med(fit_times), "score_all_ms_median": med(all_times)}
    auc_c = roc_auc_score(y, c_scores)
    auc_sk = roc_auc_score(y, sk_scores)
    auc_c_batch = roc_auc_score(y[:a.batch], c_scores[:a.batch])
    auc_sk_batch = roc_auc_score(y[:a.batch], sk_scores[:a.batch])
    ratio = sk["fit_score_batch_ms_median"] / c["fit_score_batch_ms_median"]
    print("data: %d rows (%d batch + %d reference), %d features, %d labelled outliers; %d runs each"
          % (len(y), a.batch, a.reference, D, int(y.sum()), a.repeat))
    print("%-28s %14s %14s" % ("", "predictd (C)", "scikit-learn %s" % sklearn.__version__))
    print("%-28s %14.3f %14.3f" % ("fit + score batch, ms (med)", c["fit_score_batch_ms_median"], sk["fit_score_batch_ms_median"]))
    print("%-28s %14.3f %14.3f" % ("  of which fit, ms (med)", c["fit_ms_median"], sk["fit_ms_median"]))
    print("%-28s %14.3f %14.3f" % ("score all rows, ms (med)", c["score_all_ms_median"], sk["score_all_ms_median"]))
    print("%-28s %14.4f %14.4f" % ("AUC, all rows", auc_c, auc_sk))
    print("%-28s %14.4f %14.4f" % ("AUC, the batch", auc_c_batch, auc_sk_batch))
    print("speed-up (fit + score batch, scikit-learn / predictd): %.1fx" % ratio)
    print("json: " + json.dumps({"c": c, "sklearn": sk, "auc_c": auc_c, "auc_sklearn": auc_sk,
                                 "auc_c_batch": auc_c_batch, "auc_sklearn_batch": auc_sk_batch,
                                 "speedup": ratio, "sklearn_version": sklearn.__version__}))
    for p in (data, scores_path):
        os.unlink(p)
    os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
