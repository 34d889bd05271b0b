/*
 * lesions.h — lesion candidates from a heatmap for the CAMELYON16 lesion (FROC) task
 * (docs/head.md "Lesion candidates", CAMELYON16_PROTOCOL.md): connected regions above a
 * threshold and local maxima, each as (probability, X, Y) in level-0 pixels.
 *
 * Two kinds of candidate, both from the same (rows, cols) heatmap, NaN = off tissue (never part
 * of a region, never a maximum, and a NaN neighbour does not block a maximum):
 *   region  8-connected component of cells with p ≥ threshold: one candidate at the component's
 *           maximum cell (first in row-major order on ties); area = cells in the component.
 *   peak    a cell with p ≥ peak_threshold and p ≥ each of its 8 neighbours (plateaus: the first
 *           cell in row-major order of equal-valued cells within the radius wins), then greedy
 *           non-maximum suppression: peaks taken in descending p (ties row-major); a peak within
 *           nms_radius cells (Chebyshev distance) of an already kept candidate — region or peak —
 *           is dropped. area = area of its region when p ≥ threshold, else 0.
 * Region candidates come first in the suppression, so a region's maximum is never dropped; the
 * peaks add second and further foci inside big regions and sub-threshold foci.
 * Output order: descending p, ties by row-major cell index. Deterministic.
 */
#ifndef WV_LESIONS_H
#define WV_LESIONS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct lesion_params {
    float threshold;      /* region threshold (default 0.5) */
    float peak_threshold; /* local-maximum threshold (default 0.5); > 1 disables peaks */
    int nms_radius;       /* cells (default 4 = 64 µm at 16 µm cells); 0 = keep all peaks */
    double cell_size_px;  /* level-0 pixels per cell (32 · target_mpp / slide_mpp) */
    double origin_x_px;   /* level-0 px of the grid's top-left corner (usually 0) */
    double origin_y_px;
};

void lesion_params_default(struct lesion_params *p);

enum lesion_kind { LESION_REGION = 0, LESION_PEAK = 1 };

struct lesion {
    float prob;          /* heatmap value at the cell */
    double x_px, y_px;   /* level-0 px of the cell's centre: origin + (col + ½)·cell_size */
    int row, col;        /* the cell */
    size_t area_cells;   /* cells of its region (0 for a peak below the region threshold) */
    enum lesion_kind kind;
};

/* Find the candidates. heat (rows, cols) row-major. *out malloc'ed array of *n (NULL when 0),
 * caller frees. WV_EINVAL for bad sizes / params, WV_ENOMEM. Memory O(rows·cols). */
enum wv_status lesions_find(const float *heat, int rows, int cols,
                            const struct lesion_params *p, struct lesion **out, size_t *n);

#endif
