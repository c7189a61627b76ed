"""Process life cycle: SIGTERM with work in hand, restart, retries under injected faults,
dead letters and their retry, one data dir per server, and the retention of finished jobs."""
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import (SLOW, Server, Suite, check_job_results, eq, fail, load_graph, ok,  # noqa: E402
                    random_graph)

suite = Suite("lifecycle")


@suite.test
def test_sigterm_with_jobs_running_exits_0_and_restart_completes_them():
    rng = random.Random(5)
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "5", "PREDICTD_JOBS_WORKERS": "1",
           "PREDICTD_JOBS_SHUTDOWN_DEADLINE_MS": "2000", "PREDICTD_JOBS_MAX_CHUNKS": "1000000"}
    s = Server(env=env)
    try:
        s.start()
        c = s.client()
        ents, rels, oracle = random_graph(rng, 1500, 3000)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jobs = []
        for k in range(4):
            sub = rng.sample(ids, 1200)
            jobs.append((c.submit(sub, temperature=0.9, horizon="3h").json["job_id"], sub))
        # let it start on them, then ask it to stop
        deadline = time.time() + 10 * SLOW
        while c.job(jobs[0][0])["status"] == "QUEUED" and time.time() < deadline:
            time.sleep(0.01)
        unfinished_before = [j for j, _ in jobs if c.job(j)["status"] != "COMPLETED"]
        ok(unfinished_before, "some jobs still running at SIGTERM (make the work bigger)")
        c.close()
        t0 = time.time()
        rc = s.terminate(timeout=30)
        took = time.time() - t0
        eq(rc, 0, "exit status after SIGTERM (log tail:\n%s\n)" % s.log_tail())
        ok(took < 2.0 + 8.0 * SLOW, "exited within the shutdown deadline plus slack", took)
        rep = s.sanitizer_report()
        ok(rep is None, "no sanitizer report", rep)
        # restart on the same data dir: every job finishes, every result exactly once
        s.start()
        c = s.client()
        for jid, sub in jobs:
            j = c.wait_job(jid, timeout=120)
            eq(j["status"], "COMPLETED", "job %s after restart" % jid)
            res, meta, _ = c.all_results(jid, limit=10000)
            check_job_results(res, sub, oracle, 0.9, 3.0, jid)
        s.check_clean_exit()
    finally:
        s.cleanup()


@suite.test
def test_sigterm_mid_job_then_restart_gives_every_result_once():
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "1", "PREDICTD_JOBS_WORKERS": "1",
           "PREDICTD_JOBS_SHUTDOWN_DEADLINE_MS": "3000", "PREDICTD_JOBS_MAX_CHUNKS": "1000000"}
    with Server(env=env) as s:
        c = s.client()
        c.upsert([{"entity_id": "E%d" % i, "properties": {"spin": 1}} for i in range(3000)])
        jid = c.submit(["E%d" % i for i in range(3000)]).json["job_id"]
        os.kill(s.proc.pid, 15)
        # the process must end by itself with 0; no new job may be taken while it stops
        try:
            rc = s.proc.wait(timeout=30 * SLOW)
        except Exception:
            fail("server did not exit within 30s of SIGTERM")
        eq(rc, 0, "exit status")
        s.start()
        c = s.client()
        eq(c.wait_job(jid, timeout=120)["status"], "COMPLETED", "job after restart")
        res, meta, _ = c.all_results(jid, limit=10000)
        eq(len(res), 3000, "results after restart")
        eq(len({r["entity_id"] for r in res}), 3000, "distinct results after restart")
        s.check_clean_exit()


