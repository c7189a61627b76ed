"""Session scoring (issue 7) against the real binary: POST /api/v1/sessions/score answers the
heuristic at once and queues the session durably; repeats are idempotent; bad telemetry is a
4xx naming the field and queues nothing; the seed's /api/v1/batch endpoints (stats, process,
result, scheduler start/stop/status, clear behind the admin key); the scheduler runs batches,
retries a failed one, deletes old results; queued sessions survive kill -9 and are scored
exactly once."""
import json
import math
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import SLOW, Server, Suite, eq, fail, ok  # noqa: E402

suite = Suite("sessions")
QUIET = {"PREDICTD_SESSIONS_AUTOSTART": "0"}  # batches only when a test asks


def session(sid, rng=None, bot=False, n=30):
    """A plausible human session (wiggly, irregular), or a scripted one (straight, regular)."""
    rng = rng or random.Random(sid)
    pointer, t, x, y = [], 0.0, 400.0, 300.0
    for i in range(n):
        if bot:
            t, x, y = i * 10.0, 100.0 + i * 20, 100.0 + i * 20
        else:
            t += rng.uniform(20, 120)
            x += rng.gauss(0, 25)
            y += rng.gauss(0, 25)
        pointer.append([round(t, 3), round(x, 3), round(y, 3)])
    clicks = [[t + 50, x, y]] if not bot else [[300, 1, 1], [400, 1, 1], [500, 1, 1]]
    if bot:
        keys = [[600 + 100 * i, "k"] for i in range(4)]
    else:
        keys = [[t + 100 + 130 * i + rng.uniform(0, 80), "k"] for i in range(4)]
    dur = t + 1000 if not bot else 950
    return {"session_id": sid, "duration_ms": dur, "pointer": pointer, "clicks": clicks, "keys": keys,
            "client": {"ua": "test", "screen": [1920, 1080]}}


def submit(c, body, expect=202):
    return c.expect(expect, "POST", "/api/v1/sessions/score", body).json


def stats(c):
    return c.expect(200, "GET", "/api/v1/batch/stats").json


def result(c, sid, expect=200):
    return c.expect(expect, "GET", "/api/v1/batch/result/" + sid).json


def wait_for(what, fn, timeout=30):
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    fail("%s: not true after %ss (last %r)" % (what, timeout * SLOW, last))


def error_of(r, status, code, field):
    eq(r.status, status, "status of %s" % r.text[:200])
    e = r.json.get("error")
    ok(isinstance(e, dict), "error object", r.json)
    eq(e.get("code"), code, "error code of %s" % r.text[:200])
    eq(e.get("field"), field, "error field of %s" % r.text[:200])
    ok(isinstance(e.get("message"), str) and e["message"], "error message", e)


@suite.test
def test_score_then_batch_result():
    with Server(env=QUIET) as srv:
        c = srv.client()
        body = session("s-1")
        a = submit(c, body)
        eq(a["session_id"], "s-1", "session_id")
        eq(a["source"], "heuristic", "source")
        eq(a["queued"], True, "queued")
        ok(0 <= a["score"] <= 1, "score in [0, 1]", a)
        ok(a["verdict"] in ("human", "suspicious", "bot"), "verdict", a)
        r = result(c, "s-1")
        eq(r["status"], "queued", "status before the batch")
        eq(r["source"], "heuristic", "source before the batch")
        eq(r["score"], a["score"], "the heuristic score until the batch")
        eq(r["batch_id"], None, "batch_id before")
        st = stats(c)
        eq((st["queue_depth"], st["pending"], st["total"], st["processed"]), (1, 1, 1, 0), "stats before")
        p = c.expect(200, "POST", "/api/v1/batch/process").json
        eq(p["processed"], 1, "processed")
        eq(p["batch_id"], 1, "batch_id")
        eq(p["queue_depth"], 0, "queue after")
        r = result(c, "s-1")
        eq(r["status"], "processed", "status after")
        eq(r["source"], "forest", "source after")
        eq(r["batch_id"], 1, "batch_id after")
        eq(r["heuristic"]["score"], a["score"], "the heuristic kept beside")
        ok(0 < r["score"] <= 1 and r["processed_at"], "forest score and time", r)
        st = stats(c)
        eq((st["queue_depth"], st["processed"], st["processed_total"], st["batches"], st["last_batch_size"]),
           (0, 1, 1, 1, 1), "stats after")
        ok(st["last_run_at"], "last_run_at", st)
        # an empty queue: a batch of nothing, not an error
        p = c.expect(200, "POST", "/api/v1/batch/process").json
        eq((p["processed"], p["batch_id"]), (0, None), "empty batch")
        result(c, "never-submitted", expect=404)
        r = c.get("/api/v1/batch/result/a%20b")
        error_of(r, 422, "invalid_field", "sessionId")
        r = c.get("/api/v1/sessions/score")
        eq(r.status, 405, "GET on the score route")
        srv.check_clean_exit()


