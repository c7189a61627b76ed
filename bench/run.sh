#!/usr/bin/env bash
# The side-by-side benchmark: predictd against the seed's own stack (FastAPI + Celery + Redis,
# ../shared/peers/celery), both driven by the same C load generator (bench/loadgen.c) in one run.
#
#   1 graph      the peer's gen_graph.py writes N entities / M relationships into bench/out/graph
#   2 peer       Redis (own, free port), Celery worker, uvicorn; loadgen; CPU s + RSS per process
#   3 predictd   serve on a temp data dir; `predictd import` of the same CSVs, timed
#   4 agree      bench/compare.py: the same jobs on both servers agree value by value (1e-9)
#   5 predictd   peer stopped first; loadgen; CPU s + RSS; then build/bench/import_bench
#                splits the import time (parse, store, graph) without HTTP
#   6 table      bench/table.py prints the side-by-side table with ratios and goals
# Only one stack is under load at a time (2 cores). Everything started here is stopped by PID
# on exit. Bounded: each loadgen run gets 300 s, each server start 60 s, each stop 10 s.
#
# Knobs (environment): N=100000 M=500000 DURATION=30 SEED=42 PEER_PORT=18000 PREDICTD_PORT=18080
#   (a taken port is replaced by a free one)
#   PEER_DIR=../shared/peers/celery  SKIP_PEER=1  SKIP_PREDICTD=1  SKIP_NORMAL=1 (no second
#   predictd run with store.synchronous=normal)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3   # Debian's: fastapi/uvicorn/celery/redis/numpy for the peer
N=${N:-100000}
M=${M:-500000}
DURATION=${DURATION:-30}
SEED=${SEED:-42}   # the same entity samples for both servers (each starts with an empty cache)
PEER_PORT=${PEER_PORT:-18000}
PREDICTD_PORT=${PREDICTD_PORT:-18080}
PEER_DIR=$(cd "${PEER_DIR:-$ROOT/../shared/peers/celery}" && pwd)
OUT=$ROOT/bench/out
GRAPH=$OUT/graph
PREDICTD=$ROOT/build/predictd
LOADGEN=$ROOT/build/bench/loadgen
RUN=$(mktemp -d /tmp/predictd-bench.XXXXXX)
export PYTHONDONTWRITEBYTECODE=1   # leave no __pycache__ in the peer's folder
mkdir -p "$OUT"

peer_app_pids=()   # celery worker + uvicorn
redis_pid=
predictd_pid=

