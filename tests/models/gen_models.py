#!/usr/bin/python3
"""Generates the small ONNX models the nn unit tests use, and their expected outputs.

Models are built with the onnx helper API (Debian's python3-onnx); weights come from a
seeded numpy generator. The expected outputs come from the plain numpy implementation
below (written from the ONNX operator definitions, not from any engine), for the fixed
input stored beside each model, with Dropout as the identity (inference).

Files per model NAME: NAME.onnx, NAME_input.pb (a TensorProto), NAME_output.pb.
Also a few invalid models for the loader's error paths (bad_*.onnx).

Run:  /usr/bin/python3 tests/models/gen_models.py   (from the repository root)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- numpy reference implementations (ONNX semantics, layout 0, one direction) ----

def np_lstm(x, W, R, B, H):
    """x [T, B, I]; W [4H, I], R [4H, H], B [8H]; gates i, o, f, c. Returns Y [T, B, H], h."""
    T, N, _ = x.shape
    h = np.zeros((N, H), np.float64)
    c = np.zeros((N, H), np.float64)
    Ys = []
    wb, rb = B[: 4 * H], B[4 * H:]
    for t in range(T):
        g = x[t] @ W.T + h @ R.T + wb + rb
        i, o, f, cc = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        i, o, f, cc = sigmoid(i), sigmoid(o), sigmoid(f), np.tanh(cc)
        c = f * c + i * cc
        h = o * np.tanh(c)
        Ys.append(h)
    return np.stack(Ys), h


def np_gru(x, W, R, B, H):
    """linear_before_reset = 1 (what PyTorch exports); gates z, r, h."""
    T, N, _ = x.shape
    h = np.zeros((N, H), np.float64)
    wb, rb = B[: 3 * H], B[3 * H:]
    Ys = []
    for t in range(T):
        xw = x[t] @ W.T + wb
        hr = h @ R.T + rb
        z = sigmoid(xw[:, :H] + hr[:, :H])
        r = sigmoid(xw[:, H:2 * H] + hr[:, H:2 * H])
        hh = np.tanh(xw[:, 2 * H:] + r * hr[:, 2 * H:])
        h = (1 - z) * hh + z * h
        Ys.append(h)
    return np.stack(Ys), h


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def save(name, graph, x, y):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="predictd-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))
    with open(os.path.join(OUT, name + "_input.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x.astype(np.float32), "x").SerializeToString())
    with open(os.path.join(OUT, name + "_output.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y.astype(np.float32), "y").SerializeToString())


def lstm_regressor(name, T, F, H, seed):
    """Like the pipeline's models exported from PyTorch (batch_first LSTM, dropout, dense)."""
    rng = np.random.RandomState(seed)
    s = 1.0 / np.sqrt(H)
    W = rng.uniform(-s, s, (1, 4 * H, F)).astype(np.float32)
    R = rng.uniform(-s, s, (1, 4 * H, H)).astype(np.float32)
    B = rng.uniform(-s, s, (1, 8 * H)).astype(np.float32)
    W1 = rng.uniform(-0.3, 0.3, (16, H)).astype(np.float32)
    b1 = rng.uniform(-0.1, 0.1, (16,)).astype(np.float32)
    W2 = rng.uniform(-0.3, 0.3, (1, 16)).astype(np.float32)
    b2 = rng.uniform(-0.1, 0.1, (1,)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="to_time_major"),
        helper.make_node("LSTM", ["xt", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H, name="lstm"),
        helper.make_node("Squeeze", ["Y_h", "axis0"], ["h"], name="squeeze"),
        helper.make_node("Dropout", ["h", "ratio"], ["hd"], name="dropout"),
        helper.make_node("Gemm", ["hd", "W1", "b1"], ["z1"], transB=1, name="fc1"),
        helper.make_node("Relu", ["z1"], ["a1"], name="relu"),
        helper.make_node("Gemm", ["a1", "W2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    inits = [init("W", W), init("R", R), init("B", B), init("axis0", np.array([0], np.int64)),
             init("ratio", np.array(0.2, np.float32)), init("W1", W1), init("b1", b1), init("W2", W2), init("b2", b2)]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], inits)
    x = rng.normal(0, 1, (6, T, F)).astype(np.float32)
    xt = x.astype(np.float64).transpose(1, 0, 2)
    _, h = np_lstm(xt, W[0].astype(np.float64), R[0].astype(np.float64), B[0].astype(np.float64), H)
    a1 = np.maximum(h @ W1.T + b1, 0)
    y = a1 @ W2.T + b2
    save(name, graph, x, y)


