# predictd — `make run` starts a demo server, `make test` runs every test.
# Build dirs: build/ (release, -O2) and build-asan/ (address + undefined sanitizers).
BUILD ?= build
SAN ?= 0
CC ?= cc
NPROC := $(shell nproc 2>/dev/null || echo 2)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -Isrc -g
ifeq ($(SAN),1)
  CFLAGS_OPT := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS_SAN := -fsanitize=address,undefined
else
  CFLAGS_OPT := -O2
  LDFLAGS_SAN :=
endif
CFLAGS := $(CFLAGS_BASE) $(CFLAGS_OPT) $(EXTRA_CFLAGS)
LIBS := -lmicrohttpd -ljansson -lyajl -lyaml -lsqlite3 -lcurl -lm -lpthread

LIB_SRCS := $(filter-out src/cli/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
# Fragments per part (mk/*.mk) may add generated objects (LIB_EXTRA_OBJS, built before the
# library's own objects), include paths (CFLAGS += ...) and libraries (LIBS += ...).
LIB_EXTRA_OBJS :=
.DEFAULT_GOAL := all
-include $(sort $(wildcard mk/*.mk))
LIB_OBJS := $(LIB_EXTRA_OBJS) $(LIB_OBJS)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps run test test-only bench bench-graph bench-nn bench-sessions clean
all: $(BUILD)/predictd $(UNIT_BINS) $(BENCH_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpredictd.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/predictd: $(BUILD)/obj/src/cli/main.o $(BUILD)/libpredictd.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libpredictd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libpredictd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@bash scripts/install-deps.sh

# Installs what is missing, builds, starts the server on 127.0.0.1:8080 with a demo graph.
run: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash scripts/run-demo.sh

# Installs, builds release + sanitizer builds, runs unit and integration tests on both.
test: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=build-asan SAN=1 all
	@$(MAKE) --no-print-directory -j$(NPROC) fuzz
	@bash tests/run.sh

# Runs the tests without the install step (for a quick loop while developing).
test-only: all
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=build-asan SAN=1 all
	@$(MAKE) --no-print-directory -j$(NPROC) fuzz
	@bash tests/run.sh

bench:
	@PREDICTD_BENCH_DEPS=1 bash scripts/install-deps.sh
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash bench/run.sh

# The graph analytics figures (issue 4): 1M-entity jobs, cascade, Monte Carlo, cache hit rate.
bench-graph: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash bench/graph_bench.sh

# predictd's ONNX engine beside ONNX Runtime (installs onnxruntime-node with npm into /tmp/ort).
bench-nn: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash bench/nn_bench.sh

# Session scoring (issue 7): the isolation forest beside scikit-learn, submit latency p99.
bench-sessions:
	@PREDICTD_BENCH_DEPS=1 bash scripts/install-deps.sh
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash bench/sessions_bench.sh

# The market pipeline (issue 6): 5,000 symbols end to end beside ONNX Runtime's naive
# inference, fast-layer read p99 with 8 clients, peak RSS (installs onnxruntime-node too).
.PHONY: bench-pipeline
bench-pipeline: deps
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash bench/pipeline_bench.sh

clean:
	rm -rf build build-asan build-fuzz
