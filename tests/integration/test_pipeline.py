"""Market prediction pipeline (docs/pipeline.md) against the real binary with a model
repository of two small ONNX LSTMs with Dropout (tests/models: lstm_regressor [B,32,20] as
normal_day, lstm_regressor_37 [B,32,37] as earnings_day, each with a scaler).

Routing is checked against an independent implementation of MODELS.md's rule (Python's
datetime); outputs against the math (predicted_price = price * (1 + return), p10 <= p50 <=
p90) and against KServe inference of the same rows with the same seed; reads from the fast
layer and from the store (TTL expiry, the failure knob); exactly one history row per symbol
and run after kill -9 mid-run; the bad-input catalogue of features, calendar and runs."""
import datetime
import json
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import SLOW, Server, Suite, eq, fail, near_rel, ok, run_cli  # noqa: E402

suite = Suite("pipeline")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "tests", "models")
K, NT, NE = 32, 20, 17
SEED, PASSES = 42, 20


def scaler_yaml(n, seed):
    rnd = random.Random(seed)
    mean = [round(rnd.uniform(-0.5, 0.5), 3) for _ in range(n)]
    scale = [round(rnd.uniform(0.5, 2.0), 3) for _ in range(n)]
    return "inputs:\n  - name: x\n    scaler: {mean: %s, scale: %s}\n" % (json.dumps(mean), json.dumps(scale))


def make_repo():
    d = tempfile.mkdtemp(prefix="predictd-pipeline-")
    for name, src, batch, n in (("normal_day", "lstm_regressor.onnx", 128, NT),
                                ("earnings_day", "lstm_regressor_37.onnx", 32, NT + NE)):
        os.makedirs(os.path.join(d, name, "1"))
        shutil.copy(os.path.join(MODELS, src), os.path.join(d, name, "1", "model.onnx"))
        with open(os.path.join(d, name, "1", "config.yaml"), "w") as f:
            f.write("type: lstm_regressor\nmax_batch_size: %d\nmc_passes: 20\n%s" % (batch, scaler_yaml(n, len(name))))
    return d


REPO = make_repo()
HOLIDAY = "2026-11-20"        # a Friday, for these tests
MONDAY = "2026-11-23"
T0 = 1764000000               # epoch seconds of the first vector


def server(env=None, **kw):
    e = {"PREDICTD_PIPELINE_HOLIDAYS": HOLIDAY, "PREDICTD_PIPELINE_CONSISTENCY_INTERVAL_S": "0"}
    e.update(env or {})
    return Server(args=["--models", REPO], env=e, **kw)


def vectors(symbol, n, seed, earnings=False, start=0):
    rnd = random.Random(seed)
    out = []
    for t in range(start, start + n):
        v = {"symbol": symbol, "timestamp": T0 + 60 * t, "price": round(50 + rnd.uniform(0, 100), 2),
             "technical": [round(rnd.gauss(0, 1), 6) for _ in range(NT)]}
        if earnings:
            v["earnings"] = [round(rnd.gauss(0, 1), 6) for _ in range(NE)]
        out.append(v)
    return out


def post_features(c, rows):
    return c.expect(200, "POST", "/api/v1/features", rows).json


def run(c, body, timeout=60):
    r = c.expect(202, "POST", "/api/v1/pipeline/run", body).json
    ok(r["run_id"].startswith("RUN-") and r["correlation_id"], "run ids", r)
    return wait_run(c, r["run_id"], timeout)


def wait_run(c, run_id, timeout=60):
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = c.expect(200, "GET", "/api/v1/pipeline/runs/" + run_id).json
        if last["status"] in ("COMPLETED", "FAILED"):
            return last
        time.sleep(0.05)
    fail("run %s not finished: %r" % (run_id, last))


# ---- an independent implementation of MODELS.md's router ----
def is_trading(d, holidays):
    return d.weekday() < 5 and d.isoformat() not in holidays


def prev_trading(d, holidays):
    d -= datetime.timedelta(days=1)
    while not is_trading(d, holidays):
        d -= datetime.timedelta(days=1)
    return d


def oracle_route(day, entries, holidays):
    d = datetime.date.fromisoformat(day)
    p = prev_trading(d, holidays)
    for date, time_ in entries:
        if time_ == "bmo" and date == d.isoformat():
            return "earnings_day"
        if time_ == "amc" and date == p.isoformat():
            return "earnings_day"
    return "normal_day"


def window_rows(rows, width):
    """The model input of one symbol: its last K vectors, technical (+ earnings or zeros)."""
    last = sorted(rows, key=lambda r: r["timestamp"])[-K:]
    out = []
    for r in last:
        v = list(r["technical"])
        if width > NT:
            v += list(r.get("earnings") or [0.0] * NE)
        out.append(v)
    return out