def lstm_bidir_seq(name, T, F, H, seed):
    """A batch-first (layout 1) bidirectional LSTM whose whole sequence Y is the output: the
    per-step writes of Y, the reverse direction and x read with the batch-first strides."""
    rng = np.random.RandomState(seed)
    s = 1.0 / np.sqrt(H)
    W = rng.uniform(-s, s, (2, 4 * H, F)).astype(np.float32)
    R = rng.uniform(-s, s, (2, 4 * H, H)).astype(np.float32)
    B = rng.uniform(-s, s, (2, 8 * H)).astype(np.float32)
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=H, direction="bidirectional",
                              layout=1, name="lstm")]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", T, 2, H])],
                              [init("W", W), init("R", R), init("B", B)])
    x = rng.normal(0, 1, (7, T, F)).astype(np.float32)
    xt = x.astype(np.float64).transpose(1, 0, 2)
    d = [w.astype(np.float64) for w in (W, R, B)]
    yf, _ = np_lstm(xt, d[0][0], d[1][0], d[2][0], H)
    yb, _ = np_lstm(xt[::-1], d[0][1], d[1][1], d[2][1], H)
    y = np.stack([yf, yb[::-1]], axis=1).transpose(2, 0, 1, 3)  # [T, 2, B, H] -> [B, T, 2, H]
    save(name, graph, x, y)