@suite.test
def test_injected_chunk_failures_are_retried():
    rng = random.Random(8)
    env = {"PREDICTD_FAULTS_CHUNK_FAILURES": "3", "PREDICTD_JOBS_CHUNK_SIZE": "40",
           "PREDICTD_JOBS_BACKOFF_BASE_MS": "20", "PREDICTD_JOBS_BACKOFF_MAX_MS": "100"}
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 300, 600)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=2.0, horizon="1h").json["job_id"]
        j = c.wait_job(jid, timeout=60)
        eq(j["status"], "COMPLETED", "status despite 3 failed attempts")
        eq(j["progress"], 1.0, "progress")
        res, meta, _ = c.all_results(jid, limit=10000)
        check_job_results(res, ids, oracle, 2.0, 1.0, "retried job")
        dl = c.expect(200, "GET", "/api/v1/deadletters").json["deadletters"]
        eq(dl, [], "no dead letters when the retries succeed")
        s.check_clean_exit()


@suite.test
def test_dead_letters_and_their_retry():
    rng = random.Random(9)
    env = {"PREDICTD_FAULTS_CHUNK_FAILURES": "3", "PREDICTD_JOBS_MAX_ATTEMPTS": "1",
           "PREDICTD_JOBS_CHUNK_SIZE": "10", "PREDICTD_JOBS_WORKERS": "1"}
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 60, 100)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=1.2, horizon="6h").json["job_id"]
        j = c.wait_job(jid, timeout=60)
        eq(j["status"], "FAILED", "a job with dead chunks ends FAILED")
        dl = c.expect(200, "GET", "/api/v1/deadletters").json["deadletters"]
        eq(len(dl), 3, "three chunks in the dead letters (the first three attempts fail)")
        for d in dl:
            eq(d["job_id"], jid, "dead letter's job")
            eq(d["attempts"], 1, "attempts recorded")
            ok(isinstance(d["reason"], str) and d["reason"], "dead letter has a reason", d)
            ok(isinstance(d["id"], int), "dead letter id", d)
        eq(len({d["chunk"] for d in dl}), 3, "three distinct chunks")
        # the dead chunks' 30 entities are failed, the same in the job and in its results
        res, meta, _ = c.all_results(jid, limit=10000)
        dead_ents = [r for r in res if r.get("error", {}).get("code") == "chunk_failed"]
        eq(len(dead_ents), 30, "the dead chunks' entities are errors in the results")
        eq(j["failed"], sum(1 for r in res if "error" in r), "job status counts every failed entity")
        eq(j["successful"] + j["failed"], 60, "every entity accounted for")
        eq(meta["failed"], j["failed"], "results metadata agrees with the job status")
        # paging the dead letters
        first = c.expect(200, "GET", "/api/v1/deadletters?limit=2").json
        eq(len(first["deadletters"]), 2, "first page")
        ok(first["next_cursor"], "a next cursor", first)
        rest = c.expect(200, "GET", "/api/v1/deadletters?limit=2&cursor=" + first["next_cursor"]).json
        eq([d["id"] for d in first["deadletters"] + rest["deadletters"]], [d["id"] for d in dl], "pages")
        for d in dl:
            r = c.expect(200, "POST", "/api/v1/deadletters/%d/retry" % d["id"])
            eq(r.json["job_id"], jid, "retry answers the job id")
        c.expect(404, "POST", "/api/v1/deadletters/%d/retry" % dl[0]["id"])  # already retried
        j = c.wait_job(jid, timeout=60, states=("COMPLETED",))
        eq(j["progress"], 1.0, "progress after the retries")
        res, meta, _ = c.all_results(jid, limit=10000)
        check_job_results(res, ids, oracle, 1.2, 6.0, "job after dead-letter retry")
        eq(c.job(jid)["failed"], sum(1 for r in res if "error" in r),
           "after the retries the job counts only what its chunks computed as failed")
        eq(c.expect(200, "GET", "/api/v1/deadletters").json["deadletters"], [], "dead letters emptied")
        s.check_clean_exit()


@suite.test
def test_second_server_on_same_data_dir_fails_clearly():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        other = Server(data_dir=s.data_dir)
        other.root = s.root
        try:
            other.start(wait=False)
            try:
                rc = other.proc.wait(timeout=15 * SLOW)
            except Exception:
                fail("a second server on the same data dir kept running")
            ok(rc != 0, "second server exits non-zero", rc)
            log = other.log_text().lower()
            ok("lock" in log or "in use" in log or "another" in log or "running" in log,
               "second server says why", other.log_tail())
        finally:
            other.kill9()
        c.expect(200, "GET", "/readyz")
        eq(c.expect(200, "GET", "/api/v1/entities/A").json["properties"], {"spin": 1}, "first server unharmed")
        s.check_clean_exit()


