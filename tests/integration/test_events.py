"""GET /api/v1/events: Server-Sent Events from the bus. A subscriber gets ews.alert when an
EWS job's alert fires (rising variance and autocorrelation) and job.completed when a job
finishes, only for the topics it asked for; heartbeats keep an idle stream alive; a bad topic
list is a 422; the stream ends cleanly when the server stops; the bus counts in /metrics."""
import json
import os
import queue
import random
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import Server, Suite, eq, ok  # noqa: E402

suite = Suite("events")


class Stream:
    """A raw SSE client: a thread parses events (and comments) into a queue."""

    def __init__(self, port, query):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(("GET /api/v1/events%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
                           % query).encode())
        self.q = queue.Queue()
        self.status = None
        self.headers = {}
        self.ended = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _lines(self):
        f = self.sock.makefile("rb")
        status = f.readline().decode()
        self.status = int(status.split()[1])
        while True:
            h = f.readline().decode().rstrip("\r\n")
            if not h:
                break
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        pending = b""
        while True:
            if chunked:
                size = f.readline()
                if not size:
                    return
                n = int(size.strip().split(b";")[0], 16)
                if n == 0:
                    self.q.put(("end", None))
                    return
                data = f.read(n)
                f.readline()
            else:
                data = f.read1(4096) if hasattr(f, "read1") else f.read(1)
                if not data:
                    self.q.put(("end", None))
                    return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                yield line.decode()

    def _run(self):
        ev = {}
        try:
            for line in self._lines():
                if line == "":
                    if ev:
                        self.q.put(("event", ev))
                    ev = {}
                elif line.startswith(":"):
                    self.q.put(("comment", line[1:].strip()))
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    ev[k] = ev[k] + "\n" + v if k in ev else v
        except OSError:
            pass
        finally:
            self.ended.set()

    def next(self, want_kind="event", timeout=30, pred=None):
        """The next item of want_kind (matching pred), skipping others; None at timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                kind, v = self.q.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                return None
            if kind == want_kind and (pred is None or pred(v)):
                return v
            if kind == "end" and want_kind != "end":
                return None
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def rising_series(seed, n=120, t0=1_700_000_000):
    """An AR(1) whose memory and noise grow: variance and lag-1 autocorrelation trend up."""
    rng = random.Random(seed)
    pts, v = [], 0.0
    for i in range(n):
        phi = 0.05 + 0.9 * i / n
        v = phi * v + rng.gauss(0, 1) * (1 + 2.0 * i / n)
        pts.append([t0 + 600 * i, v])
    return pts


def flat_series(seed, n=120, t0=1_700_000_000):
    rng = random.Random(seed)
    return [[t0 + 600 * i, rng.gauss(0, 1)] for i in range(n)]


@suite.test
def test_ews_alert_and_job_completed_reach_a_subscriber():
    with Server() as s:
        c = s.client()
        st = Stream(s.port, "?topics=ews.alert,job.completed")
        hello = st.next("comment", timeout=10)
        eq(st.status, 200, "status")
        ok(st.headers.get("content-type", "").startswith("text/event-stream"), "content type", st.headers)
        ok(hello and hello.startswith("subscribed"), "subscription comment", hello)
        c.upsert([{"entity_id": "RISE", "properties": {}}, {"entity_id": "CALM", "properties": {}}])
        c.expect("2xx", "POST", "/api/v1/entities/RISE/observations", {"points": rising_series(5)})
        c.expect("2xx", "POST", "/api/v1/entities/CALM/observations", {"points": flat_series(6)})
        job = c.expect(202, "POST", "/api/v1/predict/batch/ews",
                       {"entity_ids": ["RISE", "CALM"], "as_of": 1_700_000_000 + 600 * 120,
                        "time_window": "30d", "parameters": {"detrend": "none", "alert_tau": 0.5}}).json
        done = c.wait_job(job["job_id"])
        eq(done["status"], "COMPLETED", "ews job")
        results, _, _ = c.all_results(job["job_id"])
        preds = {r["entity_id"]: r["prediction"] for r in results}
        eq(preds["RISE"]["alert"], True, "RISE alerts (the series was built to)")
        eq(preds["CALM"]["alert"], False, "CALM does not")
        alert = st.next(pred=lambda e: e.get("event") == "ews.alert", timeout=20)
        ok(alert is not None, "an ews.alert event arrived")
        a = json.loads(alert["data"])
        eq(a["entity_id"], "RISE", "alerting entity")
        eq(a["job_id"], job["job_id"], "job id in the alert")
        ok(abs(a["variance_tau"] - preds["RISE"]["variance_tau"]) < 1e-9, "variance_tau",
           a["variance_tau"], preds["RISE"]["variance_tau"])
        ok(abs(a["ar1_tau"] - preds["RISE"]["ar1_tau"]) < 1e-9, "ar1_tau", a["ar1_tau"], preds["RISE"]["ar1_tau"])
        ok(a["variance_tau"] >= 0.5 and a["ar1_tau"] >= 0.5, "both taus reach alert_tau", a)
        ok(isinstance(a["at"], str) and a["at"].endswith("Z"), "at is ISO 8601 UTC", a["at"])
        ok(int(alert["id"]) >= 1, "event id is the bus sequence", alert)
        comp = st.next(pred=lambda e: e.get("event") == "job.completed", timeout=20)
        ok(comp is not None, "a job.completed event arrived")
        j = json.loads(comp["data"])
        eq(j["job_id"], job["job_id"], "completed job id")
        eq(j["model"], "ews", "model")
        eq(j["status"], "COMPLETED", "status")
        eq(j["successful"], 2, "successful")
        eq(j["failed"], 0, "failed")
        # exactly one completion event per job, and no other alerts (CALM did not fire)
        extra = st.next(pred=lambda e: e.get("event") in ("job.completed", "ews.alert"), timeout=1.5)
        eq(extra, None, "no duplicate event")

        # an Ising job: its completion too (and a second subscriber with a prefix pattern)
        st2 = Stream(s.port, "?topics=job.*")
        ok(st2.next("comment", timeout=10) is not None, "second subscriber ready")
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}, {"entity_id": "B", "properties": {"spin": -1}}])
        c.relate([{"source": "A", "target": "B"}])
        ij = c.submit(["A", "B"], temperature=2.0).json
        c.wait_job(ij["job_id"])
        for stream in (st, st2):
            e = stream.next(pred=lambda e: e.get("event") == "job.completed"
                            and json.loads(e["data"])["job_id"] == ij["job_id"], timeout=20)
            ok(e is not None, "ising job.completed reached each subscriber")
        # the same request again is answered with that job (reused: no new job, nothing to
        # announce); with an Idempotency-Key it is a job of its own, served whole from the
        # cache: completed at submission, and announced
        reused = c.submit(["A", "B"], temperature=2.0).json
        eq((reused["job_id"], reused.get("reused")), (ij["job_id"], True), "a plain repeat gets the same job")
        again = c.submit(["A", "B"], temperature=2.0, headers={"Idempotency-Key": "events-again"}).json
        eq(again["status"], "COMPLETED", "repeat served from the cache")
        ok(again["job_id"] != ij["job_id"], "a job of its own", again)
        e = st.next(pred=lambda e: e.get("event") == "job.completed"
                    and json.loads(e["data"])["job_id"] == again["job_id"], timeout=20)
        ok(e is not None, "a job completed at submission is announced")
        m = c.get("/metrics").body.decode()
        ok('predictd_bus_published_total{topic="ews.alert"} 1' in m, "alert counted", m[-2000:])
        ok('predictd_bus_published_total{topic="job.completed"}' in m, "completions counted")
        ok("predictd_bus_dropped_total 0" in m, "nothing dropped")
        st.close()
        st2.close()


@suite.test
def test_heartbeat_bad_topics_and_clean_end_at_shutdown():
    with Server() as s:
        c = s.client()
        r = c.get("/api/v1/events?topics=Bad%20Topic")
        eq(r.status, 422, "bad topic list")
        eq(r.json["error"]["field"], "topics", "field named")
        r = c.get("/api/v1/events?heartbeat_s=0")
        eq(r.status, 422, "heartbeat_s out of range")
        for bad in ("15", "100001", "x"):
            r = c.get("/api/v1/events?queue=" + bad)
            eq(r.status, 422, "queue=%s refused" % bad)
            eq(r.json["error"]["field"], "queue", "field named")
        st = Stream(s.port, "?topics=nothing.here&heartbeat_s=1")
        ok(st.next("comment", timeout=10) is not None, "subscribed")
        t0 = time.time()
        hb = st.next("comment", timeout=5, pred=lambda v: v == "heartbeat")
        ok(hb is not None and time.time() - t0 < 4, "heartbeat within ~1 s", hb)
        hb = st.next("comment", timeout=5, pred=lambda v: v == "heartbeat")
        ok(hb is not None, "heartbeats keep coming")
        c.expect(200, "GET", "/healthz")  # the stream holds no one else up
        t0 = time.time()
        s.terminate()
        ok(st.ended.wait(20), "the stream ended when the server stopped")
        ok(time.time() - t0 < 20, "promptly")
        s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
