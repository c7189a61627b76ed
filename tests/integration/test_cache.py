"""The result cache against a real server: a result served from the cache is never older than
the last change to what it depends on (random interleavings of property changes,
relationship creates and deletes, entity deletes and overlapping Ising jobs, every result
checked against MODELS.md's closed form), jobs answered COMPLETED at submission, partial
hits, the invalidation endpoint and its validation, and the /metrics counters."""
import json
import os
import random
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import (Server, Suite, check_job_results, eq, load_graph, ok, random_graph)  # noqa: E402

suite = Suite("cache")
# small chunks: jobs span many chunks, so whole-chunk prefill and partial hits both happen
# the queue path (what the cache saves the workers); inline jobs: test_api's inline test
ENV = {"PREDICTD_JOBS_CHUNK_SIZE": "16", "PREDICTD_JOBS_INLINE_MAX_ENTITIES": "0"}
T_VALUES = (0.7, 1.5)


def metric(c, name, model="ising"):
    text = c.expect(200, "GET", "/metrics").body.decode()
    m = re.search(r'^%s\{model="%s"\} ([0-9.e+-]+)$' % (re.escape(name), model), text, re.M)
    return float(m.group(1)) if m else 0.0


def run_job(c, ids, T, horizon="24h"):
    """Submits, waits, returns (202 answer, results)."""
    r = c.submit(ids, temperature=T, horizon=horizon).json
    c.wait_job(r["job_id"])
    results, meta, _ = c.all_results(r["job_id"])
    return r, results


def rels_remove(oracle, a, b):
    oracle.rels = [r for r in oracle.rels if {r[0], r[1]} != {a, b}]
    oracle._adj_key = None


def rels_add(oracle, a, b, w):
    oracle.rels.append((a, b, w))
    oracle._adj_key = None


def random_change(c, oracle, rng, ids, what=None):
    """One change to the graph through the API, mirrored in the oracle."""
    kind = what or rng.choice(["spin", "spin", "field", "nospin", "rel_add", "rel_add", "rel_del",
                               "delete", "recreate"])
    eid = rng.choice(ids)
    if kind in ("spin", "field", "nospin"):
        if eid not in oracle.props:
            return random_change(c, oracle, rng, ids, "recreate")
        if kind == "spin":
            patch = {"spin": rng.choice([1, -1])}
        elif kind == "field":
            patch = {"field": round(rng.uniform(-1, 1), 3)}
        else:
            patch = {"spin": None}
        c.expect(200, "PATCH", "/api/v1/entities/" + eid, {"properties": patch})
        props = dict(oracle.props[eid])
        for k, v in patch.items():
            if v is None:
                props.pop(k, None)
            else:
                props[k] = v
        oracle.props[eid] = props
    elif kind == "rel_add":
        other = rng.choice(ids)
        if other == eid or eid not in oracle.props or other not in oracle.props:
            return
        w = round(rng.uniform(-1, 2), 3)
        c.relate([{"source": eid, "target": other, "weight": w}])
        rels_add(oracle, eid, other, w)
    elif kind == "rel_del":
        mine = [r for r in oracle.rels if eid in (r[0], r[1])]
        if not mine:
            return
        a, b, _ = rng.choice(mine)
        c.expect(200, "DELETE", "/api/v1/relationships", [{"source": a, "target": b}])
        rels_remove(oracle, a, b)
    elif kind == "delete":
        if eid not in oracle.props:
            return
        c.expect(200, "DELETE", "/api/v1/entities/" + eid)
        del oracle.props[eid]
        oracle.rels = [r for r in oracle.rels if eid not in (r[0], r[1])]
        oracle._adj_key = None
    else:  # recreate (or overwrite) with fresh properties
        props = {"spin": rng.choice([1, -1]), "field": round(rng.uniform(-1, 1), 3)}
        c.upsert([{"entity_id": eid, "properties": props}])
        oracle.props[eid] = props


@suite.test
def test_repeated_job_completes_at_submission():
    rng = random.Random(7)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 120, 300, prefix="R")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        first, results = run_job(c, ids[:100], 1.5)
        check_job_results(results, ids[:100], oracle, 1.5, 24.0, "first run")
        hits0 = metric(c, "predictd_cache_hits_total")
        second = c.submit(ids[:100], temperature=1.5).json
        eq(second["status"], "COMPLETED", "the 202 answer of an all-cached job")
        # at once, without waiting: the job and its results are there
        eq(c.job(second["job_id"])["status"], "COMPLETED", "job status right after submission")
        results, meta, _ = c.all_results(second["job_id"])
        check_job_results(results, ids[:100], oracle, 1.5, 24.0, "served from cache")
        eq(meta["total_entities"], 100, "metadata.total_entities")
        eq(meta["successful"] + meta["failed"], 100, "successful + failed")
        eq(metric(c, "predictd_cache_hits_total") - hits0, 100.0, "hits added by the second job")
        # the same ids in another order and with duplicates: still every entity cached
        mixed = list(reversed(ids[:100])) + ids[:5]
        r = c.submit(mixed, temperature=1.5).json
        eq(r["status"], "COMPLETED", "reordered all-cached job")
        results, _, _ = c.all_results(r["job_id"])
        check_job_results(results, mixed, oracle, 1.5, 24.0, "reordered")
        # other parameters are other entries
        r = c.submit(ids[:100], temperature=0.9).json
        ok(r["status"] != "COMPLETED", "another temperature is not served from cache", r)
        c.wait_job(r["job_id"])
        s.check_clean_exit()


