#!/usr/bin/env bash
# The session scoring figures (issue 7), printed in one run:
#   1. the isolation forest beside scikit-learn on the same data (bench/iforest_bench.py):
#      fit + score of a 50-session batch with 10,000 reference rows, time ratio and AUC
#   2. submit latency of POST /api/v1/sessions/score with 8 concurrent clients
#      (bench/sessions_load.c) against build/predictd on a fresh data dir, store.synchronous
#      full (every 202 fsynced) and then normal, with the scheduler running (batches of 50)
# Run from the repository root after `make all` (make bench-sessions does both).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-21}
REQUESTS=${REQUESTS:-250}

echo "== isolation forest vs scikit-learn"
/usr/bin/python3 bench/iforest_bench.py --repeat "$REPEAT"

run_load() {
    local sync=$1
    local dir port pid
    dir=$(mktemp -d /tmp/predictd-sessions-bench.XXXXXX)
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    PREDICTD_STORE_SYNCHRONOUS=$sync PREDICTD_LOG_LEVEL=warn PREDICTD_SESSIONS_INTERVAL_S=1 \
        build/predictd serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "== submit latency, 8 clients x $REQUESTS sessions, store.synchronous=$sync"
    build/bench/sessions_load --port "$port" --clients 8 --requests "$REQUESTS" || true
    curl -s "http://127.0.0.1:$port/api/v1/batch/stats"; echo
    kill "$pid"
    wait "$pid" || true
    rm -rf "$dir"
}
run_load full
run_load normal
