#!/usr/bin/python3
"""Do two servers of the Ising batch API agree value by value?

Submits the same jobs (seeded random entity samples, a few parameter sets, and one unknown id)
to both servers on 127.0.0.1, waits for them, fetches every results page, and compares each
entity's p_flip, delta_e, local_field and rate_per_hour: |a - b| <= tol * max(1, |a|).
Prints the worst difference; exit status 0 when they agree, 1 when not.
Standard library only; every wait is bounded.
"""
import argparse
import http.client
import json
import random
import sys
import time
import urllib.parse

FIELDS = ("p_flip", "delta_e", "local_field", "rate_per_hour")
PARAMS = (  # (temperature, time_horizon, attempt_rate)
    (0.5, "24h", None),
    (2.0, "30m", None),
    (0.1, "7d", 3.0),
)


class Server:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def submit(self, ids, temperature, horizon, rate):
        params = {"temperature": temperature, "time_horizon": horizon}
        if rate is not None:
            params["attempt_rate"] = rate
        status, body = self.call("POST", "/api/v1/predict/batch/ising",
                                 {"entity_ids": ids, "prediction_type": "spin_flip_probability",
                                  "parameters": params})
        if status not in (200, 202):
            raise RuntimeError(f":{self.port} submit: HTTP {status} {body}")
        return body["job_id"]

    def results(self, job_id, deadline):
        while True:
            status, job = self.call("GET", f"/api/v1/jobs/{job_id}")
            if status == 200 and job.get("status") == "COMPLETED":
                break
            if status != 200 or job.get("status") in ("FAILED", "CANCELLED") or time.time() > deadline:
                raise RuntimeError(f":{self.port} job {job_id}: HTTP {status} {job}")
            time.sleep(0.01)
        out, cursor = {}, None
        for _ in range(10000):
            q = "" if cursor is None else "?cursor=" + urllib.parse.quote(str(cursor))
            status, page = self.call("GET", f"/api/v1/jobs/{job_id}/results{q}")
            if status != 200:
                raise RuntimeError(f":{self.port} results {job_id}: HTTP {status} {page}")
            for r in page["results"]:
                out[r["entity_id"]] = r.get("prediction")
            cursor = page.get("next_cursor")
            if cursor in (None, ""):
                return out
        raise RuntimeError(f":{self.port} results {job_id}: too many pages")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=int, required=True, help="port of the first server (the reference)")
    ap.add_argument("--b", type=int, required=True, help="port of the second server")
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    a_srv, b_srv = Server(a.a), Server(a.b)
    compared, worst, bad = 0, 0.0, []
    for temperature, horizon, rate in PARAMS:
        ids = [f"ACTOR-{i:06d}" for i in rng.sample(range(1, a.entities + 1), a.size)]
        ids[-1] = "ACTOR-NOSUCH"   # an unknown id: no prediction on either side
        ja = a_srv.submit(ids, temperature, horizon, rate)
        jb = b_srv.submit(ids, temperature, horizon, rate)
        deadline = time.time() + 60
        ra, rb = a_srv.results(ja, deadline), b_srv.results(jb, deadline)
        if set(ra) != set(rb):
            bad.append(f"T={temperature}: entity sets differ ({len(ra)} vs {len(rb)})")
            continue
        for e, pa in ra.items():
            pb = rb[e]
            if (pa is None) != (pb is None):
                bad.append(f"T={temperature} {e}: prediction {pa} vs {pb}")
                continue
            if pa is None:
                continue
            for f in FIELDS:
                x, y = pa[f], pb.get(f)
                if not isinstance(y, (int, float)):
                    bad.append(f"T={temperature} {e}.{f}: {x} vs {y}")
                    continue
                d = abs(x - y) / max(1.0, abs(x))
                worst = max(worst, d)
                compared += 1
                if d > a.tol:
                    bad.append(f"T={temperature} {e}.{f}: {x!r} vs {y!r}")
    print(f"agree: {compared} values compared over {len(PARAMS)} jobs of {a.size} ids, "
          f"max relative difference {worst:.3g} (tolerance {a.tol:g}), {len(bad)} mismatches")
    for line in bad[:10]:
        print("  " + line)
    return 0 if not bad and compared else 1


if __name__ == "__main__":
    sys.exit(main())