def kserve_mc(c, model, rows_per_symbol, width):
    flat = [x for sym in rows_per_symbol for step in sym for x in step]
    body = {"inputs": [{"name": "x", "shape": [len(rows_per_symbol), K, width], "datatype": "FP32", "data": flat}],
            "parameters": {"mc_passes": PASSES, "seed": SEED}}
    r = c.expect(200, "POST", "/v2/models/%s/infer" % model, body).json
    outs = {o["name"]: o["data"] for o in r["outputs"]}
    return outs["y"], outs["y_std"], outs["y_p10"], outs["y_p50"], outs["y_p90"]


CAL = [  # symbol, calendar entries; routed for Monday 2026-11-23 with Friday 2026-11-20 a holiday
    ("BMO", [("2026-11-23", "bmo")]),          # before today's open -> earnings
    ("AMCFRI", [("2026-11-20", "amc")]),       # after a holiday's "close": not the previous trading day
    ("AMCTHU", [("2026-11-19", "amc")]),       # Thursday = previous trading day -> earnings
    ("AMCTODAY", [("2026-11-23", "amc")]),     # after today's close -> normal today
    ("UNKNOWN", [("2026-11-23", "unknown")]),  # unknown time -> normal
    ("NOCAL", []),                             # calendar says nothing -> normal
    ("OLDBMO", [("2026-11-16", "bmo"), ("2026-11-23", "bmo")]),  # any matching row
]


@suite.test
def test_routing_outputs_and_kserve_equivalence():
    with server() as s:
        c = s.client()
        feats = {}
        for i, (sym, _) in enumerate(CAL):
            feats[sym] = vectors(sym, K + 3, i, earnings=True)
            post_features(c, feats[sym])
        feats["SHORT"] = vectors("SHORT", 5, 99)
        post_features(c, feats["SHORT"])
        cal = [{"symbol": sym, "date": d, "time": t} for sym, entries in CAL for d, t in entries]
        eq(c.expect(200, "POST", "/api/v1/calendar", cal).json, {"accepted": len(cal)}, "calendar answer")
        symbols = [sym for sym, _ in CAL] + ["SHORT", "GHOST"]
        done = run(c, {"symbols": symbols, "date": MONDAY, "correlation_id": "corr-test-1"})
        eq(done["status"], "COMPLETED", "run status")
        eq(done["correlation_id"], "corr-test-1", "correlation id kept")
        expected = {sym: oracle_route(MONDAY, entries, {HOLIDAY}) for sym, entries in CAL}
        n_earn = sum(1 for v in expected.values() if v == "earnings_day")
        eq(done["routes"], {"normal_day": len(symbols) - n_earn, "earnings_day": n_earn}, "routes")
        eq(done["symbols"], len(symbols), "symbols")
        eq(done["succeeded"] + done["failed"], len(symbols), "every symbol accounted for")
        eq(done["failed"], 2, "failed count")
        reasons = {f["symbol"]: f["reason"] for f in done["failures"]}
        ok("5 of the 32" in reasons.get("SHORT", ""), "SHORT's reason names its 5 vectors", reasons)
        ok("0 of the 32" in reasons.get("GHOST", ""), "GHOST's reason", reasons)
        for k in ("route", "inference", "store", "fast_layer", "events", "total"):
            ok(isinstance(done["stages_ms"].get(k), (int, float)), "stage %s timed" % k, done["stages_ms"])
        eq(len(done["jobs"]), 2, "one job per route")

        preds = {}
        for sym, _ in CAL:
            p = c.expect(200, "GET", "/api/v1/predictions/" + sym).json
            preds[sym] = p
            eq(p["model_type"], expected[sym], "%s routed" % sym)
            eq(p["source"], "fast_layer", "%s served from the fast layer" % sym)
            eq(p["correlation_id"], "corr-test-1", "%s correlation id" % sym)
            eq(p["run_id"], done["run_id"], "%s run id" % sym)
            eq(p["model_version"], "1", "model version")
            last = sorted(feats[sym], key=lambda r: r["timestamp"])[-1]
            eq(p["current_price"], last["price"], "%s current price = the newest vector's" % sym)
            near_rel(p["predicted_price"], p["current_price"] * (1 + p["predicted_return"]), 1e-15,
                     "%s predicted_price" % sym)
            ok(p["p10"] <= p["p50"] <= p["p90"], "%s p10 <= p50 <= p90" % sym, p)
            ok(p["uncertainty"] > 0, "%s MC dropout spreads" % sym, p)
        # the same rows through KServe with the same seed give the same numbers
        for model, width in (("normal_day", NT), ("earnings_day", NT + NE)):
            syms = [sym for sym, _ in CAL if expected[sym] == model]
            mean, std, p10, p50, p90 = kserve_mc(c, model, [window_rows(feats[x], width) for x in syms], width)
            for i, sym in enumerate(syms):
                p = preds[sym]
                for key, v in (("predicted_return", mean), ("uncertainty", std), ("p10", p10), ("p50", p50),
                               ("p90", p90)):
                    eq(p[key], v[i], "%s %s equals KServe MC of the same batch" % (sym, key))
        # the same seed and batch again: the same outputs
        again = run(c, {"symbols": symbols, "date": MONDAY})
        ok(again["run_id"] != done["run_id"], "a new run id")
        for sym, _ in CAL:
            p = c.expect(200, "GET", "/api/v1/predictions/" + sym).json
            eq(p["run_id"], again["run_id"], "latest is the second run")
            for key in ("predicted_return", "uncertainty", "p10", "p50", "p90", "predicted_price"):
                eq(p[key], preds[sym][key], "%s %s reproducible" % (sym, key))
        h = c.expect(200, "GET", "/api/v1/predictions/BMO/history").json
        eq([x["run_id"] for x in h["history"]], [done["run_id"], again["run_id"]], "history oldest first")
        first_ts = h["history"][0]["timestamp"]
        h1 = c.expect(200, "GET", "/api/v1/predictions/BMO/history?to=" + first_ts).json
        eq([x["run_id"] for x in h1["history"]], [done["run_id"]], "history up to the first")
        h2 = c.expect(200, "GET", "/api/v1/predictions/BMO/history?from=" + h["history"][1]["timestamp"]).json
        eq([x["run_id"] for x in h2["history"]], [again["run_id"]], "history from the second")
        many = c.expect(200, "GET", "/api/v1/predictions?symbols=BMO,GHOST,NOCAL").json
        eq(sorted(p["symbol"] for p in many["predictions"]), ["BMO", "NOCAL"], "multi-get found")
        eq(many["missing"], ["GHOST"], "multi-get missing")
        m = c.expect(200, "GET", "/metrics").text
        ok('predictd_pipeline_predictions_total{model_type="earnings_day"} %d' % (2 * n_earn) in m,
           "predictions by model type", [l for l in m.splitlines() if "predictions_total" in l])
        ok('predictd_pipeline_routed_total{route="earnings_day"} %d' % (2 * n_earn) in m, "routed counter")
        ok('predictd_pipeline_errors_total{type="missing_features"} 4' in m, "errors by type")
        ok('predictd_pipeline_fresh_symbols %d' % len(CAL) in m, "fresh symbols gauge")
        ok('predictd_pipeline_breaker_state{name="inference"} 0' in m, "breaker state in /metrics")
        ok("predictd_pipeline_inference_seconds_count" in m and "predictd_pipeline_e2e_seconds_count" in m,
           "latency histograms")


