"""The KServe v2 protocol over the ONNX model repository (`serve --models DIR`): health,
metadata, inference (flat and nested data, MC dropout), clear 4xx errors, dynamic batching
(concurrent requests get exactly what they get alone, and are batched: the metrics say so),
repository index/load/unload, and `predictd model check|bench`. Inference results are
checked against the engine run outside the server (`predictd model bench --print`)."""
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import Server, Suite, eq, fail, ok, run_cli  # noqa: E402

suite = Suite("kserve")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "tests", "models")
LSTM = os.path.join(MODELS, "lstm_regressor.onnx")
T, F = 32, 20


def make_repo():
    d = tempfile.mkdtemp(prefix="predictd-kserve-")

    def put(rel, src=None, text=None):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if src:
            shutil.copy(src, p)
        else:
            with open(p, "w") as f:
                f.write(text)
    put("lstm/1/model.onnx", LSTM)
    put("lstm/2/model.onnx", LSTM)
    put("lstm/2/config.yaml", text="type: lstm_regressor\nmax_batch_size: 64\nmax_queue_delay_ms: 100\n")
    put("lstm37/1/model.onnx", os.path.join(MODELS, "lstm_regressor_37.onnx"))
    put("broken/1/model.onnx", os.path.join(MODELS, "bad_unsupported_op.onnx"))
    return d


REPO = make_repo()


def sin_input(rows, offset=0):
    """x[i] = sin(0.37 i), i the flat index (what `model bench` feeds the engine)."""
    return [math.sin((i + offset) * 0.37) for i in range(rows * T * F)]


def nest(flat, rows):
    return [[flat[(b * T + t) * F:(b * T + t + 1) * F] for t in range(T)] for b in range(rows)]


def infer_body(flat, rows, params=None):
    b = {"inputs": [{"name": "x", "shape": [rows, T, F], "datatype": "FP32", "data": flat}]}
    if params:
        b["parameters"] = params
    return b


def engine_outputs(rows):
    rc, out, err = run_cli(["model", "bench", LSTM, "--shape", "B,32,20", "--batches", str(rows),
                            "--runs", "1", "--threads", "1", "--print", str(rows)])
    eq(rc, 0, "model bench rc (%s)" % err)
    m = re.search(r"output batch %d: (.*)" % rows, out)
    ok(m is not None, "model bench printed the outputs", out)
    return [float(v) for v in m.group(1).split()]


def close(a, b, tol=1e-5, what="value"):
    eq(len(a), len(b), what + " length")
    for i, (x, y) in enumerate(zip(a, b)):
        if abs(x - y) > tol:
            fail("%s[%d]: got %.9g, expected %.9g (tolerance %g)" % (what, i, x, y, tol))


def server(**kw):
    return Server(args=["--models", REPO], **kw)