alive() {  # any of the PIDs still running?
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}
stop_pids() {  # TERM the PIDs and their children, up to 10 s, then KILL
  [ $# -gt 0 ] || return 0
  local all=("$@") pid i
  for pid in "$@"; do all+=($(pgrep -P "$pid" 2>/dev/null || true)); done
  kill -TERM "${all[@]}" 2>/dev/null || true
  for i in $(seq 100); do alive "${all[@]}" || break; sleep 0.1; done
  for pid in "${all[@]}"; do  # only those still there after 10 s
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}
stop_peer() {
  [ ${#peer_app_pids[@]} -gt 0 ] && stop_pids "${peer_app_pids[@]}"
  [ -n "$redis_pid" ] && stop_pids "$redis_pid"
  peer_app_pids=(); redis_pid=
}
stop_predictd() {
  [ -n "$predictd_pid" ] && stop_pids "$predictd_pid"
  predictd_pid=
}
cleanup() {
  stop_peer; stop_predictd
  rm -rf "$RUN/data"   # predictd's database; the logs stay
  echo "bench: logs in $RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now() { date +%s.%N; }

# "cpu_s rss_kb hwm_kb" summed over the live PIDs (CPU from /proc/PID/stat utime+stime)
stack_sample() {
  local hz cpu=0 rss=0 hwm=0 pid t r h
  hz=$(getconf CLK_TCK)
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    t=$(sed 's/.*) //' "/proc/$pid/stat" | awk -v hz="$hz" '{printf "%.3f", ($12 + $13) / hz}')
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    h=$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    cpu=$(awk -v a="$cpu" -v b="$t" 'BEGIN{printf "%.3f", a + b}')
    rss=$((rss + ${r:-0})); hwm=$((hwm + ${h:-0}))
  done
  echo "$cpu $rss $hwm"
}
peer_pids() {  # every process of the peer's stack
  local p
  for p in "${peer_app_pids[@]}"; do echo "$p"; pgrep -P "$p" 2>/dev/null || true; done
  [ -n "$redis_pid" ] && echo "$redis_pid"
}

# Runs loadgen against PORT; writes OUT/NAME.json and OUT/NAME.stack ("k v" lines).
bench_one() {
  local name=$1 port=$2 pids before after cpu0 cpu1 rss hwm t0 t1 rc=0
  shift 2
  pids=("$@")
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  before=$(stack_sample "${pids[@]}")
  t0=$(now)
  timeout 300 "$LOADGEN" --port "$port" --entities "$N" --duration "$DURATION" --seed "$SEED" \
    --json "$OUT/$name.json" || rc=$?
  t1=$(now)
  after=$(stack_sample "${pids[@]}")
  read -r cpu0 _ _ <<<"$before"
  read -r cpu1 rss hwm <<<"$after"
  {
    echo "processes ${#pids[@]}"
    echo "loadavg_before $load"
    echo "loadavg_after $(cut -d' ' -f1 /proc/loadavg)"
    echo "cpu_s_during_load $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b - a}')"
    echo "cpu_s_total $cpu1"
    echo "rss_kb $rss"
    echo "hwm_kb $hwm"
    echo "loadgen_wall_s $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')"
    echo "loadgen_rc $rc"
  } >"$OUT/$name.stack"
  echo "bench: $name: $(tr '\n' ' ' <"$OUT/$name.stack")"
}

# Submit latency by number of clients: the submit phase alone (200 jobs) at each count in
# SWEEP_CLIENTS, after the server's main run. The goal's figure is at 8 clients; on a machine
# whose cores the clients, the server and the generator share, a closed loop's latency is
# clients / throughput (Little's law), and this shows how each server's p99 follows that.
# Each count has a seed of its own (the same for both servers): new samples and temperatures,
# so that neither server answers from what the main run left in its cache.
sweep_submit() {  # NAME PORT
  local c
  for c in ${SWEEP_CLIENTS-1 2 4 8}; do
    timeout 120 "$LOADGEN" --port "$2" --entities "$N" --seed "$((SEED + 1000 + c))" --phases submit --clients "$c" \
      --json "$OUT/sweep_$1_$c.json" >/dev/null 2>&1 || echo "bench: $1: the submit sweep at $c clients failed" >&2
  done
}

echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: nproc=$(nproc), $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$OUT"/peer.json "$OUT"/peer.stack "$OUT"/predictd.json "$OUT"/predictd.stack \
  "$OUT"/predictd_normal.json "$OUT"/predictd_normal.stack \
  "$OUT"/import.txt "$OUT"/agree.txt "$OUT"/import_bench.txt "$OUT"/sweep_*.json

# the load generator: built by `make`; compiled here alone if the library is not there yet
if [ ! -x "$LOADGEN" ] || [ "$ROOT/bench/loadgen.c" -nt "$LOADGEN" ]; then
  LOADGEN=$OUT/loadgen
  cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -pthread bench/loadgen.c -o "$LOADGEN" \
    -lcurl -ljansson -lyajl -lm
fi

# ---- 1 graph
if [ "$(cat "$GRAPH/stamp" 2>/dev/null)" != "$N $M 42" ]; then
  $PY "$PEER_DIR/gen_graph.py" --entities "$N" --edges "$M" --seed 42 --out "$GRAPH"
  echo "$N $M 42" >"$GRAPH/stamp"
fi
echo "graph: $N entities, $M relationships in $GRAPH"

# ---- 2 peer
start_peer() {
  local redis_port
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
    --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log"
  for _ in $(seq 50); do [ -s "$RUN/redis.pid" ] && break; sleep 0.1; done
  redis_pid=$(cat "$RUN/redis.pid")
  export REDIS_URL="redis://127.0.0.1:$redis_port/0" GRAPH_DIR="$GRAPH"
  (cd "$PEER_DIR" && exec $PY -m celery -A tasks worker --loglevel warning --without-gossip \
    --without-mingle) >"$RUN/peer-worker.log" 2>&1 &
  peer_app_pids+=($!)
  (cd "$PEER_DIR" && exec $PY -m uvicorn api:app --host 127.0.0.1 --port "$PEER_PORT" \
    --log-level warning --no-access-log) >"$RUN/peer-api.log" 2>&1 &
  peer_app_pids+=($!)
  for _ in $(seq 300); do port_busy "$PEER_PORT" && break; sleep 0.2; done
  # the worker forks its 2 children after loading the graph
  for _ in $(seq 300); do [ "$(pgrep -c -P "${peer_app_pids[0]}" || true)" -ge 2 ] && break; sleep 0.2; done
  echo "peer: redis $redis_pid :$redis_port, celery ${peer_app_pids[0]}, uvicorn ${peer_app_pids[1]} :$PEER_PORT"
}
if [ "${SKIP_PEER:-0}" != 1 ]; then
  port_busy "$PEER_PORT" && { PEER_PORT=$(free_port); echo "bench: the peer's default port is taken; using $PEER_PORT"; }
  echo "peer versions: $($PY -c 'import sys, fastapi, uvicorn, celery, redis, numpy
print("python", sys.version.split()[0], "fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__,
      "celery", celery.__version__, "redis-py", redis.__version__, "numpy", numpy.__version__)'), $(redis-server --version | cut -d' ' -f1-3)"
  start_peer
  mapfile -t pp < <(peer_pids)
  bench_one peer "$PEER_PORT" "${pp[@]}"
  sweep_submit peer "$PEER_PORT"
fi

# ---- 3 predictd + import
if [ "${SKIP_PREDICTD:-0}" != 1 ] && [ -x "$PREDICTD" ]; then
  port_busy "$PREDICTD_PORT" && { PREDICTD_PORT=$(free_port); echo "bench: predictd's default port is taken; using $PREDICTD_PORT"; }
  mkdir -p "$RUN/data"
  # start_predictd SYNCHRONOUS LOG: serve on the run's data dir; ready=1 once /readyz answers
  start_predictd() {
    PREDICTD_STORE_SYNCHRONOUS=$1 "$PREDICTD" serve --listen "127.0.0.1:$PREDICTD_PORT" \
      --data-dir "$RUN/data" >"$2" 2>&1 &
    predictd_pid=$!
    ready=0
    for _ in $(seq 300); do
      alive "$predictd_pid" || break
      if [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PREDICTD_PORT/readyz")" = 200 ]; then
        ready=1; break
      fi
      sleep 0.2
    done
  }
  start_predictd full "$RUN/predictd.log"
  if [ $ready != 1 ]; then
    echo "bench: predictd did not become ready; tail of its log:" >&2
    tail -20 "$RUN/predictd.log" >&2 || true
    stop_predictd
  else
    echo "predictd: pid $predictd_pid :$PREDICTD_PORT, data $RUN/data"
    t0=$(now)
    ok=1
    timeout 120 "$PREDICTD" import entities "$GRAPH/entities.csv" --url "http://127.0.0.1:$PREDICTD_PORT" \
      >"$RUN/import-entities.log" 2>&1 || ok=0
    t1=$(now)
    timeout 120 "$PREDICTD" import relationships "$GRAPH/relationships.csv" --url "http://127.0.0.1:$PREDICTD_PORT" \
      >"$RUN/import-relationships.log" 2>&1 || ok=0
    t2=$(now)
    {
      echo "entities_s $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')"
      echo "relationships_s $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b - a}')"
      echo "total_s $(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.2f", b - a}')"
      echo "ok $ok"
    } >"$OUT/import.txt"
    echo "import: $(tr '\n' ' ' <"$OUT/import.txt")"
    [ $ok = 1 ] || { echo "bench: import failed:" >&2; cat "$RUN"/import-*.log >&2; }

    # ---- 4 the two servers agree value by value
    if [ ${#peer_app_pids[@]} -gt 0 ]; then
      timeout 120 $PY bench/compare.py --a "$PEER_PORT" --b "$PREDICTD_PORT" --entities "$N" \
        | tee "$OUT/agree.txt" || echo "bench: the servers DISAGREE (or compare failed)" | tee -a "$OUT/agree.txt"
      stop_peer
    fi

    # ---- 5 predictd under load: store.synchronous=full (the default: an fsync per group
    # commit, a 2xx survives power loss), then =normal (the WAL is written before the 2xx and
    # fsync'd at checkpoints: a 2xx survives kill -9, the non-negotiable, not power loss)
    bench_one predictd "$PREDICTD_PORT" "$predictd_pid"
    sweep_submit predictd "$PREDICTD_PORT"
    stop_predictd
    if [ "${SKIP_NORMAL:-0}" != 1 ]; then
      start_predictd normal "$RUN/predictd-normal.log"
      if [ $ready = 1 ]; then
        echo "predictd (synchronous=normal): pid $predictd_pid :$PREDICTD_PORT"
        bench_one predictd_normal "$PREDICTD_PORT" "$predictd_pid"
      else
        echo "bench: predictd (synchronous=normal) did not become ready" >&2
      fi
      stop_predictd
    fi
  fi
elif [ "${SKIP_PREDICTD:-0}" != 1 ]; then
  echo "bench: $PREDICTD is not built: predictd's column is pending" >&2
fi
stop_peer

# ---- 5b where the import time goes (no HTTP): parse, store, graph, each timed
if [ "${SKIP_PREDICTD:-0}" != 1 ] && [ -x "$ROOT/build/bench/import_bench" ]; then
  timeout 120 "$ROOT/build/bench/import_bench" "$GRAPH/entities.csv" "$GRAPH/relationships.csv" \
    | tee "$OUT/import_bench.txt" || echo "bench: import_bench failed" | tee -a "$OUT/import_bench.txt"
fi

# ---- 6 the table
$PY bench/table.py "$OUT" | tee "$OUT/table.md"