@suite.test
def test_missing_earnings_zeros_or_skip():
    rows = vectors("NOEARN", K, 5)  # technical only
    cal = [{"symbol": "NOEARN", "date": MONDAY, "time": "bmo"}]
    with server() as s:
        c = s.client()
        post_features(c, rows)
        c.expect(200, "POST", "/api/v1/calendar", cal)
        done = run(c, {"symbols": ["NOEARN"], "date": MONDAY})
        eq((done["succeeded"], done["routes"]["earnings_day"]), (1, 1), "zeros: predicted by the earnings model")
        p = c.expect(200, "GET", "/api/v1/predictions/NOEARN").json
        mean = kserve_mc(c, "earnings_day", [window_rows(rows, NT + NE)], NT + NE)[0]
        eq(p["predicted_return"], mean[0], "zeros filled in, as KServe with zero earnings features")
    with server(env={"PREDICTD_PIPELINE_MISSING_EARNINGS": "skip"}) as s:
        c = s.client()
        post_features(c, rows)
        c.expect(200, "POST", "/api/v1/calendar", cal)
        done = run(c, {"symbols": ["NOEARN"], "date": MONDAY})
        eq((done["succeeded"], done["failed"]), (0, 1), "skip: failed")
        ok("missing earnings features" in done["failures"][0]["reason"], "reason", done["failures"])
        c.expect(404, "GET", "/api/v1/predictions/NOEARN")