@suite.test
def test_repeat_is_idempotent_and_a_conflict_is_refused():
    with Server(env=QUIET) as srv:
        c = srv.client()
        body = session("dup-1")
        a = submit(c, body)
        # the same telemetry again, keys in another order: the first answer, nothing new queued
        again = json.loads(json.dumps(body))
        again = dict(reversed(list(again.items())))
        b = submit(c, again, expect=200)
        eq(b["duplicate"], True, "duplicate flag")
        eq((b["score"], b["verdict"], b["source"]), (a["score"], a["verdict"], "heuristic"), "same answer")
        other = dict(body, duration_ms=body["duration_ms"] + 1)
        error_of(c.post("/api/v1/sessions/score", other), 409, "session_conflict", "session_id")
        eq(stats(c)["total"], 1, "one session stored")
        c.expect(200, "POST", "/api/v1/batch/process")
        b = submit(c, body, expect=200)  # still idempotent after its batch
        eq(b["score"], a["score"], "answer after the batch")
        eq(stats(c)["queue_depth"], 0, "not queued again")


def bad_bodies():
    good = session("bad-1", n=3)
    g = lambda **kw: dict(good, **kw)  # noqa: E731
    drop = lambda k: {x: v for x, v in good.items() if x != k}  # noqa: E731
    many = [[i, 0, 0] for i in range(51)]
    return [
        ("not json", "{nope", 400, "invalid_json", None),
        ("empty body", "", 400, "invalid_json", None),
        ("NaN", json.dumps(good).replace('"duration_ms": %s' % json.dumps(good["duration_ms"]), '"duration_ms": NaN'),
         400, "invalid_json", None),
        ("Infinity", '{"session_id":"x","duration_ms":Infinity}', 400, "invalid_json", None),
        ("huge number", '{"session_id":"x","duration_ms":1e999}', 400, "invalid_json", None),
        ("array body", [1, 2], 422, "invalid_field", None),
        ("missing session_id", drop("session_id"), 422, "invalid_field", "session_id"),
        ("numeric session_id", g(session_id=5), 422, "invalid_field", "session_id"),
        ("slash in session_id", g(session_id="a/b"), 422, "invalid_field", "session_id"),
        ("long session_id", g(session_id="x" * 129), 422, "invalid_field", "session_id"),
        ("missing duration", drop("duration_ms"), 422, "invalid_field", "duration_ms"),
        ("string duration", g(duration_ms="5000"), 422, "invalid_field", "duration_ms"),
        ("negative duration", g(duration_ms=-1), 422, "invalid_field", "duration_ms"),
        ("missing pointer", drop("pointer"), 422, "invalid_field", "pointer"),
        ("pointer not array", g(pointer={"t": 1}), 422, "invalid_field", "pointer"),
        ("pointer pair", g(pointer=[[1, 2]]), 422, "invalid_field", "pointer[0]"),
        ("pointer string x", g(pointer=[[1, "2", 3]]), 422, "invalid_field", "pointer[0][1]"),
        ("pointer bool t", g(pointer=[[True, 2, 3]]), 422, "invalid_field", "pointer[0][0]"),
        ("pointer times go back", g(pointer=[[5, 0, 0], [6, 0, 0], [2, 0, 0]]), 422, "invalid_field", "pointer[2][0]"),
        ("pointer after the end", g(duration_ms=100, pointer=[[101, 0, 0]], clicks=[], keys=[]), 422,
         "invalid_field", "pointer[0][0]"),
        ("too many pointer events", g(pointer=many), 413, "too_many_events", "pointer"),
        ("clicks null", g(clicks=None), 422, "invalid_field", "clicks"),
        ("click triple of strings", g(clicks=[["a", "b", "c"]]), 422, "invalid_field", "clicks[0][0]"),
        ("key without name", g(keys=[[1]]), 422, "invalid_field", "keys[0]"),
        ("key name a number", g(keys=[[1, 65]]), 422, "invalid_field", "keys[0][1]"),
        ("keys times go back", g(keys=[[9, "a"], [8, "b"]]), 422, "invalid_field", "keys[1][0]"),
        ("missing client", drop("client"), 422, "invalid_field", "client"),
        ("client a string", g(client="chrome"), 422, "invalid_field", "client"),
        ("client too large", g(client={"blob": "x" * 5000}), 413, "client_too_large", "client"),
    ]


