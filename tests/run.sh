#!/usr/bin/env bash
# Runs the whole test suite: every unit test binary of the release (build/) and sanitizer
# (build-asan/) builds, then the integration suites against build/predictd and
# build-asan/predictd (the crash test against the release build only: it kills the server
# on purpose, and the sanitizer build adds minutes for no new coverage). Each part prints
# "N passed, N failed"; the last line sums them all. Exit status 1 when anything failed.
#   tests/run.sh                 everything
#   tests/run.sh unit            unit tests only
#   tests/run.sh integration     integration suites only
#   tests/run.sh fuzz            the libFuzzer target only
# PREDICTD_TEST_TIMEOUT (seconds, default 300) bounds each part; PREDICTD_FUZZ_SECONDS
# (default 30) is how long the libFuzzer target runs.
set -u
cd "$(dirname "$0")/.."

WHAT=${1:-all}
PART_TIMEOUT=${PREDICTD_TEST_TIMEOUT:-300}
TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_PARTS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/predictd-run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Sanitizer settings for everything built with -fsanitize: report leaks, and turn any report
# into a non-zero exit so that a test cannot pass over one.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# LeakSanitizer cannot run under ptrace (some containers, debuggers): then run without it
# rather than report a false failure on every binary.
if [ -x build-asan/tests/test_util ] && ! build-asan/tests/test_util >/dev/null 2>"$TMP/lsan"; then
    if grep -q "LeakSanitizer does not work under ptrace" "$TMP/lsan"; then
        echo "note: LeakSanitizer unavailable here (ptrace); leaks are not checked"
        export ASAN_OPTIONS="${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}"
    fi
fi

# run_part LABEL COMMAND...: runs it with a time limit, shows its output, adds its counts.
# A part that exits non-zero without reporting a failure (a crash, a timeout, a missing
# summary line) counts as one failure.
run_part() {
    local label=$1
    shift
    local log="$TMP/part.log"
    echo "=== $label"
    timeout --kill-after=10 "$PART_TIMEOUT" "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line passed=0 failed=0
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        passed=${line%% passed*}
        failed=${line#*, }
        failed=${failed%% failed*}
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "!!! $label: timed out after ${PART_TIMEOUT}s"
        else
            echo "!!! $label: exited with status $rc without reporting a failure"
        fi
        failed=1
    fi
    if [ -z "$line" ] && [ "$rc" -eq 0 ]; then
        echo "!!! $label: no 'N passed, N failed' line"
        failed=1
    fi
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    if [ "$failed" -ne 0 ]; then FAILED_PARTS+=("$label"); fi
}

missing() {
    echo "!!! $1"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    FAILED_PARTS+=("$1")
}

if [ "$WHAT" = all ] || [ "$WHAT" = unit ]; then
    for dir in build build-asan; do
        shopt -s nullglob
        bins=("$dir"/tests/test_*)
        shopt -u nullglob
        if [ ${#bins[@]} -eq 0 ]; then
            missing "no unit test binaries in $dir/tests (run make test)"
            continue
        fi
        for t in "${bins[@]}"; do
            [ -x "$t" ] || continue
            case "$t" in *.o|*.d) continue ;; esac
            run_part "unit $t" "$t"
        done
    done
fi

# libFuzzer targets (build-fuzz/, `make fuzz`), each a bounded run on a fresh corpus of seeds
# plus the inputs that once failed (libFuzzer runs every corpus input before it mutates). Any
# crash, leak, sanitizer report, abort or timeout makes libFuzzer exit non-zero: one failure.
#   fuzz_nn_load     the ONNX loader/planner/runner; seeds: every committed test model and
#                    Debian's ONNX node test models; PREDICTD_FUZZ_SECONDS (30)
#   fuzz_batch_body  the API's one-pass batch body parser against jansson (differential);
#                    seeds: tests/fuzz/batch_body/; PREDICTD_FUZZ_BODY_SECONDS (15)
fuzz_run() {
    local bin=$1 secs=$2 corpus=$3
    if [ ! -x "$bin" ]; then
        missing "$bin not built (make fuzz; needs clang and libclang-rt-14-dev)"
        return
    fi
    mkdir -p "$TMP/fuzz-artifacts"
    echo "=== fuzz $bin (${secs}s, $(ls "$corpus" | wc -l) seeds)"
    local log="$TMP/fuzz.log" rc
    timeout --kill-after=10 $((secs + 120)) "$bin" -max_total_time="$secs" -seed=1 -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$TMP/fuzz-artifacts/" "$corpus" >"$log" 2>&1
    rc=$?
    grep -E '^(Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb))' "$log"
    if [ "$rc" -eq 0 ] && grep -q '^Done [0-9]* runs' "$log"; then
        echo "1 passed, 0 failed"
        TOTAL_PASSED=$((TOTAL_PASSED + 1))
    else
        tail -n 60 "$log"
        ls "$TMP/fuzz-artifacts"
        echo "!!! fuzz: libFuzzer exited with status $rc"
        TOTAL_FAILED=$((TOTAL_FAILED + 1))
        FAILED_PARTS+=("fuzz $bin")
    fi
}

fuzz_part() {
    local corpus="$TMP/fuzz-corpus-nn"
    mkdir -p "$corpus"
    cp tests/models/*.onnx "$corpus"/
    cp tests/fuzz/regress/* "$corpus"/ 2>/dev/null
    local d
    for d in /usr/share/libonnx-testdata/data/node/test_{lstm,gru,rnn,gemm,matmul,slice,gather,reshape,concat,transpose,softmax}*; do
        [ -f "$d/model.onnx" ] && cp "$d/model.onnx" "$corpus/$(basename "$d").onnx"
    done
    fuzz_run build-fuzz/fuzz_nn_load "${PREDICTD_FUZZ_SECONDS:-30}" "$corpus"
    corpus="$TMP/fuzz-corpus-body"
    mkdir -p "$corpus"
    cp tests/fuzz/batch_body/* "$corpus"/
    fuzz_run build-fuzz/fuzz_batch_body "${PREDICTD_FUZZ_BODY_SECONDS:-15}" "$corpus"
}

if [ "$WHAT" = all ] || [ "$WHAT" = fuzz ]; then
    fuzz_part
fi

if [ "$WHAT" = all ] || [ "$WHAT" = integration ]; then
    if ! command -v python3 >/dev/null; then
        missing "python3 not found: integration suites not run"
    else
        for bin in build/predictd build-asan/predictd; do
            if [ ! -x "$bin" ]; then
                missing "$bin not built"
                continue
            fi
            # every suite in tests/integration (a new one runs without touching this file)
            for path in tests/integration/test_*.py; do
                suite=$(basename "$path" .py)
                if [ "$suite" = test_crash ] && [ "$bin" != build/predictd ]; then continue; fi
                PREDICTD_BIN="$bin" run_part "integration $suite ($bin)" python3 "tests/integration/$suite.py"
            done
        done
    fi
fi

echo
if [ ${#FAILED_PARTS[@]} -gt 0 ]; then
    echo "failed parts:"
    for p in "${FAILED_PARTS[@]}"; do echo "  $p"; done
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