def gru_regressor(name, T, F, H, seed):
    """GRU; the last time step is taken with Gather and reshaped with a shape computed in the
    graph (Shape, Gather, Unsqueeze, Concat: folded at plan time)."""
    rng = np.random.RandomState(seed)
    s = 1.0 / np.sqrt(H)
    W = rng.uniform(-s, s, (1, 3 * H, F)).astype(np.float32)
    R = rng.uniform(-s, s, (1, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-s, s, (1, 6 * H)).astype(np.float32)
    Wo = rng.uniform(-0.3, 0.3, (H, 1)).astype(np.float32)
    bo = rng.uniform(-0.1, 0.1, (1,)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y"], hidden_size=H, linear_before_reset=1, name="gru"),
        helper.make_node("Gather", ["Y", "last"], ["ylast"], axis=0),            # [1, B, H]
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Gather", ["xs", "zero"], ["nb"], axis=0),               # scalar B
        helper.make_node("Unsqueeze", ["nb", "axis0"], ["nb1"]),
        helper.make_node("Concat", ["nb1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["ylast", "shape"], ["h"]),                   # [B, H]
        helper.make_node("Dropout", ["h", "ratio"], ["hd"], name="dropout"),
        helper.make_node("MatMul", ["hd", "Wo"], ["m"]),
        helper.make_node("Add", ["m", "bo"], ["y"]),
    ]
    inits = [init("W", W), init("R", R), init("B", B), init("last", np.array([T - 1], np.int64)),
             init("zero", np.array(0, np.int64)), init("axis0", np.array([0], np.int64)),
             init("minus1", np.array([-1], np.int64)), init("ratio", np.array(0.25, np.float32)),
             init("Wo", Wo), init("bo", bo)]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", T, F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], inits)
    x = rng.normal(0, 1, (5, T, F)).astype(np.float32)
    _, h = np_gru(x.astype(np.float64).transpose(1, 0, 2), W[0].astype(np.float64), R[0].astype(np.float64),
                  B[0].astype(np.float64), H)
    y = h @ Wo + bo
    save(name, graph, x, y)


def mlp(name, F, seed):
    """Gemm, BatchNormalization, LeakyRelu, Dropout, MatMul + Add, LayerNormalization, Tanh,
    a second Dropout, MatMul + Add, then Softmax, Mul and ReduceMean (a softmax-weighted mean
    of the four head outputs)."""
    rng = np.random.RandomState(seed)
    W1 = rng.uniform(-0.4, 0.4, (F, 32)).astype(np.float32)
    b1 = rng.uniform(-0.1, 0.1, (32,)).astype(np.float32)
    sc = rng.uniform(0.5, 1.5, (32,)).astype(np.float32)
    bb = rng.uniform(-0.2, 0.2, (32,)).astype(np.float32)
    mu = rng.uniform(-0.2, 0.2, (32,)).astype(np.float32)
    var = rng.uniform(0.5, 2.0, (32,)).astype(np.float32)
    W2 = rng.uniform(-0.3, 0.3, (32, 16)).astype(np.float32)
    b2 = rng.uniform(-0.1, 0.1, (16,)).astype(np.float32)
    g = rng.uniform(0.5, 1.5, (16,)).astype(np.float32)
    be = rng.uniform(-0.2, 0.2, (16,)).astype(np.float32)
    W3 = rng.uniform(-0.5, 0.5, (16, 4)).astype(np.float32)
    b3 = rng.uniform(-0.1, 0.1, (4,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"]),
        helper.make_node("BatchNormalization", ["z1", "sc", "bb", "mu", "var"], ["n1"], epsilon=1e-5),
        helper.make_node("LeakyRelu", ["n1"], ["a1"], alpha=0.05),
        helper.make_node("Dropout", ["a1", "r1"], ["d1"], name="drop1"),
        helper.make_node("MatMul", ["d1", "W2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["z2"]),
        helper.make_node("LayerNormalization", ["z2", "g", "be"], ["n2"], axis=-1, epsilon=1e-5),
        helper.make_node("Tanh", ["n2"], ["a2"]),
        helper.make_node("Dropout", ["a2", "r2"], ["d2"], name="drop2"),
        helper.make_node("MatMul", ["d2", "W3"], ["m3"]),
        helper.make_node("Add", ["m3", "b3"], ["z3"]),
        helper.make_node("Softmax", ["z3"], ["p"], axis=-1),
        helper.make_node("Mul", ["p", "z3"], ["pz"]),
        helper.make_node("ReduceMean", ["pz"], ["y"], axes=[1], keepdims=1),
    ]
    inits = [init(n, a) for n, a in [("W1", W1), ("b1", b1), ("sc", sc), ("bb", bb), ("mu", mu), ("var", var),
                                     ("W2", W2), ("b2", b2), ("g", g), ("be", be), ("W3", W3), ("b3", b3),
                                     ("r1", np.array(0.1, np.float32)), ("r2", np.array(0.3, np.float32))]]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], inits)
    x = rng.normal(0, 1, (7, F)).astype(np.float32)
    xd = x.astype(np.float64)
    z1 = xd @ W1 + b1
    n1 = (z1 - mu) / np.sqrt(var + 1e-5) * sc + bb
    a1 = np.where(n1 >= 0, n1, 0.05 * n1)
    z2 = a1 @ W2 + b2
    m = z2.mean(axis=-1, keepdims=True)
    v = ((z2 - m) ** 2).mean(axis=-1, keepdims=True)
    n2 = (z2 - m) / np.sqrt(v + 1e-5) * g + be
    a2 = np.tanh(n2)
    z3 = a2 @ W3 + b3
    e = np.exp(z3 - z3.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    y = (p * z3).mean(axis=1, keepdims=True)
    save(name, graph, x, y)


def bad_models():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])

    def write(name, nodes, inits=(), inputs=None):
        g = helper.make_graph(nodes, name, inputs or [x], [y], list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.save(m, os.path.join(OUT, name + ".onnx"))

    write("bad_unsupported_op", [helper.make_node("Relu", ["x"], ["a"], name="act"),
                                 helper.make_node("Celu", ["a"], ["y"], name="celu_1")])
    write("bad_dangling_input", [helper.make_node("Add", ["x", "nowhere"], ["y"], name="add_1")])
    write("bad_shape_mismatch", [helper.make_node("Add", ["x", "c"], ["y"], name="add_c")],
          [init("c", np.ones((3,), np.float32))])


def mc_models():
    """For the MC stacking rules: a valid model whose batch axis moves (the output is [5, B]),
    and two that mix rows after the Dropout (planning must refuse them for MC)."""
    rng = np.random.RandomState(5)
    W = rng.uniform(-0.5, 0.5, (5, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["g"]),
        helper.make_node("Dropout", ["g", "ratio"], ["d"], name="dropout"),
        helper.make_node("Transpose", ["d"], ["t"], perm=[1, 0]),
        helper.make_node("Relu", ["t"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "mc_transposed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, "batch"])],
                              [init("W", W), init("ratio", np.array(0.5, np.float32))])
    x = rng.normal(0, 1, (4, 5)).astype(np.float32)
    save("mc_transposed", graph, x, np.maximum(x.astype(np.float64) @ W, 0).T)

    def bad(name, nodes, inits, out_shape):
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(OUT, name + ".onnx"))

    bad("bad_mc_reshape_merges_batch", [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),        # [4, B, 8]
        helper.make_node("Dropout", ["t", "ratio"], ["d"]),
        helper.make_node("Reshape", ["d", "shape"], ["y"]),                  # [4 * B, 8]: rows of 4 time steps interleaved
    ], [init("ratio", np.array(0.5, np.float32)), init("shape", np.array([-1, 8], np.int64))], [None, 8])
    bad("bad_mc_softmax_over_batch", [
        helper.make_node("Dropout", ["x", "ratio"], ["d"]),
        helper.make_node("Softmax", ["d"], ["y"], axis=0),
    ], [init("ratio", np.array(0.5, np.float32))], ["batch", 4, 8])


if __name__ == "__main__":
    lstm_regressor("lstm_regressor", 32, 20, 64, 1)
    lstm_regressor("lstm_regressor_37", 32, 37, 64, 2)
    gru_regressor("gru_regressor", 16, 8, 32, 3)
    # hidden sizes the kernels' fast paths do not take whole: 24 (not a multiple of 16: the
    # product then the cell, no register-fused step), 12 (not a multiple of 8: no fused cell)
    lstm_regressor("lstm_h24", 6, 7, 24, 5)
    lstm_regressor("lstm_h12", 5, 3, 12, 6)
    lstm_bidir_seq("lstm_bidir_seq", 9, 5, 16, 7)
    mlp("mlp", 10, 4)
    bad_models()
    mc_models()
