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

    rows = [
        ("submit POST p50 (ms)", get(peer, "submit", "latency", "p50_ms"), get(pd, "submit", "latency", "p50_ms"), "lower", None),
        ("submit POST p99 (ms)", get(peer, "submit", "latency", "p99_ms"), get(pd, "submit", "latency", "p99_ms"), "lower", 20),
        ("submit: 200 jobs all COMPLETED after (s)", get(peer, "submit", "all_completed_after_s"), get(pd, "submit", "all_completed_after_s"), "lower", None),
        ("sustained predictions/min", get(peer, "sustained", "predictions_per_min"), get(pd, "sustained", "predictions_per_min"), "higher", 10),
        ("sustained job p50 (ms)", get(peer, "sustained", "job_latency", "p50_ms"), get(pd, "sustained", "job_latency", "p50_ms"), "lower", None),
        ("e2e submit→results p50 (ms)", get(peer, "e2e", "latency", "p50_ms"), get(pd, "e2e", "latency", "p50_ms"), "lower", 5),
        ("e2e submit→results p99 (ms)", get(peer, "e2e", "latency", "p99_ms"), get(pd, "e2e", "latency", "p99_ms"), "lower", None),
        ("e2e client side: POST p50 (ms)", get(peer, "e2e", "client_side", "post_p50_ms"), get(pd, "e2e", "client_side", "post_p50_ms"), "lower", None),
        ("e2e client side: polling until COMPLETED p50 (ms)", get(peer, "e2e", "client_side", "wait_p50_ms"), get(pd, "e2e", "client_side", "wait_p50_ms"), "lower", None),
        ("e2e client side: results GET p50 (ms)", get(peer, "e2e", "client_side", "results_p50_ms"), get(pd, "e2e", "client_side", "results_p50_ms"), "lower", None),
        ("e2e server side: queued p50 (ms)", get(peer, "e2e", "server_side", "queued_p50_ms"), get(pd, "e2e", "server_side", "queued_p50_ms"), "lower", None),
        ("e2e server side: executing p50 (ms)", get(peer, "e2e", "server_side", "executing_p50_ms"), get(pd, "e2e", "server_side", "executing_p50_ms"), "lower", None),
        ("cache POST p99, 1 client (ms)", get(peer, "cache", "clients_1", "post", "p99_ms"), get(pd, "cache", "clients_1", "post", "p99_ms"), "lower", None),
        (f"cache POST p99, {clients} clients (ms)", get(peer, "cache", cN, "post", "p99_ms"), get(pd, "cache", cN, "post", "p99_ms"), "lower", None),
        (f"cache POST+results p99, {clients} clients (ms)", get(peer, "cache", cN, "post_and_results", "p99_ms"), get(pd, "cache", cN, "post_and_results", "p99_ms"), "lower", None),
        ("phases 1-3: jobs answered COMPLETED at POST (cache hits)", hits(peer), hits(pd), "info", None),
        (f"cache: repeats answered COMPLETED at POST ({clients} clients)", get(peer, "cache", cN, "completed_at_post"), get(pd, "cache", cN, "completed_at_post"), "info", None),
        ("RSS after the run, all processes (MiB)", stack(peer_s, "rss_kb", 1 / 1024), stack(pd_s, "rss_kb", 1 / 1024), "lower", None),
        ("peak RSS, all processes (MiB)", stack(peer_s, "hwm_kb", 1 / 1024), stack(pd_s, "hwm_kb", 1 / 1024), "lower", None),
        ("server CPU s during the load run", stack(peer_s, "cpu_s_during_load"), stack(pd_s, "cpu_s_during_load"), "lower", None),
        ("server CPU ms per job submitted in the load run", per_job(peer, peer_s), per_job(pd, pd_s), "lower", None),
        ("loadgen CPU s (the C generator)", get(peer, "loadgen", "cpu_s"), get(pd, "loadgen", "cpu_s"), "info", None),
        ("machine load average (1 min) before / after its run", load(peer_s), load(pd_s), "info", None),
    ]
    print("| figure | peer (FastAPI+Celery+Redis) | predictd | predictd better by | goal |")
    print("|---|---:|---:|---:|---|")
    for label, a, b, better, goal in rows:
        ratio = verdict = ""
        if better == "info":
            pass
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0:
            r = a / b if better == "lower" else b / a
            ratio = f"{r:.1f}×"
            if goal:
                verdict = f"≥ {goal}× {'met' if r >= goal else 'NOT met'}"
        elif goal:
            verdict = f"≥ {goal}×"
        print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} | {verdict} |")
    if imp:
        ok = "ok" if imp.get("ok") == 1 else "FAILED"
        goal = "met" if imp.get("ok") == 1 and imp["total_s"] < 5 else "NOT met"
        print(f"| predictd import, entities + relationships (s) | – | {imp['total_s']:.2f} "
              f"({imp['entities_s']:.2f} + {imp['relationships_s']:.2f}, {ok}) | | < 5 s {goal} |")
    else:
        print("| predictd import, entities + relationships (s) | – | pending | | < 5 s |")
    for name, d in (("peer", peer), ("predictd", pd)):
        errs = [f"{k}: {v['error']}" for k, v in (d or {}).items() if isinstance(v, dict) and "error" in v]
        if errs:
            print(f"\n{name} errors: " + "; ".join(errs))
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
