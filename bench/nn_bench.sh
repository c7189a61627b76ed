#!/usr/bin/env bash
# predictd's ONNX engine beside ONNX Runtime (CPU, the onnxruntime-node package; see
# ../shared/peers/onnxruntime/README.md) on the same model files, the same input
# (x[i] = sin(0.37 i)), the same thread count, in the same run on the same machine:
#   - batch 1, 32, 128, 1024: median and p99 ms of one run (ratio = predictd / ORT);
#   - 5000 rows x 20 passes: ORT runs the whole network 20 times in batches of 128 (the naive
#     way); predictd runs MC dropout in batches of 128 (shared part once, passes stacked);
#   - agreement: both engines' outputs for a batch of 32 rows, largest absolute difference
#     (must be <= 1e-4).
# Usage: [ROUNDS=3] bench/nn_bench.sh [THREADS]   (default 2 threads). Needs node + npm; installs
# onnxruntime-node into /tmp/ort when it is not there. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
ROUNDS=${ROUNDS:-3}
ORT_DIR=${ORT_DIR:-/tmp/ort}
PEER=${PEER:-../shared/peers/onnxruntime}
[ -d "$PEER" ] || PEER=/work/shared/peers/onnxruntime
BIN=build/predictd
OUT=$(mktemp -d "${TMPDIR:-/tmp}/nn-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
    echo "installing onnxruntime-node into $ORT_DIR" >&2
    mkdir -p "$ORT_DIR"
    (cd "$ORT_DIR" && npm init -y >/dev/null && npm install --ignore-scripts onnxruntime-node@1.30.0 >&2)
fi
export ORT_NODE="$ORT_DIR/node_modules/onnxruntime-node"
[ -x "$BIN" ] || make -j"$(nproc)" all >&2
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ORT's outputs for ROWS rows of the bench input, one value per line.
ort_outputs() {
    node - "$1" "$2" "$3" <<'EOF'
const ort = require(process.env.ORT_NODE);
const [model, shape, rows] = process.argv.slice(2);
(async () => {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const dims = shape.split(',').map(d => d === 'B' ? +rows : +d), n = dims.reduce((a, c) => a * c, 1);
  const x = new Float32Array(n); for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, dims) });
  for (const v of r[s.outputNames[0]].data) console.log(v.toPrecision(9));
})();
EOF
}