@suite.test
def test_reads_from_store_after_ttl_and_when_fast_layer_is_down():
    syms = ["S%d" % i for i in range(4)]
    with server(env={"PREDICTD_PIPELINE_FAST_TTL_S": "1"}) as s:
        c = s.client()
        for i in range(4):
            post_features(c, vectors("S%d" % i, K, 100 + i))
        run(c, {"symbols": syms})
        a = c.expect(200, "GET", "/api/v1/predictions/S0").json  # (fresh: fast layer, unless 1 s went by)
        time.sleep(1.2)  # past the 1 s TTL
        b = c.expect(200, "GET", "/api/v1/predictions/S0").json
        eq(b["source"], "store", "expired: from the store")
        b.pop("source"), a.pop("source")
        eq(b, a, "the same prediction from either layer")
        r = c.expect(200, "POST", "/api/v1/pipeline/consistency").json
        eq((r["checked"], r["mismatched"]), (0, 0), "expired entries are no mismatch")
    with server(env={"PREDICTD_PIPELINE_DEBUG": "1", "PREDICTD_PIPELINE_BREAKER_OPEN_S": "1"}) as s:
        c = s.client()
        for i in range(4):
            post_features(c, vectors("S%d" % i, K, 100 + i))
        # the fast layer down: runs still complete, reads come from the store
        eq(c.expect(200, "POST", "/api/v1/pipeline/debug", {"fast_layer_down": True}).json,
           {"fast_layer_down": True}, "knob")
        done = run(c, {"symbols": syms})
        eq(done["succeeded"], 4, "predictions stored with the fast layer down")
        p = c.expect(200, "GET", "/api/v1/predictions/S1").json
        eq((p["source"], p["run_id"]), ("store", done["run_id"]), "served from the store")
        m = c.expect(200, "GET", "/metrics").text
        ok('predictd_pipeline_errors_total{type="fast_layer"}' in m, "fast-layer errors counted")
        st = [l for l in m.splitlines() if l.startswith('predictd_pipeline_breaker_state{name="fast_layer"}')]
        ok(st and st[0].split()[-1] in ("1", "2"), "its breaker opened (open or, 1 s on, half-open)", st)
        # back up: the check finds every fresh symbol missing there, alerts and repairs
        c.expect(200, "POST", "/api/v1/pipeline/debug", {"fast_layer_down": False})
        ev = Events(s.port, "pipeline.alert")
        r = c.expect(200, "POST", "/api/v1/pipeline/consistency").json
        eq((r["checked"], r["mismatched"], r["repaired"], r["alert"]), (4, 4, 4, True), "check report")
        alert = ev.wait(lambda e: any(t == "pipeline.alert" for t, d in e))[0][1]
        eq((alert["kind"], alert["mismatched"], alert["alert"]), ("consistency", 4, True), "pipeline.alert event")
        ev.close()
        r2 = c.expect(200, "POST", "/api/v1/pipeline/consistency").json
        eq((r2["mismatched"], r2["alert"]), (0, False), "repaired")
        m = c.expect(200, "GET", "/metrics").text
        ok("predictd_pipeline_consistency_alerts_total 1" in m, "alert counted")
        time.sleep(1.1)  # the fast layer's breaker (opened by the failures) may try again
        c.expect(200, "GET", "/api/v1/predictions/S2")
        p = c.expect(200, "GET", "/api/v1/predictions/S2").json
        eq(p["source"], "fast_layer", "repaired entry served from the fast layer")
    with server(env={"PREDICTD_PIPELINE_FAST_LAYER_DOWN": "1"}) as s:
        c = s.client()
        post_features(c, vectors("Q", K, 7))
        run(c, {"symbols": ["Q"]})
        eq(c.expect(200, "GET", "/api/v1/predictions/Q").json["source"], "store", "config knob: from the store")
        c.expect(404, "POST", "/api/v1/pipeline/debug", {"fast_layer_down": False})


class Events:
    """A raw SSE reader of /api/v1/events?topics=... collecting (topic, data)."""

    def __init__(self, port, topics):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(("GET /api/v1/events?topics=%s HTTP/1.1\r\nHost: x\r\n\r\n" % topics).encode())
        self.events = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        # the handler subscribes before it answers: once the headers are here, no event is missed
        ok(self.subscribed.wait(30 * SLOW), "the event stream answered")

    def _run(self):
        buf = b""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return
                buf += d
                if not self.subscribed.is_set() and b"\r\n\r\n" in buf:
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    self.subscribed.set()
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    topic = data = None
                    for line in block.decode("utf-8", "replace").splitlines():
                        if line.startswith("event: "):
                            topic = line[7:]
                        elif line.startswith("data: "):
                            data = line[6:]
                    if topic and data:
                        with self.lock:
                            self.events.append((topic, json.loads(data)))
        except OSError:
            return

    def wait(self, pred, timeout=30):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            with self.lock:
                if pred(self.events):
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            fail("events not seen: %r" % self.events[-5:])

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.sock.close()


