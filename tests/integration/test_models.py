"""The graph analytics models over HTTP (MODELS.md): Ising Monte Carlo, Granovetter
cascades, early-warning signals and time to transition. Each endpoint's answers are checked
against an independent computation written here in Python from MODELS.md (closed forms for
Ising, a plain synchronous cascade, the EWS statistics and the lambda fit), on small cases."""
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import Server, Suite, eq, fail, near_rel, ok  # noqa: E402

suite = Suite("models")


def submit(c, model, body, expect=202):
    return c.expect(expect, "POST", "/api/v1/predict/batch/" + model, body).json


def run_job(c, model, body):
    job = submit(c, model, body)
    done = c.wait_job(job["job_id"])
    eq(done["status"], "COMPLETED", "job status")
    results, meta, _ = c.all_results(job["job_id"])
    return done, {r["entity_id"]: r for r in results}, meta


# ---- Ising Monte Carlo ------------------------------------------------------------------

def glauber_p(s, m, T, nu, H):
    return 1 - math.exp(-nu / (1 + math.exp(2 * s * m / T)) * H)


@suite.test
def test_ising_monte_carlo_matches_analytic_with_frozen_neighbours():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1, "field": 0.2}},
                  {"entity_id": "B", "properties": {"spin": -1}},
                  {"entity_id": "C", "properties": {"spin": 1}},
                  {"entity_id": "D", "properties": {"spin": -1, "field": -0.1}},
                  {"entity_id": "E", "properties": {"spin": 1}}])
        c.relate([{"source": "A", "target": "B", "weight": 0.8},
                  {"source": "A", "target": "C", "weight": 0.5},
                  {"source": "D", "target": "E", "weight": 1.2}])
        S = 20000
        body = {"entity_ids": ["A", "D", "nope"], "parameters": {
            "temperature": 1.2, "time_horizon": "2h", "attempt_rate": 1.5, "method": "monte_carlo",
            "radius": 0, "samples": S, "seed": 99}}
        _, res, meta = run_job(c, "ising", body)
        eq(meta["successful"], 2, "successful")
        eq(res["nope"]["error"]["code"], "unknown_entity", "unknown entity")
        for eid, s_, m in (("A", 1, -0.8 + 0.5 + 0.2), ("D", -1, 1.2 - 0.1)):
            p = res[eid]["prediction"]
            ok(set(p) == {"p_flip", "p_changed", "stderr"}, "Monte Carlo outputs", p)
            want = glauber_p(s_, m, 1.2, 1.5, 2)
            se = math.sqrt(want * (1 - want) / S)
            ok(abs(p["p_flip"] - want) <= 4 * se, "%s p_flip within 4 se" % eid, p["p_flip"], want, se)
            near_rel(p["stderr"], math.sqrt(p["p_flip"] * (1 - p["p_flip"]) / S), 1e-12, "stderr")
            ok(0 <= p["p_changed"] <= p["p_flip"], "p_changed <= p_flip", p)
        # the same seed gives the same numbers
        _, res2, _ = run_job(c, "ising", body)
        for eid in ("A", "D"):
            eq(res2[eid]["prediction"], res[eid]["prediction"], "same seed, same result for " + eid)
        # analytic stays as it was
        body["parameters"] = {"temperature": 1.2, "time_horizon": "2h", "attempt_rate": 1.5}
        _, res3, _ = run_job(c, "ising", body)
        near_rel(res3["A"]["prediction"]["p_flip"], glauber_p(1, 0.5 - 0.8 + 0.2, 1.2, 1.5, 2), 1e-12, "analytic")
        submit(c, "ising", {"entity_ids": ["A"], "parameters": {"temperature": 1, "samples": 5}}, expect=422)
        submit(c, "ising", {"entity_ids": ["A"], "parameters": {"temperature": 1, "method": "monte_carlo",
                                                                  "radius": "some"}}, expect=422)
        s.check_clean_exit()


# ---- cascade ------------------------------------------------------------------------------

