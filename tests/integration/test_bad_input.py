"""A catalogue of bad inputs. Each gets a 4xx with {error:{code, message, field}} naming the
field where there is one, changes nothing (entity versions and the job list stay the same),
and the server stays healthy."""
import time
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helper import Server, Suite, eq, fail, ok  # noqa: E402

suite = Suite("bad_input")
PREDICT = "/api/v1/predict/batch/ising"


def predict_body(**over):
    b = {"entity_ids": ["A", "B"], "prediction_type": "spin_flip_probability",
         "parameters": {"temperature": 1.0, "time_horizon": "24h"}}
    for k, v in over.items():
        if k.startswith("p_"):
            if v is DROP:
                b["parameters"].pop(k[2:], None)
            else:
                b["parameters"][k[2:]] = v
        elif v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return b


DROP = object()
LONG_ID = "x" * 257

# (name, method, path, body, content_type, statuses, field): field None = no check, "" = must be
# null/empty, "x*" = starts with x.
JSON_CT = "application/json"
CATALOGUE = [
    # ---- job submission ----
    ("malformed JSON", "POST", PREDICT, '{"entity_ids": ["A",', JSON_CT, (400,), None),
    ("not JSON at all", "POST", PREDICT, "hello", JSON_CT, (400,), None),
    ("invalid UTF-8", "POST", PREDICT, b'{"entity_ids": ["\xff\xfe"]}', JSON_CT, (400, 422), None),
    ("empty body", "POST", PREDICT, "", JSON_CT, (400, 422), None),
    ("body an array", "POST", PREDICT, "[1,2]", JSON_CT, (400, 422), None),
    ("body a string", "POST", PREDICT, '"x"', JSON_CT, (400, 422), None),
    ("body null", "POST", PREDICT, "null", JSON_CT, (400, 422), None),
    ("deeply nested JSON", "POST", PREDICT, "[" * 100000 + "]" * 100000, JSON_CT, (400, 413, 422), None),
    ("missing entity_ids", "POST", PREDICT, predict_body(entity_ids=DROP), JSON_CT, (422,), "entity_ids"),
    ("entity_ids not a list", "POST", PREDICT, predict_body(entity_ids="A"), JSON_CT, (422,), "entity_ids*"),
    ("entity_ids empty", "POST", PREDICT, predict_body(entity_ids=[]), JSON_CT, (422,), "entity_ids"),
    ("entity id 257 bytes", "POST", PREDICT, predict_body(entity_ids=["A", LONG_ID]), JSON_CT, (422,), "entity_ids*"),
    ("entity id empty", "POST", PREDICT, predict_body(entity_ids=[""]), JSON_CT, (422,), "entity_ids*"),
    ("entity id a number", "POST", PREDICT, predict_body(entity_ids=["A", 5]), JSON_CT, (422,), "entity_ids*"),
    ("entity id null", "POST", PREDICT, predict_body(entity_ids=[None]), JSON_CT, (422,), "entity_ids*"),
    ("entity id an object", "POST", PREDICT, predict_body(entity_ids=[{"id": "A"}]), JSON_CT, (422,), "entity_ids*"),
    ("temperature 0", "POST", PREDICT, predict_body(p_temperature=0), JSON_CT, (422,), "parameters.temperature"),
    ("temperature negative", "POST", PREDICT, predict_body(p_temperature=-2.5), JSON_CT, (422,), "parameters.temperature"),
    ("temperature a string", "POST", PREDICT, predict_body(p_temperature="hot"), JSON_CT, (422,), "parameters.temperature"),
    ("temperature missing", "POST", PREDICT, predict_body(p_temperature=DROP), JSON_CT, (422,), "parameters.temperature"),
    ("temperature null", "POST", PREDICT, predict_body(p_temperature=None), JSON_CT, (422,), "parameters.temperature"),
    ("temperature huge exponent", "POST", PREDICT, '{"entity_ids":["A"],"parameters":{"temperature":1e999}}',
     JSON_CT, (400, 422), None),
    ("parameters missing", "POST", PREDICT, predict_body(parameters=DROP), JSON_CT, (422,), "parameters*"),
    ("parameters a list", "POST", PREDICT, predict_body(parameters=[1]), JSON_CT, (422,), "parameters"),
    ("time_horizon abc", "POST", PREDICT, predict_body(p_time_horizon="abc"), JSON_CT, (422,), "parameters.time_horizon"),
    ("time_horizon -5s", "POST", PREDICT, predict_body(p_time_horizon="-5s"), JSON_CT, (422,), "parameters.time_horizon"),
    ("time_horizon a list", "POST", PREDICT, predict_body(p_time_horizon=[1]), JSON_CT, (422,), "parameters.time_horizon"),
    ("unknown parameter", "POST", PREDICT, predict_body(p_temprature=1), JSON_CT, (422,), "parameters.temprature"),
    ("bad method", "POST", PREDICT, predict_body(p_method="guess"), JSON_CT, (422,), "parameters.method"),
    ("bad prediction_type", "POST", PREDICT, predict_body(prediction_type="cascade_size"), JSON_CT, (422,), "prediction_type"),
    ("prediction_type a number", "POST", PREDICT, predict_body(prediction_type=3), JSON_CT, (422,), "prediction_type"),
    ("priority too high", "POST", PREDICT, predict_body(priority=10), JSON_CT, (422,), "priority"),
    ("priority negative", "POST", PREDICT, predict_body(priority=-1), JSON_CT, (422,), "priority"),
    ("priority a string", "POST", PREDICT, predict_body(priority="high"), JSON_CT, (422,), "priority"),
    ("unknown model", "POST", "/api/v1/predict/batch/astrology", predict_body(), JSON_CT, (404, 422), None),
    # ---- entities ----
    ("entities body an object", "POST", "/api/v1/entities", {"entity_id": "Z"}, JSON_CT, (422,), None),
    ("entities empty list", "POST", "/api/v1/entities", [], JSON_CT, (422,), None),
    ("entities malformed", "POST", "/api/v1/entities", '[{"entity_id":"Z"', JSON_CT, (400,), None),
    ("entity without id", "POST", "/api/v1/entities",
     [{"entity_id": "Z", "properties": {}}, {"properties": {"spin": 1}}], JSON_CT, (422,), "[1].entity_id"),
    ("entity id too long", "POST", "/api/v1/entities", [{"entity_id": LONG_ID, "properties": {}}], JSON_CT,
     (422,), "[0].entity_id"),
    ("entity id a number", "POST", "/api/v1/entities", [{"entity_id": 7, "properties": {}}], JSON_CT,
     (422,), "[0].entity_id"),
    ("properties a list", "POST", "/api/v1/entities", [{"entity_id": "Z", "properties": [1]}], JSON_CT,
     (422,), "[0].properties"),
    ("property an object", "POST", "/api/v1/entities", [{"entity_id": "Z", "properties": {"a": {"b": 1}}}],
     JSON_CT, (422,), "[0].properties*"),
    ("PATCH body a list", "PATCH", "/api/v1/entities/A", [1], JSON_CT, (422,), None),
    ("PATCH without properties", "PATCH", "/api/v1/entities/A", {"spin": 1}, JSON_CT, (422,), "properties"),
    ("PATCH property a list", "PATCH", "/api/v1/entities/A", {"properties": {"spin": [1]}}, JSON_CT,
     (422,), "properties*"),
    ("PATCH unknown entity", "PATCH", "/api/v1/entities/nobody", {"properties": {"spin": 1}}, JSON_CT, (404,), None),
    ("GET unknown entity", "GET", "/api/v1/entities/nobody", None, None, (404,), None),
    ("DELETE unknown entity", "DELETE", "/api/v1/entities/nobody", None, None, (404,), None),
    # ---- relationships ----
    ("relationship to unknown entity", "POST", "/api/v1/relationships",
     [{"source": "A", "target": "B"}, {"source": "A", "target": "GHOST"}], JSON_CT, (422,), "[1].target"),
    ("relationship from unknown entity", "POST", "/api/v1/relationships",
     [{"source": "GHOST", "target": "A"}], JSON_CT, (422,), "[0].source"),
    ("relationship weight a string", "POST", "/api/v1/relationships",
     [{"source": "A", "target": "B", "weight": "heavy"}], JSON_CT, (422,), "[0].weight"),
    ("relationship without target", "POST", "/api/v1/relationships", [{"source": "A"}], JSON_CT, (422,), "[0].target"),
    ("relationships not a list", "POST", "/api/v1/relationships", {"source": "A", "target": "B"}, JSON_CT, (422,), None),
    ("delete relationships malformed", "DELETE", "/api/v1/relationships", "[{", JSON_CT, (400,), None),
    # ---- observations ----
    ("observation point not a pair", "POST", "/api/v1/entities/A/observations", {"points": [[1, 2, 3]]},
     JSON_CT, (422,), "points*"),
    ("observation bad timestamp", "POST", "/api/v1/entities/A/observations", {"points": [["yesterday", 1]]},
     JSON_CT, (422,), "points*"),
    ("observation value a string", "POST", "/api/v1/entities/A/observations", {"points": [[1700000000, "x"]]},
     JSON_CT, (422,), "points*"),
    ("observation NaN", "POST", "/api/v1/entities/A/observations", '{"points": [[1700000000, NaN]]}',
     JSON_CT, (400, 422), None),
    ("observation points empty", "POST", "/api/v1/entities/A/observations", {"points": []}, JSON_CT, (422,), "points"),
    ("observation unknown entity", "POST", "/api/v1/entities/GHOST/observations", {"points": [[1, 1]]},
     JSON_CT, (404, 422), None),
    # ---- CSV import ----
    ("CSV entities bad rows", "POST", "/api/v1/import/entities", "entity_id,spin\nNEW1,1\n,1\nNEW2,-1\n" + "y" * 300 + ",1\n",
     "text/csv", (422,), None),
    ("CSV relationships bad weight", "POST", "/api/v1/import/relationships",
     "source,target,weight\nA,B,1\nA,B,abc\n", "text/csv", (422,), None),
    ("CSV relationships unknown entity", "POST", "/api/v1/import/relationships",
     "source,target,weight\nA,B,1\nA,GHOST,1\n", "text/csv", (422,), None),
    ("CSV observations bad value", "POST", "/api/v1/import/observations",
     "entity_id,timestamp,value\nA,1700000000,1\nA,1700000001,x\n", "text/csv", (422,), None),
    ("CSV missing header column", "POST", "/api/v1/import/relationships", "source\nA\n", "text/csv", (422, 400), None),
    ("CSV unknown kind", "POST", "/api/v1/import/widgets", "a,b\n1,2\n", "text/csv", (404, 422), None),
    # ---- routes, methods, jobs ----
    ("unknown route", "GET", "/api/v2/everything", None, None, (404,), None),
    ("unknown route under v1", "POST", "/api/v1/predict", predict_body(), JSON_CT, (404,), None),
    ("wrong method on jobs", "DELETE", "/api/v1/jobs", None, None, (405,), None),
    ("wrong method on entity", "PUT", "/api/v1/entities/A", {"properties": {}}, JSON_CT, (405,), None),
    ("wrong method on predict", "GET", PREDICT, None, None, (405,), None),
    ("unknown job", "GET", "/api/v1/jobs/JOB-0000000000000000000000", None, None, (404,), None),
    ("garbage job id", "GET", "/api/v1/jobs/..%2F..%2Fetc", None, None, (404,), None),
    ("results of unknown job", "GET", "/api/v1/jobs/JOB-ffffffffffffffffffffff/results", None, None, (404,), None),
    ("cancel unknown job", "POST", "/api/v1/jobs/nope/cancel", None, None, (404,), None),
    ("jobs bad status filter", "GET", "/api/v1/jobs?status=DONE", None, None, (400, 422), "status"),
    ("jobs limit 0", "GET", "/api/v1/jobs?limit=0", None, None, (400, 422), "limit"),
    ("jobs limit abc", "GET", "/api/v1/jobs?limit=abc", None, None, (400, 422), "limit"),
    ("job wait_ms abc", "GET", "/api/v1/jobs/JOB-x?wait_ms=abc", None, None, (422,), "wait_ms"),
    ("job wait_ms negative", "GET", "/api/v1/jobs/JOB-x?wait_ms=-1", None, None, (422,), "wait_ms"),
    ("job wait_ms over 30 s", "GET", "/api/v1/jobs/JOB-x?wait_ms=30001", None, None, (422,), "wait_ms"),
    ("job wait_ms fraction", "GET", "/api/v1/jobs/JOB-x?wait_ms=1.5", None, None, (422,), "wait_ms"),
    ("deadletter retry unknown", "POST", "/api/v1/deadletters/999999/retry", None, None, (404,), None),
    ("deadletter retry garbage", "POST", "/api/v1/deadletters/abc/retry", None, None, (404,), None),
]


