"""The HTTP API and the CLI against a real server: graph data, CSV import, Ising jobs with
results checked against MODELS.md's closed form, paging, idempotency, listing, cancel,
metrics, and the client subcommands."""
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import (Server, Suite, IsingOracle, check_job_results, check_prediction, eq, fail,  # noqa: E402
                    load_graph, ok, random_graph, run_cli, SLOW)

suite = Suite("api")
JOB_ID_RE = re.compile(r"JOB-[0-9a-f]{22}")


def entity(c, eid):
    return c.expect(200, "GET", "/api/v1/entities/" + eid).json


def version(c, eid):
    return entity(c, eid)["version"]


@suite.test
def test_health_ready_and_unknown_route():
    with Server() as s:
        c = s.client()
        c.expect(200, "GET", "/healthz")
        c.expect(200, "GET", "/readyz")
        r = c.expect(404, "GET", "/api/v1/nothing-here")
        ok("error" in r.json, "404 has an error body", r.json)
        s.check_clean_exit()


@suite.test
def test_entities_upsert_get_patch_delete():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1, "field": 0.5, "name": "alpha"}},
                  {"entity_id": "B", "properties": {"spin": -1}},
                  {"entity_id": "ACTOR-\u00e9\u4e2d", "properties": {}}])
        a = entity(c, "A")
        eq(a["entity_id"], "A", "entity_id")
        eq(a["properties"], {"spin": 1, "field": 0.5, "name": "alpha"}, "A's properties")
        v1 = a["version"]
        ok(isinstance(v1, int) and v1 >= 1, "version is a positive integer", v1)
        eq(entity(c, "ACTOR-%C3%A9%E4%B8%AD")["properties"], {}, "unicode id round trip")
        # upsert replaces the properties and bumps the version
        c.upsert([{"entity_id": "A", "properties": {"spin": -1, "colour": "red"}}])
        a = entity(c, "A")
        eq(a["properties"], {"spin": -1, "colour": "red"}, "A after second upsert")
        ok(a["version"] > v1, "upsert bumps the version", v1, a["version"])
        v2 = a["version"]
        # PATCH merges; null removes
        r = c.expect(200, "PATCH", "/api/v1/entities/A", {"properties": {"field": 2.5, "colour": None, "flag": True}})
        eq(r.json["properties"], {"spin": -1, "field": 2.5, "flag": True}, "PATCH answer")
        a = entity(c, "A")
        eq(a["properties"], {"spin": -1, "field": 2.5, "flag": True}, "A after PATCH")
        ok(a["version"] > v2, "PATCH bumps the version", v2, a["version"])
        eq(version(c, "B"), entity(c, "B")["version"], "B untouched (stable)")
        # PATCH of an unknown entity
        c.expect(404, "PATCH", "/api/v1/entities/nobody", {"properties": {"x": 1}})
        # DELETE
        c.expect("2xx", "DELETE", "/api/v1/entities/A")
        c.expect(404, "GET", "/api/v1/entities/A")
        c.expect(404, "DELETE", "/api/v1/entities/A")
        # the id can be created again
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        eq(entity(c, "A")["properties"], {"spin": 1}, "A re-created")
        s.check_clean_exit()


@suite.test
def test_relationship_changes_bump_both_ends():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": x, "properties": {"spin": 1}} for x in ("A", "B", "C")])
        va, vb, vc = version(c, "A"), version(c, "B"), version(c, "C")
        c.relate([{"source": "A", "target": "B", "weight": 0.5, "type": "knows"}])
        ok(version(c, "A") > va, "create bumps the source", va, version(c, "A"))
        ok(version(c, "B") > vb, "create bumps the target", vb, version(c, "B"))
        eq(version(c, "C"), vc, "C untouched by A-B")
        va, vb = version(c, "A"), version(c, "B")
        r = c.expect("2xx", "DELETE", "/api/v1/relationships", [{"source": "B", "target": "A"}])
        ok(version(c, "A") > va, "delete bumps A", va, version(c, "A"))
        ok(version(c, "B") > vb, "delete bumps B", vb, version(c, "B"))
        eq(version(c, "C"), vc, "C untouched by the delete")
        ok(r.json, "delete answers JSON", r.text)
        # deleting an entity bumps its neighbours
        c.relate([{"source": "A", "target": "C"}])
        vc = version(c, "C")
        c.expect("2xx", "DELETE", "/api/v1/entities/A")
        ok(version(c, "C") > vc, "deleting A bumps its neighbour C", vc, version(c, "C"))
        s.check_clean_exit()


