/*
 * fuzz_geojson.c — libFuzzer entry for the JSON annotation readers: QuPath GeoJSON
 * (annot_parse_geojson, wsi/annot_geojson.c) and NCRF-style JSON (annot_parse_ncrf,
 * wsi/annot_json.c), both cJSON-based; every input goes through both, and through the
 * content-sniffing annot_parse, and each set returned is rasterised. Built by
 * tests/fuzz/build_and_run.sh; replayed by replay.c in ctest. Seeds: tests/fuzz/corpus/fuzz_geojson.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_annot_common.h"
#include "src/error.h"
#include "wsi/annot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum wv_status (*const parse[])(const uint8_t *, size_t, struct annot_set **) = {
        annot_parse_geojson, annot_parse_ncrf, annot_parse};
    for (size_t i = 0; i < sizeof parse / sizeof parse[0]; i++) {
        struct annot_set *s = NULL;
        if (parse[i](data, size, &s) == WV_OK) {
            fuzz_rasterise(s);
            annot_set_free(s);
        }
        error_clear();
    }
    return 0;
}