CSV_LINES = {"CSV entities bad rows": (3, 5), "CSV relationships bad weight": (3,),
             "CSV relationships unknown entity": (3,), "CSV observations bad value": (3,)}


def check_error(r, statuses, field, what):
    if r.status not in statuses:
        fail("%s: status %d, expected one of %s; body %s" % (what, r.status, statuses, r.text[:300]))
    try:
        body = json.loads(r.text)
    except ValueError:
        fail("%s: error body is not JSON: %r" % (what, r.text[:300]))
    e = body.get("error") if isinstance(body, dict) else None
    ok(isinstance(e, dict), "%s: body has an error object" % what, body)
    ok(isinstance(e.get("code"), str) and e["code"], "%s: error.code is a non-empty string" % what, e)
    ok(isinstance(e.get("message"), str) and e["message"], "%s: error.message is a non-empty string" % what, e)
    ok("field" in e, "%s: error has a field key" % what, e)
    if field is not None:
        got = e.get("field") or ""
        if field.endswith("*"):
            ok(got.startswith(field[:-1]), "%s: error.field %r starts with %r" % (what, got, field[:-1]))
        else:
            eq(got, field, "%s: error.field" % what)
    return e


def snapshot(c):
    """What a refused request must not change: the entities and the job list."""
    ents = {}
    for eid in ("A", "B", "C", "Z", "NEW1", "NEW2", "GHOST"):
        r = c.get("/api/v1/entities/" + eid)
        ents[eid] = (r.status, r.json.get("version"), json.dumps(r.json.get("properties"), sort_keys=True)) \
            if r.status == 200 else r.status
    jobs = c.expect(200, "GET", "/api/v1/jobs?limit=1000").json["jobs"]
    return ents, [(j["job_id"], j["status"]) for j in jobs]