@suite.test
def test_parallel_relationships_add_and_delete_in_predictions():
    with Server() as s:
        c = s.client()
        o = IsingOracle()
        ents = {"A": {"spin": 1, "field": 0.1}, "B": {"spin": -1}, "C": {"spin": 1, "field": -0.4}}
        c.upsert([{"entity_id": k, "properties": v} for k, v in ents.items()])
        o.props.update(ents)
        rels = [("A", "B", 0.5), ("B", "A", 0.75), ("A", "C", 1.25), ("B", "C", -0.3)]
        c.relate([{"source": a, "target": b, "weight": w} for a, b, w in rels])
        o.rels.extend(rels)
        jid = c.submit(["A", "B", "C"], temperature=0.7, horizon="2h").json["job_id"]
        c.wait_job(jid)
        res, meta, _ = c.all_results(jid)
        check_job_results(res, ["A", "B", "C"], o, 0.7, 2.0, "before delete")
        # deleting A-C (no type given: any type) removes it from the fields
        c.expect("2xx", "DELETE", "/api/v1/relationships", [{"source": "C", "target": "A"}])
        o.rels = [r for r in o.rels if set(r[:2]) != {"A", "C"}]
        jid = c.submit(["A", "B", "C"], temperature=0.7, horizon="2h").json["job_id"]
        c.wait_job(jid)
        res, meta, _ = c.all_results(jid)
        check_job_results(res, ["A", "B", "C"], o, 0.7, 2.0, "after delete")
        # typed relationships: a delete naming a type removes only that type's
        c.relate([{"source": "A", "target": "C", "weight": 0.5, "type": "knows"},
                  {"source": "A", "target": "C", "weight": 0.25, "type": "likes"}])
        c.expect("2xx", "DELETE", "/api/v1/relationships", [{"source": "A", "target": "C", "type": "knows"}])
        o.rels = o.rels + [("A", "C", 0.25)]
        jid = c.submit(["A", "B", "C"], temperature=0.7, horizon="2h").json["job_id"]
        c.wait_job(jid)
        res, meta, _ = c.all_results(jid)
        check_job_results(res, ["A", "B", "C"], o, 0.7, 2.0, "after a typed delete")
        s.check_clean_exit()


@suite.test
def test_large_job_50k_entities():
    rng = random.Random(50)
    with Server() as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 50000, 100000, prefix="L")
        load_graph(c, ents, rels, batch=10000)
        ids = [e["entity_id"] for e in ents]
        t0 = time.time()
        jid = c.submit(ids, temperature=1.9, horizon="5h").json["job_id"]
        submit_s = time.time() - t0
        ok(submit_s < 5 * SLOW, "a 50k-id submission is answered quickly", submit_s)
        c.wait_job(jid, timeout=120)
        res, meta, pages = c.all_results(jid, limit=10000)
        eq(pages, 5, "pages of 10000")
        check_job_results(res, ids, oracle, 1.9, 5.0, "50k job")
        s.check_clean_exit()


@suite.test
def test_observations():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "S1", "properties": {}}])
        v = version(c, "S1")
        c.expect("2xx", "POST", "/api/v1/entities/S1/observations",
                 {"series": "temp", "points": [[1700000000, 1.5], ["2026-11-24T10:00:00Z", 2.0], [1700000060.5, -3]]})
        ok(version(c, "S1") > v, "observations bump the version", v, version(c, "S1"))
        c.expect("2xx", "POST", "/api/v1/entities/S1/observations", {"points": [[1700000000, 7]]})  # default series
        c.expect(404, "POST", "/api/v1/entities/nobody/observations", {"points": [[1700000000, 1]]})
        s.check_clean_exit()


ENT_CSV = "entity_id,spin,field,name\nX1,1,0.5,foo\nX2,-1,,bar\nX3,1,-0.25,\"b,az\"\nX4,,,nospin\n"
REL_CSV = "source,target,weight,type\nX1,X2,0.5,knows\nX2,X1,0.25,\nX1,X3,2,\nX3,X4,1,\n"
OBS_CSV = "entity_id,timestamp,value,series\nX1,1700000000,1.5,temp\nX1,2026-11-24T10:00:00Z,2.5,temp\nX2,1700000000,3,\n"


def csv_oracle():
    o = IsingOracle()
    o.props.update({"X1": {"spin": 1, "field": 0.5}, "X2": {"spin": -1}, "X3": {"spin": 1, "field": -0.25},
                    "X4": {"name": "nospin"}})
    o.rels.extend([("X1", "X2", 0.5), ("X2", "X1", 0.25), ("X1", "X3", 2.0), ("X3", "X4", 1.0)])
    return o


def check_csv_state(c, what):
    eq(entity(c, "X1")["properties"], {"spin": 1, "field": 0.5, "name": "foo"}, what + ": X1")
    eq(entity(c, "X2")["properties"], {"spin": -1, "name": "bar"}, what + ": X2 (empty cell left out)")
    eq(entity(c, "X3")["properties"], {"spin": 1, "field": -0.25, "name": "b,az"}, what + ": X3 (quoted)")
    ids = ["X1", "X2", "X3", "X4", "X5"]
    jid = c.submit(ids, temperature=1.3, horizon="90m").json["job_id"]
    c.wait_job(jid)
    res, meta, _ = c.all_results(jid)
    check_job_results(res, ids, csv_oracle(), 1.3, 1.5, what)
    eq(meta["failed"], 2, what + ": failed (X4 no spin, X5 unknown)")
    eq(meta["successful"], 3, what + ": successful")


@suite.test
def test_csv_import_over_http():
    with Server() as s:
        c = s.client()
        for kind, body in (("entities", ENT_CSV), ("relationships", REL_CSV), ("observations", OBS_CSV)):
            c.expect("2xx", "POST", "/api/v1/import/" + kind, body, content_type="text/csv")
        check_csv_state(c, "HTTP import")
        s.check_clean_exit()


