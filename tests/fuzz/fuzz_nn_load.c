/* libFuzzer target for the ONNX loader, planner and runner: every input is treated as a
 * model file (see nn_exercise.h). Built with clang -fsanitize=fuzzer,address,undefined by
 * mk/fuzz.mk into build-fuzz/; tests/run.sh runs it for a bounded time on a corpus seeded
 * with the committed test models and Debian's ONNX node test models. */
#include <stddef.h>
#include <stdint.h>

#include "../unit/nn_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    exercise(data, size);
    return 0;
}
