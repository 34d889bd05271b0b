/*
 * fuzz_annot_common.h — shared by fuzz_asap_xml.c and fuzz_geojson.c: rasterise a parsed set
 * onto a small grid over its bounds, so hostile coordinates (huge, tiny, degenerate rings) also
 * reach annot_raster.c. Contract of the readers and the rasteriser: wsi/annot.h.
 */
#ifndef WV_FUZZ_ANNOT_COMMON_H
#define WV_FUZZ_ANNOT_COMMON_H

#include <math.h>
#include <stdint.h>

#include "wsi/annot.h"

static void fuzz_rasterise(const struct annot_set *s)
{
    double x0, y0, x1, y1;
    if (annot_bounds(s, ANNOT_IGNORED, &x0, &y0, &x1, &y1)) return;
    /* 8 × 8 cells over the bounding box: enough for every rasteriser branch, cheap per input */
    double side = fmax(x1 - x0, y1 - y0) / 8;
    if (!isfinite(side) || !isfinite(x0) || !isfinite(y0) || side <= 0) side = 1;
    struct annot_grid g = {x0, y0, side, 8, 8};
    uint8_t mask[64];
    float frac[64];
    (void)annot_rasterise_mask(s, &g, ANNOT_SAMPLE_CORNER, 255, mask);
    (void)annot_rasterise_fraction(s, &g, 2, frac);
}

#endif
