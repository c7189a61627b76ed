"""The market demo's generators (issue 6): scripts/gen-demo-market.py writes the contract's
CSVs (features: symbol,timestamp,price,t0..t19[,e0..e16]; calendar: symbol,date,time) and
scripts/gen-market-models.py the model repository the pipeline serves. Checked here:
both are deterministic (same seed, same bytes; another seed, other bytes); every row parses
as the contract says; bars are trading days only, oldest first, ending the trading day before
the date; features recomputed from the written prices (returns, moving-average ratios) match;
the calendar routes exactly the requested share of symbols to the earnings model by
MODELS.md's rule, computed here independently, and those symbols have earnings features;
the models pass `predictd model check` with the contract's shapes, load in the server with
the configured batch sizes and passes, the scaler standardises the demo's features, and MC
dropout gives finite, ordered quantiles on demo inputs. When the binary has the market
routes, the CSVs import through `predictd import` as they are and a run over the demo routes
the counted share to the earnings model."""
import csv
import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import BINARY, SLOW, Server, Suite, eq, fail, ok, run_cli  # noqa: E402

suite = Suite("demo_market")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN_MARKET = os.path.join(ROOT, "scripts", "gen-demo-market.py")
GEN_MODELS = os.path.join(ROOT, "scripts", "gen-market-models.py")
PY_ONNX = "/usr/bin/python3"  # Debian's python3-onnx and python3-numpy import only there
SYMBOL_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
DATE = dt.date(2026, 3, 2)          # a Monday: the previous trading day is a Friday...
HOLIDAYS = [dt.date(2026, 2, 16)]   # ... and a holiday falls inside the window
N_SYM, STEPS = 80, 34


