/*
 * fuzz_pth.c — libFuzzer entry for the PyTorch .pth reader (weights_parse_pth: libzip +
 * the restricted unpickler). Built by tests/fuzz/build_and_run.sh; replayed by replay.c in ctest.
 * Seeds: tests/fuzz/corpus/fuzz_pth (made by tests/integration/weights_cases.py --corpus).
 */
#include <stddef.h>
#include <stdint.h>

#include "src/error.h"
#include "src/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct weights *w = NULL;
    if (weights_parse_pth(data, size, &w) == WV_OK) weights_free(w);
    error_clear();
    return 0;
}
