/*
 * thumbnail.h — a PNG picture of a slide for people: the slide thumbnail, the tissue outline
 * and the planned region grid (the `info --thumbnail` output). Drawn with cairo.
 */
#ifndef WV_THUMBNAIL_H
#define WV_THUMBNAIL_H

#include "src/error.h"

struct slide;
struct tissue_mask;
struct plan;

/* Longest side of the picture, px, when the caller passes 0. */
#define THUMBNAIL_DEFAULT_SIDE 1024

/* Write `path` (PNG): the slide read whole at a scale whose longest side is max_side px (never
 * enlarged beyond level 0), the tissue outline (green) when mask is non-NULL, the cores of the
 * planned regions (blue) with their read rectangles (dashed) when plan is non-NULL.
 * Atomic: drawn into "<path>.tmp.<pid>" and renamed, so on failure no file is left behind.
 * Returns WV_OK, or a status with the slide's/cairo's/file system's message. */
enum wv_status thumbnail_write_png(struct slide *s, const struct tissue_mask *mask,
                                   const struct plan *plan, int max_side, const char *path);

#endif