@suite.test
def test_csv_import_with_cli_url_and_offline():
    with Server() as s:
        files = {}
        for kind, body in (("entities", ENT_CSV), ("relationships", REL_CSV), ("observations", OBS_CSV)):
            files[kind] = os.path.join(s.root, kind + ".csv")
            with open(files[kind], "w") as f:
                f.write(body)
        url = "http://127.0.0.1:%d" % s.port
        for kind in ("entities", "relationships", "observations"):
            rc, out, err = run_cli(["import", kind, files[kind], "--url", url])
            eq(rc, 0, "import %s --url exit status (stderr %r)" % (kind, err[-300:]))
        c = s.client()
        check_csv_state(c, "CLI --url import")
        # offline: into a stopped server's data dir
        s.check_clean_exit()
        with Server() as s2:
            s2.check_clean_exit()
            for kind in ("entities", "relationships", "observations"):
                rc, out, err = run_cli(["import", kind, files[kind], "--data-dir", s2.data_dir])
                eq(rc, 0, "import %s --data-dir exit status (stderr %r)" % (kind, err[-300:]))
            s2.start()  # the same data dir again
            check_csv_state(s2.client(), "CLI --data-dir import")
            # a running server holds the data dir: an offline import must refuse clearly
            rc, out, err = run_cli(["import", "entities", files["entities"], "--data-dir", s2.data_dir])
            ok(rc != 0, "offline import into a running server's data dir fails", rc, out, err)
            ok(len(err.strip()) > 0, "and says why", err)
            s2.check_clean_exit()