@suite.test
def test_partial_hits_compute_only_the_missing():
    rng = random.Random(11)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 200, 200, prefix="P")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        run_job(c, ids[:100], 1.0)
        h0, m0 = metric(c, "predictd_cache_hits_total"), metric(c, "predictd_cache_misses_total")
        # 100 cached + 100 new, interleaved in blocks so some chunks are whole hits, some mixed
        order = ids[:48] + ids[100:150] + ids[48:100] + ids[150:]
        r, results = run_job(c, order, 1.0)
        check_job_results(results, order, oracle, 1.0, 24.0, "partially cached job")
        eq(metric(c, "predictd_cache_hits_total") - h0, 100.0, "hits: the cached half")
        eq(metric(c, "predictd_cache_misses_total") - m0, 100.0, "misses: the new half")
        s.check_clean_exit()


@suite.test
def test_results_served_at_submission_survive_kill9():
    """Cached results are written with the job in its transaction: a kill -9 right after the
    202 loses none of them, and a partly cached job finishes after the restart with every
    result exactly once."""
    rng = random.Random(21)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 100, 150, prefix="K")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        run_job(c, ids[:64], 1.0)
        full = c.submit(ids[:64], temperature=1.0).json
        eq(full["status"], "COMPLETED", "all-cached job")
        part = c.submit(ids[:64] + ids[64:], temperature=1.0).json
        s.kill9()
        s.start()
        c = s.client()
        eq(c.job(full["job_id"])["status"], "COMPLETED", "all-cached job after kill -9")
        results, _, _ = c.all_results(full["job_id"])
        check_job_results(results, ids[:64], oracle, 1.0, 24.0, "all-cached job after restart")
        job = c.wait_job(part["job_id"])
        eq(job["status"], "COMPLETED", "partly cached job after restart")
        results, _, _ = c.all_results(part["job_id"])
        check_job_results(results, ids, oracle, 1.0, 24.0, "partly cached job after restart")
        s.check_clean_exit()


@suite.test
def test_never_stale_under_random_interleavings():
    rng = random.Random(int(os.environ.get("PREDICTD_TEST_SEED", "20261125")))
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 150, 260, prefix="S")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        served = 0
        for rnd in range(60):
            for _ in range(rng.choice([0, 1, 1, 2, 4])):
                random_change(c, oracle, rng, ids)
            T = rng.choice(T_VALUES)
            start = rng.randrange(0, 100)
            job_ids = ids[start:start + rng.randrange(20, 60)]
            h0 = metric(c, "predictd_cache_hits_total")
            r, results = run_job(c, job_ids, T)
            check_job_results(results, job_ids, oracle, T, 24.0, "round %d (T=%g)" % (rnd, T))
            served += metric(c, "predictd_cache_hits_total") - h0
        ok(served > 500, "most rounds were served partly from the cache", served)
        s.check_clean_exit()


@suite.test
def test_changes_racing_with_jobs_leave_nothing_stale():
    """Changes while jobs run: results of racing jobs may show either side of a change, but
    nothing stale may stay cached: once the changes stop, every result equals a fresh
    recomputation."""
    rng = random.Random(99)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 120, 240, prefix="C")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        stop = threading.Event()
        errors = []

        def mutate():
            mc = s.client()
            mrng = random.Random(5)
            try:
                while not stop.is_set():
                    random_change(mc, oracle, mrng, ids)
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(e)

        t = threading.Thread(target=mutate)
        t.start()
        try:
            deadline = time.time() + 4
            while time.time() < deadline:
                T = rng.choice(T_VALUES)
                start = rng.randrange(0, 80)
                r = c.submit(ids[start:start + 40], temperature=T).json
                c.wait_job(r["job_id"])
        finally:
            stop.set()
            t.join()
        ok(not errors, "the mutator ran without errors", errors[:1])
        for T in T_VALUES:
            for _ in range(2):  # the second run is served from the cache
                _, results = run_job(c, ids, T)
                check_job_results(results, ids, oracle, T, 24.0, "after the race (T=%g)" % T)
        s.check_clean_exit()


