# The libFuzzer targets: build-fuzz/fuzz_nn_load (issue 5: fuzz the ONNX loader; the engine,
# src/nn, and the generated ONNX protobuf code) and build-fuzz/fuzz_batch_body (the API's
# one-pass body parser against jansson), compiled by clang with -fsanitize=fuzzer,address,undefined. Built by `make fuzz` (part of `make test`); needs clang
# and libclang-rt-14-dev (scripts/install-deps.sh installs them). tests/run.sh runs it.
FUZZ_DIR := build-fuzz
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -Isrc -I$(FUZZ_DIR)/gen -g -O1 $(FUZZ_SAN)
FUZZ_NN_SRCS := $(sort $(wildcard src/nn/*.c))
FUZZ_OBJS := $(FUZZ_DIR)/gen/onnx.pb-c.o $(FUZZ_NN_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)

.PHONY: fuzz
fuzz: $(FUZZ_DIR)/fuzz_nn_load $(FUZZ_DIR)/fuzz_batch_body

$(FUZZ_DIR)/gen/onnx.pb-c.h $(FUZZ_DIR)/gen/onnx.pb-c.c &: $(NN_PROTO)
	@mkdir -p $(FUZZ_DIR)/gen
	protoc-c --proto_path=$(dir $(NN_PROTO)) --c_out=$(FUZZ_DIR)/gen $(NN_PROTO)

$(FUZZ_DIR)/gen/onnx.pb-c.o: $(FUZZ_DIR)/gen/onnx.pb-c.c
	$(FUZZ_CC) $(filter-out -Werror -Wall -Wextra,$(FUZZ_CFLAGS)) -w -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_DIR)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_nn_load: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_nn_load.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -lprotobuf-c -lopenblas -lm -lpthread

# The API's one-pass batch body parser against jansson (tests/fuzz/fuzz_batch_body.c).
FUZZ_BODY_SRCS := src/api/api_batch_body.c src/api/api_json.c src/core/util.c src/core/fmt_double.c \
                  src/core/fmt_double_tab.c
$(FUZZ_DIR)/fuzz_batch_body: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_batch_body.o $(FUZZ_BODY_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -ljansson -lyajl -lmicrohttpd -lm -lpthread

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
