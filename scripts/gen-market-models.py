#!/usr/bin/python3
"""Write the market pipeline's two ONNX models as a model repository (issue 6; the layout of
src/serving/serving.h, given to `predictd serve --models DIR`):

  DIR/normal_day/1/model.onnx     x [B, 32, 20] -> y [B, 1]   max_batch_size 128
  DIR/earnings_day/1/model.onnx   x [B, 32, 37] -> y [B, 1]   max_batch_size 32
  DIR/*/1/config.yaml             type, max_batch_size, mc_passes 20, the input's scaler

Each network is what a PyTorch export of a small return regressor looks like: a batch-first
LSTM (hidden 64) over the 32 steps, its last hidden state through Dropout, a dense layer
(64 -> 32, ReLU), a second Dropout and a dense output (32 -> 1) scaled to daily returns. The
Dropout nodes are what MC dropout samples. Weights come from numpy's seeded generator (the
same --seed writes the same bytes); the model is untrained: the demo needs realistic shapes
and costs, not skill.

The scaler ((x - mean) / scale per feature, last axis) is fitted on a training sample drawn
with scripts/gen-demo-market.py's own feature code (other symbols, another seed), so the
demo market's inputs reach the network standardised as a trained model's would.

Needs python3-onnx and python3-numpy (Debian's: run it with /usr/bin/python3).

  /usr/bin/python3 scripts/gen-market-models.py --out data/models
  /usr/bin/python3 scripts/gen-market-models.py --out /tmp/models --threads 2 --seed 7
"""
import argparse
import importlib.util
import os
import random
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
STEPS = 32
HIDDEN = 64
DENSE = 32
N_TECH = 20
N_EARN = 17
HERE = os.path.dirname(os.path.abspath(__file__))


def load_market_module():
    spec = importlib.util.spec_from_file_location("gen_demo_market", os.path.join(HERE, "gen-demo-market.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def training_sample(seed, n_symbols=300):
    """Feature rows (technical, earnings) of a training market drawn like the demo's."""
    mk = load_market_module()
    rng = random.Random("train/%d" % seed)
    bars = mk.WARMUP + STEPS
    market = [rng.gauss(0.0003, 0.009) for _ in range(bars)]
    tech, earn = [], []
    for s in range(n_symbols):
        srng = random.Random("train/%d/%d" % (seed, s))
        closes, volumes, ranges = mk.simulate(srng, bars, market)
        macd = [a - b for a, b in zip(mk.ema_series(closes, 12), mk.ema_series(closes, 26))]
        signal = mk.ema_series(macd, 9)
        prof = mk.earnings_profile(srng)
        when = srng.choice(["bmo", "amc"])
        ahead = srng.randint(0, mk.EARN_HORIZON)  # the report, trading days after the last bar
        for i in range(mk.WARMUP, bars):
            tech.append(mk.technical(closes, volumes, ranges, i, macd, signal))
            earn.append(mk.earnings(srng, prof, bars - 1 - i + ahead, when, closes, i))
    return np.array(tech, np.float64), np.array(earn, np.float64)


def fit_scaler(x):
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature passes through centred
    return mean, scale


def build(name, n_feat, rng):
    s = 1.0 / np.sqrt(HIDDEN)
    W = rng.uniform(-s, s, (1, 4 * HIDDEN, n_feat)).astype(np.float32)
    R = rng.uniform(-s, s, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    B = rng.uniform(-s, s, (1, 8 * HIDDEN)).astype(np.float32)
    s1 = np.sqrt(6.0 / (HIDDEN + DENSE))
    W1 = rng.uniform(-s1, s1, (DENSE, HIDDEN)).astype(np.float32)
    b1 = rng.uniform(-0.05, 0.05, (DENSE,)).astype(np.float32)
    # the output layer maps to daily returns: a few tenths of a percent to a few percent
    W2 = (rng.uniform(-1, 1, (1, DENSE)) * 0.004).astype(np.float32)
    b2 = np.array([0.0005], np.float32)
    inits = [numpy_helper.from_array(a, n) for n, a in [
        ("W", W), ("R", R), ("B", B), ("axis0", np.array([0], np.int64)),
        ("ratio", np.array(0.2, np.float32)), ("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2)]]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2], name="batch_first_to_time_major"),
        helper.make_node("LSTM", ["x_tm", "W", "R", "B"], ["lstm_y", "lstm_h"], hidden_size=HIDDEN, name="lstm"),
        helper.make_node("Squeeze", ["lstm_h", "axis0"], ["h"], name="last_hidden"),
        helper.make_node("Dropout", ["h", "ratio"], ["h_drop"], name="dropout_1"),
        helper.make_node("Gemm", ["h_drop", "W1", "b1"], ["z1"], transB=1, name="dense_1"),
        helper.make_node("Relu", ["z1"], ["a1"], name="relu_1"),
        helper.make_node("Dropout", ["a1", "ratio"], ["a1_drop"], name="dropout_2"),
        helper.make_node("Gemm", ["a1_drop", "W2", "b2"], ["y"], transB=1, name="dense_out"),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", STEPS, n_feat])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="predictd-gen-market-models", model_version=1)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def yaml_list(xs):
    return "[" + ", ".join(repr(float(v)) for v in xs) + "]"


def write_version(out, name, model, mean, scale, max_batch, passes, threads, kind):
    d = os.path.join(out, name, "1")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, "model.onnx.tmp")
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, os.path.join(d, "model.onnx"))
    lines = [
        "# written by scripts/gen-market-models.py (the market pipeline's %s model)" % kind,
        "type: lstm_regressor_%s" % kind,
        "max_batch_size: %d" % max_batch,
        "mc_passes: %d" % passes,
    ]
    if threads:
        lines.append("threads: %d" % threads)
    lines += ["inputs:", "  - name: x", "    scaler:", "      mean: " + yaml_list(mean),
              "      scale: " + yaml_list(scale)]
    with open(os.path.join(d, "config.yaml.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(d, "config.yaml.tmp"), os.path.join(d, "config.yaml"))
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/models", help="repository folder (default data/models)")
    ap.add_argument("--seed", type=int, default=6, help="weights seed (default 6)")
    ap.add_argument("--passes", type=int, default=20, help="mc_passes in config.yaml (default 20)")
    ap.add_argument("--threads", type=int, default=0,
                    help="engine threads in config.yaml (default: none written, the server picks)")
    ap.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    a = ap.parse_args(argv)
    if a.passes < 0 or a.passes > 10000 or a.threads < 0 or a.threads > 256:
        ap.error("--passes must be 0..10000 and --threads 0..256")
    tech, earn = training_sample(a.seed)
    t_mean, t_scale = fit_scaler(tech)
    e_mean, e_scale = fit_scaler(earn)
    rng = np.random.RandomState(a.seed)
    normal = build("normal_day", N_TECH, rng)
    earnings = build("earnings_day", N_TECH + N_EARN, rng)
    d1 = write_version(a.out, "normal_day", normal, t_mean, t_scale, 128, a.passes, a.threads, "normal_day")
    d2 = write_version(a.out, "earnings_day", earnings, np.concatenate([t_mean, e_mean]),
                       np.concatenate([t_scale, e_scale]), 32, a.passes, a.threads, "earnings_day")
    if not a.quiet:
        print("gen-market-models: %s (x [B,%d,%d]), %s (x [B,%d,%d])" % (d1, STEPS, N_TECH, d2, STEPS, N_TECH + N_EARN))
    return 0


if __name__ == "__main__":
    sys.exit(main())