@suite.test
def test_window_trigger_events_and_csv_import():
    with server(env={"PREDICTD_PIPELINE_WINDOW_S": "1"}) as s:
        c = s.client()
        ev = Events(s.port, "prediction.updated,pipeline.run.completed,data.features.ready")
        head = "symbol,timestamp,price," + ",".join("t%d" % i for i in range(NT))
        lines = [head]
        for r in vectors("CSV1", K, 11) + vectors("CSV2", K, 12):
            lines.append("%s,%d,%s,%s" % (r["symbol"], r["timestamp"], r["price"], ",".join(map(str, r["technical"]))))
        path = os.path.join(s.root, "f.csv")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        rc, out, err = run_cli(["import", "features", path, "--url", "http://127.0.0.1:%d" % s.port])
        eq(rc, 0, "import features rc (%s)" % err)
        ok("imported %d" % (2 * K) in out, "CLI says how many", out)
        cal = os.path.join(s.root, "c.csv")
        with open(cal, "w") as f:
            f.write("symbol,date,time\nCSV1,2026-11-23,bmo\n")
        rc, out, err = run_cli(["import", "calendar", cal, "--url", "http://127.0.0.1:%d" % s.port])
        eq(rc, 0, "import calendar rc (%s)" % err)
        evs = ev.wait(lambda e: sum(1 for t, d in e if t == "pipeline.run.completed") >= 1 and
                      {d["symbol"] for t, d in e if t == "prediction.updated"} >= {"CSV1", "CSV2"})
        ready = [d for t, d in evs if t == "data.features.ready"]
        eq(ready[0]["symbols"], ["CSV1", "CSV2"], "data.features.ready names the symbols")
        upd = [d for t, d in evs if t == "prediction.updated"]
        for d in upd:
            for k in ("symbol", "predicted_return", "predicted_price", "uncertainty", "p10", "p50", "p90",
                      "model_type", "model_version", "timestamp", "correlation_id", "run_id"):
                ok(k in d, "prediction.updated has " + k, d)
        done = [d for t, d in evs if t == "pipeline.run.completed"][0]
        eq(done["correlation_id"], upd[0]["correlation_id"], "one correlation id end to end")
        r = c.expect(200, "GET", "/api/v1/pipeline/runs/" + done["run_id"]).json
        eq((r["trigger"], r["succeeded"]), ("window", done["succeeded"]), "window run")
        ev.close()
        # bad CSV: nothing stored
        bad = head + "\nCSV3,%d,10,%s\nCSV4,%d,abc,%s\n" % (T0, ",".join(["1"] * NT), T0, ",".join(["1"] * NT))
        r = c.expect(422, "POST", "/api/v1/import/features", bad, content_type="text/csv").json
        eq(r["error"]["code"], "invalid_csv", "bad CSV code")
        ok(any("line 3" in l and "price" in l for l in r["error"]["lines"]), "names the line", r)
        d = run(c, {"symbols": ["CSV3"]})
        ok("0 of the 32" in d["failures"][0]["reason"], "nothing of the bad CSV was stored", d)
        r = c.expect(422, "POST", "/api/v1/import/calendar", "symbol,date\nA,2026-11-23\n", content_type="text/csv")
        ok("missing column time" in r.text, "calendar header checked", r.text)


@suite.test
def test_bad_input_catalogue():
    good = vectors("GOOD", 1, 1)[0]

    def with_(**kw):
        v = dict(good)
        v.update(kw)
        return v
    nan_json = json.dumps([good])[:-2] + ', "price": NaN}]'
    cases = [  # (path, body, status, field)
        ("/api/v1/features", {"symbol": "A"}, 422, None),
        ("/api/v1/features", [], 422, None),
        ("/api/v1/features", [with_(symbol="bad symbol")], 422, "[0].symbol"),
        ("/api/v1/features", [with_(symbol="X" * 33)], 422, "[0].symbol"),
        ("/api/v1/features", [good, with_(technical=[1] * 19)], 422, "[1].technical"),
        ("/api/v1/features", [with_(technical=[1] * 21)], 422, "[0].technical"),
        ("/api/v1/features", [with_(technical=[1] * 19 + ["x"])], 422, "[0].technical[19]"),
        ("/api/v1/features", [with_(technical=[1] * 19 + [1e39])], 422, "[0].technical[19]"),
        ("/api/v1/features", [with_(earnings=[1] * 16)], 422, "[0].earnings"),
        ("/api/v1/features", [with_(price=-1)], 422, "[0].price"),
        ("/api/v1/features", [with_(timestamp="soon")], 422, "[0].timestamp"),
        ("/api/v1/features", [with_(volume=5)], 422, "[0].volume"),
        ("/api/v1/features", nan_json, 400, None),
        ("/api/v1/calendar", [{"symbol": "A", "date": "2026-11-31", "time": "bmo"}], 422, "[0].date"),
        ("/api/v1/calendar", [{"symbol": "A", "date": "2026-11-23", "time": "lunch"}], 422, "[0].time"),
        ("/api/v1/calendar", [{"symbol": "A", "date": "2026-11-23", "time": "bmo", "x": 1}], 422, "[0].x"),
        ("/api/v1/pipeline/run", {}, 422, "symbols"),
        ("/api/v1/pipeline/run", {"symbols": []}, 422, "symbols"),
        ("/api/v1/pipeline/run", {"symbols": ["A", 5]}, 422, "symbols[1]"),
        ("/api/v1/pipeline/run", {"symbols": ["A"], "all": True}, 422, "all"),
        ("/api/v1/pipeline/run", {"all": False}, 422, "all"),
        ("/api/v1/pipeline/run", {"all": True}, 422, "all"),  # nothing in the feature store yet
        ("/api/v1/pipeline/run", {"symbols": ["A"], "date": "23/11/2026"}, 422, "date"),
        ("/api/v1/pipeline/run", {"symbols": ["A"], "correlation_id": "a b"}, 422, "correlation_id"),
        ("/api/v1/pipeline/run", {"symbols": ["A"], "priority": 1}, 422, "priority"),
        ("/api/v1/pipeline/run", [1], 422, None),
    ]
    with server() as s:
        c = s.client()
        for path, body, status, field in cases:
            if isinstance(body, str):
                r = c.request("POST", path, body=body, content_type="application/json")
            else:
                r = c.request("POST", path, body=body)
            eq(r.status, status, "%s %s status (%s)" % (path, str(body)[:80], r.text[:200]))
            eq(r.json["error"]["field"], field, "%s %s field" % (path, str(body)[:80]))
            ok(r.json["error"]["message"], "a message")
        for path, status, field in (("/api/v1/pipeline/runs/RUN-nope", 404, None),
                                    ("/api/v1/predictions/bad%20sym", 422, "symbol"),
                                    ("/api/v1/predictions", 422, "symbols"),
                                    ("/api/v1/predictions?symbols=A,b%20c", 422, "symbols"),
                                    ("/api/v1/predictions/A/history?from=never", 422, "from"),
                                    ("/api/v1/predictions/A/history?from=10&to=5", 422, "from"),
                                    ("/api/v1/predictions/A/history?limit=0", 422, "limit"),
                                    ("/api/v1/predictions/NONE", 404, None)):
            r = c.get(path)
            eq(r.status, status, "GET %s status (%s)" % (path, r.text[:200]))
            eq(r.json["error"]["field"], field, "GET %s field" % path)
        # nothing of the refused batches was stored: GOOD (first row of one of them) is unknown
        d = run(c, {"symbols": ["GOOD"]})
        ok("0 of the 32" in d["failures"][0]["reason"], "no vector of a refused batch was kept", d)
        eq(c.get("/api/v1/predictions/A/history").json, {"symbol": "A", "history": [], "count": 0}, "no history")