def seed(c):
    c.upsert([{"entity_id": "A", "properties": {"spin": 1, "field": 0.5}},
              {"entity_id": "B", "properties": {"spin": -1}},
              {"entity_id": "C", "properties": {"spin": 1}}])
    c.relate([{"source": "A", "target": "B", "weight": 1.0}])
    c.wait_job(c.submit(["A", "B", "C"]).json["job_id"])


@suite.test
def test_catalogue_each_refused_cleanly_and_changes_nothing():
    with Server() as s:
        c = s.client()
        seed(c)
        before = snapshot(c)
        failures = []
        for name, method, path, body, ct, statuses, field in CATALOGUE:
            hdrs = {}
            data = body
            if body is not None and not isinstance(body, (str, bytes)):
                data = json.dumps(body)
            if data is not None and ct:
                hdrs["Content-Type"] = ct
            try:
                r = c.request(method, path, body=data, headers=hdrs)
                e = check_error(r, statuses, field, name)
                if r.status == 405:
                    ok(r.header("Allow"), "%s: 405 carries an Allow header" % name, r.headers)
                # bad CSV rows are reported by line number, in the message or a list of lines
                report = e["message"] + "\n" + "\n".join(str(x) for x in (e.get("lines") or []))
                if name in CSV_LINES:
                    for line in CSV_LINES[name]:
                        ok(re.search(r"\bline %d\b" % line, report), "%s: line %d is reported" % (name, line), e)
                after = snapshot(c)
                if after != before:
                    fail("%s changed the state:\n before %s\n after  %s" % (name, before, after))
            except Exception as ex:  # collect them all, then fail once with the list
                failures.append("%s: %s" % (name, ex))
        ok(not failures, "every bad input refused cleanly (%d of %d did not)" % (len(failures), len(CATALOGUE)),
           "\n" + "\n".join(failures))
        c.expect(200, "GET", "/healthz")
        c.expect(200, "GET", "/readyz")
        # still works after all that
        c.wait_job(c.submit(["A", "B"]).json["job_id"])
        s.check_clean_exit()