def cascade_oracle(nodes, edges, seeds, thresholds, kind, max_gen, directed):
    """Plain synchronous cascade: returns {id: generation} of the active ones."""
    infl = {n: set() for n in nodes}      # who influences n
    for a, b in edges:
        infl[b].add(a)
        if not directed:
            infl[a].add(b)
    gen = {s: 0 for s in seeds}
    for g in range(1, max_gen + 1):
        new = []
        for n in nodes:
            if n in gen or not infl[n]:
                continue
            k = sum(1 for j in infl[n] if j in gen)
            share = k if kind == "count" else k / len(infl[n])
            if share >= thresholds[n]:
                new.append(n)
        if not new:
            break
        for n in new:
            gen[n] = g
    return gen


@suite.test
def test_cascade_granovetter_riot():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "p%d" % i, "properties": {"threshold": i}} for i in range(100)])
        c.relate([{"source": "p%d" % i, "target": "p%d" % j} for i in range(100) for j in range(i + 1, 100)])
        body = {"seed_entities": ["p0"], "max_generations": 150, "threshold_type": "count",
                "threshold_distribution": "fixed", "value": 1000}
        done, res, meta = run_job(c, "cascade", body)
        eq(meta["total_entities"], 100, "every entity when entity_ids is absent")
        for i in range(100):
            eq(res["p%d" % i]["prediction"], {"p_active": 1, "mean_generation": i}, "p%d" % i)
        summ = done.get("summary")
        ok(summ is not None, "GET /jobs/{id} has the summary", done)
        eq(len(summ["generations"]), 100, "generations 0..99")
        eq(summ["generations"][42]["p50"], 43, "size after generation 42")
        eq(summ["final_size"]["distribution"], [{"size": 100, "samples": 1}], "final size")
        # the threshold-1 person now needs 2: only the instigator riots
        c.expect(200, "PATCH", "/api/v1/entities/p1", {"properties": {"threshold": 2}})
        body["entity_ids"] = ["p0", "p1", "p99"]
        done, res, meta = run_job(c, "cascade", body)
        eq(meta["total_entities"], 3, "entity_ids limit the output")
        eq(res["p0"]["prediction"], {"p_active": 1, "mean_generation": 0}, "p0")
        eq(res["p1"]["prediction"], {"p_active": 0, "mean_generation": None}, "p1")
        eq(res["p99"]["prediction"]["p_active"], 0, "p99")
        eq(done["summary"]["final_size"]["mean"], 1, "final size 1")
        s.check_clean_exit()