def gen_market(out, *extra):
    r = subprocess.run([sys.executable, GEN_MARKET, "--symbols", str(N_SYM), "--steps", str(STEPS),
                        "--date", DATE.isoformat(), "--holidays", ",".join(h.isoformat() for h in HOLIDAYS),
                        "--earnings-today", "0.1", "--out", out, "-q"] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    eq(r.returncode, 0, "gen-demo-market exit status (%s)" % r.stderr[-500:])


def gen_models(out, *extra):
    r = subprocess.run([PY_ONNX, GEN_MODELS, "--out", out, "-q"] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    eq(r.returncode, 0, "gen-market-models exit status (%s)" % r.stderr[-800:])


def files_of(d):
    out = {}
    for base, _, names in os.walk(d):
        for n in names:
            with open(os.path.join(base, n), "rb") as f:
                out[os.path.relpath(os.path.join(base, n), d)] = f.read()
    return out


class Tmp:
    def __enter__(self):
        self.d = tempfile.mkdtemp(prefix="predictd-demo-market-")
        return self.d

    def __exit__(self, *exc):
        shutil.rmtree(self.d, ignore_errors=True)


def trading(d):
    return d.weekday() < 5 and d not in HOLIDAYS


def prev_trading(d):
    d -= dt.timedelta(days=1)
    while not trading(d):
        d -= dt.timedelta(days=1)
    return d


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def number(s, what):
    try:
        v = float(s)
    except ValueError:
        fail("%s: %r is not a number" % (what, s))
    ok(math.isfinite(v), "%s is finite" % what, s)
    return v


# ---- the market generator -----------------------------------------------------------------

@suite.test
def test_market_is_deterministic_and_seeded():
    with Tmp() as d:
        gen_market(os.path.join(d, "a"))
        gen_market(os.path.join(d, "b"))
        gen_market(os.path.join(d, "c"), "--seed", "7")
        a, b, c = (files_of(os.path.join(d, x)) for x in "abc")
        eq(sorted(a), ["calendar.csv", "features.csv", "features_earnings.csv", "market.json"], "files written")
        for name in a:
            ok(a[name] == b[name], "%s: the same bytes for the same seed" % name)
        ok(a["features.csv"] != c["features.csv"], "another seed, other prices")
        ok(a["calendar.csv"] != c["calendar.csv"], "another seed, another calendar")


@suite.test
def test_market_csvs_follow_the_contract():
    with Tmp() as d:
        gen_market(d)
        tech = ["t%d" % i for i in range(20)]
        earn = ["e%d" % i for i in range(17)]
        h1, plain = read_csv(os.path.join(d, "features.csv"))
        h2, with_e = read_csv(os.path.join(d, "features_earnings.csv"))
        eq(h1, ["symbol", "timestamp", "price"] + tech, "features.csv header")
        eq(h2, ["symbol", "timestamp", "price"] + tech + earn, "features_earnings.csv header")
        # the bars: STEPS trading days, the last one the trading day before DATE
        days, day = [], DATE
        for _ in range(STEPS):
            day = prev_trading(day)
            days.append(day)
        want_ts = [x.isoformat() + "T21:00:00Z" for x in reversed(days)]
        ok(dt.date(2026, 2, 16).isoformat() + "T21:00:00Z" not in want_ts, "the holiday is not a bar")
        series = {}
        for rows, width in ((plain, 23), (with_e, 40)):
            for n, r in enumerate(rows):
                eq(len(r), width, "fields in row %d" % n)
                ok(SYMBOL_RE.match(r[0]), "symbol %r is 1..32 of [A-Za-z0-9._-]" % r[0])
                dt.datetime.strptime(r[1], "%Y-%m-%dT%H:%M:%SZ")
                vals = [number(x, "%s %s col %d" % (r[0], r[1], i)) for i, x in enumerate(r[2:])]
                ok(vals[0] > 0, "price > 0", r[:3])
                ok(0 <= vals[11] <= 100, "RSI (t10) in [0, 100]", vals[11])
                series.setdefault(r[0], []).append((r[1], vals))
        eq(len(series), N_SYM, "symbols over both files")
        syms_plain = {r[0] for r in plain}
        syms_e = {r[0] for r in with_e}
        eq(syms_plain & syms_e, set(), "a symbol is in one file only")
        for sym, rows in series.items():
            eq([ts for ts, _ in rows], want_ts, "%s: its bars, oldest first" % sym)
            p = [v[0] for _, v in rows]
            for i in range(len(rows)):
                t = rows[i][1][1:]
                # the features recomputed from the written prices (6 significant digits)
                if i >= 1:
                    ok(abs(t[0] - math.log(p[i] / p[i - 1])) < 2e-5, "%s t0 = 1-day log return" % sym,
                       t[0], math.log(p[i] / p[i - 1]))
                if i >= 5:
                    ok(abs(t[1] - math.log(p[i] / p[i - 5])) < 2e-5, "%s t1 = 5-day log return" % sym)
                if i >= 4:
                    sma5 = sum(p[i - 4:i + 1]) / 5
                    ok(abs(t[4] - (p[i] / sma5 - 1)) < 2e-5, "%s t4 = price / SMA5 - 1" % sym, t[4], p[i] / sma5 - 1)
                if i >= 19:
                    sma5, sma20 = sum(p[i - 4:i + 1]) / 5, sum(p[i - 19:i + 1]) / 20
                    ok(abs(t[7] - (sma5 / sma20 - 1)) < 2e-5, "%s t7 = SMA5 / SMA20 - 1" % sym)
                    r1 = [math.log(p[j] / p[j - 1]) for j in range(i - 19, i + 1)] if i >= 20 else None
                    if r1:
                        m = sum(r1) / 20
                        sd = math.sqrt(sum((x - m) ** 2 for x in r1) / 20)
                        ok(abs(t[9] - sd) < 1e-4, "%s t9 = 20-day volatility" % sym, t[9], sd)


@suite.test
def test_calendar_routes_the_requested_share_to_earnings():
    with Tmp() as d:
        gen_market(d)
        head, rows = read_csv(os.path.join(d, "calendar.csv"))
        eq(head, ["symbol", "date", "time"], "calendar header")
        _, plain = read_csv(os.path.join(d, "features.csv"))
        _, with_e = read_csv(os.path.join(d, "features_earnings.csv"))
        known = {r[0] for r in plain} | {r[0] for r in with_e}
        has_e = {r[0] for r in with_e}
        prev = prev_trading(DATE)
        eq(prev, dt.date(2026, 2, 27), "the trading day before Monday 2026-03-02")
        routed, seen = set(), set()
        times = set()
        for r in rows:
            eq(len(r), 3, "calendar fields")
            ok(r[0] in known, "calendar symbol %s has features" % r[0])
            ok(r[0] not in seen, "one calendar entry per symbol", r[0])
            seen.add(r[0])
            day = dt.date.fromisoformat(r[1])
            ok(trading(day), "report day %s is a trading day" % day)
            ok(r[2] in ("bmo", "amc", "unknown"), "time %r" % r[2])
            times.add(r[2])
            # MODELS.md: before the open on D, or after the close of the previous trading day
            if (r[2] == "bmo" and day == DATE) or (r[2] == "amc" and day == prev):
                routed.add(r[0])
        eq(len(routed), round(N_SYM * 0.1), "symbols routed to the earnings model")
        ok(routed <= has_e, "every earnings-day symbol has earnings features", routed - has_e)
        ok(any(r[2] == "amc" and dt.date.fromisoformat(r[1]) == DATE for r in rows) or N_SYM < 100,
           "a decoy (amc on the day itself, normal) is in the calendar")
        ok({"bmo", "amc"} <= times, "both report times appear", times)
        info = json.load(open(os.path.join(d, "market.json")))
        eq(info["date"], DATE.isoformat(), "market.json date")
        ok(info["example_bmo"] in routed and info["example_amc"] in routed, "example earnings symbols", info)
        ok(info["example_normal"] not in seen, "the example normal symbol has no report", info)


@suite.test
def test_market_generator_options():
    r = subprocess.run([sys.executable, GEN_MARKET, "--help"], stdout=subprocess.PIPE, text=True, timeout=60)
    eq(r.returncode, 0, "--help exit status")
    for opt in ("--symbols", "--steps", "--date", "--seed", "--out", "--holidays"):
        ok(opt in r.stdout, "--help names %s" % opt)
    for bad in (["--symbols", "0"], ["--date", "2026-13-01"], ["--steps", "-1"], ["--earnings-today", "2"]):
        r = subprocess.run([sys.executable, GEN_MARKET, "--out", "/nonexistent/never"] + bad,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        eq(r.returncode, 2, "exit status for %s" % bad)
        ok(not os.path.exists("/nonexistent/never"), "nothing written for %s" % bad)


# ---- the models ---------------------------------------------------------------------------

@suite.test
def test_models_are_deterministic_and_pass_model_check():
    with Tmp() as d:
        gen_models(os.path.join(d, "a"))
        gen_models(os.path.join(d, "b"))
        gen_models(os.path.join(d, "c"), "--seed", "9")
        a, b, c = (files_of(os.path.join(d, x)) for x in "abc")
        eq(sorted(a), ["earnings_day/1/config.yaml", "earnings_day/1/model.onnx",
                       "normal_day/1/config.yaml", "normal_day/1/model.onnx"], "repository files")
        for name in a:
            ok(a[name] == b[name], "%s: the same bytes for the same seed" % name)
        ok(a["normal_day/1/model.onnx"] != c["normal_day/1/model.onnx"], "another seed, other weights")
        for name, feats, batch in (("normal_day", 20, 128), ("earnings_day", 37, 32)):
            rc, stdout, stderr = run_cli(["model", "check", os.path.join(d, "a", name, "1", "model.onnx")],
                                         timeout=120)
            eq(rc, 0, "model check %s exit status (%s)" % (name, (stdout + stderr)[-500:]))
            ok("input:  x float32 [?, 32, %d]" % feats in stdout, "%s input shape" % name, stdout)
            ok("output: y float32 [?, 1]" in stdout, "%s output shape" % name, stdout)
            ok("dropout nodes: 2" in stdout, "%s has its Dropout nodes" % name, stdout)
            ok("mc dropout: ok" in stdout and "verdict: supported" in stdout, "%s verdict" % name,
               stdout)
            cfg = a["%s/1/config.yaml" % name].decode()
            ok(re.search(r"^max_batch_size: %d$" % batch, cfg, re.M), "%s max_batch_size %d" % (name, batch))
            ok(re.search(r"^mc_passes: 20$", cfg, re.M), "%s mc_passes 20" % name)
            for key in ("mean", "scale"):
                m = re.search(r"^\s+%s: \[(.*)\]$" % key, cfg, re.M)
                ok(m, "%s scaler %s" % (name, key))
                eq(len(m.group(1).split(",")), feats, "%s scaler %s values" % (name, key))


def scaler_of(path):
    cfg = open(path).read()
    return [[float(x) for x in re.search(r"^\s+%s: \[(.*)\]$" % k, cfg, re.M).group(1).split(",")]
            for k in ("mean", "scale")]


@suite.test
def test_models_serve_the_demo_market():
    with Tmp() as d:
        models, market = os.path.join(d, "models"), os.path.join(d, "market")
        gen_models(models)
        gen_market(market)
        _, plain = read_csv(os.path.join(market, "features.csv"))
        _, with_e = read_csv(os.path.join(market, "features_earnings.csv"))
        # the scaler, fitted on another sample, standardises the demo's features: per feature
        # the demo's mean is within one scale of the scaler's and its spread within 3x
        for name, rows, width in (("normal_day", plain + with_e, 20), ("earnings_day", with_e, 37)):
            mean, scale = scaler_of(os.path.join(models, name, "1", "config.yaml"))
            cols = [[float(r[3 + j]) for r in rows] for j in range(width)]
            for j, col in enumerate(cols):
                m = sum(col) / len(col)
                sd = math.sqrt(sum((x - m) ** 2 for x in col) / len(col))
                z = abs(m - mean[j]) / scale[j]
                ok(z < 1.0, "%s feature %d: demo mean %.4g vs scaler %.4g (scale %.4g)" % (name, j, m, mean[j], scale[j]))
                if sd > 0:
                    ok(1 / 3 < sd / scale[j] < 3, "%s feature %d: demo std %.4g vs scale %.4g" % (name, j, sd, scale[j]))
        by_sym = {}
        for r in plain:
            by_sym.setdefault(r[0], []).append([float(x) for x in r[3:23]])
        by_sym_e = {}
        for r in with_e:
            by_sym_e.setdefault(r[0], []).append([float(x) for x in r[3:40]])
        # no run of the import's own (data.features.ready window) to race the test's run
        with Server(args=["--models", models], env={"PREDICTD_PIPELINE_WINDOW_S": "3600"}) as s:
            c = s.client()
            for name, feats, batch, src in (("normal_day", 20, 128, by_sym), ("earnings_day", 37, 32, by_sym_e)):
                m = c.expect(200, "GET", "/v2/models/" + name).json
                eq(m["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 32, feats]}], name + " inputs")
                eq(m["parameters"]["max_batch_size"], batch, name + " max_batch_size")
                eq(m["parameters"]["mc_passes"], 20, name + " mc_passes")
                syms = sorted(src)[:4]
                flat = [v for sym in syms for row in src[sym][-32:] for v in row]
                body = {"inputs": [{"name": "x", "shape": [len(syms), 32, feats], "datatype": "FP32", "data": flat}],
                        "parameters": {"mc_dropout": True, "seed": 3}}
                out = {o["name"]: o["data"] for o in c.expect(200, "POST", "/v2/models/%s/infer" % name, body).json["outputs"]}
                eq(sorted(out), ["y", "y_p10", "y_p50", "y_p90", "y_std"], name + " MC outputs")
                for i in range(len(syms)):
                    y, sd, p10, p50, p90 = (out[k][i] for k in ("y", "y_std", "y_p10", "y_p50", "y_p90"))
                    ok(all(math.isfinite(v) for v in (y, sd, p10, p50, p90)), "finite", out)
                    ok(abs(y) < 0.2, "%s: a daily return, not a price" % name, y)
                    ok(sd > 0, "%s: dropout makes the passes differ" % name, sd)
                    ok(p10 <= p50 <= p90, "%s: ordered quantiles" % name, p10, p50, p90)
            # with the market routes (issue 6) the CSVs import as written
            code = c.post("/api/v1/pipeline/run", {"symbols": 0}).status
            if code != 404:
                for kind, f in (("calendar", "calendar.csv"), ("features", "features.csv"),
                                ("features", "features_earnings.csv")):
                    rc, _, err = run_cli(["import", "--url", "http://127.0.0.1:%d" % s.port, kind,
                                          os.path.join(market, f)])
                    eq(rc, 0, "import %s %s (%s)" % (kind, f, err[-500:]))
                # a run over the whole demo routes by its calendar as MODELS.md says
                # (the share is counted independently in test_calendar_routes_...)
                run = c.expect(202, "POST", "/api/v1/pipeline/run", {"all": True, "date": DATE.isoformat()}).json
                deadline = time.time() + 120 * SLOW
                while True:
                    st = c.expect(200, "GET", "/api/v1/pipeline/runs/" + run["run_id"]).json
                    if st["status"] in ("COMPLETED", "FAILED") or time.time() > deadline:
                        break
                    time.sleep(0.1)
                eq(st["status"], "COMPLETED", "demo run status (%s)" % st.get("failures"))
                eq(st["routes"], {"normal_day": N_SYM - round(N_SYM * 0.1), "earnings_day": round(N_SYM * 0.1)},
                   "demo run routes")
                eq((st["succeeded"], st["failed"]), (N_SYM, 0), "every demo symbol predicted")
                info = json.load(open(os.path.join(market, "market.json")))
                for key, model in (("example_bmo", "earnings_day"), ("example_amc", "earnings_day"),
                                   ("example_normal", "normal_day")):
                    p = c.expect(200, "GET", "/api/v1/predictions/" + info[key]).json
                    eq(p["model_type"], model, "%s %s model" % (key, info[key]))
                    eq(p["run_id"], run["run_id"], "%s from the demo run" % key)
            else:
                print("    (no market routes in %s: the import through the server is not checked)" % BINARY)
            s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
