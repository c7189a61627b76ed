#!/usr/bin/env bash
# The market pipeline's benchmark (issue 6): 5,000 symbols, trigger -> every prediction in
# the fast layer, the history and the events, split by stage; beside ONNX Runtime's time for
# the same inference done naively (20 full passes, batches of 128, same model files, same
# thread count) in the same run; fast-layer read p99 with 8 clients; the server's peak RSS.
# See bench/pipeline_bench.py for what is measured and checked. Prints Markdown tables.
#
# Usage: [ROUNDS=3] [SYMBOLS=5000] [CLIENTS=8] [ENGINE_THREADS=N] bench/pipeline_bench.sh [THREADS]
#   THREADS (default 2): ORT's intraOpNumThreads and, unless ENGINE_THREADS says otherwise,
#   predictd's engine threads per model run (config.yaml `threads`; the server runs one chunk
#   per job worker, one worker per core by default).
# Needs node + npm: installs onnxruntime-node into /tmp/ort (ORT_DIR) when it is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
ORT_DIR=${ORT_DIR:-/tmp/ort}
PEER=${PEER:-../shared/peers/onnxruntime}
[ -d "$PEER" ] || PEER=/work/shared/peers/onnxruntime
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
    echo "installing onnxruntime-node into $ORT_DIR" >&2
    mkdir -p "$ORT_DIR"
    (cd "$ORT_DIR" && npm init -y >/dev/null && npm install --ignore-scripts onnxruntime-node@1.30.0 >&2)
fi
[ -x build/predictd ] && [ -x build/bench/pred_read ] || make -j"$(nproc)" all >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); ORT $(ORT_NODE=$ORT_DIR/node_modules/onnxruntime-node node -e "console.log(require(process.env.ORT_NODE + '/package.json').version)")"
echo
python3 bench/pipeline_bench.py --bin build/predictd --work "$WORK" --threads "$THREADS" \
    --engine-threads "${ENGINE_THREADS:-$THREADS}" \
    --rounds "${ROUNDS:-3}" --symbols "${SYMBOLS:-5000}" --clients "${CLIENTS:-8}" \
    --peer "$PEER" --ort-node "$ORT_DIR/node_modules/onnxruntime-node"
