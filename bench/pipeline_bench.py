#!/usr/bin/env python3
"""The market pipeline's 5,000-symbol benchmark (issue 6); bench/pipeline_bench.sh runs it.

1. Generates the two models (scripts/gen-market-models.py, engine threads = --threads) and
   the demo market (scripts/gen-demo-market.py, --symbols) into --work.
2. Starts `predictd serve --models` there (no periodic run: PREDICTD_PIPELINE_INTERVAL_S=0,
   and no run of the import's own: PREDICTD_PIPELINE_WINDOW_S=3600), imports the calendar and
   the features with `predictd import`.
3. Subscribes to GET /api/v1/events?topics=prediction.updated,pipeline.run.completed (SSE)
   and, --rounds times: POST /api/v1/pipeline/run {"all": true, "date": D}, then waits until
   the run's pipeline.run.completed event and one prediction.updated event per succeeded
   symbol have arrived. The round's time is trigger -> the later of the two; the split by
   stage is the server's own (GET /api/v1/pipeline/runs/{id} stages_ms). After the clock
   stops it checks every symbol: GET /api/v1/predictions?symbols=.. answers from the fast
   layer with this run's id, and each symbol's history holds this run's prediction.
4. After each round, ONNX Runtime on the same two model files, the naive way (bench.js:
   every pass runs the whole network, batches of 128, --threads threads): normal_day for the
   symbols the run routed to it and earnings_day for the rest, 20 passes. Rounds alternate
   so that both engines see the same background load; the table keeps each one's best.
   predictd's engine alone on the same rows (`predictd model bench`, MC dropout) too: what
   the pipeline adds to its inference.
5. Fast-layer reads, after the first round: build/bench/pred_read, --clients threads for
   --read-s seconds, random symbols.
6. The server's peak RSS (VmHWM of /proc/PID/status), then it is stopped.
Prints Markdown tables. Standard library only (run with any python3). Exit 0 when every
round accounted for every symbol, 1 otherwise, 3 when the binary has no market pipeline.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print("pipeline-bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Http:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def req(self, method, path, body=None, ctype="application/json", timeout=120):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            try:
                self.conn.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    js = json.loads(raw) if raw else None
                except ValueError:
                    js = None
                return r.status, js, raw
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


class Events(threading.Thread):
    """One SSE stream; keeps (arrival time, topic, data) of every event and the drop count."""

    def __init__(self, port, topics):
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.conn.request("GET", "/api/v1/events?topics=%s&heartbeat_s=1&queue=20000" % topics)
        self.sock = self.conn.sock  # http.client lets go of it once the answer is a stream
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError("GET /api/v1/events: HTTP %d %s" % (self.resp.status, self.resp.read()[:200]))
        self.lock = threading.Condition()
        self.events = []
        self.dropped = 0
        self.closed = False

    def run(self):
        # Reads the stream in large pieces and takes each event's topic and run id from its
        # bytes; only a pipeline.run.completed event is decoded with json. A line-by-line
        # reader that decoded all 5,000 events per round cost ~0.1 s of Python CPU on the
        # same 2 cores as the server, inside the measured time (the check that every symbol's
        # prediction is there is done off the clock, from the fast layer and the history).
        buf = b""
        try:
            while True:
                piece = self.resp.read1(1 << 16)
                if not piece:
                    break
                t = time.monotonic()
                buf += piece
                *blocks, buf = buf.split(b"\n\n")
                got = []
                for b in blocks:
                    topic, data, dropped = None, [], 0
                    for line in b.split(b"\n"):
                        line = line.rstrip(b"\r")
                        if line.startswith(b": dropped"):
                            m = re.match(rb": dropped (\d+)", line)
                            dropped += int(m.group(1)) if m else 1
                        elif line.startswith(b"event: "):
                            topic = line[7:].decode()
                        elif line.startswith(b"data: "):
                            data.append(line[6:])
                    if dropped:
                        with self.lock:
                            self.dropped += dropped
                    if topic is None:
                        continue
                    raw = b"\n".join(data)
                    if topic == "pipeline.run.completed":
                        try:
                            d = json.loads(raw)
                        except ValueError:
                            d = None
                    else:
                        i = raw.find(b'"run_id":"')
                        d = {"run_id": raw[i + 10:raw.index(b'"', i + 10)].decode()} if i >= 0 else None
                    got.append((t, topic, d))
                if got:
                    with self.lock:
                        self.events.extend(got)
                        self.lock.notify_all()
        except (OSError, http.client.HTTPException, ValueError):
            pass
        with self.lock:
            self.closed = True
            self.lock.notify_all()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.join(10)
        self.resp.close()
        self.conn.close()


def run_cmd(args, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r.stdout


def symbols_of(paths):
    out, seen = [], set()
    for p in paths:
        with open(p) as f:
            next(f)
            for line in f:
                s = line.split(",", 1)[0]
                if s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def one_round(h, ev, date, symbols):
    with ev.lock:
        start_idx = len(ev.events)
        dropped0 = ev.dropped
    t0 = time.monotonic()
    st, js, raw = h.req("POST", "/api/v1/pipeline/run", {"all": True, "date": date})
    if st != 202 or not js or "run_id" not in js:
        raise RuntimeError("POST /api/v1/pipeline/run: HTTP %d %s" % (st, raw[:300]))
    run_id = js["run_id"]
    t_post = time.monotonic() - t0
    deadline = t0 + 600
    done_t = None
    done = None
    n_pred = 0
    last_pred_t = None
    seen = start_idx
    last_poll = 0.0
    while True:
        with ev.lock:
            while seen < len(ev.events):
                t, topic, d = ev.events[seen]
                seen += 1
                if not isinstance(d, dict) or d.get("run_id") != run_id:
                    continue
                if topic == "prediction.updated":
                    n_pred += 1
                    last_pred_t = t
                elif topic == "pipeline.run.completed" and done_t is None:
                    done_t, done = t, d
            # every succeeded symbol's event arrived (or was dropped by a slow reader: counted)
            if done is not None and n_pred + ev.dropped - dropped0 >= done.get("succeeded", 0):
                break
            if ev.closed:
                raise RuntimeError("the event stream ended")
            ev.lock.wait(0.25)
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError("run %s: no completion after 600 s (%d prediction events)" % (run_id, n_pred))
        # a backstop in case the completion event is lost: the run's status, every 2 s
        if done is None and now - last_poll > 2.0:
            last_poll = now
            st, r, _ = h.req("GET", "/api/v1/pipeline/runs/%s" % run_id)
            if st == 200 and r.get("status") in ("COMPLETED", "FAILED"):
                with ev.lock:
                    lost = ev.dropped - dropped0
                if lost and n_pred + lost >= r.get("succeeded", 0):
                    done_t, done = now, {"succeeded": r.get("succeeded"), "failed": r.get("failed"), "polled": True}
                    break
    total_ms = (max(done_t, last_pred_t or done_t) - t0) * 1000.0
    st, run, raw = h.req("GET", "/api/v1/pipeline/runs/%s" % run_id)
    if st != 200:
        raise RuntimeError("GET run: HTTP %d %s" % (st, raw[:300]))
    with ev.lock:
        dropped = ev.dropped - dropped0
    # checks, off the clock: every symbol in the fast layer with this run's prediction ...
    fast_ok = 0
    bad = []
    for i in range(0, len(symbols), 100):
        chunk = symbols[i:i + 100]
        st, r, raw = h.req("GET", "/api/v1/predictions?symbols=" + ",".join(chunk))
        if st != 200:
            raise RuntimeError("GET predictions: HTTP %d %s" % (st, raw[:300]))
        for p in r.get("predictions", []):
            if p.get("run_id") == run_id and p.get("source") == "fast_layer":
                fast_ok += 1
            elif len(bad) < 5:
                bad.append(p.get("symbol"))
        bad += r.get("missing", [])[:5]
    # ... and in its durable history
    hist_ok = 0
    for s in symbols:
        st, r, _ = h.req("GET", "/api/v1/predictions/%s/history" % s)
        if st == 200 and any(x.get("run_id") == run_id for x in r.get("history", [])):
            hist_ok += 1
    return {"run_id": run_id, "total_ms": total_ms, "post_ms": t_post * 1000.0, "events": n_pred,
            "events_dropped": dropped, "run": run, "fast_ok": fast_ok, "hist_ok": hist_ok, "bad": bad[:5]}


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def ort_time(node, peer, ort_node, model, shape, rows, threads):
    if rows <= 0:
        return 0.0, None
    out = run_cmd([node, os.path.join(peer, "bench.js"), model, shape, "--threads", str(threads),
                   "--batches", "128", "--rows", str(rows), "--passes", "20"],
                  env=dict(os.environ, ORT_NODE=ort_node))
    ms = batch = None
    for line in out.splitlines():
        m = re.search(r"rows x \d+ passes \(batch 128\): ([0-9.]+) ms", line)
        if m:
            ms = float(m.group(1))
        m = re.match(r"batch 128: median ([0-9.]+) ms", line)
        if m:
            batch = float(m.group(1))
    if ms is None:
        raise RuntimeError("bench.js printed no 'rows x passes' line:\n" + out)
    return ms, batch


def engine_time(binary, model, shape, rows, threads):
    """predictd's engine alone on the same rows: `predictd model bench` MC dropout, batch 128."""
    if rows <= 0:
        return 0.0
    out = run_cmd([binary, "model", "bench", model, "--shape", shape, "--threads", str(threads),
                   "--batches", "128", "--runs", "10", "--rows", str(rows), "--passes", "20"])
    m = re.search(r"rows x \d+ passes \(MC, batch 128\): ([0-9.]+) ms", out)
    if not m:
        raise RuntimeError("model bench printed no 'rows x passes' line:\n" + out)
    return float(m.group(1))