@suite.test
def test_kill9_mid_run_history_exactly_once_and_restart():
    env = {"PREDICTD_PIPELINE_BATCH_NORMAL": "4", "PREDICTD_JOBS_WORKERS": "1"}
    n = 48
    syms = ["K%02d" % i for i in range(n)]
    with server(env=env, log_level="info") as s:
        c = s.client()
        rows = []
        for i, sym in enumerate(syms):
            rows += vectors(sym, K, 1000 + i)
        post_features(c, rows)
        r = c.expect(202, "POST", "/api/v1/pipeline/run", {"symbols": syms}).json
        # kill once some chunks are in (wherever the kill lands, the promise holds)
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            st = c.expect(200, "GET", "/api/v1/pipeline/runs/" + r["run_id"]).json
            if st["succeeded"] > 0 or st["status"] == "COMPLETED":
                break
        s.kill9()
        s.start()
        c = s.client()
        if st["status"] != "COMPLETED":
            print("    killed mid-run at %d of %d symbols" % (st["succeeded"], n))
            ok("pipeline run recovered" in s.log_text(), "the run was taken back at start", s.log_tail())
        done = wait_run(c, r["run_id"])
        eq((done["status"], done["succeeded"], done["failed"]), ("COMPLETED", n, 0), "the run finished after kill -9")
        for sym in syms:
            h = c.expect(200, "GET", "/api/v1/predictions/%s/history" % sym).json["history"]
            eq(len([x for x in h if x["run_id"] == r["run_id"]]), 1, "%s: one history row for the run" % sym)
        # features survived the restart: a new run works on them
        again = run(c, {"all": True})
        eq((again["succeeded"], again["symbols"]), (n, n), "all symbols after restart")
        p = c.expect(200, "GET", "/api/v1/predictions/K00").json
        eq(p["run_id"], again["run_id"], "latest after the second run")
        s.check_clean_exit()


@suite.test
def test_crash_between_store_write_and_chunk_settle_writes_history_once():
    """The process dies right after a chunk's outcome is in the store and before the job
    engine settles the chunk: the chunk is redone at the next start, and the history still
    has one row per symbol and run (its key is (run_id, symbol))."""
    # chunks of one batch of 4: the crash comes after the second of the run's three chunks
    env = {"PREDICTD_PIPELINE_BATCH_NORMAL": "4", "PREDICTD_PIPELINE_CHUNK_BATCHES": "1",
           "PREDICTD_JOBS_WORKERS": "1"}
    syms = ["C%02d" % i for i in range(10)]
    with server(env=dict(env, PREDICTD_PIPELINE_FAULT_EXIT_AFTER_CHUNKS="2")) as s:
        c = s.client()
        rows = []
        for i, sym in enumerate(syms):
            rows += vectors(sym, K, 2000 + i)
        post_features(c, rows)
        r = c.expect(202, "POST", "/api/v1/pipeline/run", {"symbols": syms}).json
        s.proc.wait(timeout=30 * SLOW)
        eq(s.proc.returncode, 3, "the fault knob ended the process")
        s.env.pop("PREDICTD_PIPELINE_FAULT_EXIT_AFTER_CHUNKS")
        s.start()
        c = s.client()
        done = wait_run(c, r["run_id"])
        eq((done["status"], done["succeeded"], done["failed"]), ("COMPLETED", 10, 0), "finished after the crash")
        for sym in syms:
            h = c.expect(200, "GET", "/api/v1/predictions/%s/history" % sym).json["history"]
            eq(len(h), 1, "%s: one history row" % sym)