@suite.test
def test_ising_job_end_to_end_against_closed_form():
    rng = random.Random(11)
    # the queue path: small jobs would be computed in their submission (see the inline test)
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "64", "PREDICTD_JOBS_INLINE_MAX_ENTITIES": "0"}
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 700, 2100)
        rels.append(dict(rels[0]))  # an exact parallel copy adds its weight again
        oracle.rels.append(oracle.rels[0])
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        rng.shuffle(ids)
        ids = ids + ["NOPE-1", "NOPE-2", ids[3], "NOPE-3"]  # unknowns and a repeat
        t0 = time.time()
        r = c.submit(ids, temperature=1.7, horizon="36h")
        eq(r.status, 202, "submit status")
        b = r.json
        ok(JOB_ID_RE.fullmatch(b.get("job_id", "")), "job_id looks like JOB-<22 hex>", b)
        eq(b["status"], "QUEUED", "status at submission")
        eq(b["callback_url"], "/api/v1/jobs/%s/results" % b["job_id"], "callback_url")
        ok(isinstance(b.get("estimated_completion"), str) and b["estimated_completion"].endswith("Z"),
           "estimated_completion is an ISO time", b)
        jid = b["job_id"]
        progress = []
        while True:
            j = c.job(jid)
            ok(0.0 <= j["progress"] <= 1.0, "progress within [0, 1]", j["progress"])
            progress.append(j["progress"])
            if j["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            ok(time.time() - t0 < 60 * SLOW, "job finishes in time", j)
            time.sleep(0.01)
        eq(j["status"], "COMPLETED", "final status")
        eq(progress, sorted(progress), "progress never goes back")
        eq(j["progress"], 1.0, "progress at the end")
        eq(j["results_ready"], True, "results_ready")
        eq(j["job_id"], jid, "job_id")
        eq(j["model"], "ising", "model")
        for k in ("created_at", "started_at", "finished_at", "updated_at"):
            ok(isinstance(j.get(k), str), "%s is a time" % k, j)
        ok(j["created_at"] <= j["started_at"] <= j["finished_at"], "created <= started <= finished", j)
        # paging: every entity exactly once, whatever the page size
        for limit in (97, 1000, 10000):
            res, meta, pages = c.all_results(jid, limit=limit)
            check_job_results(res, ids, oracle, 1.7, 36.0, "limit %d" % limit)
            distinct = len(dict.fromkeys(ids))
            eq(pages, max(1, -(-distinct // limit)), "pages at limit %d" % limit)
            eq(meta["total_entities"], distinct, "metadata.total_entities")
            bad = sum(1 for i in dict.fromkeys(ids) if oracle.predict(i, 1.7, 36.0) is None)
            eq(meta["failed"], bad, "metadata.failed (unknown ids and entities without a spin)")
            eq(meta["successful"], distinct - bad, "metadata.successful")
            ok(isinstance(meta.get("execution_time_ms"), (int, float)), "execution_time_ms", meta)
        unknown = [r for r in res if r["entity_id"] == "NOPE-2"][0]
        eq(unknown["error"]["code"], "unknown_entity", "unknown id's error code")
        ok(unknown["error"].get("message"), "unknown id's error message", unknown)
        # results come in submission order
        eq([r["entity_id"] for r in res], list(dict.fromkeys(ids)), "results in submission order")
        s.check_clean_exit()


def _counter(c, name, labels=""):
    text = c.expect(200, "GET", "/metrics").body.decode()
    m = re.search(r"^%s%s ([0-9.e+]+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


@suite.test
def test_small_job_is_computed_in_its_submission():
    rng = random.Random(12)
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "64", "PREDICTD_JOBS_INLINE_MAX_ENTITIES": "300"}
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 400, 1200)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        rng.shuffle(ids)
        small = ids[:250] + ["NOPE-1", ids[5]]  # 251 distinct: under the limit, 4 chunks of 64
        r = c.submit(small, temperature=0.9, horizon="12h")
        eq(r.status, 202, "submit status")
        b = r.json
        eq(b["status"], "COMPLETED", "a small job is answered COMPLETED")
        # the results are readable at once and equal the closed form
        j = c.job(b["job_id"])
        eq(j["status"], "COMPLETED", "job status")
        eq(j["progress"], 1.0, "progress")
        eq(j["results_ready"], True, "results_ready")
        res, meta, pages = c.all_results(b["job_id"], limit=100)
        check_job_results(res, small, oracle, 0.9, 12.0, "inline job")
        eq([x["entity_id"] for x in res], list(dict.fromkeys(small)), "results in submission order")
        eq(meta["total_entities"], 251, "total_entities")
        eq(meta["failed"], sum(1 for i in dict.fromkeys(small) if oracle.predict(i, 0.9, 12.0) is None),
           "failed (the unknown id and entities without a spin)")
        eq(_counter(c, "predictd_jobs_inline_total"), 1.0, "one inline job counted")
        eq(_counter(c, "predictd_jobs_inline_entities_total"), 251.0, "its entities counted")
        eq(_counter(c, "predictd_predictions_total", '{model="ising",outcome="ok"}') +
           _counter(c, "predictd_predictions_total", '{model="ising",outcome="error"}'), 251.0,
           "predictions counted")
        # its results went into the cache: the same request again is served from it (all but
        # the unknown id, which is never cached: its chunk is computed again, the rest hits)
        hits0 = _counter(c, "predictd_cache_hits_total", '{model="ising"}')
        b2 = c.submit(small, temperature=0.9, horizon="12h").json
        eq(b2["status"], "COMPLETED", "repeat completed at submission")
        eq(_counter(c, "predictd_cache_hits_total", '{model="ising"}') - hits0, 250.0,
           "the repeat's known entities came from the cache")
        # over the limit: queued as usual, and correct
        big = ids[:350]
        b3 = c.submit(big, temperature=1.1, horizon="12h").json
        eq(b3["status"], "QUEUED", "a job over inline_max_entities is queued")
        t0 = time.time()
        while c.job(b3["job_id"])["status"] != "COMPLETED":
            ok(time.time() - t0 < 60 * SLOW, "queued job finishes")
            time.sleep(0.01)
        res3, _, _ = c.all_results(b3["job_id"])
        check_job_results(res3, big, oracle, 1.1, 12.0, "queued job")
        # the limit counts what is left after the cache: 250 of these 350 are cached now
        b5 = c.submit(ids[100:450], temperature=0.9, horizon="12h").json
        eq(b5["status"], "COMPLETED", "150 cached + 200 to compute: inline")
        # Monte Carlo simulates the whole job: never inline
        r4 = c.expect(202, "POST", "/api/v1/predict/batch/ising",
                      {"entity_ids": ids[:10], "prediction_type": "spin_flip_probability",
                       "parameters": {"temperature": 0.9, "time_horizon": "12h", "method": "monte_carlo",
                                      "samples": 4, "seed": 1}}).json
        eq(r4["status"], "QUEUED", "a Monte Carlo job is queued")
        eq(_counter(c, "predictd_jobs_inline_total"), 3.0, "the Monte Carlo job was not inline")
        s.check_clean_exit()
    # and after a restart (kill -9 right after the 202), the inline job is still complete
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 50, 100)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=1.3).json["job_id"]
        s.kill9()
        s.start()
        c = s.client()
        eq(c.job(jid)["status"], "COMPLETED", "inline job after kill -9")
        res, _, _ = c.all_results(jid)
        check_job_results(res, ids, oracle, 1.3, 24.0, "inline job after kill -9")
        s.check_clean_exit()


@suite.test
def test_status_read_waits_for_a_queued_job():
    rng = random.Random(21)
    # one worker, every job queued (none computed in its submission)
    env = {"PREDICTD_JOBS_INLINE_MAX_ENTITIES": "0", "PREDICTD_JOBS_WORKERS": "1"}
    with Server(env=env) as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 120, 300)
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        # a Monte Carlo job keeps the worker for ~2 s (0.3 s per 10,000 samples here)
        c.expect(202, "POST", "/api/v1/predict/batch/ising",
                 {"entity_ids": ids, "parameters": {"temperature": 0.9, "time_horizon": "12h",
                                                    "method": "monte_carlo", "samples": 60000, "seed": 1}})
        b = c.submit(ids, temperature=0.8, horizon="3h").json
        eq(b["status"], "QUEUED", "queued, not computed in the submission")
        eq(c.job(b["job_id"])["status"], "QUEUED", "a plain read answers at once: still queued")
        # its one chunk settling is the first move: the waiting read answers with it done
        j = c.expect(200, "GET", "/api/v1/jobs/%s?wait_ms=30000" % b["job_id"]).json
        eq(j["status"], "COMPLETED", "the waiting read answers once the job moved")
        eq(j["results_ready"], True, "results_ready")
        eq(_counter(c, "predictd_jobs_status_waits_total"), 1.0, "one read waited")
        res, _, _ = c.all_results(b["job_id"])
        check_job_results(res, ids, oracle, 0.8, 3.0, "job read with wait_ms")
        # a finished job and an unknown one are answered at once, whatever the wait
        eq(c.expect(200, "GET", "/api/v1/jobs/%s?wait_ms=30000" % b["job_id"]).json["status"], "COMPLETED",
           "a finished job with wait_ms")
        c.expect(404, "GET", "/api/v1/jobs/JOB-nope?wait_ms=30000")
        eq(_counter(c, "predictd_jobs_status_waits_total"), 1.0, "neither waited")
        # `predictd submit --wait` reads the same way: behind another Monte Carlo job its
        # status reads wait on the server instead of polling
        c.expect(202, "POST", "/api/v1/predict/batch/ising",
                 {"entity_ids": ids, "parameters": {"temperature": 0.9, "time_horizon": "12h",
                                                    "method": "monte_carlo", "samples": 60000, "seed": 2}})
        rc, out, err = run_cli(["submit", "--ids", ",".join(ids[:5]), "--temperature", "0.7", "--wait",
                                "--url", "http://127.0.0.1:%d" % s.port])
        eq(rc, 0, "submit --wait exit status (stderr %r)" % err[-300:])
        m = JOB_ID_RE.search(out + err)
        ok(m, "submit prints the job id", out, err)
        eq(c.job(m.group(0))["status"], "COMPLETED", "after submit --wait")
        ok(_counter(c, "predictd_jobs_status_waits_total") >= 2.0, "the CLI's reads waited on the server")
        s.check_clean_exit()


