# nn/ (ONNX engine): onnx.pb-c.{c,h} are generated at build time from Debian's onnx.proto
# (libonnx-dev) with protoc-c; the generated C is compiled with relaxed warnings since it
# is not ours. Every src/nn object and nn unit test depends on the generated header.
NN_PROTO := /usr/include/onnx/onnx.proto
NN_GEN := $(BUILD)/gen

$(NN_GEN)/onnx.pb-c.h $(NN_GEN)/onnx.pb-c.c &: $(NN_PROTO)
	@mkdir -p $(NN_GEN)
	protoc-c --proto_path=$(dir $(NN_PROTO)) --c_out=$(NN_GEN) $(NN_PROTO)

$(NN_GEN)/onnx.pb-c.o: $(NN_GEN)/onnx.pb-c.c $(NN_GEN)/onnx.pb-c.h
	$(CC) $(filter-out -Werror -Wall -Wextra,$(CFLAGS)) -w -I$(NN_GEN) -c $< -o $@

LIB_EXTRA_OBJS += $(NN_GEN)/onnx.pb-c.o
CFLAGS += -I$(NN_GEN)
LIBS += -lprotobuf-c -lopenblas

NN_DEP_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard src/nn/*.c tests/unit/test_nn*.c))
$(NN_DEP_OBJS): $(NN_GEN)/onnx.pb-c.h

# The engine's kernels are written to be auto-vectorized: -O3 for src/nn in the release build
# (-fno-trapping-math lets the clamps in the activations become vector min/max).
ifneq ($(SAN),1)
$(BUILD)/obj/src/nn/%.o: CFLAGS += -O3 -fno-trapping-math
endif
