/*
 * overlay.h — the `--png` picture: the heatmap blended over the slide thumbnail, NaN (off-tissue)
 * cells left transparent, the tissue outline, and a colour bar labelled 0 and 1 on the right
 * (DESIGN.md "Results"; picture layout in docs/formats.md). Drawn with cairo like thumbnail.h.
 *
 * Grid frame: heatmap cell (r, c) covers level-0 px [c·cell, (c+1)·cell) × [r·cell, (r+1)·cell),
 * cell = cell_size_level0, exactly as /heatmap in h5store.h.
 * Files are written atomically ("<path>.tmp.<pid>", then rename); on failure nothing is left.
 * Thread safety: the functions keep no state; different calls may run in parallel.
 */
#ifndef WV_OVERLAY_H
#define WV_OVERLAY_H

#include <stdint.h>

#include "src/error.h"

struct slide;

/* Longest side of the thumbnail part, px, when the caller passes 0. */
#define OVERLAY_DEFAULT_SIDE 1024
/* Width of the colour bar panel added on the right, px (bar, ticks and the labels "0", "1"). */
#define OVERLAY_BAR_PANEL 64
/* Opacity of the heatmap over the thumbnail: 0.5 keeps the tissue readable under red. */
#define OVERLAY_ALPHA 0.5

/* Colour of probability v (clamped to [0, 1]): dark blue (0) → blue → teal → yellow → red (1).
 * Non-finite v gives mid grey; callers treat NaN as transparent instead. */
void overlay_colormap(double v, uint8_t rgb[3]);

/* Draw the overlay on an RGB picture and write it as PNG.
 * rgb: (h, w, 3) bytes, the slide at `ds` level-0 px per picture px (picture px (x, y) covers
 * level-0 [x·ds, (x+1)·ds)); heatmap, tissue: (rows, cols) as in h5store (tissue may be NULL: then
 * the outline follows the finite heatmap cells). The PNG is (w + OVERLAY_BAR_PANEL) × max(h, 64).
 * Returns WV_OK, WV_EINVAL for bad sizes, WV_ENOMEM, or WV_EIO with cairo's/the file system's
 * message. */
enum wv_status overlay_write_png_rgb(const uint8_t *rgb, int w, int h, double ds,
                                     const float *heatmap, const uint8_t *tissue, int rows,
                                     int cols, double cell_size_level0, const char *path);

/* The same over the slide's thumbnail: the whole slide read at a scale whose longest side is
 * max_side px (0 → OVERLAY_DEFAULT_SIDE; never enlarged beyond level 0) through
 * slide_read_region_ds. Slide read errors come back with the slide's message. */
enum wv_status overlay_write_png(struct slide *s, const float *heatmap, const uint8_t *tissue,
                                 int rows, int cols, double cell_size_level0, int max_side,
                                 const char *path);

#endif
