"""Shared helpers for the integration suites (Python 3 standard library only).

Server: starts the real predictd binary on a free port with a fresh temp data dir, waits for
/readyz, and stops it by pid (always: use it as a context manager).
Client: HTTP/1.1 keep-alive over http.client, JSON in and out.
Suite: a list of test functions; prints "ok"/"FAIL" per test and "N passed, N failed".
Assertions print both values. Ising: MODELS.md's closed form, computed independently.
"""
import atexit
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BINARY = os.environ.get("PREDICTD_BIN", "build/predictd")
ASAN = "asan" in BINARY
# Timeouts scale for the sanitizer build, which is several times slower.
SLOW = 3.0 if ASAN else 1.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "AddressSanitizer:DEADLYSIGNAL")


class TestFailure(AssertionError):
    pass


# Every server started here is killed when the suite ends, however it ends (a test runner's
# timeout sends SIGTERM: turn it into an exit so that the clean-up runs).
_LIVE = set()


def _kill_all():
    for srv in list(_LIVE):
        try:
            srv.kill9()
        except Exception:  # noqa: BLE001 -- best effort at exit
            pass


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def fail(msg):
    raise TestFailure(msg)


def eq(actual, expected, what=""):
    if actual != expected:
        fail("%s: got %r, expected %r" % (what or "value", actual, expected))


def ok(cond, what="condition", *values):
    if not cond:
        fail("%s is false%s" % (what, (": " + " ".join(repr(v) for v in values)) if values else ""))


def near_rel(actual, expected, tol=1e-12, what=""):
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        fail("%s: got %r, expected a number near %r" % (what or "value", actual, expected))
    if actual == expected:
        return
    if abs(actual - expected) > tol * max(abs(actual), abs(expected)) + 1e-300:
        fail("%s: got %.17g, expected %.17g (relative tolerance %g)" % (what or "value", actual, expected, tol))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self._json = None

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.text)
            except ValueError:
                fail("response %d is not JSON: %r" % (self.status, self.text[:300]))
        return self._json

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.text[:200])


class Client:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.host, self.port, self.timeout = host, port, timeout * SLOW
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, content_type=None):
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            content_type = content_type or "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None:
            hdrs.setdefault("Content-Type", content_type or "application/json")
        last = None
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                resp = Response(r.status, r.getheaders(), data)
                if (r.getheader("Connection") or "").lower() == "close":
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError,
                    BrokenPipeError, ConnectionRefusedError) as e:
                last = e
                self.close()
                if attempt == 0 and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError,
                                                   ConnectionResetError)):
                    continue
                raise
        raise last

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, body=None, **kw):
        return self.request("DELETE", path, body=body, **kw)

    # ---- conveniences ----
    def expect(self, status, method, path, body=None, **kw):
        """status: an int, a tuple of ints, or "2xx"."""
        r = self.request(method, path, body=body, **kw)
        good = (200 <= r.status < 300) if status == "2xx" else \
            (r.status in status) if isinstance(status, tuple) else (r.status == status)
        if not good:
            fail("%s %s: status %d, expected %s; body %s" % (method, path, r.status, status, r.text[:500]))
        return r

    def upsert(self, entities):
        return self.expect("2xx", "POST", "/api/v1/entities", entities)

    def relate(self, rels):
        return self.expect("2xx", "POST", "/api/v1/relationships", rels)

    def submit(self, ids, temperature=1.0, horizon="24h", headers=None, extra=None, expect=202):
        body = {"entity_ids": ids, "prediction_type": "spin_flip_probability",
                "parameters": {"temperature": temperature, "time_horizon": horizon}}
        if extra:
            body.update(extra)
        return self.expect(expect, "POST", "/api/v1/predict/batch/ising", body, headers=headers)

    def job(self, job_id):
        return self.expect(200, "GET", "/api/v1/jobs/" + job_id).json

    def wait_job(self, job_id, timeout=60, states=("COMPLETED", "FAILED", "CANCELLED")):
        deadline = time.time() + timeout * SLOW
        last = None
        while time.time() < deadline:
            last = self.job(job_id)
            if last["status"] in states:
                return last
            time.sleep(0.05)
        fail("job %s not in %s after %ss: %r" % (job_id, states, timeout * SLOW, last))

    def all_results(self, job_id, limit=1000):
        """Every page of a finished job's results, following next_cursor."""
        out, cursor, pages = [], None, 0
        meta = None
        while True:
            path = "/api/v1/jobs/%s/results?limit=%d" % (job_id, limit)
            if cursor:
                path += "&cursor=" + cursor
            page = self.expect(200, "GET", path).json
            out.extend(page["results"])
            meta = page.get("metadata")
            cursor = page.get("next_cursor")
            pages += 1
            if not cursor:
                return out, meta, pages
            ok(pages < 100000, "paging terminates")