@suite.test
def test_invalidate_endpoint():
    rng = random.Random(3)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 40, 60, prefix="I")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        good = [i for i in ids if oracle.spin(i) is not None]
        run_job(c, good, 1.0)
        eq(c.submit(good, temperature=1.0).json["status"], "COMPLETED", "cached before invalidating")
        for body, field in [([], None), ({"everything": True}, "everything"), ({"all": "yes"}, "all"),
                            ({"model": "nope"}, "model"), ({"model": 3}, "model"),
                            ({"entity_ids": []}, "entity_ids"), ({"entity_ids": "I-00001"}, "entity_ids"),
                            ({"entity_ids": [1]}, "entity_ids[0]"), ({"entity_ids": [""]}, "entity_ids[0]"),
                            ({}, None), ({"all": False}, None),
                            ({"all": True, "entity_ids": ["I-00001"]}, "all"),
                            ({"all": True, "model": "ising"}, "all")]:
            r = c.request("POST", "/api/v1/cache/invalidate", body)
            eq(r.status, 422, "status for %r" % (body,))
            eq(r.json["error"]["field"], field, "error field for %r" % (body,))
        r = c.request("POST", "/api/v1/cache/invalidate", b"{not json", content_type="application/json")
        ok(400 <= r.status < 500, "malformed JSON is a 4xx", r.status)
        eq(c.request("GET", "/api/v1/cache/invalidate").status, 405, "GET is not allowed")
        inv0 = metric(c, "predictd_cache_invalidations_total")
        r = c.expect(200, "POST", "/api/v1/cache/invalidate", {"entity_ids": [good[0], good[1], "unknown"]})
        eq(r.json, {"invalidated": 2}, "two entities' entries")
        eq(metric(c, "predictd_cache_invalidations_total") - inv0, 2.0, "invalidations counted")
        r = c.submit(good, temperature=1.0).json
        ok(r["status"] != "COMPLETED", "invalidated entities are computed again", r)
        c.wait_job(r["job_id"])
        r = c.expect(200, "POST", "/api/v1/cache/invalidate", {"model": "ews"})
        eq(r.json, {"invalidated": 0}, "no ews entries")
        r = c.expect(200, "POST", "/api/v1/cache/invalidate", {"model": "ising", "entity_ids": [good[2]]})
        eq(r.json, {"invalidated": 1}, "one entity, one model")
        r = c.expect(200, "POST", "/api/v1/cache/invalidate", {"all": True})
        eq(r.json, {"invalidated": len(good) - 1}, "everything left")
        r = c.submit(good, temperature=1.0).json
        ok(r["status"] != "COMPLETED", "nothing cached after all: true", r)
        _, results = run_job(c, good, 1.0)
        check_job_results(results, good, oracle, 1.0, 24.0, "after invalidation")
        s.check_clean_exit()