def fmt_ms(x):
    return "%.0f" % x if x >= 100 else "%.1f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/predictd"))
    ap.add_argument("--work", required=True, help="scratch folder (models, market, data dir, logs)")
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2, help="engine threads, predictd and ORT alike")
    ap.add_argument("--engine-threads", type=int, default=0,
                    help="predictd's engine threads per model run (config.yaml threads; default --threads)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--read-s", type=float, default=5.0)
    ap.add_argument("--date", default="2026-03-02", help="the trading day the run routes for")
    ap.add_argument("--peer", default=None, help="the ONNX Runtime peer folder (bench.js)")
    ap.add_argument("--ort-node", default="/tmp/ort/node_modules/onnxruntime-node")
    ap.add_argument("--node", default="node")
    a = ap.parse_args()
    if a.rounds < 1 or a.symbols < 1 or a.clients < 1 or a.threads < 1:
        ap.error("--rounds, --symbols, --clients and --threads must be at least 1")
    a.engine_threads = a.engine_threads or a.threads
    peer = a.peer or next((p for p in (os.path.join(ROOT, "../shared/peers/onnxruntime"),
                                       "/work/shared/peers/onnxruntime") if os.path.isdir(p)), None)
    os.makedirs(a.work, exist_ok=True)
    models, market, data = (os.path.join(a.work, x) for x in ("models", "market", "data"))
    py_onnx = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    log("generating the models (engine threads %d) and a %d-symbol market for %s"
        % (a.engine_threads, a.symbols, a.date))
    run_cmd([py_onnx, os.path.join(ROOT, "scripts/gen-market-models.py"), "--out", models, "--threads",
             str(a.engine_threads), "-q"])
    run_cmd([sys.executable, os.path.join(ROOT, "scripts/gen-demo-market.py"), "--symbols", str(a.symbols),
             "--date", a.date, "--out", market, "-q"])
    feats = [os.path.join(market, "features.csv"), os.path.join(market, "features_earnings.csv")]
    symbols = symbols_of(feats)

    port = free_port()
    url = "http://127.0.0.1:%d" % port
    # only the bench's runs: no periodic run, and the import's data.features.ready window
    # (default 10 s, then a run of its own) set far beyond the bench's few minutes
    env = dict(os.environ, PREDICTD_PIPELINE_INTERVAL_S="0", PREDICTD_PIPELINE_WINDOW_S="3600",
               PREDICTD_LOG_LEVEL="warn")
    slog = open(os.path.join(a.work, "server.log"), "w")
    srv = subprocess.Popen([a.bin, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir", data,
                            "--models", models], env=env, stdout=slog, stderr=subprocess.STDOUT)
    ev = None
    rc = 1
    try:
        h = Http(port)
        for _ in range(600):
            if srv.poll() is not None:
                raise RuntimeError("predictd serve exited (%d); see %s/server.log" % (srv.returncode, a.work))
            try:
                if h.req("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                h.conn = None
            time.sleep(0.1)
        st, _, _ = h.req("POST", "/api/v1/pipeline/run", {"symbols": 0})
        if st == 404:
            log("this predictd has no market pipeline (POST /api/v1/pipeline/run -> 404): nothing to measure")
            return 3
        imports = {}
        for kind, path in [("calendar", os.path.join(market, "calendar.csv"))] + [("features", p) for p in feats]:
            t = time.monotonic()
            run_cmd([a.bin, "import", "--url", url, kind, path])
            imports[os.path.basename(path)] = (time.monotonic() - t) * 1000.0
        log("imported: " + ", ".join("%s %.0f ms" % kv for kv in imports.items()))

        ev = Events(port, "prediction.updated,pipeline.run.completed")
        ev.start()
        time.sleep(0.2)
        sym_file = os.path.join(a.work, "symbols.txt")
        with open(sym_file, "w") as f:
            f.write("\n".join(symbols) + "\n")
        # pipeline and ORT rounds alternate, so that both see the same background load; the
        # reads run right after the first pipeline round (inside the fast layer's TTL)
        rounds, ort, reads = [], [], {}
        for r in range(a.rounds):
            res = one_round(h, ev, a.date, symbols)
            rounds.append(res)
            run = res["run"]
            log("round %d: %s %.0f ms, %d events (%d dropped), fast layer %d/%d, history %d/%d, stages %s"
                % (r + 1, run.get("status"), res["total_ms"], res["events"], res["events_dropped"],
                   res["fast_ok"], len(symbols), res["hist_ok"], len(symbols), json.dumps(run.get("stages_ms"))))
            if r == 0:
                out = subprocess.run([os.path.join(os.path.dirname(a.bin), "bench/pred_read"), "--symbols", sym_file,
                                      "--port", str(port), "--clients", str(a.clients), "--duration", str(a.read_s)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                m = re.search(r"^reads: (\{.*\})$", out.stdout, re.M)
                reads = json.loads(m.group(1)) if m else {}
                if out.returncode != 0 or not reads:
                    log("pred_read: exit %d %s" % (out.returncode, out.stderr.strip()[:300]))
            # ORT: the same rows per model as this run routed
            n_normal = run.get("routes", {}).get("normal_day", 0)
            n_earn = run.get("routes", {}).get("earnings_day", 0)
            tn, bn = ort_time(a.node, peer, a.ort_node, os.path.join(models, "normal_day/1/model.onnx"), "B,32,20",
                              n_normal, a.threads)
            te, be = ort_time(a.node, peer, a.ort_node, os.path.join(models, "earnings_day/1/model.onnx"),
                              "B,32,37", n_earn, a.threads)
            # and predictd's engine alone on the same rows (MC dropout: the LSTM once per batch)
            en = engine_time(a.bin, os.path.join(models, "normal_day/1/model.onnx"), "B,32,20", n_normal,
                             a.engine_threads)
            ee = engine_time(a.bin, os.path.join(models, "earnings_day/1/model.onnx"), "B,32,37", n_earn,
                             a.engine_threads)
            ort.append((tn + te, tn, te, en + ee))
            log("ORT round %d: normal_day %d rows %.0f ms, earnings_day %d rows %.0f ms; predictd engine alone "
                "%.0f ms" % (r + 1, n_normal, tn, n_earn, te, en + ee))
        hwm = vm_hwm_kb(srv.pid)
    finally:
        if ev:
            try:
                ev.close()
            except Exception as e:  # noqa: BLE001 -- the server must be stopped whatever happens
                log("closing the event stream: %s" % e)
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
        slog.close()

    best = min(rounds, key=lambda x: x["total_ms"])
    ort_best = min(ort)
    all_ok = all(x["run"].get("succeeded") == len(symbols) and x["fast_ok"] == len(symbols)
                 and x["hist_ok"] == len(symbols) and x["events"] + x["events_dropped"] >= len(symbols)
                 for x in rounds)
    print("| round | status | symbols | normal / earnings | succeeded / failed | trigger -> all in fast layer, history, events (ms) "
          "| server stages_ms | events (dropped) | fast layer / history checked | ORT right after (ms) | ratio |")
    print("|---:|---|---:|---|---|---:|---|---|---|---:|---:|")
    for i, x in enumerate(rounds):
        run = x["run"]
        print("| %d | %s | %d | %s / %s | %s / %s | %s | %s | %d (%d) | %d / %d | %s | %.3f |" % (
            i + 1, run.get("status"), len(symbols), run.get("routes", {}).get("normal_day"),
            run.get("routes", {}).get("earnings_day"), run.get("succeeded"), run.get("failed"),
            fmt_ms(x["total_ms"]), ", ".join("%s %s" % (k, fmt_ms(v) if isinstance(v, (int, float)) else v)
                                           for k, v in (run.get("stages_ms") or {}).items()),
            x["events"], x["events_dropped"], x["fast_ok"], x["hist_ok"], fmt_ms(ort[i][0]),
            x["total_ms"] / ort[i][0] if ort[i][0] else float("nan")))
    print()
    ratio = best["total_ms"] / ort_best[0] if ort_best[0] else float("nan")
    sm = best["run"].get("stages_ms") or {}
    print("| figure | value |")
    print("|---|---|")
    print("| symbols (normal_day / earnings_day) | %d (%d / %d) |" % (len(symbols), n_normal, n_earn))
    print("| predictd: trigger -> every prediction in fast layer, history and events (best of %d) | %s ms |"
          % (a.rounds, fmt_ms(best["total_ms"])))
    for k, v in sm.items():
        print("| &nbsp;&nbsp;server stage %s | %s ms |" % (k, fmt_ms(v) if isinstance(v, (int, float)) else v))
    print("| ONNX Runtime alone: 20 full passes, batch 128 (normal_day + earnings_day, best of %d) | %s ms (%s + %s) |"
          % (a.rounds, fmt_ms(ort_best[0]), fmt_ms(ort_best[1]), fmt_ms(ort_best[2])))
    per = sorted(x["total_ms"] / o[0] for x, o in zip(rounds, ort) if o[0])
    eng = min(o[3] for o in ort)
    print("| predictd's engine alone, same rows, MC dropout 20 passes, batch 128 (`predictd model bench`, best of %d) "
          "| %s ms (%.3f of ORT) |" % (a.rounds, fmt_ms(eng), eng / ort_best[0] if ort_best[0] else float("nan")))
    print("| ratio whole pipeline / ORT inference alone, best / best (goal <= 1/6 = 0.167) | %.3f (1/%.1f); "
          "round by round (sorted) %s, median %.3f |" % (ratio, 1 / ratio if ratio else 0, " ".join("%.3f" % v for v in per),
                                                         per[len(per) // 2] if len(per) % 2 else
                                                         (per[len(per) // 2 - 1] + per[len(per) // 2]) / 2))
    if reads:
        print("| fast-layer read GET /api/v1/predictions/{symbol}, %d clients, %.0f s: p50 / p99 / max | %s / %s / %s ms (%s req/s, %s errors, %s not from the fast layer) |"
              % (reads.get("clients", 0), a.read_s, reads.get("p50_ms"), reads.get("p99_ms"), reads.get("max_ms"),
                 reads.get("rps"), reads.get("errors"), reads.get("not_fast_layer")))
    print("| server peak RSS (VmHWM) | %.1f MiB |" % (hwm / 1024.0 if hwm else float("nan")))
    print("| imports (calendar, features, features with earnings) | %s |" % ", ".join("%.0f ms" % v for v in imports.values()))
    print()
    load = open("/proc/loadavg").read().split()[:3]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    workers = os.environ.get("PREDICTD_JOBS_WORKERS") or "%d (two per core)" % (2 * os.cpu_count())
    print("ORT intraOpNumThreads %d; predictd engine threads per model run %d (config.yaml), %s job workers; "
          "%d cores: %s; load average after: %s"
          % (a.threads, a.engine_threads, workers, os.cpu_count(), cpu, " ".join(load)))
    rc = 0 if all_ok else 1
    if not all_ok:
        log("not every symbol was accounted for in every round (see the table)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