@suite.test
def test_bad_query_arguments_on_results():
    with Server() as s:
        c = s.client()
        seed(c)
        jid = c.expect(200, "GET", "/api/v1/jobs").json["jobs"][0]["job_id"]
        for q in ("limit=0", "limit=10001", "limit=abc", "limit=-5", "cursor=abc", "cursor=-1",
                  "cursor=99999999999999999999999"):
            r = c.get("/api/v1/jobs/%s/results?%s" % (jid, q))
            check_error(r, (400, 422), None, "results?" + q)
        c.expect(200, "GET", "/api/v1/jobs/%s/results?limit=10000" % jid)
        c.expect(200, "GET", "/api/v1/jobs/%s/results?limit=1" % jid)
        s.check_clean_exit()


@suite.test
def test_too_many_ids_is_422():
    with Server(env={"PREDICTD_JOBS_MAX_ENTITIES": "10"}) as s:
        c = s.client()
        seed(c)
        before = snapshot(c)
        r = c.post(PREDICT, predict_body(entity_ids=["E%d" % i for i in range(11)]))
        e = check_error(r, (422,), "entity_ids", "11 ids over a limit of 10")
        eq(snapshot(c), before, "state after the refused job")
        ok(e["code"], "code", e)
        c.submit(["E%d" % i for i in range(10)])  # exactly the limit is fine
        s.check_clean_exit()


