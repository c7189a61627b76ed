#!/usr/bin/env bash
# `make run`: starts predictd on a demo graph and shows how to use it. Assumes `make all` ran.
#
#   PREDICTD_LISTEN=HOST:PORT  address to bind (default 127.0.0.1:8080; PORT=N sets the port only)
#   PREDICTD_DATA_DIR=DIR      data dir (default ./data; the demo CSVs go to DIR/demo)
#   PREDICTD_BIN=PATH          the binary (default build/predictd)
#
# Generates 10,000 entities and 50,000 relationships (seeded) into DATA_DIR/demo/ if absent,
# starts `predictd serve` in the foreground, imports the demo graph over HTTP when the store
# does not have it yet, and prints curl and CLI examples. Ctrl-C stops the server cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PREDICTD_BIN:-build/predictd}
LISTEN=${PREDICTD_LISTEN:-${PREDICTD_SERVER_LISTEN:-127.0.0.1:${PORT:-8080}}}
DATA=${PREDICTD_DATA_DIR:-${PREDICTD_SERVER_DATA_DIR:-./data}}
DEMO=$DATA/demo
HOST=${LISTEN%:*}
PORTNUM=${LISTEN##*:}
case "$HOST" in ""|0.0.0.0|"[::]"|"::") HOST=127.0.0.1 ;; esac
URL=http://$HOST:$PORTNUM

if [ ! -x "$BIN" ]; then
  echo "run-demo: $BIN is missing; build it first with: make all" >&2
  exit 1
fi
if ! command -v curl >/dev/null; then
  echo "run-demo: curl is missing (make deps installs it)" >&2
  exit 1
fi

if [ ! -f "$DEMO/entities.csv" ] || [ ! -f "$DEMO/relationships.csv" ]; then
  echo "run-demo: generating the demo graph into $DEMO"
  python3 scripts/gen-demo-graph.py --entities 10000 --edges 50000 --seed 42 --out "$DEMO"
fi

if curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; then
  echo "run-demo: something already answers on $URL; stop it or pick another port:" >&2
  echo "          PREDICTD_LISTEN=127.0.0.1:8081 make run" >&2
  exit 1
fi

"$BIN" serve --listen "$LISTEN" --data-dir "$DATA" &
PID=$!
stop() {
  trap - INT TERM
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null
  exit $?
}
trap stop INT TERM

# Ready once recovery is done and the API serves.
for _ in $(seq 1 600); do
  if ! kill -0 "$PID" 2>/dev/null; then
    wait "$PID" && rc=0 || rc=$?
    echo "run-demo: predictd serve exited (status $rc) before it was ready; see the log above" >&2
    exit 1
  fi
  curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break
  sleep 0.1
done
if ! curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
  echo "run-demo: predictd did not become ready on $URL within 60 s" >&2
  stop
fi

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/entities/ACTOR-000001" || true)
if [ "$code" = 404 ]; then
  echo "run-demo: importing the demo graph over HTTP"
  "$BIN" import --url "$URL" entities "$DEMO/entities.csv"
  "$BIN" import --url "$URL" relationships "$DEMO/relationships.csv"
else
  echo "run-demo: the store already holds the demo graph (GET ACTOR-000001 -> $code)"
fi

cat <<MSG

predictd is running at $URL   (data in $DATA, Ctrl-C stops it cleanly)

Submit an Ising job (202 with a job id; the job is durable before the answer is sent):

  curl -s -X POST $URL/api/v1/predict/batch/ising \\
       -H 'Content-Type: application/json' \\
       -d '{"entity_ids":["ACTOR-000001","ACTOR-000002","ACTOR-000003"],
            "prediction_type":"spin_flip_probability",
            "parameters":{"temperature":2.0,"time_horizon":"24h"}}'

Its status and results (JOB_ID from the answer above):

  curl -s $URL/api/v1/jobs/JOB_ID
  curl -s '$URL/api/v1/jobs/JOB_ID/results?limit=10'

The same with the CLI:

  JOB=\$($BIN submit --url $URL --ids ACTOR-000001,ACTOR-000002,ACTOR-000003 --temperature 2.0 --wait)
  $BIN status  --url $URL \$JOB
  $BIN results --url $URL \$JOB --table

A thousand entities at once, with a progress bar:

  seq -f 'ACTOR-%06g' 1 1000 | $BIN submit --url $URL --ids-file - --temperature 2.0 --wait

Health, readiness and Prometheus metrics: $URL/healthz  $URL/readyz  $URL/metrics

MSG

wait "$PID" && rc=0 || rc=$?
trap - INT TERM
exit $rc
