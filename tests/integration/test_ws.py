"""GET /api/v1/ws (WebSocket push) and the ?symbols= / ?jobs= filters of GET /api/v1/events,
against a real WebSocket client in another process (ws_driver.py on Debian's
python3-websockets, under /usr/bin/python3). Events come from the server itself: graph jobs
(job.progress, job.completed) and POST /api/v1/events/publish (on with push.publish_route)
for prediction.updated traffic. Promises: the RFC 6455 handshake; subscribe / unsubscribe
filtering by symbol, job and topic; bad messages answered with an error frame, not a
disconnect; the rate limit with the newest value per symbol winning; a client that never
reads keeps the server's memory bounded and slows nobody; the close handshake both ways;
many clients; 503 + Retry-After past push.max_clients."""
import base64
import hashlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import SLOW, Server, Suite, eq, fail, ok  # noqa: E402

suite = Suite("ws")
CLIENT_PYTHON = "/usr/bin/python3"  # Debian's python3-websockets imports only here
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_driver.py")
PUSH_ENV = {"PREDICTD_PUSH_PUBLISH_ROUTE": "1", "PREDICTD_PUSH_RATE_PER_S": "1000"}


class Driver:
    """The WebSocket client process: one command line in, one JSON line out."""

    def __init__(self, port):
        self.port = port
        self.p = subprocess.Popen([CLIENT_PYTHON, DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.out = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.out.put(json.loads(line))
        self.out.put(None)

    def cmd(self, op, wait=None, **kw):
        kw["op"] = op
        self.p.stdin.write(json.dumps(kw) + "\n")
        self.p.stdin.flush()
        budget = (wait or kw.get("timeout", 30)) * SLOW + 30
        try:
            r = self.out.get(timeout=budget)
        except queue.Empty:
            fail("ws driver: no answer to %s in %ss" % (op, budget))
        if r is None:
            fail("ws driver exited; stderr: %s" % self.p.stderr.read()[-2000:])
        if "error" in r:
            fail("ws driver: %s failed: %s" % (op, r["error"]))
        return r

    def open(self, cid, path="/api/v1/ws", expect_ok=True, **kw):
        r = self.cmd("open", id=cid, url="ws://127.0.0.1:%d%s" % (self.port, path), **kw)
        if expect_ok:
            ok(r["ok"], "WebSocket %s opened" % cid, r)
        return r

    def send(self, cid, obj, binary=False):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.cmd("send", id=cid, text=text, binary=binary)

    def recv(self, cid, timeout=10):
        return self.cmd("recv", id=cid, timeout=timeout * SLOW)

    def expect(self, cid, typ, timeout=10):
        r = self.recv(cid, timeout)
        ok(r["ok"], "a %s message for %s" % (typ, cid), r)
        eq(r["msg"].get("type"), typ, "message type for %s (message %r)" % (cid, r["msg"]))
        return r["msg"]["data"]

    def subscribe(self, cid, **sets):
        self.send(cid, {"subscribe": sets})
        return self.expect(cid, "subscribed")

    def collect(self, cid, until_type, until_data=None, timeout=30):
        r = self.cmd("collect", id=cid, until_type=until_type, until_data=until_data or {}, timeout=timeout * SLOW)
        ok(r["ok"], "%s received %s %r" % (cid, until_type, until_data), r.get("msgs", [])[-5:], r.get("code"))
        return r["msgs"]

    def close(self):
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.flush()
            self.p.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def publish(c, events):
    r = c.expect(200, "POST", "/api/v1/events/publish", events)
    eq(r.json["published"], len(events) if isinstance(events, list) else 1, "events published")


def pred(symbol, v, **extra):
    d = {"symbol": symbol, "predicted_return": v}
    d.update(extra)
    return {"topic": "prediction.updated", "data": d}


def metric(c, name):
    text = c.expect(200, "GET", "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_metric(c, name, want, timeout=20):
    deadline = time.time() + timeout * SLOW
    v = None
    while time.time() < deadline:
        v = metric(c, name)
        if v == want:
            return
        time.sleep(0.05)
    fail("%s: %r, expected %r" % (name, v, want))


def raw_http(port, request):
    """Sends request bytes, returns (status, headers dict, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    s.sendall(request.encode())
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    headers = {}
    while True:
        h = f.readline().decode().rstrip("\r\n")
        if not h:
            break
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0"))) if status != 101 else b""
    s.close()
    return status, headers, body


def handshake(port, key="dGhlIHNhbXBsZSBub25jZQ==", version="13", upgrade="websocket", connection="Upgrade"):
    req = "GET /api/v1/ws HTTP/1.1\r\nHost: x\r\n"
    if upgrade:
        req += "Upgrade: %s\r\n" % upgrade
    if connection:
        req += "Connection: %s\r\n" % connection
    if key:
        req += "Sec-WebSocket-Key: %s\r\n" % key
    if version:
        req += "Sec-WebSocket-Version: %s\r\n" % version
    return raw_http(port, req + "\r\n")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
@suite.test
def test_handshake_follows_rfc6455():
    with Server(env=PUSH_ENV) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        status, h, _ = handshake(s.port, key=key)
        eq(status, 101, "status")
        eq(h.get("upgrade", "").lower(), "websocket", "Upgrade header")
        ok("upgrade" in h.get("connection", "").lower(), "Connection: Upgrade", h)
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        eq(h.get("sec-websocket-accept"), want, "Sec-WebSocket-Accept (SHA-1 + base64 computed here)")
        for kw, code, field in (({"upgrade": None}, 426, "Upgrade"),
                                ({"connection": "keep-alive"}, 400, "Connection"),
                                ({"version": "8"}, 426, "Sec-WebSocket-Version"),
                                ({"key": None}, 400, "Sec-WebSocket-Key"),
                                ({"key": "c2hvcnQ="}, 400, "Sec-WebSocket-Key")):
            status, h, body = handshake(s.port, **kw)
            eq(status, code, "status for %r" % kw)
            eq(json.loads(body)["error"]["field"], field, "error field for %r" % kw)
            if code == 426:
                eq(h.get("sec-websocket-version"), "13", "426 names the version")
        c = s.client()
        eq(c.post("/api/v1/ws", {}).status, 405, "POST /api/v1/ws")


@suite.test
def test_subscribe_unsubscribe_filters_by_symbol_and_topic():
    with Server(env=PUSH_ENV) as s, Driver(s.port) as d:
        c = s.client()
        d.open("a")
        d.open("all")
        sub = d.subscribe("a", symbols=["AAPL", "MSFT"])
        eq(sub, {"symbols": ["AAPL", "MSFT"], "jobs": [], "topics": None}, "subscription ack")
        eq(d.subscribe("all", symbols="*")["symbols"], "*", "ack for *")
        # (each symbol once per publish: queued prediction.updated messages coalesce per symbol)
        publish(c, [pred("AAPL", 1), pred("IBM", 1), {"topic": "pipeline.alert", "data": {"x": 1}}, pred("MSFT", 1)])
        got = [(m["type"], m["data"].get("symbol"))
               for m in d.collect("a", "prediction.updated", {"symbol": "MSFT", "predicted_return": 1})]
        eq(got, [("prediction.updated", "AAPL"), ("prediction.updated", "MSFT")],
           "a's messages (no IBM, no keyless alert)")
        got = [m["data"]["symbol"] for m in d.collect("all", "prediction.updated", {"symbol": "MSFT"})]
        eq(got, ["AAPL", "IBM", "MSFT"], "'*' gets every symbol, no keyless event")
        # unsubscribe one symbol; add a topic list: the keyless alert now comes, IBM-like traffic still not
        d.send("a", {"unsubscribe": {"symbols": ["AAPL"]}})
        eq(d.expect("a", "unsubscribed"), {"symbols": ["MSFT"], "jobs": [], "topics": None}, "after unsubscribe")
        eq(d.subscribe("a", topics=["prediction.updated", "pipeline.*"])["topics"],
           ["pipeline.*", "prediction.updated"], "topics ack")
        publish(c, [pred("AAPL", 3), {"topic": "pipeline.alert", "data": {"x": 2}}, {"topic": "other.thing", "data": {}},
                    pred("MSFT", 3)])
        got = [(m["type"], m["data"].get("symbol") or m["data"].get("x"))
               for m in d.collect("a", "prediction.updated", {"symbol": "MSFT", "predicted_return": 3})]
        eq(got, [("pipeline.alert", 2), ("prediction.updated", "MSFT")], "after unsubscribe + topics")
        d.send("a", {"unsubscribe": {"symbols": "*", "topics": "*"}})
        eq(d.expect("a", "unsubscribed"), {"symbols": [], "jobs": [], "topics": None}, "all gone")
        d.send("a", {"stats": {}})
        st = d.expect("a", "stats")
        eq(st["sent"], 4, "messages sent to a")
        eq(st["dropped"], 0, "nothing dropped")


@suite.test
def test_job_progress_and_completion_reach_job_subscribers_only():
    # queued, so that its chunks settle one by one (a small job is otherwise computed in its
    # submission: see the end of this test)
    env = dict(PUSH_ENV, PREDICTD_JOBS_CHUNK_SIZE="10", PREDICTD_JOBS_INLINE_MAX_ENTITIES="0")
    with Server(env=env) as s, Driver(s.port) as d:
        c = s.client()
        ids = ["E%02d" % i for i in range(50)]
        c.upsert([{"entity_id": i, "properties": {"spin": 1, "field": 0.5}} for i in ids])
        d.open("jobs")
        d.open("other")
        d.subscribe("jobs", jobs="*")
        d.subscribe("other", jobs=["job-that-does-not-exist"], symbols=["FENCE"])
        job = c.submit(ids).json
        msgs = d.collect("jobs", "job.completed", {"job_id": job["job_id"]}, timeout=60)
        progress = [m["data"] for m in msgs if m["type"] == "job.progress"]
        ok(1 <= len(progress) <= 5, "one job.progress per settled chunk at most", len(progress))
        for p in progress:
            eq(p["job_id"], job["job_id"], "progress job id")
            eq(p["n_chunks"], 5, "chunks of 50 entities in tens")
            eq(p["progress"], (p["chunks_done"] + p["chunks_dead"]) / 5, "progress = settled / chunks")
        done = [p["chunks_done"] for p in progress]
        eq(done, sorted(done), "chunks_done never goes back")
        last = progress[-1]
        eq((last["chunks_done"], last["progress"], last["successful"], last["failed"]), (5, 1.0, 50, 0), "last progress")
        eq(msgs[-1]["data"]["status"], "COMPLETED", "job.completed status")
        publish(c, [pred("FENCE", 1)])
        got = d.collect("other", "prediction.updated", {"symbol": "FENCE"})
        eq([m["type"] for m in got], ["prediction.updated"], "another job's subscriber gets none of this job's events")


@suite.test
def test_a_job_done_in_its_submission_sends_one_progress_then_completed():
    env = dict(PUSH_ENV, PREDICTD_JOBS_CHUNK_SIZE="10")
    with Server(env=env) as s, Driver(s.port) as d:
        c = s.client()
        ids = ["E%02d" % i for i in range(50)]
        c.upsert([{"entity_id": i, "properties": {"spin": 1, "field": 0.5}} for i in ids])
        d.open("jobs")
        d.subscribe("jobs", jobs="*")
        job = c.submit(ids).json
        eq(job["status"], "COMPLETED", "50 entities: computed in the submission")
        msgs = d.collect("jobs", "job.completed", {"job_id": job["job_id"]}, timeout=60)
        eq([m["type"] for m in msgs], ["job.progress", "job.completed"], "one progress step, then completed")
        p = msgs[0]["data"]
        eq((p["chunks_done"], p["n_chunks"], p["progress"], p["successful"], p["failed"]), (5, 5, 1.0, 50, 0),
           "the progress step")


@suite.test
def test_bad_messages_get_an_error_frame_and_the_connection_stays():
    with Server(env=PUSH_ENV) as s, Driver(s.port) as d:
        d.open("a")
        cases = [("not json", "invalid_json", None),
                 ({"subscribe": {"symbols": "AAPL"}}, "invalid_field", "subscribe.symbols"),
                 ({"subscribe": {"symbols": ["OK", "not ok"]}}, "invalid_field", "subscribe.symbols[1]"),
                 ({"subscribe": {"jobs": "*", "colour": 1}}, "unknown_field", "subscribe.colour"),
                 ({"hello": {}}, "unknown_field", "hello"),
                 ({"subscribe": {"symbols": ["A"]}, "unsubscribe": {"symbols": ["A"]}}, "invalid_message", None)]
        for msg, code, field in cases:
            d.send("a", msg)
            e = d.expect("a", "error")
            eq((e["code"], e["field"]), (code, field), "error for %r (%s)" % (msg, e.get("message")))
            ok(e["message"], "error message for %r" % (msg,))
        d.send("a", "{\"stats\":{}}", binary=True)
        eq(d.expect("a", "error")["code"], "invalid_message", "binary frame")
        # nothing of the bad ones was applied; the connection still works
        eq(d.subscribe("a", symbols=["X"]), {"symbols": ["X"], "jobs": [], "topics": None}, "after the errors")
        ok(d.cmd("ping", id="a", timeout=10 * SLOW)["ok"], "ping answered with pong")
        c = s.client()
        eq(metric(c, "predictd_ws_bad_messages_total"), 7.0, "bad messages counted")


@suite.test
def test_rate_limit_coalesces_to_the_newest_value_per_symbol():
    env = {"PREDICTD_PUSH_PUBLISH_ROUTE": "1", "PREDICTD_PUSH_RATE_PER_S": "2"}
    with Server(env=env) as s, Driver(s.port) as d:
        c = s.client()
        d.open("a")
        d.subscribe("a", symbols=["S0", "S1", "S2"])
        events = [pred("S%d" % (i % 3), i) for i in range(200)]
        last = {"S%d" % k: max(i for i in range(200) if i % 3 == k) for k in range(3)}
        for i in range(0, 200, 10):  # 20 publishes: the client drains its burst between them
            publish(c, events[i:i + 10])
        # the newest of each symbol must arrive; collect until the last of them all
        seen = {}
        msgs = []
        deadline = time.time() + 30 * SLOW
        while set(seen.items()) != set(last.items()) and time.time() < deadline:
            r = d.recv("a", timeout=10)
            ok(r["ok"], "messages keep coming until the newest values", seen, r)
            m = r["msg"]
            eq(m["type"], "prediction.updated", "message type")
            sym, v = m["data"]["symbol"], m["data"]["predicted_return"]
            ok(v > seen.get(sym, -1), "values of %s only go forward" % sym, seen.get(sym), v)
            seen[sym] = v
            msgs.append(m)
        eq(seen, last, "the newest value of each symbol arrived")
        ok(len(msgs) < 50, "far fewer messages than the 200 published", len(msgs))
        d.send("a", {"stats": {}})
        st = d.expect("a", "stats")
        eq(st["sent"], len(msgs), "stats: sent")
        eq(st["coalesced"] + st["sent"] + st["dropped"], 200, "every update sent, coalesced or dropped")
        eq(st["dropped"], 0, "nothing dropped (3 symbols fit the buffer)")
        ok(st["rate_limited"] > 0, "rate limit counted", st)
        ok(metric(c, "predictd_ws_messages_coalesced_total") >= st["coalesced"], "coalesced in /metrics")
        ok(metric(c, "predictd_ws_rate_limited_total") > 0, "rate limited in /metrics")


@suite.test
def test_a_client_that_never_reads_stays_bounded_and_slows_nobody():
    buf = 65536
    env = dict(PUSH_ENV, PREDICTD_PUSH_BUFFER_BYTES=str(buf))
    # the sanitizer build keeps freed memory in quarantine (256 MB by default): keep it small
    # so that RSS shows what the server holds, not what it freed
    asan = os.environ.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=4:malloc_context_size=2"
    with Server(env=env) as s, Driver(s.port) as d:
        c = s.client()
        d.open("slow", max_queue=1, read_limit=1024)
        d.open("fast")
        d.subscribe("slow", symbols="*")
        d.subscribe("fast", symbols=["END"])
        pad = "x" * 1000
        publish(c, [pred("WARM%d" % i, i, pad=pad) for i in range(2000)])  # warm the allocator
        time.sleep(0.5)
        rss0 = rss_kb(s.proc.pid)
        n_batches, per = 40, 1000  # 40,000 events of ~1 KB = ~40 MB published
        for b in range(n_batches):
            publish(c, [pred("S%d-%d" % (b, i), i, pad=pad) for i in range(per)])
            eq(c.get("/healthz").status, 200, "other requests are served while the slow client blocks")
        publish(c, [pred("END", 1)])
        got = d.collect("fast", "prediction.updated", {"symbol": "END"}, timeout=60)
        eq(len(got), 1, "the fast client got its event, none of the others")
        rss1 = rss_kb(s.proc.pid)
        growth_mb = (rss1 - rss0) / 1024.0
        print("    slow client: rss %d -> %d kB (+%.1f MB) while ~40 MB were published" % (rss0, rss1, growth_mb))
        ok(growth_mb < 20, "server RSS grew by less than half of what was published", growth_mb)
        held = metric(c, "predictd_ws_buffered_bytes")
        ok(held <= 2 * buf, "outboxes hold at most push.buffer_bytes each", held)
        ok(metric(c, "predictd_ws_messages_dropped_total") > 0, "the slow client lost its oldest messages")
        # the slow client starts reading: the connection still works and its stats say what it lost
        d.send("slow", {"stats": {}})
        msgs = d.collect("slow", "stats", timeout=120)
        st = msgs[-1]["data"]
        total = 2000 + n_batches * per + 1
        eq(st["sent"] + st["dropped"] + st["queued"], total, "every event for the slow client sent, dropped or queued")
        ok(st["dropped"] > 0, "the slow client's stats count its drops", st)
        ok(len(msgs) - 1 <= st["sent"], "it got no more than was sent", len(msgs), st)


@suite.test
def test_close_handshake_both_ways():
    with Server(env=PUSH_ENV) as s, Driver(s.port) as d:
        c = s.client()
        d.open("a")
        d.subscribe("a", symbols=["A"])
        wait_metric(c, "predictd_ws_clients", 1.0)
        r = d.cmd("close", id="a", code=1000)
        eq(r["code"], 1000, "the server answered the client's close with 1000")
        wait_metric(c, "predictd_ws_clients", 0.0)
        d.open("b")
        d.subscribe("b", jobs="*")
        rc = s.terminate()
        eq(rc, 0, "server exit status with a WebSocket client connected")
        r = d.cmd("wait_closed", id="b", timeout=10 * SLOW)
        ok(r["ok"], "the client saw the connection close", r)
        eq(r["code"], 1001, "close code at shutdown (going away)")
        ok(not s.sanitizer_report(), "no sanitizer report", s.sanitizer_report())


@suite.test
def test_many_clients_each_get_their_own():
    n = 40
    with Server(env=PUSH_ENV) as s, Driver(s.port) as d:
        c = s.client()
        for i in range(n):
            d.open("c%d" % i)
            d.subscribe("c%d" % i, symbols=["SYM%d" % i])
        eq(metric(c, "predictd_ws_clients"), float(n), "clients gauge")
        # a second topic keyed by symbol too (quote.updated queues FIFO, it is not coalesced)
        publish(c, [pred("SYM%d" % i, i) for i in range(n)] +
                [{"topic": "quote.updated", "data": {"symbol": "SYM%d" % i, "v": 1000 + i}} for i in range(n)])
        for i in range(n):
            got = [(m["type"], m["data"]["symbol"]) for m in d.collect("c%d" % i, "quote.updated")]
            eq(got, [("prediction.updated", "SYM%d" % i), ("quote.updated", "SYM%d" % i)], "client %d's messages" % i)
        eq(metric(c, "predictd_ws_messages_sent_total"), 2.0 * n, "messages sent")


@suite.test
def test_max_clients_answers_503_with_retry_after():
    env = dict(PUSH_ENV, PREDICTD_PUSH_MAX_CLIENTS="3")
    with Server(env=env) as s, Driver(s.port) as d:
        c = s.client()
        for i in range(3):
            d.open("c%d" % i)
        r = d.open("c3", expect_ok=False)
        eq(r, {"ok": False, "status": 503}, "the fourth client")
        status, h, body = handshake(s.port)
        eq(status, 503, "raw handshake over the limit")
        ok(int(h.get("retry-after", "0")) > 0, "Retry-After", h)
        eq(json.loads(body)["error"]["code"], "too_many_clients", "error code")
        ok(metric(c, "predictd_ws_connections_total") >= 3, "connections counted")
        d.cmd("close", id="c0")
        wait_metric(c, "predictd_ws_clients", 2.0)
        d.open("c4")
        d.subscribe("c4", symbols=["Z"])


@suite.test
def test_publish_route_is_off_by_default_and_checks_its_input():
    with Server() as s:
        c = s.client()
        r = c.post("/api/v1/events/publish", {"topic": "a.b", "data": {}})
        eq(r.status, 403, "publish route off by default")
        eq(r.json["error"]["code"], "disabled", "error code")
    with Server(env=PUSH_ENV) as s, Driver(s.port) as d:
        c = s.client()
        d.open("a")
        d.subscribe("a", symbols="*")
        for body, field in (([pred("A", 1), {"topic": "Bad Topic", "data": {}}], "[1].topic"),
                            ([pred("A", 1), {"topic": "a.b", "data": [1]}], "[1].data"),
                            ({"topic": "a.b", "data": {}, "extra": 1}, "extra"),
                            ([], None)):
            r = c.post("/api/v1/events/publish", body)
            eq(r.status, 422, "status for %r" % (body,))
            eq(r.json["error"]["field"], field, "field for %r" % (body,))
        publish(c, [pred("FENCE", 1)])
        got = d.collect("a", "prediction.updated", {"symbol": "FENCE"})
        eq(len(got), 1, "nothing of a refused publish was published")


# ---- SSE filters -----------------------------------------------------------------------------
def sse_lines(f):
    """The lines of a chunked text/event-stream body."""
    pending = b""
    while True:
        size = f.readline()
        if not size:
            return
        n = int(size.strip().split(b";")[0], 16)
        if n == 0:
            return
        pending += f.read(n)
        f.readline()  # the CRLF after the chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode()


def sse_events(port, query, publish_fn, until, timeout=20):
    """Opens GET /api/v1/events?query, runs publish_fn once subscribed, returns the (event,
    data) pairs up to and including the first for which until(event, data) holds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.sendall(("GET /api/v1/events?%s HTTP/1.1\r\nHost: x\r\n\r\n" % query).encode())
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    eq(status, 200, "SSE status")
    headers = []
    while True:
        h = f.readline().strip()
        if not h:
            break
        headers.append(h.lower())
    ok(b"transfer-encoding: chunked" in headers, "a chunked stream", headers)
    out, ev, published = [], {}, False
    try:
        for line in sse_lines(f):
            if line.startswith(":") and "subscribed" in line and not published:
                publish_fn()
                published = True
            if line.startswith("event: "):
                ev["event"] = line[7:]
            elif line.startswith("data: "):
                ev["data"] = json.loads(line[6:])
            elif line == "" and "event" in ev:
                out.append((ev["event"], ev["data"]))
                if until(ev["event"], ev["data"]):
                    return out
                ev = {}
        fail("stream ended before the awaited event: %r" % out)
    finally:
        s.close()


@suite.test
def test_sse_symbols_and_jobs_filters():
    with Server(env=PUSH_ENV) as s:
        c = s.client()
        def pub():
            publish(c, [pred("IBM", 1), pred("AAPL", 1), {"topic": "job.progress", "data": {"job_id": "j1"}},
                        {"topic": "job.progress", "data": {"job_id": "j2"}}, {"topic": "pipeline.alert", "data": {}},
                        pred("AAPL", 2)])
        got = sse_events(s.port, "symbols=AAPL,MSFT", pub, lambda e, d: d.get("predicted_return") == 2)
        eq([(e, d.get("symbol") or d.get("job_id")) for e, d in got],
           [("prediction.updated", "AAPL"), ("job.progress", "j1"), ("job.progress", "j2"), ("pipeline.alert", None),
            ("prediction.updated", "AAPL")], "symbols=AAPL,MSFT (jobs and keyless events untouched)")
        got = sse_events(s.port, "symbols=NONE&jobs=j2&topics=job.*,prediction.updated", pub,
                         lambda e, d: d.get("job_id") == "j2")
        eq([(e, d.get("job_id")) for e, d in got], [("job.progress", "j2")], "jobs=j2 with a topic list")
        for q, field in (("symbols=A,,B", "symbols"), ("jobs=a%20b", "jobs"), ("symbols=", "symbols")):
            r = c.get("/api/v1/events?" + q)
            eq(r.status, 422, "status for %s" % q)
            eq(r.json["error"]["field"], field, "field for %s" % q)


def main():
    probe = subprocess.run([CLIENT_PYTHON, "-c", "import websockets"], capture_output=True)
    if probe.returncode != 0:
        bar = "!" * 78
        print("%s\n!!! SKIPPING test_ws: %s cannot import websockets (Debian package\n"
              "!!! python3-websockets; scripts/install-deps.sh installs it). The WebSocket\n"
              "!!! push is NOT tested in this run.\n%s" % (bar, CLIENT_PYTHON, bar), flush=True)
        print("0 passed, 0 failed")
        return 0
    return suite.run()


if __name__ == "__main__":
    sys.exit(main())