# ---------------------------------------------------------------------------------------------
class Server:
    """predictd serve on a free port. data_dir: reuse one (restart), else a fresh temp dir."""

    def __init__(self, binary=None, data_dir=None, env=None, args=(), ready_timeout=30, log_level="warn"):
        self.binary = os.path.abspath(binary or BINARY)
        self.own_dir = data_dir is None
        self.root = tempfile.mkdtemp(prefix="predictd-it-") if data_dir is None else os.path.dirname(data_dir)
        self.data_dir = data_dir or os.path.join(self.root, "data")
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("PREDICTD_") and k != "PREDICTD_BIN":
                del self.env[k]
        self.env["PREDICTD_LOG_LEVEL"] = log_level
        self.env.update(env or {})
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.log_path = None
        self.logs = []  # every log file this object wrote (one per start)

    # -- life cycle --
    def start(self, port=None, wait=True):
        self.port = port or free_port()
        self.log_path = os.path.join(self.root, "server-%d-%d.log" % (self.port, len(self.logs)))
        self.logs.append(self.log_path)
        log = open(self.log_path, "wb")
        cmd = [self.binary, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", self.data_dir] + self.args
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root)
        _LIVE.add(self)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.time() + self.ready_timeout * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail("server exited with %s before /readyz; log:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return
            except OSError:
                pass
            except http.client.HTTPException:
                pass
            time.sleep(0.02)
        fail("server not ready after %ss; log:\n%s" % (self.ready_timeout * SLOW, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        _LIVE.discard(self)

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit status (negative: killed by that signal), or None
        when it did not exit in time (then it is killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def client(self):
        return Client(self.port)

    def log_text(self):
        out = []
        for p in self.logs:
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_report(self):
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def check_clean_exit(self):
        """SIGTERM -> exit 0, and no sanitizer report in any log of this server."""
        rc = self.terminate()
        rep = self.sanitizer_report()
        if rep:
            fail("sanitizer report in the server log:\n" + rep)
        if rc != 0:
            fail("server exit status after SIGTERM: %r, expected 0; log:\n%s" % (rc, self.log_tail()))

    def cleanup(self):
        self.kill9()
        if self.own_dir and not os.environ.get("PREDICTD_KEEP_TMP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.cleanup()
                raise
        return self

    def __exit__(self, *exc):
        rep = self.sanitizer_report() if self.logs else None
        self.cleanup()
        if rep and exc[0] is None:
            fail("sanitizer report in the server log:\n" + rep)
        return False


def run_cli(args, env=None, timeout=60, cwd=None, input=None):
    """Runs the predictd binary with args; returns (rc, stdout, stderr)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("PREDICTD_") and k != "PREDICTD_BIN":
            del e[k]
    e.update(env or {})
    p = subprocess.run([os.path.abspath(BINARY)] + list(args), capture_output=True, env=e,
                       timeout=timeout * SLOW, cwd=cwd or tempfile.gettempdir(), input=input)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# MODELS.md, Ising analytic: m = sum_j J_ij s_j + h_i (undirected, parallel relationships add;
# neighbours without a spin of +-1 contribute nothing), dE = 2 s m, w = nu/(1+exp(dE/T)),
# p = 1 - exp(-w H_hours).
class IsingOracle:
    def __init__(self):
        self.props = {}   # id -> properties
        self.rels = []    # (a, b, weight)

    def spin(self, i):
        s = self.props.get(i, {}).get("spin")
        if isinstance(s, (int, float)) and not isinstance(s, bool) and s in (1, -1):
            return float(s)
        return None

    def predict(self, i, T, H_hours, nu=1.0):
        if i not in self.props:
            return None
        s = self.spin(i)
        if s is None:
            return None
        f = self.props[i].get("field", 0.0)
        h = float(f) if isinstance(f, (int, float)) and not isinstance(f, bool) else 0.0
        key = (id(self.rels), len(self.rels))
        if getattr(self, "_adj_key", None) != key:  # adjacency index, rebuilt when rels change
            self._adj = {}
            for a, b, w in self.rels:
                if a != b:
                    self._adj.setdefault(a, []).append((b, w))
                    self._adj.setdefault(b, []).append((a, w))
            self._adj_key = key
        m = 0.0
        for j, w in self._adj.get(i, ()):
            sj = self.spin(j)
            if sj is not None:
                m += w * sj
        m += h
        de = 2.0 * s * m
        x = de / T
        # the logistic written so that it cannot overflow
        w = nu * math.exp(-x) / (1.0 + math.exp(-x)) if x > 0 else nu / (1.0 + math.exp(x))
        p = -math.expm1(-w * H_hours)
        return {"p_flip": p, "delta_e": de, "local_field": m, "rate_per_hour": w}


def check_prediction(pred, expected, what, tol=1e-12):
    for k in ("p_flip", "delta_e", "local_field", "rate_per_hour"):
        ok(k in pred, "%s has %s" % (what, k), pred)
        a, e = pred[k], expected[k]
        # m is a sum: the server may add the terms in another order, so near a cancellation
        # an absolute error of a few ulps of the terms is allowed as well
        if k in ("delta_e", "local_field") and isinstance(a, (int, float)) and abs(a - e) <= 1e-12:
            continue
        near_rel(a, e, tol, "%s.%s" % (what, k))


def random_graph(rng, n, n_rels, prefix="E"):
    """Entities with spins and fields (a few without a spin) and relationships (some parallel)."""
    oracle = IsingOracle()
    ents = []
    for i in range(n):
        eid = "%s-%05d" % (prefix, i)
        props = {"spin": rng.choice([1, -1]), "field": round(rng.uniform(-1, 1), 3)}
        if i % 37 == 5:
            props = {"name": "no spin"}
        ents.append({"entity_id": eid, "properties": props})
        oracle.props[eid] = props
    rels = []
    for _ in range(n_rels):
        a, b = rng.randrange(n), rng.randrange(n)
        if a == b:
            continue
        w = round(rng.uniform(-1, 2), 3)
        rels.append({"source": "%s-%05d" % (prefix, a), "target": "%s-%05d" % (prefix, b), "weight": w})
        oracle.rels.append(("%s-%05d" % (prefix, a), "%s-%05d" % (prefix, b), w))
    return ents, rels, oracle


def load_graph(client, ents, rels, batch=2000):
    for i in range(0, len(ents), batch):
        client.upsert(ents[i:i + batch])
    for i in range(0, len(rels), batch):
        client.relate(rels[i:i + batch])


def check_job_results(results, ids, oracle, T, H_hours, what="job", nu=1.0):
    """Every requested id (first occurrence) exactly once, in any order, with correct values."""
    seen = {}
    for r in results:
        eid = r.get("entity_id")
        ok(eid not in seen, "%s: entity %s appears once" % (what, eid))
        seen[eid] = r
    want = list(dict.fromkeys(ids))
    eq(len(seen), len(want), "%s: number of distinct results" % what)
    eq(len(results), len(want), "%s: number of results" % what)
    for eid in want:
        ok(eid in seen, "%s: result for %s present" % (what, eid))
        exp = oracle.predict(eid, T, H_hours, nu)
        r = seen[eid]
        if exp is None:
            ok("error" in r and "prediction" not in r, "%s: %s is an error" % (what, eid), r)
        else:
            ok("prediction" in r, "%s: %s has a prediction" % (what, eid), r)
            check_prediction(r["prediction"], exp, "%s[%s]" % (what, eid))


# ---------------------------------------------------------------------------------------------
class Suite:
    def __init__(self, name):
        self.name = name
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self, argv=None):
        argv = sys.argv[1:] if argv is None else argv
        only = [a for a in argv if not a.startswith("-")]
        passed = failed = 0
        print("# %s against %s" % (self.name, BINARY), flush=True)
        for fn in self.tests:
            if only and not any(o in fn.__name__ for o in only):
                continue
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %s.%s (%.1fs)" % (self.name, fn.__name__, time.time() - t0), flush=True)
            except Exception as e:  # noqa: BLE001 -- a test's failure of any kind is reported
                failed += 1
                print("FAIL %s.%s (%.1fs)" % (self.name, fn.__name__, time.time() - t0), flush=True)
                tb = traceback.format_exc()
                if isinstance(e, TestFailure):  # where in the test, then the message
                    frames = [f for f in traceback.extract_tb(e.__traceback__)
                              if os.path.basename(f.filename) != "helper.py"]
                    where = "%s:%d" % (os.path.basename(frames[-1].filename), frames[-1].lineno) if frames else "?"
                    tb = "at %s: %s" % (where, e)
                for line in tb.rstrip().splitlines()[-14:]:
                    print("    " + line, flush=True)
        print("%d passed, %d failed" % (passed, failed), flush=True)
        return 1 if failed else 0