@suite.test
def test_bad_telemetry_catalogue_queues_nothing():
    with Server(env=dict(QUIET, PREDICTD_SESSIONS_MAX_EVENTS="50", PREDICTD_SERVER_MAX_BODY_BYTES="65536")) as srv:
        c = srv.client()
        for name, body, status, code, field in bad_bodies():
            r = c.post("/api/v1/sessions/score", body)
            try:
                error_of(r, status, code, field)
            except AssertionError as e:
                fail("%s: %s" % (name, e))
        big = session("big", n=10)
        big["padding"] = "x" * 70000
        r = c.post("/api/v1/sessions/score", big)
        error_of(r, 413, "body_too_large", None)
        st = stats(c)
        eq((st["total"], st["queue_depth"]), (0, 0), "nothing stored after refusals")
        # exactly at the limits is fine
        edge = session("edge", n=50)
        submit(c, edge)
        eq(stats(c)["total"], 1, "the session at the limit is stored")


@suite.test
def test_clear_needs_the_admin_key():
    with Server(env=QUIET) as srv:  # no key configured: disabled
        c = srv.client()
        error_of(c.post("/api/v1/batch/clear", headers={"X-Admin-Key": "anything"}), 403, "admin_disabled", None)
    with Server(env=dict(QUIET, PREDICTD_SESSIONS_ADMIN_KEY="k-123")) as srv:
        c = srv.client()
        for i in range(3):
            submit(c, session("clr-%d" % i))
        error_of(c.post("/api/v1/batch/clear"), 401, "unauthorized", "X-Admin-Key")
        error_of(c.post("/api/v1/batch/clear", headers={"X-Admin-Key": "k-12"}), 403, "forbidden", "X-Admin-Key")
        error_of(c.post("/api/v1/batch/clear", headers={"Authorization": "Bearer k-1234"}), 403, "forbidden",
                 "X-Admin-Key")
        eq(stats(c)["queue_depth"], 3, "nothing cleared by refused calls")
        error_of(c.post("/api/v1/batch/clear?scope=everything", headers={"X-Admin-Key": "k-123"}), 422,
                 "invalid_field", "scope")
        r = c.expect(200, "POST", "/api/v1/batch/clear", headers={"X-Admin-Key": "k-123"}).json
        eq(r, {"scope": "queue", "deleted": 3}, "clear the queue")
        submit(c, session("clr-9"))
        c.expect(200, "POST", "/api/v1/batch/process")
        r = c.expect(200, "POST", "/api/v1/batch/clear?scope=all", headers={"Authorization": "Bearer k-123"}).json
        eq(r, {"scope": "all", "deleted": 1}, "clear everything")
        st = stats(c)
        eq((st["total"], st["batches"], st["reference_size"]), (0, 0, 0), "stats after clear all")
        result(c, "clr-9", expect=404)


@suite.test
def test_scheduler_start_stop_and_runs():
    env = dict(QUIET, PREDICTD_SESSIONS_INTERVAL_S="1", PREDICTD_SESSIONS_MIN_BATCH="4",
               PREDICTD_SESSIONS_MAX_BATCH="3")
    with Server(env=env) as srv:
        c = srv.client()
        s = c.expect(200, "GET", "/api/v1/batch/scheduler/status").json
        eq((s["running"], s["interval_s"], s["min_batch"], s["max_batch"], s["max_wait_s"]), (False, 1, 4, 3, 300),
           "status")
        for i in range(5):
            submit(c, session("sch-%d" % i))
        s = c.expect(200, "POST", "/api/v1/batch/scheduler/start").json
        eq(s["running"], True, "started")
        # 5 >= min_batch 4: a batch of 3 at once, then 2 left wait for max_wait (300 s)
        wait_for("first batch", lambda: stats(c)["batches"] == 1)
        st = stats(c)
        eq((st["queue_depth"], st["last_batch_size"]), (2, 3), "one batch of max_batch")
        eq(st["scheduler"]["running"], True, "stats shows the scheduler")
        s = c.expect(200, "POST", "/api/v1/batch/scheduler/stop").json
        eq(s["running"], False, "stopped")
        for i in range(5, 9):
            submit(c, session("sch-%d" % i))
        time.sleep(2.5)  # two intervals and more: a stopped scheduler runs nothing
        eq(stats(c)["queue_depth"], 6, "nothing run while stopped")
        c.expect(200, "POST", "/api/v1/batch/scheduler/start")
        wait_for("queue below min_batch", lambda: stats(c)["queue_depth"] < 4)
        st = stats(c)
        eq(st["processed_total"] + st["queue_depth"], 9, "every session processed or still queued")
        srv.check_clean_exit()


