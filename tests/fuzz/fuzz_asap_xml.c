/*
 * fuzz_asap_xml.c — libFuzzer entry for the ASAP XML annotation reader (annot_parse_asap,
 * wsi/annot_asap.c, libxml2), followed by a rasterisation of what it returns. Built by
 * tests/fuzz/build_and_run.sh; replayed by replay.c in ctest. Seeds: tests/fuzz/corpus/fuzz_asap_xml
 * (small excerpts of ../shared/fixtures/annotations/ XML and hand-written cases).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_annot_common.h"
#include "src/error.h"
#include "wsi/annot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct annot_set *s = NULL;
    if (annot_parse_asap(data, size, &s) == WV_OK) {
        fuzz_rasterise(s);
        annot_set_free(s);
    }
    error_clear();
    return 0;
}
