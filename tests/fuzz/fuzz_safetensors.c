/*
 * fuzz_safetensors.c — libFuzzer entry for the safetensors reader (weights_parse_safetensors).
 * Built by tests/fuzz/build_and_run.sh with clang -fsanitize=fuzzer,address,undefined; the same
 * entry is replayed over tests/fuzz/corpus/fuzz_safetensors by replay.c in ctest (label fuzz).
 */
#include <stddef.h>
#include <stdint.h>

#include "src/error.h"
#include "src/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct weights *w = NULL;
    if (weights_parse_safetensors(data, size, &w) == WV_OK) weights_free(w);
    error_clear();
    return 0;
}