@suite.test
def test_failed_batches_are_retried_with_backoff():
    env = {"PREDICTD_SESSIONS_INTERVAL_S": "1", "PREDICTD_SESSIONS_MIN_BATCH": "1",
           "PREDICTD_SESSIONS_FAULT_BATCH_FAILURES": "3", "PREDICTD_SESSIONS_RETRY_BASE_MS": "100"}
    with Server(env=env) as srv:
        c = srv.client()
        submit(c, session("retry-1"))
        wait_for("processed after retries", lambda: result(c, "retry-1")["status"] == "processed")
        st = stats(c)
        eq((st["failures"], st["consecutive_failures"], st["batches"], st["processed_total"]), (3, 0, 1, 1),
           "failures counted, then one batch")
        m = c.expect(200, "GET", "/metrics").text
        ok('predictd_sessions_batches_total{outcome="failed"} 3' in m, "failed batches in /metrics")
        ok('predictd_sessions_batches_total{outcome="ok"} 1' in m, "ok batch in /metrics")


@suite.test
def test_kill9_with_queued_sessions_then_restart():
    with Server(env=QUIET) as srv:
        c = srv.client()
        answers = {}
        for i in range(25):
            sid = "k9-%02d" % i
            answers[sid] = submit(c, session(sid, bot=(i % 8 == 0)))
        srv.kill9()
        # restarted with the scheduler on: every session is still there, then scored once
        srv.env.update({"PREDICTD_SESSIONS_AUTOSTART": "1", "PREDICTD_SESSIONS_INTERVAL_S": "1",
                        "PREDICTD_SESSIONS_MIN_BATCH": "5", "PREDICTD_SESSIONS_MAX_BATCH": "10"})
        srv.start()
        c = srv.client()
        st = stats(c)
        eq(st["total"], 25, "all 25 sessions survived kill -9")
        for sid, a in answers.items():
            r = result(c, sid)
            eq(r["heuristic"]["score"], a["score"], "%s keeps its heuristic answer" % sid)
        # kill -9 again while batches may be running, twice: commits are all or nothing
        for _ in range(2):
            time.sleep(0.3)
            srv.kill9()
            srv.start()
        c = srv.client()
        wait_for("queue drained", lambda: stats(c)["queue_depth"] == 0)
        st = stats(c)
        eq(st["processed"], 25, "every session processed")
        eq(st["processed_total"], 25, "each scored exactly once (the counter commits with the results)")
        eq(st["reference_seen"], 25, "each added to the reservoir once")
        batches = {}
        for sid in answers:
            r = result(c, sid)
            eq(r["status"], "processed", sid)
            batches.setdefault(r["batch_id"], []).append(sid)
        ok(all(len(v) <= 10 for v in batches.values()), "batches of at most max_batch", batches)
        eq(len(batches), st["batches"], "every batch scored sessions")


@suite.test
def test_retention_deletes_old_results():
    env = {"PREDICTD_SESSIONS_INTERVAL_S": "1", "PREDICTD_SESSIONS_RETENTION_S": "1",
           "PREDICTD_SESSIONS_AUTOSTART": "0"}
    with Server(env=env) as srv:
        c = srv.client()
        submit(c, session("old-1"))
        c.expect(200, "POST", "/api/v1/batch/process")
        submit(c, session("queued-1"))
        wait_for("old result deleted", lambda: c.get("/api/v1/batch/result/old-1").status == 404)
        eq(result(c, "queued-1")["status"], "queued", "queued sessions are never deleted")
        m = c.expect(200, "GET", "/metrics").text
        ok('predictd_sessions_deleted_total{reason="retention"} 1' in m, "retention in /metrics")


@suite.test
def test_same_seed_same_scores_and_metrics():
    rng = random.Random(7)
    bodies = [session("det-%02d" % i, rng=rng, bot=(i % 6 == 5)) for i in range(24)]
    scores = []
    for _ in range(2):
        with Server(env=QUIET) as srv:
            c = srv.client()
            for b in bodies:
                submit(c, b)
            c.expect(200, "POST", "/api/v1/batch/process")
            scores.append({b["session_id"]: result(c, b["session_id"])["score"] for b in bodies})
            m = c.expect(200, "GET", "/metrics").text
            for needle in ("predictd_sessions_queue_depth 0", "predictd_sessions_batch_size_count 1",
                           "predictd_sessions_batch_seconds_count 1", 'predictd_sessions_submitted_total{outcome="new"} 24',
                           'predictd_sessions_score_count{source="forest",verdict='):
                ok(needle in m, "/metrics has %s" % needle)
    eq(scores[0], scores[1], "forest scores of two servers with the same seed")
    bots = [scores[0]["det-%02d" % i] for i in range(24) if i % 6 == 5]
    humans = [scores[0]["det-%02d" % i] for i in range(24) if i % 6 != 5]
    ok(min(bots) > max(humans), "scripted sessions score above the human ones", bots, humans)


if __name__ == "__main__":
    sys.exit(suite.run())