@suite.test
def test_health_metadata_and_index():
    with server() as s:
        c = s.client()
        eq(c.get("/v2/health/live").json, {"live": True}, "live")
        eq(c.get("/v2/health/ready").json, {"ready": True}, "ready")
        meta = c.expect(200, "GET", "/v2").json
        eq(meta["name"], "predictd", "server name")
        m = c.expect(200, "GET", "/v2/models/lstm").json
        eq(m["versions"], ["2"], "highest ready version")
        eq(m["type"], "lstm_regressor", "type from config.yaml")
        eq(m["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 32, 20]}], "inputs")
        eq(m["outputs"], [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}], "outputs")
        eq(m["parameters"]["max_batch_size"], 64, "max_batch_size")
        m1 = c.expect(200, "GET", "/v2/models/lstm/versions/1").json
        eq(m1["parameters"], {"max_batch_size": 128, "mc_passes": 20}, "defaults of a bare model")
        eq(c.expect(200, "GET", "/v2/models/lstm37/ready").json, {"ready": True}, "lstm37 ready")
        eq(c.expect(200, "GET", "/v2/models/lstm/versions/1/ready").json, {"ready": True}, "v1 ready")
        eq(c.expect(503, "GET", "/v2/models/broken/ready").json, {"ready": False}, "broken not ready")
        c.expect(404, "GET", "/v2/models/nope")
        c.expect(404, "GET", "/v2/models/lstm/versions/9")
        c.expect(404, "GET", "/v2/models/lstm/bogus")
        idx = {(e["name"], e["version"]): e for e in c.expect(200, "POST", "/v2/repository/index").json}
        eq(idx[("lstm", "1")]["state"], "READY", "lstm/1 state")
        eq(idx[("broken", "1")]["state"], "UNAVAILABLE", "broken state")
        ok("Celu" in idx[("broken", "1")]["reason"], "reason names the op", idx[("broken", "1")])
        s.check_clean_exit()


@suite.test
def test_infer_equals_the_engine_flat_and_nested():
    want = engine_outputs(3)
    flat = sin_input(3)
    with server() as s:
        c = s.client()
        for path in ("/v2/models/lstm/versions/1/infer", "/v2/models/lstm/infer"):
            r = c.expect(200, "POST", path, infer_body(flat, 3)).json
            eq(r["model_name"], "lstm", "model_name")
            out = r["outputs"]
            eq([(o["name"], o["datatype"], o["shape"]) for o in out], [("y", "FP32", [3, 1])], "outputs")
            close(out[0]["data"], want, what=path)
        r = c.expect(200, "POST", "/v2/models/lstm/infer", dict(infer_body(nest(flat, 3), 3), id="req-7")).json
        eq(r["id"], "req-7", "request id echoed")
        close(r["outputs"][0]["data"], want, what="nested data")
        s.check_clean_exit()


@suite.test
def test_bad_requests_get_clear_4xx():
    flat = sin_input(1)
    with server() as s:
        c = s.client()
        P = "/v2/models/lstm/infer"

        def bad(status, body, field, raw=False):
            r = c.request("POST", P, body=body if not raw else body.encode())
            eq(r.status, status, "status for %s (%s)" % (field, r.text[:200]))
            if field is not None:
                eq(r.json["error"]["field"], field, "field")
            return r
        b = infer_body(flat, 1)
        b["inputs"][0]["datatype"] = "INT64"
        bad(400, b, "inputs[0].datatype")
        b = infer_body(flat, 1)
        b["inputs"][0]["shape"] = [1, 32, 19]
        bad(400, b, "inputs[0].shape")
        b = infer_body(flat, 1)
        b["inputs"][0]["shape"] = [1, 32]
        bad(400, b, "inputs[0].shape")
        bad(400, infer_body(flat[:-1], 1), "inputs[0].data")
        bad(400, infer_body(flat[:-1] + ["1.0"], 1), "inputs[0].data")
        bad(400, infer_body(flat, 1, {"mc_passes": 1}), "parameters.mc_passes")
        bad(400, infer_body(flat, 1, {"seed": -3}), "parameters.seed")
        bad(400, {"inputs": [{"name": "z", "shape": [1, 32, 20], "datatype": "FP32", "data": flat}]}, "inputs")
        bad(400, {"outputs": []}, "inputs")
        r = bad(400, json.dumps(infer_body(flat, 1)).replace("0.0,", "NaN,", 1), None, raw=True)
        ok(r.json["error"]["code"] == "invalid_json", "NaN is not JSON", r.json)
        bad(400, infer_body(flat[:-1] + [1e39], 1), "inputs[0].data")
        b = infer_body(flat, 1)
        b["inputs"][0]["shape"] = [1000000, 32, 20]  # a shape the data does not back
        r = bad(400, b, "inputs[0].data")
        ok("640 numbers" in r.json["error"]["message"], "says how many numbers came", r.json)
        b = infer_body(sin_input(65), 65)  # version 2: max_batch_size 64
        bad(400, b, "inputs")
        c.expect(404, "POST", "/v2/models/nope/infer", infer_body(flat, 1))
        c.expect(404, "POST", "/v2/models/lstm/versions/3/infer", infer_body(flat, 1))
        c.expect(503, "POST", "/v2/models/broken/infer", infer_body(flat, 1))
        c.expect(405, "GET", P)
        c.expect(405, "POST", "/v2/models/lstm", infer_body(flat, 1))
        s.check_clean_exit()


@suite.test
def test_mc_dropout_outputs():
    flat = sin_input(4)
    with server() as s:
        c = s.client()
        P = "/v2/models/lstm/infer"
        r = c.expect(200, "POST", P, infer_body(flat, 4, {"mc_passes": 16, "seed": 5})).json
        names = [o["name"] for o in r["outputs"]]
        eq(names, ["y", "y_std", "y_p10", "y_p50", "y_p90"], "MC outputs")
        by = {o["name"]: o["data"] for o in r["outputs"]}
        for o in r["outputs"]:
            eq(o["shape"], [4, 1], o["name"] + " shape")
        for i in range(4):
            ok(by["y_std"][i] > 0, "std > 0 (dropout active)", by["y_std"][i])
            ok(by["y_p10"][i] <= by["y_p50"][i] <= by["y_p90"][i], "p10 <= p50 <= p90", i)
        again = c.expect(200, "POST", P, infer_body(flat, 4, {"mc_passes": 16, "seed": 5})).json
        eq(again["outputs"], r["outputs"], "same seed, same answer")
        other = c.expect(200, "POST", P, infer_body(flat, 4, {"mc_passes": 16, "seed": 6})).json
        ok(other["outputs"][1]["data"] != r["outputs"][1]["data"], "another seed, other masks")
        d = c.expect(200, "POST", "/v2/models/lstm/versions/1/infer", infer_body(flat, 4, {"mc_dropout": True})).json
        eq(d["parameters"]["mc_passes"], 20, "the model's default passes")
        s.check_clean_exit()


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


@suite.test
def test_concurrent_requests_are_batched_and_exact():
    N = 16
    bodies = [infer_body(sin_input(1 + i % 4, offset=1000 * i), 1 + i % 4) for i in range(N)]
    with server() as s:
        c = s.client()
        alone = [c.expect(200, "POST", "/v2/models/lstm/infer", b).json["outputs"][0]["data"] for b in bodies]
        results = [None] * N
        barrier = threading.Barrier(N)

        def worker(i):
            cl = s.client()
            barrier.wait()
            results[i] = cl.request("POST", "/v2/models/lstm/infer", body=bodies[i])
            cl.close()
        ths = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        for i in range(N):
            eq(results[i].status, 200, "status of request %d" % i)
            close(results[i].json["outputs"][0]["data"], alone[i], what="request %d" % i)
        text = c.expect(200, "GET", "/metrics").text
        runs = metric(text, "predictd_nn_requests_per_run_count", 'model="lstm"')
        single = metric(text, "predictd_nn_requests_per_run_bucket", 'model="lstm",le="1"')
        ok(runs is not None and single is not None, "requests-per-run histogram present", text[-2000:])
        ok(runs < 2 * N, "fewer runs than requests", runs)
        ok(runs - single >= 1, "at least one run served several requests", runs, single)
        ok(metric(text, "predictd_nn_batch_size_count", 'model="lstm"') == runs, "batch size histogram")
        s.check_clean_exit()


@suite.test
def test_unload_and_load_over_the_api():
    flat = sin_input(1)
    with server() as s:
        c = s.client()
        c.expect(200, "POST", "/v2/repository/models/lstm37/unload")
        eq(c.expect(503, "GET", "/v2/models/lstm37/ready").json, {"ready": False}, "unloaded")
        idx = {(e["name"], e["version"]): e for e in c.expect(200, "GET", "/v2/repository/index").json}
        eq(idx[("lstm37", "1")]["reason"], "unloaded", "reason")
        body = {"inputs": [{"name": "x", "shape": [1, 32, 37], "datatype": "FP32",
                            "data": [0.1] * (32 * 37)}]}
        c.expect(503, "POST", "/v2/models/lstm37/infer", body)
        c.expect(200, "POST", "/v2/repository/models/lstm37/load")
        c.expect(200, "POST", "/v2/models/lstm37/infer", body)
        c.expect(404, "POST", "/v2/repository/models/nope/load")
        r = c.expect(400, "POST", "/v2/repository/models/broken/load")
        ok("Celu" in r.json["error"]["message"], "load error names the op", r.json)
        c.expect(404, "POST", "/v2/repository/models/lstm/bogus")
        c.expect(200, "POST", "/v2/models/lstm/infer", infer_body(flat, 1))
        s.check_clean_exit()


@suite.test
def test_models_dir_from_config_and_none_by_default():
    with Server(env={"PREDICTD_MODELS_DIR": REPO}) as s:
        c = s.client()
        c.expect(200, "GET", "/v2/models/lstm37/ready")
        s.check_clean_exit()
    with Server() as s:
        c = s.client()
        eq(c.expect(200, "GET", "/v2/repository/index").json, [], "no repository: empty index")
        c.expect(404, "GET", "/v2/models/lstm")
        s.check_clean_exit()


@suite.test
def test_model_check_and_bench_cli():
    rc, out, _ = run_cli(["model", "check", LSTM])
    eq(rc, 0, "check rc")
    for s_ in ("opset: 17", "input:  x float32 [?, 32, 20]", "LSTM", "verdict: supported", "mc dropout: ok"):
        ok(s_ in out, "check prints %r" % s_, out)
    rc, out, _ = run_cli(["model", "check", os.path.join(MODELS, "bad_unsupported_op.onnx")])
    eq(rc, 1, "unsupported rc")
    ok(re.search(r"Celu\s+x1\s+NOT SUPPORTED", out), "names the unsupported op", out)
    rc, out, _ = run_cli(["model", "check", os.path.join(MODELS, "gen_models.py")])
    eq(rc, 1, "not an onnx file")
    rc, out, _ = run_cli(["model", "bench", LSTM, "--shape", "B,32,20", "--batches", "1,8", "--runs", "3",
                          "--passes", "4", "--rows", "200"])
    eq(rc, 0, "bench rc")
    ok(re.search(r"batch 8: median [\d.]+ ms  p99 [\d.]+ ms", out), "bench line", out)
    ok("200 rows x 4 passes" in out, "MC line", out)
    for args in (["model", "--help"], ["model", "bench", "--help"]):
        rc, out, _ = run_cli(args)
        eq(rc, 0, "help rc")
        ok("model bench FILE.onnx --shape" in out, "usage", out)
    rc, _, _ = run_cli(["model", "bench", LSTM])
    eq(rc, 2, "bench without --shape")


if __name__ == "__main__":
    try:
        sys.exit(suite.run())
    finally:
        shutil.rmtree(REPO, ignore_errors=True)