@suite.test
def test_idempotency_key_returns_same_job():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        r1 = c.submit(["A"], headers={"Idempotency-Key": "key-1"})
        r2 = c.expect((200, 202), "POST", "/api/v1/predict/batch/ising",
                      {"entity_ids": ["A"], "prediction_type": "spin_flip_probability",
                       "parameters": {"temperature": 1.0, "time_horizon": "24h"}},
                      headers={"Idempotency-Key": "key-1"})
        eq(r2.json["job_id"], r1.json["job_id"], "same key, same job")
        r3 = c.submit(["A"], headers={"Idempotency-Key": "key-2"})
        ok(r3.json["job_id"] != r1.json["job_id"], "another key, another job", r1.json, r3.json)
        r4 = c.submit(["A"])
        ok(r4.json["job_id"] not in (r1.json["job_id"], r3.json["job_id"]), "no key, a new job")
        jobs = c.expect(200, "GET", "/api/v1/jobs?limit=100").json["jobs"]
        eq(len(jobs), 3, "jobs stored (the repeat stored nothing)")
        s.check_clean_exit()


@suite.test
def test_jobs_list_filters_and_cursor():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        ids = [c.submit(["A"], temperature=1 + i).json["job_id"] for i in range(7)]
        for j in ids:
            c.wait_job(j)
        body = c.expect(200, "GET", "/api/v1/jobs").json
        listed = [j["job_id"] for j in body["jobs"]]
        eq(listed, list(reversed(ids)), "all jobs, newest first")
        # paging with a cursor
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/jobs?limit=3" + ("&cursor=" + cursor if cursor else "")
            page = c.expect(200, "GET", path).json
            ok(len(page["jobs"]) <= 3, "page size", len(page["jobs"]))
            seen += [j["job_id"] for j in page["jobs"]]
            cursor = page.get("next_cursor")
            pages += 1
            if not cursor:
                break
            ok(pages < 10, "paging ends", pages)
        eq(seen, list(reversed(ids)), "cursor pages cover every job once, in order")
        done = c.expect(200, "GET", "/api/v1/jobs?status=COMPLETED&model=ising").json["jobs"]
        eq(len(done), 7, "status=COMPLETED&model=ising")
        eq(c.expect(200, "GET", "/api/v1/jobs?status=QUEUED").json["jobs"], [], "status=QUEUED")
        eq(c.expect(200, "GET", "/api/v1/jobs?model=cascade").json["jobs"], [], "model=cascade")
        for j in done:
            eq(j["status"], "COMPLETED", "listed status")
        s.check_clean_exit()


@suite.test
def test_cancel():
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "1", "PREDICTD_JOBS_WORKERS": "1",
           "PREDICTD_JOBS_MAX_CHUNKS": "1000000"}
    with Server(env=env) as s:
        c = s.client()
        n = 3000
        c.upsert([{"entity_id": "C%d" % i, "properties": {"spin": 1}} for i in range(n)])
        jid = c.submit(["C%d" % i for i in range(n)]).json["job_id"]
        r = c.expect(200, "POST", "/api/v1/jobs/%s/cancel" % jid)
        eq(r.json["status"], "CANCELLED", "cancel answer")
        j = c.job(jid)
        eq(j["status"], "CANCELLED", "status after cancel")
        time.sleep(0.3)
        j2 = c.job(jid)
        eq(j2["status"], "CANCELLED", "stays cancelled")
        ok(j2["progress"] < 1.0, "the cancelled job did not run to the end", j2)
        c.expect(404, "POST", "/api/v1/jobs/JOB-0000000000000000000000/cancel")
        # cancelling a finished job changes nothing
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        jid2 = c.submit(["A"]).json["job_id"]
        c.wait_job(jid2)
        r = c.request("POST", "/api/v1/jobs/%s/cancel" % jid2)
        ok(r.status in (200, 409), "cancel of a finished job: 200 or 409", r)
        eq(c.job(jid2)["status"], "COMPLETED", "a finished job stays COMPLETED")
        s.check_clean_exit()