# One median per (engine, batch), measured ROUNDS times, the engines alternating so that
# both see the same background load; the table keeps each engine's best round.
best() { sort -g | head -n 1; }
# GFLOP/s: the multiply-adds of the LSTM (T steps x 4H gates x (F + H) inputs) and the dense
# head (H -> 16 -> 1), 2 flops each, per row; against the machine's FMA peak on the same
# threads (bench/nn_peak.c: a register-only loop of independent FMAs, AVX-512 where the CPU
# has it), with OpenBLAS's sgemm printed beside it. Both measured again after each model,
# the higher kept: a busy machine only lowers them.
# (no AVX2 + FMA: no FMA loop, the sgemm figure stands in)
peaks() {
    build/bench/nn_peak "$THREADS" 1024 30 > "$OUT/peak"
    FMA_NOW=$(awk '/^fma peak: [0-9]/{print $3}' "$OUT/peak")
    SGEMM_NOW=$(awk '/^sgemm:/{print $2}' "$OUT/peak")
    [ -n "$FMA_NOW" ] || FMA_NOW=$SGEMM_NOW
}
peaks
PEAK=$FMA_NOW SGEMM=$SGEMM_NOW
PEAK_ISA=$(sed -n 's/^fma peak: [0-9.]* GFLOP\/s (\([a-z0-9]*\),.*/\1/p' "$OUT/peak")
[ -n "$PEAK_ISA" ] || PEAK_ISA="no FMA loop: sgemm"
echo "| model | batch | ORT median ms | predictd median ms | ratio | ORT p99 ms | predictd p99 ms | predictd GFLOP/s (% of FMA peak) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
SUMMARY=()
for spec in "tests/models/lstm_regressor.onnx B,32,20 32 20 64" "tests/models/lstm_regressor_37.onnx B,32,37 32 37 64"; do
    set -- $spec
    model=$1 shape=$2 name=$(basename "$1" .onnx)
    flops_row=$(( 2 * $3 * 4 * $5 * ($4 + $5) + 2 * $5 * 16 + 2 * 16 ))
    for r in $(seq 1 "$ROUNDS"); do
        for b in 1 32 128 1024; do
            node "$PEER/bench.js" "$model" "$shape" --threads "$THREADS" --batches "$b" --passes 0 \
                | grep "^batch $b:" >> "$OUT/$name.$b.ort"
            "$BIN" model bench "$model" --shape "$shape" --threads "$THREADS" --batches "$b" \
                | grep "^batch $b:" >> "$OUT/$name.$b.pd"
        done
        node "$PEER/bench.js" "$model" "$shape" --threads "$THREADS" --batches 1 --rows 5000 --passes 20 \
            | grep "rows x" | awk '{print $(NF-1)}' >> "$OUT/$name.mc.ort"
        "$BIN" model bench "$model" --shape "$shape" --threads "$THREADS" --batches 1 --rows 5000 --passes 20 \
            | grep "rows x" | awk '{print $(NF-1)}' >> "$OUT/$name.mc.pd"
    done
    peaks
    PEAK=$(printf '%s\n%s\n' "$PEAK" "$FMA_NOW" | sort -g | tail -n 1)
    SGEMM=$(printf '%s\n%s\n' "$SGEMM" "$SGEMM_NOW" | sort -g | tail -n 1)
    for b in 1 32 128 1024; do
        om=$(awk '{print $4}' "$OUT/$name.$b.ort" | best); op=$(awk '{print $7}' "$OUT/$name.$b.ort" | best)
        pm=$(awk '{print $4}' "$OUT/$name.$b.pd" | best); pp=$(awk '{print $7}' "$OUT/$name.$b.pd" | best)
        gf=$(awk -v f="$flops_row" -v b="$b" -v ms="$pm" -v pk="$PEAK" 'BEGIN{g=f*b/(ms/1000)/1e9; printf "%.1f (%.0f %%)", g, 100*g/pk}')
        case $gf in *"("[0-9][0-9][0-9]*" %)") PEAK_LOW=1 ;; esac
        echo "| $name | $b | $om | $pm | $(awk -v a="$pm" -v b="$om" 'BEGIN{printf "%.2f", a/b}') | $op | $pp | $gf |"
    done
    ot=$(best < "$OUT/$name.mc.ort")
    pt=$(best < "$OUT/$name.mc.pd")
    ort_outputs "$model" "$shape" 32 > "$OUT/$name.ort_y"
    "$BIN" model bench "$model" --shape "$shape" --threads 1 --batches 32 --runs 1 --print 32 \
        | grep "^output batch 32:" | cut -d: -f2 | tr ' ' '\n' | grep -v '^$' > "$OUT/$name.pd_y"
    diff=$(paste "$OUT/$name.ort_y" "$OUT/$name.pd_y" | awk '{d=$1-$2; if(d<0)d=-d; if(d>m)m=d; n++} END{printf "%.2e over %d values", m, n}')
    SUMMARY+=("| $name | $ot | $pt | $(awk -v a="$pt" -v b="$ot" 'BEGIN{printf "%.3f (1/%.1f)", a/b, b/a}') | $diff |")
done
echo
echo "| model | ORT 5000 rows x 20 full passes, batch 128 (ms) | predictd MC dropout 5000 x 20, batch 128 (ms) | ratio | outputs: largest abs difference (batch 32) |"
echo "|---|---:|---:|---:|---|"
for line in "${SUMMARY[@]}"; do echo "$line"; done
echo
echo "FMA peak (build/bench/nn_peak $THREADS, $PEAK_ISA, $THREADS threads): $PEAK GFLOP/s; OpenBLAS sgemm 1024^3 on $THREADS threads: $SGEMM GFLOP/s"
[ -z "${PEAK_LOW:-}" ] || echo "warning: a rate above 100 % of the FMA peak: the peak was measured while something else ran (all three times); the % column is not meaningful"
echo "threads $THREADS; best of $ROUNDS alternating rounds; load average before: $LOAD0, after: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); ORT $(node -e "console.log(require(process.env.ORT_NODE + '/package.json').version)")"
