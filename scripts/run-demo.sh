#!/usr/bin/env bash
# `make run`: starts predictd on a demo graph and shows how to use it. Assumes `make all` ran.
#
#   PREDICTD_LISTEN=HOST:PORT  address to bind (default 127.0.0.1:8080; PORT=N sets the port only)
#   PREDICTD_DATA_DIR=DIR      data dir (default ./data; the demo CSVs go to DIR/demo)
#   PREDICTD_BIN=PATH          the binary (default build/predictd)
#   PREDICTD_PIPELINE_INTERVAL_S=N  market pipeline period (default 60: every minute)
#
# Generates 10,000 entities and 50,000 relationships (seeded) into DATA_DIR/demo/ if absent,
# starts `predictd serve` in the foreground, imports the demo graph over HTTP when the store
# does not have it yet, and prints curl and CLI examples. Ctrl-C stops the server cleanly.
#
# The market pipeline (issue 6): the two ONNX models go to DATA_DIR/models (served with
# --models) and a 5,000-symbol demo market to DATA_DIR/market, each only when absent (the
# market again when its trading day is past); the server runs the pipeline every minute; the
# features and the earnings calendar are imported when the store has no prediction yet, and a
# first run is triggered at once. A binary without the market routes (404) skips this part.
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

MODELS=$DATA/models
MARKET=$DATA/market
PY_ONNX=/usr/bin/python3
"$PY_ONNX" -c 'import onnx, numpy' 2>/dev/null || PY_ONNX=python3
if [ ! -f "$MODELS/normal_day/1/model.onnx" ] || [ ! -f "$MODELS/earnings_day/1/model.onnx" ]; then
  echo "run-demo: generating the market models into $MODELS"
  "$PY_ONNX" scripts/gen-market-models.py --out "$MODELS" --seed 6 ||
    { echo "run-demo: could not generate the models (python3-onnx, python3-numpy: make deps)" >&2; exit 1; }
fi
# the demo market is for one trading day (the exchange's: pipeline.timezone, New York by
# default, which is what the server's periodic runs route for): a new one when today's is not
# the one on disk
TODAY=$(TZ=${PREDICTD_PIPELINE_TIMEZONE:-America/New_York} date +%F)
if [ ! -f "$MARKET/market.json" ] || [ ! -f "$MARKET/features.csv" ] ||
   ! python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["date"] < sys.argv[2])' \
     "$MARKET/market.json" "$TODAY" 2>/dev/null; then
  echo "run-demo: generating the demo market (5,000 symbols) into $MARKET"
  python3 scripts/gen-demo-market.py --symbols 5000 --steps 32 --seed 6 --date "$TODAY" --out "$MARKET"
fi
MDATE=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["date"])' "$MARKET/market.json")
market_example() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]] or "")' "$MARKET/market.json" "$1"; }

if curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; then
  echo "run-demo: something already answers on $URL; stop it or pick another port:" >&2
  echo "          PREDICTD_LISTEN=127.0.0.1:8081 make run" >&2
  exit 1
fi

PREDICTD_PIPELINE_INTERVAL_S=${PREDICTD_PIPELINE_INTERVAL_S:-60} \
  "$BIN" serve --listen "$LISTEN" --data-dir "$DATA" --models "$MODELS" &
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

# The market pipeline: present when POST /api/v1/pipeline/run is routed (a bad body: 4xx).
MARKET_MSG="The market pipeline is not in this build (POST /api/v1/pipeline/run answers 404): issue 6."
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
       -d '{"symbols": 0}' "$URL/api/v1/pipeline/run" || true)
if [ "$code" = 404 ] || [ "$code" = 000 ]; then
  echo "run-demo: this predictd has no market pipeline routes yet (POST /api/v1/pipeline/run -> $code);"
  echo "          the models and the demo market are ready in $MODELS and $MARKET; serving the graph demo only"
else
  BMO=$(market_example example_bmo); AMC=$(market_example example_amc); NORMAL=$(market_example example_normal)
  # imported once per market (a marker per trading day), again when the store lost it
  pcode=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/predictions/$NORMAL" || true)
  if [ "$pcode" = 200 ] && [ -f "$MARKET/.imported-$MDATE" ]; then
    echo "run-demo: the store already holds the $MDATE market (GET /api/v1/predictions/$NORMAL -> 200)"
  else
    echo "run-demo: importing the demo market over HTTP"
    ok=1
    "$BIN" import --url "$URL" calendar "$MARKET/calendar.csv" || ok=0
    "$BIN" import --url "$URL" features "$MARKET/features.csv" || ok=0
    "$BIN" import --url "$URL" features "$MARKET/features_earnings.csv" || ok=0
    if [ "$ok" = 1 ]; then
      rm -f "$MARKET"/.imported-*
      touch "$MARKET/.imported-$MDATE"
    else
      echo "run-demo: the market import failed (see above); the pipeline has nothing to run on" >&2
    fi
  fi
  run=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"all\": true, \"date\": \"$MDATE\"}" \
        "$URL/api/v1/pipeline/run" || true)
  RUN_ID=$(printf '%s' "$run" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("run_id", ""))' 2>/dev/null || true)
  if [ -n "$RUN_ID" ]; then
    echo "run-demo: pipeline run $RUN_ID started for $MDATE (all symbols)"
  else
    echo "run-demo: could not start a pipeline run: $run" >&2
    RUN_ID=RUN_ID
  fi
  MARKET_MSG=$(cat <<M
The market pipeline: 5,000 symbols ($MARKET), models in $MODELS, a run every
${PREDICTD_PIPELINE_INTERVAL_S:-60} s. The run just started:

  curl -s $URL/api/v1/pipeline/runs/$RUN_ID

Predictions (normal day, and earnings day: $BMO reports before today's open, $AMC after
the previous close):

  curl -s $URL/api/v1/predictions/$NORMAL
  curl -s '$URL/api/v1/predictions?symbols=$NORMAL,$BMO,$AMC'
  curl -s $URL/api/v1/predictions/$NORMAL/history

Another run now (or for some symbols: {"symbols": ["$NORMAL"]}):

  curl -s -X POST $URL/api/v1/pipeline/run -H 'Content-Type: application/json' -d '{"all": true, "date": "$MDATE"}'

Live updates: WebSocket ws://$HOST:$PORTNUM/api/v1/ws (send {"subscribe": {"symbols": "*"}}),
or Server-Sent Events:

  curl -N '$URL/api/v1/events?topics=prediction.updated,pipeline.run.completed'
M
)
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

$MARKET_MSG

Health, readiness and Prometheus metrics: $URL/healthz  $URL/readyz  $URL/metrics

MSG

wait "$PID" && rc=0 || rc=$?
trap - INT TERM
exit $rc
