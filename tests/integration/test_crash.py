"""Kill -9 at random moments while clients submit. A 2xx means durable: after the restarts
every accepted job completes with each entity's result exactly once and the right values,
and an Idempotency-Key used before a crash still names the same job after it."""
import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import (SLOW, Client, Server, Suite, check_job_results, eq, fail, load_graph, ok,  # noqa: E402
                    random_graph)

suite = Suite("crash")
T, HORIZON, H_HOURS = 1.1, "8h", 8.0
SEED = int(os.environ.get("PREDICTD_CRASH_SEED", "0")) or random.randrange(1, 1 << 30)


class Submitter(threading.Thread):
    """Submits jobs of ~300 random ids until stopped; records every job that got a 2xx."""

    def __init__(self, k, server, ids, stop):
        super().__init__(daemon=True)
        self.rng = random.Random(SEED * 31 + k)
        self.server, self.ids, self.stop = server, ids, stop
        self.accepted = []   # (job_id, ids)
        self.errors = 0
        self.refused = []    # non-2xx answers (should be none but 503 while starting)

    def run(self):
        c = None
        while not self.stop.is_set():
            try:
                if c is None or c.port != self.server.port:
                    if c:
                        c.close()
                    c = Client(self.server.port, timeout=10)
                sub = self.rng.sample(self.ids, self.rng.randint(250, 350))
                if self.rng.random() < 0.2:
                    sub.append("NOT-THERE-%d" % self.rng.randrange(1000))
                r = c.post("/api/v1/predict/batch/ising",
                           {"entity_ids": sub, "prediction_type": "spin_flip_probability",
                            "parameters": {"temperature": T, "time_horizon": HORIZON}})
                if 200 <= r.status < 300:
                    self.accepted.append((r.json["job_id"], sub))
                    time.sleep(self.rng.uniform(0.02, 0.08))  # keeps the check at the end bounded
                else:
                    self.refused.append(r.status)
                    time.sleep(0.05)
            except Exception:  # the server was killed under us: try again shortly
                self.errors += 1
                if c:
                    c.close()
                c = None
                time.sleep(0.02)
        if c:
            c.close()


@suite.test
def test_kill9_while_submitting_loses_and_duplicates_nothing():
    crash_cycles(sigterm=False)


@suite.test
def test_sigterm_while_submitting_loses_and_duplicates_nothing():
    crash_cycles(sigterm=True)


def crash_cycles(sigterm):
    print("    seed %d (PREDICTD_CRASH_SEED to repeat)" % SEED, flush=True)
    rng = random.Random(SEED + (1 if sigterm else 0))
    t_start = time.time()
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "50", "PREDICTD_JOBS_LEASE_MS": "2000"}
    s = Server(env=env)
    stop = threading.Event()
    threads = []
    try:
        s.start()
        c = s.client()
        ents, rels, oracle = random_graph(rng, 2000, 5000, prefix="N")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        threads = [Submitter(k, s, ids, stop) for k in range(4)]
        for t in threads:
            t.start()
        idem = []  # (key, job_id, ids) submitted before a crash
        crashes = rng.randint(2, 3) if sigterm else rng.randint(3, 5)
        for n in range(crashes):
            time.sleep(rng.uniform(0.3, 1.5))
            key = "crash-%d-%d" % (SEED, n)
            sub = rng.sample(ids, 300)
            try:
                r = c.submit(sub, temperature=T, horizon=HORIZON, headers={"Idempotency-Key": key})
                idem.append((key, r.json["job_id"], sub))
            except Exception as e:  # noqa: BLE001 -- must not happen: the server is up here
                fail("idempotent submission before crash %d failed: %s" % (n, e))
            time.sleep(rng.uniform(0.0, 0.5))
            if sigterm:
                rc = s.terminate(timeout=30)
                eq(rc, 0, "exit status after SIGTERM %d (log:\n%s)" % (n, s.log_tail()))
            else:
                s.kill9()
            c.close()
            port = s.port
            try:
                s.start(port=port)  # same port, same data dir
            except Exception:
                s.kill9()
                s.start()           # the port was taken meanwhile: any port
            c = s.client()
            # the same key after the crash names the same job
            key, jid, sub = idem[-1]
            r = c.expect((200, 202), "POST", "/api/v1/predict/batch/ising",
                         {"entity_ids": sub, "prediction_type": "spin_flip_probability",
                          "parameters": {"temperature": T, "time_horizon": HORIZON}},
                         headers={"Idempotency-Key": key})
            eq(r.json["job_id"], jid, "job of key %s after crash %d" % (key, n))
        time.sleep(rng.uniform(0.2, 0.8))
        stop.set()
        for t in threads:
            t.join(timeout=20)
        accepted = [a for t in threads for a in t.accepted] + [(j, sub) for _, j, sub in idem]
        print("    %d crashes, %d jobs accepted, %d client errors, refused %s" % (
            crashes, len(accepted), sum(t.errors for t in threads),
            sorted(set(st for t in threads for st in t.refused))), flush=True)
        ok(len(accepted) >= 10, "enough jobs accepted to mean something", len(accepted))
        eq(len({j for j, _ in accepted}), len(accepted), "distinct job ids")
        for t in threads:
            ok(all(st in (429, 503) for st in t.refused), "only 429/503 refusals", t.refused)
        # every accepted job completes with every entity exactly once and the right values
        deadline = t_start + 80 * SLOW
        for jid, sub in accepted:
            j = c.wait_job(jid, timeout=max(5, deadline - time.time()))
            eq(j["status"], "COMPLETED", "status of %s" % jid)
            res, meta, _ = c.all_results(jid, limit=10000)
            check_job_results(res, sub, oracle, T, H_HOURS, jid)
            distinct = len(set(sub))
            eq(meta["total_entities"], distinct, "%s total_entities" % jid)
            eq(meta["successful"] + meta["failed"], distinct, "%s successful + failed" % jid)
        # the job list knows them all (it may know more: a commit whose 202 was lost in a kill)
        listed = set()
        cursor = None
        while True:
            page = c.expect(200, "GET", "/api/v1/jobs?limit=1000" + ("&cursor=" + cursor if cursor else "")).json
            listed |= {j["job_id"] for j in page["jobs"]}
            cursor = page.get("next_cursor")
            if not cursor:
                break
        missing = [j for j, _ in accepted if j not in listed]
        eq(missing, [], "accepted jobs missing from the job list")
        s.check_clean_exit()
        ok(time.time() - t_start < 90 * SLOW, "bounded time", time.time() - t_start)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        s.cleanup()


if __name__ == "__main__":
    sys.exit(suite.run())
