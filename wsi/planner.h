/*
 * planner.h — the region plan (DESIGN.md "Data flow"): the slide, seen at the target resolution,
 * is cut into a grid of R×R-pixel regions; only regions whose core touches tissue are kept, each
 * with an overlap halo so the encoder sees context across region seams.
 *
 * Grid: region (row, col) has core [col·R, col·R + R) × [row·R, row·R + R) in target px,
 * clipped to the slide (the last row/column may be narrower). The read rectangle is the core
 * grown by the halo on every side and is NOT clipped: past the slide edge it is padded (the
 * reader returns white there), so the halo to crop is always `overlap_px` on every side.
 * Order: row-major over the grid (row 0 left to right, then row 1, …), skipping regions without
 * tissue; deterministic for given inputs.
 * Level-0 rectangles are the target-px rectangles scaled by level-0 px per target px and
 * rounded to the nearest level-0 px (x_l0 = round(x·ds), w_l0 = round((x+w)·ds) − x_l0), so
 * neighbouring regions share their boundaries exactly. Read a region with
 * slide_read_region_mpp(s, read_l0.x, read_l0.y, read.w, read.h, target_mpp, rgb).
 */
#ifndef WV_PLANNER_H
#define WV_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

struct tissue_mask;

#define PLAN_DEFAULT_TARGET_MPP 0.5 /* µm/px: the encoder's training resolution (20×) */
#define PLAN_DEFAULT_REGION_PX 10000 /* target px per region side (DESIGN.md) */
#define PLAN_DEFAULT_OVERLAP_PX 256 /* halo, target px: 8 encoder cells of 32 px */
#define PLAN_HALO_MULTIPLE 32       /* the encoder's stride: a halo must be whole cells */

struct plan_params {
    double target_mpp;  /* µm/px */
    int64_t region_px;  /* R: region side in target px, ≥ 1 */
    int64_t overlap_px; /* halo in target px, a multiple of PLAN_HALO_MULTIPLE, ≥ 0 */
};
void plan_params_default(struct plan_params *p);
/* WV_OK, or WV_EINVAL with a message naming the bad value
 * ("overlap 100 px: must be a multiple of 32"). */
enum wv_status plan_check_params(const struct plan_params *p);

struct plan_rect {
    int64_t x, y, w, h;
};

struct plan_region {
    int row, col;             /* position in the region grid */
    struct plan_rect core;    /* target px, inside the slide */
    struct plan_rect read;    /* target px: core ± overlap_px on every side (may leave the slide) */
    struct plan_rect core_l0; /* level-0 px */
    struct plan_rect read_l0; /* level-0 px */
};

struct plan {
    struct plan_params params;
    double ds_x, ds_y;     /* level-0 px per target px */
    int64_t width, height; /* the slide in target px: ceil(level-0 size / ds) */
    int n_rows, n_cols;    /* the region grid */
    size_t n_regions;
    struct plan_region *regions; /* n_regions, in plan order; free with plan_free */
};

/* Plan the regions of a slide of slide_w × slide_h level-0 px with pixel size mpp_x × mpp_y
 * µm/px. mask: the tissue mask (tissue.h) selecting regions; NULL keeps every region.
 * On success *out owns the regions; on error *out is zeroed and the message set. */
enum wv_status plan_regions(const struct tissue_mask *mask, int64_t slide_w, int64_t slide_h,
                            double mpp_x, double mpp_y, const struct plan_params *p,
                            struct plan *out);
void plan_free(struct plan *p);

#endif