@suite.test
def test_metrics_families():
    with Server() as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}}])
        c.wait_job(c.submit(["A", "B"]).json["job_id"])
        c.expect(404, "GET", "/nope")
        r = c.expect(200, "GET", "/metrics")
        ok((r.header("Content-Type") or "").startswith("text/plain"), "metrics content type", r.header("Content-Type"))
        text = r.text
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        ok("predictd_http_requests_total" in types, "requests counter", sorted(types))
        ok(re.search(r'^predictd_http_requests_total\{[^}]*route="/api/v1/entities"[^}]*code="200"[^}]*\} [1-9]', text, re.M),
           "requests by route and code")
        ok(re.search(r'^predictd_http_requests_total\{[^}]*code="404"[^}]*\} [1-9]', text, re.M), "404 counted")
        hist = [n for n, t in types.items() if t == "histogram"]
        ok(any("request" in n and "second" in n for n in hist), "request latency histogram", hist)
        ok(re.search(r"^predictd_http_request_seconds_bucket\{[^}]*le=\"\+Inf\"", text, re.M), "+Inf bucket")
        def family(*words):
            return [n for n in types if all(w in n for w in words)]
        ok(family("job"), "a jobs family", sorted(types))
        ok(re.search(r'^predictd_\w*jobs?\w*\{[^}]*(status|state)="COMPLETED"[^}]*\} [1-9]', text, re.M),
           "jobs by state with COMPLETED counted", [l for l in text.splitlines() if "job" in l][:20])
        ok(family("queue"), "a queue depth family", sorted(types))
        ok(family("busy") or family("worker"), "a busy workers family", sorted(types))
        ok(re.search(r'^predictd_\w*prediction\w*\{[^}]*model="ising"[^}]*\} [1-9]', text, re.M),
           "predictions by model", [l for l in text.splitlines() if "predic" in l][:20])
        # the store's writer: the upsert and the job were group commits, each with a COMMIT
        eq(types.get("predictd_store_commit_seconds"), "histogram", "commit time histogram")
        commits = re.search(r"^predictd_store_commit_seconds_count (\d+)$", text, re.M)
        groups = re.search(r"^predictd_store_group_ops_count (\d+)$", text, re.M)
        ops = re.search(r"^predictd_store_group_ops_sum (\S+)$", text, re.M)
        ok(commits and int(commits.group(1)) >= 2, "commits counted", commits and commits.group(0))
        ok(groups and ops and float(ops.group(1)) >= int(groups.group(1)) >= 2, "ops per group",
           groups and groups.group(0), ops and ops.group(0))
        ok(re.search(r'^predictd_store_wal_pages [1-9]', text, re.M), "WAL pages after the last commit")
        ok(re.search(r'^predictd_store_checkpoints_total\{mode="passive"\} \d', text, re.M), "checkpoints family")
        s.check_clean_exit()


@suite.test
def test_keep_alive_connection_is_reused():
    with Server() as s:
        c = s.client()
        c.expect(200, "GET", "/healthz")
        sock = c.conn.sock
        ok(sock is not None, "connected")
        for _ in range(20):
            c.expect(200, "GET", "/readyz")
            c.expect(404, "GET", "/api/v1/entities/none")
        ok(c.conn is not None and c.conn.sock is sock, "one TCP connection served all 41 requests")
        s.check_clean_exit()


@suite.test
def test_parameters_attempt_rate_numeric_horizon_and_patch():
    with Server() as s:
        c = s.client()
        o = IsingOracle()
        ents = {"P": {"spin": 1, "field": -0.3}, "Q": {"spin": 1}, "R": {"spin": -1, "field": 0.05}}
        c.upsert([{"entity_id": k, "properties": v} for k, v in ents.items()])
        c.relate([{"source": "P", "target": "Q", "weight": 1.5}, {"source": "Q", "target": "R", "weight": -0.4}])
        o.props.update({k: dict(v) for k, v in ents.items()})
        o.rels += [("P", "Q", 1.5), ("Q", "R", -0.4)]
        body = {"entity_ids": ["P", "Q", "R"], "prediction_type": "spin_flip_probability",
                "parameters": {"temperature": 0.6, "time_horizon": 5400, "attempt_rate": 3.5, "method": "analytic"}}
        jid = c.expect(202, "POST", "/api/v1/predict/batch/ising", body).json["job_id"]
        c.wait_job(jid)
        res, _, _ = c.all_results(jid)
        check_job_results(res, ["P", "Q", "R"], o, 0.6, 1.5, "nu 3.5, H 5400 s", nu=3.5)
        # default horizon 24h and rate 1/h
        body["parameters"] = {"temperature": 0.6}
        jid = c.expect(202, "POST", "/api/v1/predict/batch/ising", body).json["job_id"]
        c.wait_job(jid)
        res, _, _ = c.all_results(jid)
        check_job_results(res, ["P", "Q", "R"], o, 0.6, 24.0, "defaults")
        # a PATCH of a neighbour's spin shows in the next job (the graph follows every change)
        c.expect(200, "PATCH", "/api/v1/entities/Q", {"properties": {"spin": -1}})
        o.props["Q"]["spin"] = -1
        jid = c.expect(202, "POST", "/api/v1/predict/batch/ising", body).json["job_id"]
        c.wait_job(jid)
        res, _, _ = c.all_results(jid)
        check_job_results(res, ["P", "Q", "R"], o, 0.6, 24.0, "after PATCH of Q")
        # removing the spin makes Q a per-entity failure and takes it out of its neighbours' fields
        c.expect(200, "PATCH", "/api/v1/entities/Q", {"properties": {"spin": None}})
        del o.props["Q"]["spin"]
        jid = c.expect(202, "POST", "/api/v1/predict/batch/ising", body).json["job_id"]
        c.wait_job(jid)
        res, meta, _ = c.all_results(jid)
        check_job_results(res, ["P", "Q", "R"], o, 0.6, 24.0, "after Q lost its spin")
        eq(meta["failed"], 1, "Q failed")
        q = [r for r in res if r["entity_id"] == "Q"][0]
        eq(q["error"]["code"], "invalid_spin", "Q's error code")
        s.check_clean_exit()