@suite.test
def test_body_over_limit_is_413():
    with Server(env={"PREDICTD_SERVER_MAX_BODY_BYTES": "2048"}) as s:
        c = s.client()
        seed(c)
        before = snapshot(c)
        big = predict_body(entity_ids=["ID-%06d" % i for i in range(400)])
        r = c.post(PREDICT, big)
        check_error(r, (413,), None, "job body over the limit")
        ents = [{"entity_id": "Z%04d" % i, "properties": {"spin": 1}} for i in range(100)]
        r = c.post("/api/v1/entities", ents)
        check_error(r, (413,), None, "entities body over the limit")
        r = c.request("POST", "/api/v1/import/entities", "entity_id,spin\n" + "".join("Z%05d,1\n" % i for i in range(400)),
                      headers={"Content-Type": "text/csv"})
        check_error(r, (413,), None, "CSV body over the limit")
        eq(snapshot(c), before, "state after the refused bodies")
        c.submit(["A"])  # a small body still works
        s.check_clean_exit()


@suite.test
def test_many_uploads_at_once_get_503_not_unbounded_memory():
    """Bodies held by all requests in flight are bounded (4 x max_body_bytes): one more
    upload past that is answered 503 with Retry-After; the others go through."""
    import http.client
    import json as _json
    with Server(env={"PREDICTD_SERVER_MAX_BODY_BYTES": "2048"}) as s:
        c = s.client()
        seed(c)
        before = snapshot(c)
        body = _json.dumps([{"entity_id": "B%04d" % i, "properties": {"spin": 1}} for i in range(40)])
        body = body + " " * (2000 - len(body))  # 2000 bytes of valid JSON
        conns = []
        for _ in range(5):  # 4 x 1990 bytes held fit in 8192; the fifth does not
            h = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            h.putrequest("POST", "/api/v1/entities")
            h.putheader("Content-Type", "application/json")
            h.putheader("Content-Length", str(len(body)))
            h.endheaders()
            h.send(body[:1990].encode())
            conns.append(h)
            time.sleep(0.2)  # the server has read it before the next one starts
        answers = []
        for h in conns:
            h.send(body[1990:].encode())
            r = h.getresponse()
            answers.append((r.status, r.getheader("Retry-After"), _json.loads(r.read() or b"{}")))
            h.close()
        eq([a[0] for a in answers[:4]], [200, 200, 200, 200], "the uploads within the budget")
        eq(answers[4][0], 503, "the upload past the budget")
        ok(answers[4][1] is not None and int(answers[4][1]) > 0, "Retry-After on the 503", answers[4])
        eq(answers[4][2]["error"]["code"], "server_busy", "error code")
        eq(c.get("/api/v1/entities/B0001").status, 200, "the accepted uploads were applied")
        eq(snapshot(c), before, "nothing else changed")
        r = c.post("/api/v1/entities", [{"entity_id": "AFTER", "properties": {"spin": 1}}])
        eq(r.status, 200, "the budget is given back once the bodies are done")
        s.check_clean_exit()


