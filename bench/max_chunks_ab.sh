#!/usr/bin/env bash
# A/B of jobs.max_chunks on the 1M-entity Ising job (issue 4): one generated 1M-node / 5M-edge
# graph imported once, then `predictd serve` with PREDICTD_JOBS_MAX_CHUNKS=250 (the default)
# and 1000000 (one chunk per chunk_size entities), alternated ROUNDS times; each prints
# graph_bench's accept and complete figures. Run after `make`: bash bench/max_chunks_ab.sh
# (about 5 min). Loopback only; the server is stopped by its pid after each round.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18555}
W=$(mktemp -d /tmp/predictd-max-chunks.XXXXXX)
trap 'rm -rf "$W"' EXIT
timeout 120 "$B/bench/graph_bench" gen "$W" 1000000 5000000 42 >/dev/null
timeout 300 "$B/predictd" import --data-dir "$W/data" entities "$W/entities.csv" >/dev/null
timeout 300 "$B/predictd" import --data-dir "$W/data" relationships "$W/relationships.csv" >/dev/null
for _ in $(seq "$ROUNDS"); do
  for mc in 250 1000000; do
    PREDICTD_JOBS_MAX_CHUNKS=$mc "$B/predictd" serve --listen "127.0.0.1:$PORT" --data-dir "$W/data" \
      --log-level warn 2>/dev/null &
    pid=$!
    for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
    echo "max_chunks=$mc"
    timeout 120 "$B/bench/graph_bench" big "http://127.0.0.1:$PORT" 1000000 1 2>&1 | grep 'FIGURE ising' || true
    kill "$pid"; wait "$pid" || true
  done
done
