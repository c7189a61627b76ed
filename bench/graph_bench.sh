#!/usr/bin/env bash
# Graph analytics benchmarks (issue 4), each printing its figure (lines "FIGURE name value"):
#   1 gen      build/bench/graph_bench gen: N entities, M random relationships as CSVs (seeded)
#   2 import   `predictd import --data-dir` of both files (offline: faster than over HTTP), timed
#   3 mc       Monte Carlo Ising on the whole graph, in-process, 1 thread: attempts/s/core
#   4 big      predictd serve on that data dir; a job on all N entities (Ising analytic): time
#              to accept (202) and to COMPLETED, then a cascade with SAMPLES samples
#   5 repeat   predictd serve on an empty data dir; the repeated-query workload (ROUNDS jobs of
#              5000 ids sliding over 20,000 entities, 10 % of them updated between rounds):
#              cache hit rate of the servable entities, results compared with the closed form
# Run after `make`: bash bench/graph_bench.sh   (about 2.5 min on 2 cores; writes
# bench/out/graph_bench.txt). Knobs: N=1000000 M=5000000 SAMPLES=100 ROUNDS=20 SEED=42
# PORT=18390 WORK=/tmp/... (kept when set, else removed); any PREDICTD_* variable reaches the
# servers (e.g. PREDICTD_JOBS_CHUNK_SIZE=10000). Bounded: every step runs under `timeout`,
# each server start waits at most 120 s, each stop 20 s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-1000000}
M=${M:-5000000}
SAMPLES=${SAMPLES:-100}
ROUNDS=${ROUNDS:-20}
SEED=${SEED:-42}
PORT=${PORT:-18390}
PREDICTD=$ROOT/build/predictd
GB=$ROOT/build/bench/graph_bench
OUT=$ROOT/bench/out
mkdir -p "$OUT"
KEEP=${WORK:+1}
WORK=${WORK:-$(mktemp -d /tmp/predictd-graph-bench.XXXXXX)}
mkdir -p "$WORK"
server_pid=
cleanup() {
  stop_server
  [ -n "$KEEP" ] || rm -rf "$WORK"
}
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null
  server_pid=
  return 0
}
trap cleanup EXIT
start_server() {  # data dir, log file
  "$PREDICTD" serve --listen 127.0.0.1:$PORT --data-dir "$1" --log-level info >"$2" 2>&1 &
  server_pid=$!
  for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited: $(tail -3 "$2")" >&2; return 1; }
    sleep 0.1
  done
  echo "server not ready after 120 s" >&2
  return 1
}
now() { date +%s.%N; }
[ -x "$PREDICTD" ] && [ -x "$GB" ] || { echo "build first: make" >&2; exit 1; }
exec > >(tee "$OUT/graph_bench.txt") 2>&1

echo "# graph_bench $(date -u +%FT%TZ) nproc=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg) commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?)"
timeout 120 "$GB" gen "$WORK" "$N" "$M" "$SEED"

rm -rf "$WORK/data"
t0=$(now)
timeout 300 "$PREDICTD" import --data-dir "$WORK/data" entities "$WORK/entities.csv"
t1=$(now)
timeout 300 "$PREDICTD" import --data-dir "$WORK/data" relationships "$WORK/relationships.csv"
t2=$(now)
echo "FIGURE import_entities_s $(echo "$t1 - $t0" | bc)"
echo "FIGURE import_relationships_s $(echo "$t2 - $t1" | bc)"
echo "FIGURE import_total_s $(echo "$t2 - $t0" | bc)"

timeout 300 "$GB" mc "$WORK/data" 4 10

start_server "$WORK/data" "$WORK/serve-big.log"
grep -h '"graph loaded"\|msg="graph loaded"' "$WORK/serve-big.log" || true
timeout 300 "$GB" big "http://127.0.0.1:$PORT" "$N" "$SAMPLES"
stop_server

start_server "$WORK/data-repeat" "$WORK/serve-repeat.log"
timeout 300 "$GB" repeat "http://127.0.0.1:$PORT" "$ROUNDS"
stop_server
echo "# graph_bench done"