@suite.test
def test_queue_full_is_429_with_retry_after():
    # chunks that always fail and wait an hour before a retry stay in the queue
    env = {"PREDICTD_JOBS_MAX_QUEUE_CHUNKS": "5", "PREDICTD_JOBS_CHUNK_SIZE": "1",
           "PREDICTD_FAULTS_CHUNK_FAILURES": "1000000", "PREDICTD_JOBS_MAX_ATTEMPTS": "1000",
           "PREDICTD_JOBS_BACKOFF_BASE_MS": "3600000", "PREDICTD_JOBS_BACKOFF_MAX_MS": "3600000"}
    with Server(env=env) as s:
        c = s.client()
        c.upsert([{"entity_id": "A", "properties": {"spin": 1}},
                  {"entity_id": "B", "properties": {"spin": 1}},
                  {"entity_id": "C", "properties": {"spin": 1}}])
        accepted, refused = [], None
        for _ in range(6):
            r = c.post(PREDICT, predict_body(entity_ids=["A", "B", "C"]))
            if r.status == 202:
                accepted.append(r.json["job_id"])
                continue
            refused = r
            break
        ok(refused is not None, "a submission is refused once 5 chunks wait", accepted)
        check_error(refused, (429,), None, "queue full")
        ra = refused.header("Retry-After")
        ok(ra is not None and ra.isdigit() and int(ra) >= 1, "429 has Retry-After in seconds", refused.headers)
        ok(len(accepted) <= 2, "at most 5 chunks admitted (two 3-chunk jobs at most)", accepted)
        jobs = [j["job_id"] for j in c.expect(200, "GET", "/api/v1/jobs?limit=100").json["jobs"]]
        eq(sorted(jobs), sorted(accepted), "the refused job was not stored")
        c.expect(200, "GET", "/healthz")
        s.check_clean_exit()


if __name__ == "__main__":
    sys.exit(suite.run())