@suite.test
def test_dead_letters_fail_the_run_with_reasons_and_interval_runs():
    env = {"PREDICTD_FAULTS_CHUNK_FAILURES": "1000", "PREDICTD_JOBS_MAX_ATTEMPTS": "2",
           "PREDICTD_JOBS_BACKOFF_BASE_MS": "1", "PREDICTD_JOBS_BACKOFF_MAX_MS": "5"}
    with server(env=env) as s:
        c = s.client()
        post_features(c, vectors("DL1", K, 1) + vectors("DL2", K, 2))
        done = run(c, {"symbols": ["DL1", "DL2"]})
        eq((done["status"], done["succeeded"], done["failed"]), ("FAILED", 0, 2), "a dead chunk fails the run")
        for f in done["failures"]:
            ok("dead letter" in f["reason"] and "injected fault" in f["reason"], "the dead letter's reason", f)
        dl = c.expect(200, "GET", "/api/v1/deadletters").json
        ok(any(d["job_id"] in done["jobs"] for d in dl["deadletters"]), "in the dead-letter list", dl)
    with server(env={"PREDICTD_PIPELINE_INTERVAL_S": "1"}) as s:
        c = s.client()
        post_features(c, vectors("IV", K, 3))
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            r = c.get("/api/v1/predictions/IV")
            if r.status == 200:
                break
            time.sleep(0.1)
        eq(r.status, 200, "a periodic run predicted IV")
        run_ = c.expect(200, "GET", "/api/v1/pipeline/runs/" + r.json["run_id"]).json
        eq(run_["trigger"], "interval", "trigger")


@suite.test
def test_inference_breaker_opens_after_ten_failures():
    """A repository without the earnings model: each attempt of an earnings chunk is an
    inference failure; after 10 the inference breaker opens and a normal chunk is refused
    without running (its reason says so), then the run fails with the dead letters' reasons."""
    repo = tempfile.mkdtemp(prefix="predictd-pipeline-nomodel-")
    shutil.copytree(os.path.join(REPO, "normal_day"), os.path.join(repo, "normal_day"))
    env = {"PREDICTD_JOBS_MAX_ATTEMPTS": "5", "PREDICTD_JOBS_BACKOFF_BASE_MS": "1",
           "PREDICTD_JOBS_BACKOFF_MAX_MS": "5", "PREDICTD_PIPELINE_HOLIDAYS": HOLIDAY,
           "PREDICTD_PIPELINE_CONSISTENCY_INTERVAL_S": "0", "PREDICTD_PIPELINE_BREAKER_OPEN_S": "3600"}
    try:
        with Server(args=["--models", repo], env=env) as s:
            c = s.client()
            post_features(c, vectors("E1", K, 1, earnings=True) + vectors("N1", K, 2))
            c.expect(200, "POST", "/api/v1/calendar", [{"symbol": "E1", "date": MONDAY, "time": "bmo"}])
            for _ in range(2):  # 2 runs x 5 attempts = 10 failures
                d = run(c, {"symbols": ["E1"], "date": MONDAY})
                eq((d["status"], d["failed"]), ("FAILED", 1), "no earnings model: failed")
                ok("earnings_day" in d["failures"][0]["reason"], "the reason names the model", d["failures"])
            m = c.expect(200, "GET", "/metrics").text
            ok('predictd_pipeline_breaker_state{name="inference"} 1' in m, "inference breaker open",
               [l for l in m.splitlines() if "breaker_state" in l])
            d = run(c, {"symbols": ["N1"], "date": MONDAY})
            eq(d["status"], "FAILED", "a normal run is refused while the breaker is open")
            ok("inference circuit breaker open" in d["failures"][0]["reason"], "reason", d["failures"])
            ok('predictd_pipeline_errors_total{type="breaker_open"}' in c.get("/metrics").text, "counted")
    finally:
        shutil.rmtree(repo, ignore_errors=True)


