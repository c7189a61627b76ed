#!/usr/bin/python3
"""Prints the side-by-side table of a bench/run.sh run (markdown) from its output folder:
peer.json / predictd.json (bench/loadgen.c --json), peer.stack / predictd.stack (CPU s, RSS),
import.txt and agree.txt. A missing server's column reads "pending"."""
import json
import os
import sys


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_kv(path):
    try:
        with open(path) as f:
            return {k: float(v) for k, v in (line.split() for line in f if line.strip())}
    except (OSError, ValueError):
        return None


def get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fmt(v, unit=""):
    if v is None:
        return "pending"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v >= 1e6:
        return f"{v / 1e6:.2f} M{unit}"
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:g}{unit}" if isinstance(v, int) else f"{v:.2f}{unit}"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
    peer, pd = load_json(os.path.join(out, "peer.json")), load_json(os.path.join(out, "predictd.json"))
    peer_s, pd_s = load_kv(os.path.join(out, "peer.stack")), load_kv(os.path.join(out, "predictd.stack"))
    imp = load_kv(os.path.join(out, "import.txt"))
    clients = get(peer, "loadgen", "clients") or get(pd, "loadgen", "clients") or 8
    cN = f"clients_{clients}"

    # (label, peer value, predictd value, "lower"/"higher" is better, goal factor or None)
    def per_job(d, s):
        """CPU over the load run / jobs submitted in it: 4 warm-up, the submit phase, sustained
        jobs counted (+ at most one in flight per client), e2e runs, 1 + 2 x --jobs cache repeats."""
        n = [get(d, "submit", "latency", "n"), get(d, "sustained", "jobs_completed"),
             get(d, "e2e", "latency", "n"), get(d, "cache", "clients_1", "post", "n"),
             get(d, "cache", cN, "post", "n")]
        if s is None or None in n:
            return None
        return s["cpu_s_during_load"] * 1000 / (4 + sum(n) + 1)

    def hits(d):
        n = [get(d, k, "completed_at_post") for k in ("submit", "sustained", "e2e")]
        return None if None in n else sum(n)

    def load(s):
        return None if s is None or "loadavg_before" not in s else f"{s['loadavg_before']:.2f} / {s['loadavg_after']:.2f}"

    def stack(s, k, scale=1.0):
        return None if s is None or k not in s else s[k] * scale

    # predictd runs: fsync on every commit (store.synchronous=full, the default) and
    # synchronous=normal (WAL written before the 2xx, fsync at checkpoints: survives kill -9,
    # not power loss); the second is present when run.sh ran it
    pdn = load_json(os.path.join(out, "predictd_normal.json"))
    pdn_s = load_kv(os.path.join(out, "predictd_normal.stack"))
    runs = [("peer", peer, peer_s), ("predictd full", pd, pd_s)]
    if pdn is not None:
        runs.append(("predictd normal", pdn, pdn_s))

    # (label, value(d, s), "lower"/"higher" is better or "info", goal factor or None)
    rows = [
        ("submit POST p50 (ms)", lambda d, s: get(d, "submit", "latency", "p50_ms"), "lower", None),
        ("submit POST p99 (ms)", lambda d, s: get(d, "submit", "latency", "p99_ms"), "lower", 20),
        ("submit: 200 jobs all COMPLETED after (s)", lambda d, s: get(d, "submit", "all_completed_after_s"), "lower", None),
        ("sustained predictions/min", lambda d, s: get(d, "sustained", "predictions_per_min"), "higher", 10),
        ("sustained job p50 (ms)", lambda d, s: get(d, "sustained", "job_latency", "p50_ms"), "lower", None),
        ("e2e submit→results p50 (ms)", lambda d, s: get(d, "e2e", "latency", "p50_ms"), "lower", 5),
        ("e2e submit→results p99 (ms)", lambda d, s: get(d, "e2e", "latency", "p99_ms"), "lower", None),
        ("e2e client side: POST p50 (ms)", lambda d, s: get(d, "e2e", "client_side", "post_p50_ms"), "lower", None),
        ("e2e client side: polling until COMPLETED p50 (ms)", lambda d, s: get(d, "e2e", "client_side", "wait_p50_ms"), "lower", None),
        ("e2e client side: results GET p50 (ms)", lambda d, s: get(d, "e2e", "client_side", "results_p50_ms"), "lower", None),
        ("e2e server side: queued p50 (ms)", lambda d, s: get(d, "e2e", "server_side", "queued_p50_ms"), "lower", None),
        ("e2e server side: executing p50 (ms)", lambda d, s: get(d, "e2e", "server_side", "executing_p50_ms"), "lower", None),
        ("cache POST p99, 1 client (ms)", lambda d, s: get(d, "cache", "clients_1", "post", "p99_ms"), "lower", None),
        (f"cache POST p99, {clients} clients (ms)", lambda d, s: get(d, "cache", cN, "post", "p99_ms"), "lower", None),
        (f"cache POST+results p99, {clients} clients (ms)", lambda d, s: get(d, "cache", cN, "post_and_results", "p99_ms"), "lower", None),
        ("phases 1-3: jobs answered COMPLETED at POST (computed in the submission; no cache hits: fresh samples and T)", lambda d, s: hits(d), "info", None),
        (f"cache: repeats answered COMPLETED at POST ({clients} clients)", lambda d, s: get(d, "cache", cN, "completed_at_post"), "info", None),
        ("RSS after the run, all processes (MiB)", lambda d, s: stack(s, "rss_kb", 1 / 1024), "lower", None),
        ("peak RSS, all processes (MiB)", lambda d, s: stack(s, "hwm_kb", 1 / 1024), "lower", None),
        ("server CPU s during the load run", lambda d, s: stack(s, "cpu_s_during_load"), "lower", None),
        ("server CPU ms per job submitted in the load run", per_job, "lower", None),
        ("loadgen CPU s (the C generator)", lambda d, s: get(d, "loadgen", "cpu_s"), "info", None),
        ("machine load average (1 min) before / after its run", lambda d, s: load(s), "info", None),
    ]
    heads = ["peer (FastAPI+Celery+Redis)"] + [f"{n} (ratio vs peer)" for n, _, _ in runs[1:]]
    print("| figure | " + " | ".join(heads) + " | goal |")
    print("|---|" + "---:|" * len(heads) + "---|")
    for label, fn, better, goal in rows:
        a = fn(peer, peer_s)
        cells, verdicts = [fmt(a)], []
        for name, d, s in runs[1:]:
            b = fn(d, s)
            cell = fmt(b)
            if better != "info" and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
                r = a / b if better == "lower" else b / a
                cell += f" ({r:.1f}×)"
                if goal:
                    verdicts.append(f"{name.split()[-1]}: {'met' if r >= goal else 'NOT met'}")
            cells.append(cell)
        verdict = (f"≥ {goal}× " + ", ".join(verdicts)) if goal else ""
        print(f"| {label} | " + " | ".join(cells) + f" | {verdict} |")
    if imp:
        ok = "ok" if imp.get("ok") == 1 else "FAILED"
        goal = "met" if imp.get("ok") == 1 and imp["total_s"] < 5 else "NOT met"
        print(f"| predictd import, entities + relationships (s) | – | {imp['total_s']:.2f} "
              f"({imp['entities_s']:.2f} + {imp['relationships_s']:.2f}, {ok}) |" + " |" * (len(runs) - 2)
              + f" < 5 s {goal} |")
    else:
        print("| predictd import, entities + relationships (s) | – | pending | | < 5 s |")
    for name, d, _ in runs:
        errs = [f"{k}: {v['error']}" for k, v in (d or {}).items() if isinstance(v, dict) and "error" in v]
        if errs:
            print(f"\n{name} errors: " + "; ".join(errs))
    sweep = []
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if name.startswith("sweep_peer_") and name.endswith(".json"):
            c = int(name[len("sweep_peer_"):-5])
            a = get(load_json(os.path.join(out, name)), "submit", "latency")
            b = get(load_json(os.path.join(out, f"sweep_predictd_{c}.json")), "submit", "latency")
            sweep.append((c, a, b))
    if sweep:
        print("\nsubmit phase alone by number of clients (run after each server's main run; predictd full):\n")
        print("| clients | peer p50 / p99 (ms) | predictd p50 / p99 (ms) | ratio p50 / p99 |")
        print("|---:|---:|---:|---:|")
        for c, a, b in sorted(sweep):
            ratio = "pending"
            if a and b and b.get("p50_ms") and b.get("p99_ms"):
                ratio = f"{a['p50_ms'] / b['p50_ms']:.1f}× / {a['p99_ms'] / b['p99_ms']:.1f}×"
            cell = lambda l: "pending" if not l else f"{l['p50_ms']:.2f} / {l['p99_ms']:.2f}"
            print(f"| {c} | {cell(a)} | {cell(b)} | {ratio} |")
    try:
        with open(os.path.join(out, "import_bench.txt")) as f:
            print("\nimport split (build/bench/import_bench, no HTTP):\n```\n" + f.read().rstrip() + "\n```")
    except OSError:
        pass
    try:
        with open(os.path.join(out, "agree.txt")) as f:
            print("\n" + f.read().strip())
    except OSError:
        print("\nagree: not checked (needs both servers)")


if __name__ == "__main__":
    main()