@suite.test
def test_results_paged_while_the_job_runs():
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "7", "PREDICTD_JOBS_WORKERS": "1"}
    with Server(env=env) as s:
        c = s.client()
        n = 1500
        o = IsingOracle()
        ents = [{"entity_id": "R%04d" % i, "properties": {"spin": 1 if i % 3 else -1, "field": i / 1000.0}}
                for i in range(n)]
        c.upsert(ents)
        rels = [{"source": "R%04d" % i, "target": "R%04d" % ((i * 7 + 1) % n), "weight": 0.25} for i in range(n)]
        c.relate(rels)
        for e in ents:
            o.props[e["entity_id"]] = e["properties"]
        o.rels += [(r["source"], r["target"], r["weight"]) for r in rels]
        ids = [e["entity_id"] for e in ents]
        jid = c.submit(ids, temperature=1.0).json["job_id"]
        got, cursor, polls, saw_partial = [], None, 0, False
        while True:
            path = "/api/v1/jobs/%s/results?limit=100" % jid + ("&cursor=" + cursor if cursor else "")
            page = c.expect(200, "GET", path).json
            got += page["results"]
            if page["status"] != "COMPLETED" and page.get("next_cursor"):
                saw_partial = True
            nxt = page.get("next_cursor")
            if nxt is None:
                if page["status"] == "COMPLETED":
                    break
                time.sleep(0.01)  # no cursor yet but not done: should not happen
            cursor = nxt if nxt is not None else cursor
            polls += 1
            ok(polls < 100000, "polling ends")
        check_job_results(got, ids, o, 1.0, 24.0, "results read while running")
        eq(c.job(jid)["status"], "COMPLETED", "final status")
        print("    (%d polls, pages seen while running: %s)" % (polls, saw_partial))
        s.check_clean_exit()


@suite.test
def test_priority_jobs_go_first():
    # 20000 one-entity chunks (unknown ids are computed too: as per-entity failures)
    env = {"PREDICTD_JOBS_CHUNK_SIZE": "1", "PREDICTD_JOBS_WORKERS": "1",
           "PREDICTD_JOBS_MAX_CHUNKS": "1000000"}
    with Server(env=env) as s:
        c = s.client()
        c.upsert([{"entity_id": "E%d" % i, "properties": {"spin": 1}} for i in range(20)])
        low = c.submit(["U%d" % i for i in range(20000)], extra={"priority": 0}).json["job_id"]
        t0 = time.time()
        high = c.submit(["E%d" % i for i in range(20)], extra={"priority": 9}).json["job_id"]
        took = time.time() - t0
        # admission must not queue behind the results of running work (DESIGN: submission
        # never waits on computation)
        # No timing assert (machines are noisy); the figure is printed for whoever reads the log.
        print("  submission while a 20000-chunk job runs answered in %.3f s" % took)
        jh = c.wait_job(high, timeout=120)
        jl = c.job(low)
        eq(jh["status"], "COMPLETED", "high-priority job")
        ok(jl["status"] != "COMPLETED", "the big low-priority job submitted first is still running", jl, jh)
        jl = c.wait_job(low, timeout=120)
        eq(jl["status"], "COMPLETED", "low-priority job in the end")
        ok(jh["finished_at"] < jl["finished_at"], "high finished first", jh["finished_at"], jl["finished_at"])
        s.check_clean_exit()

@suite.test
def test_concurrent_clients():
    """8 clients at once: submissions (group commit), reads and writes of other entities."""
    import threading
    rng = random.Random(21)
    with Server() as s:
        c = s.client()
        ents, rels, oracle = random_graph(rng, 500, 1000, prefix="K")
        load_graph(c, ents, rels)
        ids = [e["entity_id"] for e in ents]
        accepted, errors = [], []
        lock = threading.Lock()

        def worker(k):
            cl = s.client()
            r = random.Random(k)
            try:
                for n in range(15):
                    sub = r.sample(ids, 50)
                    jid = cl.submit(sub, temperature=0.8, horizon="1h").json["job_id"]
                    with lock:
                        accepted.append((jid, sub))
                    cl.expect(200, "GET", "/api/v1/jobs/" + jid)
                    # writes to entities no job reads
                    cl.upsert([{"entity_id": "W%d-%d" % (k, n), "properties": {"spin": 1}}])
                    cl.expect(200, "PATCH", "/api/v1/entities/W%d-%d" % (k, n), {"properties": {"x": n}})
                    cl.expect(200, "GET", "/metrics")
            except Exception as e:  # noqa: BLE001 -- reported below
                with lock:
                    errors.append("client %d: %s" % (k, e))
            finally:
                cl.close()

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120 * SLOW)
        eq(errors, [], "client errors")
        eq(len(accepted), 8 * 15, "jobs accepted")
        eq(len({j for j, _ in accepted}), len(accepted), "distinct job ids")
        for jid, sub in accepted:
            eq(c.wait_job(jid)["status"], "COMPLETED", "status of " + jid)
            res, _, _ = c.all_results(jid)
            check_job_results(res, sub, oracle, 0.8, 1.0, jid)
        for k in range(8):
            for n in range(15):
                eq(entity(c, "W%d-%d" % (k, n))["properties"], {"spin": 1, "x": n}, "W%d-%d" % (k, n))
        s.check_clean_exit()