@suite.test
def test_identical_request_reuses_its_job():
    """A request identical to a job done in its submission, while every entity (and what its
    result reads: its neighbours) is unchanged, gets that job back, marked reused; any change
    to what one of its results depends on, an invalidation, other parameters or another order
    of ids, or an Idempotency-Key make a new job, and every result served is still exact."""
    rng = random.Random(17)
    with Server(env={"PREDICTD_JOBS_CHUNK_SIZE": "16"}) as s:  # inline: done in the submission
        c = s.client()
        ents, rels, oracle = random_graph(rng, 80, 160, prefix="U")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        job_ids = ids[:40]
        first = c.submit(job_ids, temperature=1.2).json
        eq(first["status"], "COMPLETED", "computed in its submission")
        ok("reused" not in first, "a first job is not reused", first)
        again = c.submit(job_ids, temperature=1.2).json
        eq(again["job_id"], first["job_id"], "the identical request gets the same job")
        eq(again.get("reused"), True, "marked reused")
        results, _, _ = c.all_results(again["job_id"])
        check_job_results(results, job_ids, oracle, 1.2, 24.0, "reused job")
        # the same request in other bytes (blanks, key order): parsed, and the same job
        body = {"parameters": {"time_horizon": "24h", "temperature": 1.2},
                "prediction_type": "spin_flip_probability", "entity_ids": job_ids}
        respaced = c.expect(202, "POST", "/api/v1/predict/batch/ising", json.dumps(body, indent=2)).json
        eq((respaced["job_id"], respaced.get("reused")), (first["job_id"], True), "other bytes, same request")
        # a neighbour outside the request changes: the results that read it are stale now
        inside = set(job_ids)
        outside = next(b for a, b, _ in oracle.rels if a in inside and b not in inside and b in oracle.props)
        c.expect(200, "PATCH", "/api/v1/entities/" + outside, {"properties": {"spin": -oracle.spin(outside)}})
        oracle.props[outside] = dict(oracle.props[outside], spin=-oracle.spin(outside))
        third = c.submit(job_ids, temperature=1.2).json
        ok(third["job_id"] != first["job_id"] and "reused" not in third, "a neighbour changed: a new job", third)
        results, _, _ = c.all_results(third["job_id"])
        check_job_results(results, job_ids, oracle, 1.2, 24.0, "after a neighbour changed")
        eq(c.submit(job_ids, temperature=1.2).json["job_id"], third["job_id"], "reused again once stable")
        # an entity of the request changes
        c.expect(200, "PATCH", "/api/v1/entities/" + job_ids[3], {"properties": {"field": 0.25}})
        oracle.props[job_ids[3]] = dict(oracle.props[job_ids[3]], field=0.25)
        fourth = c.submit(job_ids, temperature=1.2).json
        ok(fourth["job_id"] not in (first["job_id"], third["job_id"]), "an entity changed: a new job", fourth)
        results, _, _ = c.all_results(fourth["job_id"])
        check_job_results(results, job_ids, oracle, 1.2, 24.0, "after an entity changed")
        # other parameters, another order, an idempotency key: new jobs
        other_t = c.submit(job_ids, temperature=1.3).json
        ok(other_t["job_id"] != fourth["job_id"], "another temperature is another request", other_t)
        reordered = c.submit(list(reversed(job_ids)), temperature=1.2).json
        ok(reordered["job_id"] != fourth["job_id"], "another order is another request (its pages differ)")
        keyed = c.submit(job_ids, temperature=1.2, headers={"Idempotency-Key": "k-reuse-1"}).json
        ok(keyed["job_id"] != fourth["job_id"] and "reused" not in keyed, "an Idempotency-Key keeps its own job")
        # any invalidation retires every remembered job
        eq(c.submit(job_ids, temperature=1.2).json["job_id"], fourth["job_id"], "reused before invalidating")
        c.expect(200, "POST", "/api/v1/cache/invalidate", {"entity_ids": [ids[-1]]})
        fifth = c.submit(job_ids, temperature=1.2).json
        ok(fifth["job_id"] != fourth["job_id"], "after an invalidation: a new job", fifth)
        text = c.expect(200, "GET", "/metrics").body.decode()
        m = re.search(r"^predictd_jobs_reused_total ([0-9.e+]+)$", text, re.M)
        eq(float(m.group(1)) if m else None, 4.0, "predictd_jobs_reused_total")
        # the reused job survives a kill -9 like any job: it was on disk before it was reused
        s.kill9()
        s.start()
        c = s.client()
        results, _, _ = c.all_results(first["job_id"])
        eq(len(results), len(job_ids), "the reused job after a restart")
        # and after a restart nothing is remembered: the repeat is a new job
        ok(c.submit(job_ids, temperature=1.2).json["job_id"] != fifth["job_id"], "not remembered across a restart")
        s.check_clean_exit()


@suite.test
def test_metrics_and_disabled_cache():
    rng = random.Random(5)
    with Server(env=ENV) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 30, 40, prefix="M")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        text = c.expect(200, "GET", "/metrics").body.decode()
        for fam in ("predictd_cache_hits_total", "predictd_cache_misses_total", "predictd_cache_evictions_total",
                    "predictd_cache_invalidations_total", "predictd_cache_bytes"):
            ok("# TYPE %s " % fam in text, "family %s described" % fam)
        eq(metric(c, "predictd_cache_hits_total"), 0.0, "no hits yet")
        run_job(c, ids + ["ghost"], 1.0)
        eq(metric(c, "predictd_cache_misses_total"), 31.0, "every entity computed once (ghost too)")
        run_job(c, ids + ["ghost"], 1.0)
        eq(metric(c, "predictd_cache_hits_total"), 30.0, "existing entities served; unknown never cached")
        eq(metric(c, "predictd_cache_misses_total"), 32.0, "the unknown id is computed again")
        text = c.expect(200, "GET", "/metrics").body.decode()
        m = re.search(r"^predictd_cache_bytes ([0-9.e+]+)$", text, re.M)
        ok(m and float(m.group(1)) > 0, "cache bytes gauge", m and m.group(0))
        s.check_clean_exit()
    env = dict(ENV, PREDICTD_CACHE_ENABLED="0")
    with Server(env=env) as s:
        c = s.client()
        load_graph(c, ents, rels)
        run_job(c, ids, 1.0)
        r = c.submit(ids, temperature=1.0).json
        ok(r["status"] != "COMPLETED", "no cache: computed again", r)
        _, results = run_job(c, ids, 1.0)
        check_job_results(results, ids, oracle, 1.0, 24.0, "without the cache")
        eq(c.expect(200, "POST", "/api/v1/cache/invalidate", {"all": True}).json, {"invalidated": 0},
           "invalidate without a cache")
        s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
