#!/usr/bin/env bash
# What the result cache costs and gives on the backbone's load (bench/RESULTS.md, "Where
# predictd's time goes"): the same graph as bench/run.sh (the peer's gen_graph.py, 100k
# entities / 500k relationships, seed 42), predictd with cache.enabled=1 and =0 alternated
# ROUNDS times (store.synchronous=normal), each driven by bench/loadgen's submit and
# sustained phases (every job its own temperature, so the cache never hits: this is its
# overhead). Prints one line per run: submit p50/p99 ms and sustained predictions/min.
# Run after `make`: bash bench/cache_ab.sh (about 2 min). Loopback only; servers stopped by pid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
PEER_DIR=$(cd "${PEER_DIR:-$ROOT/../shared/peers/celery}" && pwd)
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
PORT=${PORT:-18556}
W=$(mktemp -d /tmp/predictd-cache-ab.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
/usr/bin/python3 "$PEER_DIR/gen_graph.py" --entities 100000 --edges 500000 --seed 42 --out "$W/graph" >/dev/null
timeout 300 "$B/predictd" import --data-dir "$W/data" entities "$W/graph/entities.csv" >/dev/null
timeout 300 "$B/predictd" import --data-dir "$W/data" relationships "$W/graph/relationships.csv" >/dev/null
for _ in $(seq "$ROUNDS"); do
  for cache in 1 0; do
    PREDICTD_CACHE_ENABLED=$cache PREDICTD_STORE_SYNCHRONOUS=normal "$B/predictd" serve \
      --listen "127.0.0.1:$PORT" --data-dir "$W/data" --log-level warn 2>/dev/null &
    pid=$!
    for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
    timeout 120 "$B/bench/loadgen" --port "$PORT" --phases submit,sustained --duration "$DURATION" \
      --entities 100000 --json "$W/run.json" >/dev/null
    /usr/bin/python3 - "$W/run.json" "$cache" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, u = d["submit"]["latency"], d["sustained"]
print(f"cache.enabled={sys.argv[2]}  submit p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
      f"sustained {u['predictions_per_min'] / 1e6:.2f} M predictions/min")
PY
    kill "$pid"; wait "$pid" || true
    pid=
  done
done