@suite.test
def test_cli_client_commands():
    with Server() as s:
        c = s.client()
        o = IsingOracle()
        ents = {"A": {"spin": 1, "field": 0.2}, "B": {"spin": -1}, "C": {"spin": 1}}
        c.upsert([{"entity_id": k, "properties": v} for k, v in ents.items()])
        c.relate([{"source": "A", "target": "B", "weight": 0.8}, {"source": "B", "target": "C", "weight": 0.3}])
        o.props.update(ents)
        o.rels += [("A", "B", 0.8), ("B", "C", 0.3)]
        url = "http://127.0.0.1:%d" % s.port
        rc, out, err = run_cli(["submit", "--ids", "A,B,C,Z", "--temperature", "2.5", "--time-horizon", "12h",
                                "--wait", "--url", url])
        eq(rc, 0, "submit --wait exit status (stderr %r)" % err[-300:])
        m = JOB_ID_RE.search(out + err)
        ok(m, "submit prints the job id", out, err)
        jid = m.group(0)
        eq(c.job(jid)["status"], "COMPLETED", "after submit --wait")
        rc, out, err = run_cli(["status", jid, "--url", url])
        eq(rc, 0, "status exit status (stderr %r)" % err[-300:])
        ok("COMPLETED" in out, "status shows COMPLETED", out)
        rc, out, err = run_cli(["status", jid, "--json", "--url", url])
        eq(rc, 0, "status --json")
        import json as _json
        eq(_json.loads(out)["job_id"], jid, "status --json job_id")
        rc, out, err = run_cli(["results", jid, "--all", "--url", url])
        eq(rc, 0, "results exit status (stderr %r)" % err[-300:])
        rows = [_json.loads(line) for line in out.splitlines() if line.strip()]
        check_job_results(rows, ["A", "B", "C", "Z"], o, 2.5, 12.0, "CLI results")
        rc, out, err = run_cli(["jobs", "--url", url])
        eq(rc, 0, "jobs exit status")
        ok(jid in out, "jobs lists the job", out)
        bad = os.path.join(s.root, "bad.csv")
        with open(bad, "w") as f:
            f.write("entity_id,spin\nA2,1\n,2\n")
        rc, out, err = run_cli(["import", "entities", bad, "--url", url])
        ok(rc != 0 and "line 3" in err, "a bad CSV fails naming line 3", rc, err)
        c.expect(404, "GET", "/api/v1/entities/A2")
        rc, out, err = run_cli(["submit", "--ids", "A", "--temperature", "-1", "--url", url])
        ok(rc != 0 and "temperature" in err, "a refused submission fails naming the field", rc, err)
        rc, out, err = run_cli(["status", "JOB-0000000000000000000000", "--url", url])
        ok(rc != 0, "status of an unknown job fails", rc, out)
        rc, out, err = run_cli(["status", jid, "--url", "http://127.0.0.1:1"])
        ok(rc != 0 and err.strip(), "an unreachable server is an error with a message", rc, err)
        s.check_clean_exit()


@suite.test
def test_cli_version_config_and_help():
    rc, out, err = run_cli(["version"])
    eq(rc, 0, "version exit status")
    ok(out.startswith("predictd "), "version output", out)
    rc2, out2, _ = run_cli(["--version"])
    eq((rc2, out2), (0, out), "--version same as version")
    rc, out, err = run_cli(["config", "show"], env={"PREDICTD_JOBS_CHUNK_SIZE": "77"})
    eq(rc, 0, "config show exit status (stderr %r)" % err)
    ok(re.search(r"^\s+chunk_size: 77\b", out, re.M), "config show reflects the environment", out)
    rc, out, err = run_cli(["config", "show"], env={"PREDICTD_JOBS_CHUNK_SIZE": "lots"})
    ok(rc != 0 and "chunk_size" in err, "a bad value fails naming the key", rc, err)
    for cmd in (["--help"], ["serve", "--help"], ["import", "--help"], ["submit", "--help"], ["status", "--help"],
                ["results", "--help"], ["jobs", "--help"], ["config", "--help"]):
        rc, out, err = run_cli(cmd)
        eq(rc, 0, "%s exit status" % " ".join(cmd))
        ok("usage" in out.lower(), "%s prints a usage" % " ".join(cmd), out[:200])
    rc, out, err = run_cli(["frobnicate"])
    ok(rc != 0, "an unknown command fails", rc)
    rc, out, err = run_cli(["submit", "--bogus-option"])
    ok(rc != 0, "an unknown option fails", rc)


if __name__ == "__main__":
    sys.exit(suite.run())