@suite.test
def test_cascade_against_plain_oracle():
    rng = random.Random(4)
    nodes = ["N%02d" % i for i in range(40)]
    edges = set()
    while len(edges) < 90:
        a, b = rng.sample(nodes, 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
    edges = sorted(edges)
    own = {n: round(rng.uniform(0, 0.6), 2) for n in nodes if rng.random() < 0.5}
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": n, "properties": ({"threshold": own[n]} if n in own else {})} for n in nodes])
        c.relate([{"source": a, "target": b} for a, b in edges])
        seeds = ["N00", "N07"]
        for kind, value, directed in (("fraction", 0.3, False), ("fraction", 0.5, True), ("count", 2, False),
                                      ("count", 1, True)):
            th = {n: (own[n] if n in own and kind == "fraction" else value) for n in nodes}
            body = {"seed_entities": seeds, "max_generations": 6, "threshold_type": kind,
                    "threshold_distribution": "fixed", "value": value, "directed": directed,
                    "use_entity_thresholds": kind == "fraction"}
            gen = cascade_oracle(nodes, edges, seeds, th, kind, 6, directed)
            _, res, _ = run_job(c, "cascade", body)
            for n in nodes:
                p = res[n]["prediction"]
                what = "%s %s %s %s" % (kind, value, "directed" if directed else "undirected", n)
                eq(p["p_active"], 1 if n in gen else 0, what + " p_active")
                eq(p["mean_generation"], gen.get(n), what + " generation")
        # sampled thresholds: reproducible with a seed
        body = {"seed_entities": seeds, "samples": 200, "seed": 5}
        _, r1, _ = run_job(c, "cascade", body)
        _, r2, _ = run_job(c, "cascade", body)
        eq(r1, r2, "same seed, same cascade")
        ok(all(0 <= r["prediction"]["p_active"] <= 1 for r in r1.values()), "probabilities")
        r = submit(c, "cascade", {"seed_entities": ["ghost"]}, expect=422)
        ok("ghost" in r["error"]["message"], "unknown seed named", r)
        submit(c, "cascade", {"seed_entities": []}, expect=422)
        submit(c, "cascade", {"seed_entities": ["N00"], "threshold_type": "share"}, expect=422)
        s.check_clean_exit()


# ---- EWS and bifurcation ------------------------------------------------------------------

def detrend(t, x, mode):
    n = len(x)
    if mode == "none":
        return list(x)
    tm, xm = sum(t) / n, sum(x) / n
    sxx = sum((a - tm) ** 2 for a in t)
    b = sum((a - tm) * (y - xm) for a, y in zip(t, x)) / sxx
    return [y - (xm + b * (a - tm)) for a, y in zip(t, x)]


def window_stats(r):
    w = len(r)
    m = sum(r) / w
    d = [v - m for v in r]
    ss = sum(v * v for v in d)
    m2, m3, m4 = ss / w, sum(v ** 3 for v in d) / w, sum(v ** 4 for v in d) / w
    return {"variance": ss / (w - 1), "ar1": sum(d[i] * d[i + 1] for i in range(w - 1)) / ss,
            "skewness": m3 / m2 ** 1.5, "kurtosis": m4 / m2 ** 2 - 3}


def kendall_tau_b(y):
    n = len(y)
    c = d = ties = 0
    for i in range(n):
        for k in range(i + 1, n):
            if y[k] > y[i]:
                c += 1
            elif y[k] < y[i]:
                d += 1
            else:
                ties += 1
    n0 = n * (n - 1) / 2
    return (c - d) / math.sqrt(n0 * (n0 - ties))


def ews_oracle(t, x, rolling, mode):
    n = len(x)
    w = int(math.floor(rolling * n + 1e-9))
    r = detrend(t, x, mode)
    rows = [window_stats(r[k:k + w]) for k in range(n - w + 1)]
    out = {}
    for key in ("variance", "ar1", "skewness", "kurtosis"):
        out[key] = rows[-1][key]
        out[key + "_tau"] = kendall_tau_b([row[key] for row in rows])
    dts = sorted(t[i + 1] - t[i] for i in range(n - 1))
    k = len(dts)
    med = dts[k // 2] if k % 2 else (dts[k // 2 - 1] + dts[k // 2]) / 2
    out["median_interval_hours"] = med / 3600
    out["critical_distance"] = -math.log(out["ar1"]) / (med / 3600) if out["ar1"] > 0 else None
    out["n_points"], out["window_points"] = n, w
    return out, rows, r, w


def bifurcation_oracle(t, x, rolling, mode):
    ew, rows, r, w = ews_oracle(t, x, rolling, mode)
    L = len(rows)
    tnow = t[-1]
    med = ew["median_interval_hours"]
    px, py = [], []
    for k in range(L - min(w, L), L):
        a = rows[k]["ar1"]
        if a <= 0:
            continue
        seg = r[k:k + w]
        m = sum(seg) / w
        wts = [(v - m) ** 2 for v in seg]
        px.append(sum(wt * (ti - tnow) for wt, ti in zip(wts, t[k:k + w])) / sum(wts) / 3600)
        py.append(-math.log(a) / med)
    m = len(px)
    xm, ym = sum(px) / m, sum(py) / m
    sxx = sum((v - xm) ** 2 for v in px)
    sxy = sum((u - xm) * (v - ym) for u, v in zip(px, py))
    syy = sum((v - ym) ** 2 for v in py)
    b = sxy / sxx
    a = ym - b * xm
    ssr = max(syy - b * sxy, 0)
    se = math.sqrt(ssr / (m - 2) / sxx)
    conf = 0.5 * math.erfc(b / se / math.sqrt(2))
    ttt = -a / b if b < 0 and a > 0 else None
    return {"time_to_transition_hours": ttt, "lambda_now": a, "lambda_slope": b,
            "r2": 1 - ssr / syy, "confidence": conf, "fit_windows": m, "n_points": len(x)}


def close(a, e, what, tol=1e-7):
    if e is None:
        eq(a, None, what)
    else:
        ok(isinstance(a, (int, float)) and abs(a - e) <= tol * max(1.0, abs(e)), what, a, e)


@suite.test
def test_ews_and_bifurcation_against_python():
    rng = random.Random(11)
    T0 = 1_700_000_000
    n = 80
    t = [T0 + 1800 * i + (300 if i % 7 == 3 else 0) for i in range(n)]
    x, v = [], 0.0
    for i in range(n):
        phi = 0.2 + 0.7 * i / n                      # memory grows: a transition approaches
        v = phi * v + rng.gauss(0, 1) * (1 + i / n)
        x.append(5 + 0.01 * i + v)
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "S1", "properties": {}}, {"entity_id": "SHORT", "properties": {}}])
        c.expect("2xx", "POST", "/api/v1/entities/S1/observations", {"points": [[a, b] for a, b in zip(t, x)]})
        c.expect("2xx", "POST", "/api/v1/entities/SHORT/observations",
                 {"points": [[T0 + 60 * i, float(i % 3)] for i in range(10)]})
        as_of = t[-1] + 1
        for mode in ("none", "linear"):
            body = {"entity_ids": ["S1", "SHORT", "GHOST"], "time_window": "30d", "as_of": as_of,
                    "metrics": ["variance", "autocorrelation", "skewness", "kurtosis", "critical_distance"],
                    "parameters": {"detrend": mode, "rolling_window": 0.4, "alert_tau": 0.3}}
            _, res, meta = run_job(c, "ews", body)
            want, _, _, _ = ews_oracle(t, x, 0.4, mode)
            p = res["S1"]["prediction"]
            for k, e in want.items():
                close(p.get(k, "missing"), e, "ews %s %s" % (mode, k))
            eq(p["alert"], want["variance_tau"] >= 0.3 and want["ar1_tau"] >= 0.3, "alert " + mode)
            eq(res["SHORT"]["error"]["code"], "too_few_points", "10 points < min_points 20")
            eq(res["GHOST"]["error"]["code"], "unknown_entity", "unknown entity")
            eq(meta["failed"], 2, "failed count")
            body["parameters"]["rolling_window"] = 0.5
            _, res, _ = run_job(c, "bifurcation", body)
            want = bifurcation_oracle(t, x, 0.5, mode)
            p = res["S1"]["prediction"]
            for k, e in want.items():
                close(p.get(k, "missing"), e, "bifurcation %s %s" % (mode, k), tol=1e-6)
            if want["time_to_transition_hours"] is None:
                ok("reason" in p, "a null time comes with a reason", p)
        # the window ends at as_of: nothing before it -> too few points
        _, res, _ = run_job(c, "ews", {"entity_ids": ["S1"], "as_of": T0 - 1})
        eq(res["S1"]["error"]["code"], "too_few_points", "empty window")
        # only the metrics asked for are shown
        _, res, _ = run_job(c, "ews", {"entity_ids": ["S1"], "as_of": as_of, "time_window": "30d",
                                       "metrics": ["skewness"]})
        p = res["S1"]["prediction"]
        ok("skewness" in p and "variance" not in p and "alert" in p, "metrics filter", p)
        submit(c, "ews", {"entity_ids": ["S1"], "metrics": ["mean"]}, expect=422)
        submit(c, "bifurcation", {"entity_ids": ["S1"], "detrend": "loess"}, expect=422)
        s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