@suite.test
def test_restart_keeps_graph_jobs_and_results():
    rng = random.Random(3)
    with Server() as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 200, 400)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=0.5, horizon="45m").json["job_id"]
        c.wait_job(jid)
        res1, _, _ = c.all_results(jid)
        s.check_clean_exit()
        s.start()
        c = s.client()
        eq(c.job(jid)["status"], "COMPLETED", "job after restart")
        res2, _, _ = c.all_results(jid)
        eq(res2, res1, "results identical after restart")
        # the graph was rebuilt from the store: a new job gives the same values
        jid2 = c.submit(ids, temperature=0.5, horizon="45m").json["job_id"]
        c.wait_job(jid2)
        res3, _, _ = c.all_results(jid2)
        check_job_results(res3, ids, oracle, 0.5, 0.75, "job on the reloaded graph")
        s.check_clean_exit()


@suite.test
def test_finished_jobs_are_deleted_after_retention():
    rng = random.Random(11)
    with Server(env={"PREDICTD_JOBS_RETENTION_S": "2"}) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 40, 60)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        old = c.submit(ids[:20], temperature=1.1, horizon="2h").json["job_id"]
        j = c.wait_job(old)
        eq(j["status"], "COMPLETED", "the first job")
        res, _, _ = c.all_results(old)
        eq(len(res), 20, "its results, before the retention passed")
        # kept at least retention_s after it finished, deleted at most a sweep (1 s here) later
        deadline = time.time() + 15
        while c.get("/api/v1/jobs/" + old).status == 200 and time.time() < deadline:
            time.sleep(0.2)
        r = c.expect(404, "GET", "/api/v1/jobs/" + old)
        eq(r.json["error"]["code"], "job_not_found", "an expired job is not found")
        ok("deleted 2 s after" in r.json["error"]["message"], "the 404 says why", r.json)
        c.expect(404, "GET", "/api/v1/jobs/%s/results" % old)
        listed = [x["job_id"] for x in c.expect(200, "GET", "/api/v1/jobs?limit=100").json["jobs"]]
        ok(old not in listed, "an expired job is not listed", listed)
        # a job that finished within the retention is whole
        new = c.submit(ids[20:], temperature=1.1, horizon="2h").json["job_id"]
        c.wait_job(new)
        res, meta, _ = c.all_results(new)
        check_job_results(res, ids[20:], oracle, 1.1, 2.0, "a job within the retention")
        text = c.expect(200, "GET", "/metrics").body.decode()
        m = re.search(r"^predictd_jobs_expired_total (\S+)$", text, re.M)
        ok(m and float(m.group(1)) >= 1, "predictd_jobs_expired_total counts it", m and m.group(0))
        s.check_clean_exit()



@suite.test
def test_retention_zero_keeps_finished_jobs():
    rng = random.Random(12)
    with Server(env={"PREDICTD_JOBS_RETENTION_S": "0"}) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 10, 12)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=0.9, horizon="1h").json["job_id"]
        c.wait_job(jid)
        # the sweep would run every second with a retention of a few seconds; with 0 there is
        # none, and nothing is deleted
        time.sleep(2.5)
        res, _, _ = c.all_results(jid)
        check_job_results(res, ids, oracle, 0.9, 1.0, "a job kept with retention 0")
        r = c.expect(404, "GET", "/api/v1/jobs/JOB-does-not-exist")
        eq(r.json["error"]["message"], "no job with id 'JOB-does-not-exist'",
           "with nothing deleted, a 404 does not speak of a retention")
        text = c.expect(200, "GET", "/metrics").body.decode()
        m = re.search(r"^predictd_jobs_expired_total (\S+)$", text, re.M)
        ok(m and float(m.group(1)) == 0, "no job expired", m and m.group(0))
        s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