@suite.test
def test_chunks_of_several_batches_predict_as_batch_sized_chunks():
    """pipeline.chunk_batches only groups inference batches into one job chunk (one store
    commit): the batches, hence every MC output, are the same as with one batch per chunk."""
    syms = ["G%02d" % i for i in range(11)]
    rows = []
    for i, sym in enumerate(syms):
        rows += vectors(sym, K, 3000 + i)
    got = {}
    for cb in ("1", "3"):
        env = {"PREDICTD_PIPELINE_BATCH_NORMAL": "4", "PREDICTD_PIPELINE_CHUNK_BATCHES": cb,
               "PREDICTD_PIPELINE_WINDOW_S": "3600"}
        with server(env=env) as s:
            c = s.client()
            post_features(c, rows)
            done = run(c, {"symbols": syms})
            eq((done["status"], done["succeeded"]), ("COMPLETED", 11), "run with chunk_batches=%s" % cb)
            job = c.job(done["jobs"][0])
            eq(job["model"], "predict.normal", "the normal job")
            got[cb] = {sym: c.expect(200, "GET", "/api/v1/predictions/%s" % sym).json for sym in syms}
            s.check_clean_exit()
    for sym in syms:
        a, b = got["1"][sym], got["3"][sym]
        for k in ("predicted_return", "uncertainty", "p10", "p50", "p90", "predicted_price"):
            eq(a[k], b[k], "%s %s: chunk_batches 1 vs 3" % (sym, k))


@suite.test
def test_events_kept_in_the_bounded_outbox_while_publishing_fails():
    """While publishing fails (failure injection), a run's events wait in the outbox, bounded
    by pipeline.outbox_max (oldest dropped, counted); once publishing works again the rest are
    delivered in order. The predictions themselves are stored and readable meanwhile."""
    env = {"PREDICTD_PIPELINE_DEBUG": "1", "PREDICTD_PIPELINE_OUTBOX_MAX": "4", "PREDICTD_PIPELINE_WINDOW_S": "3600"}
    syms = ["OB%d" % i for i in range(6)]
    with server(env=env) as s:
        c = s.client()
        rows = []
        for i, sym in enumerate(syms):
            rows += vectors(sym, K, 4000 + i)
        post_features(c, rows)
        eq(c.expect(200, "POST", "/api/v1/pipeline/debug", {"events_down": True}).json, {"events_down": True}, "knob")
        c.expect(422, "POST", "/api/v1/pipeline/debug", {"events_down": 1})
        c.expect(422, "POST", "/api/v1/pipeline/debug", {"events_down": True, "other": True})
        ev = Events(s.port, "prediction.updated,pipeline.run.completed")
        r = c.expect(202, "POST", "/api/v1/pipeline/run", {"symbols": syms}).json
        # the run completes (its status is read from the store), its events wait
        t0 = time.time()
        while c.expect(200, "GET", "/api/v1/pipeline/runs/" + r["run_id"]).json["status"] != "COMPLETED":
            ok(time.time() - t0 < 60 * SLOW, "run completes while events are down")
            time.sleep(0.05)
        for sym in syms:
            eq(c.expect(200, "GET", "/api/v1/predictions/%s" % sym).json["run_id"], r["run_id"], sym + " stored")
        time.sleep(0.5 * SLOW)
        eq([t for t, d in ev.snapshot()], [], "nothing published while down")
        text = c.expect(200, "GET", "/metrics").body.decode()
        m = re.search(r"^predictd_pipeline_outbox_dropped_total ([0-9.e+]+)$", text, re.M)
        # 6 prediction.updated + 1 pipeline.run.completed = 7 events for an outbox of 4
        eq(float(m.group(1)) if m else None, 3.0, "the 3 oldest dropped, counted")
        c.expect(200, "POST", "/api/v1/pipeline/debug", {"events_down": False})
        evs = ev.wait(lambda e: any(t == "pipeline.run.completed" for t, d in e))
        got = [(t, d.get("symbol")) for t, d in evs]
        # the 4 newest, in publication order: the last 3 symbols' updates, then the completion
        eq([t for t, _ in got], ["prediction.updated"] * 3 + ["pipeline.run.completed"], "kept events, in order")
        eq(len({sym for _, sym in got if sym}), 3, "three distinct symbols")
        ev.close()
        s.check_clean_exit()


@suite.test
def test_bad_pipeline_config_refuses_to_start():
    for key, value, words in (("PREDICTD_PIPELINE_MISSING_EARNINGS", "maybe", "pipeline.missing_earnings"),
                              ("PREDICTD_PIPELINE_HOLIDAYS", "2026-11-26,Thanksgiving", "Thanksgiving")):
        d = tempfile.mkdtemp(prefix="predictd-pipeline-cfg-")
        try:
            rc, out, err = run_cli(["serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(d, "data")],
                                   env={key: value})
            eq(rc, 1, "%s=%s: exit status" % (key, value))
            ok(words in err, "the error names it", err[-400:])
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(suite.run())
    finally:
        shutil.rmtree(REPO, ignore_errors=True)
