/*
 * tissue.h — tissue detection on a low-resolution copy of the slide (DESIGN.md "Data flow"):
 * saturation (HSV S) → blur → Otsu threshold (with hysteresis) → morphological close then open → hole filling →
 * minimum-area filter. Notes on the choices: docs/slides.md.
 *
 * The mask grid: mask pixel (mx, my) covers level-0 px
 * [mx·downsample_x, (mx+1)·downsample_x) × [my·downsample_y, (my+1)·downsample_y).
 */
#ifndef WV_TISSUE_H
#define WV_TISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

struct slide;

/* Default mask resolution, µm/px: 32 µm is one cell of the encoder's stride-32 grid at
 * 1 µm/px and shows lymph-node tissue fragments of ~0.1 mm as several pixels. */
#define TISSUE_DEFAULT_MPP 32.0

struct tissue_params {
    double mask_mpp;        /* mask resolution, µm/px (TISSUE_DEFAULT_MPP) */
    int blur_radius;        /* box blur radius on saturation, mask px (1 → 3×3) */
    int close_radius;       /* morphological close radius, mask px (2) */
    int open_radius;        /* morphological open radius, mask px (1) */
    double min_area_um2;    /* connected tissue pieces smaller than this are dropped (10,000 µm²) */
    int min_saturation;     /* a threshold below this (0–255) is clamped to it (20): white glass,
                               dust and JPEG noise sit below, H&E tissue well above (docs) */
    double low_ratio;       /* hysteresis: pixels above low_ratio·threshold (but at least
                               min_saturation) join tissue they touch (0.5); 1 = plain Otsu */
    int min_contrast;       /* if the blurred saturation spans fewer levels than this (0–255)
                               the slide is flat (all glass or all one colour): no tissue (8) */
};
/* Fill in the defaults above. */
void tissue_params_default(struct tissue_params *p);

struct tissue_mask {
    uint8_t *mask;       /* (h, w): 1 tissue, 0 background; malloc'ed, free with tissue_mask_free */
    int w, h;            /* size in mask px */
    double mpp_x, mpp_y; /* µm per mask px */
    double downsample_x, downsample_y; /* level-0 px per mask px */
    int64_t slide_w, slide_h; /* level-0 size of the slide it was made from */
    int threshold;       /* the saturation threshold used (0–255), 256 when the slide was flat */
    double fraction;     /* tissue pixels / all mask pixels */
};

/* Detect tissue on `s` (its pixel size must be known: slide_require_mpp). The slide is read
 * whole at params->mask_mpp through the best level + area averaging (never finer than the
 * slide's own resolution). p may be NULL for defaults. On success *out owns a new mask; on
 * error *out is zeroed and the slide's or allocator's message is set. */
enum wv_status tissue_detect(struct slide *s, const struct tissue_params *p,
                             struct tissue_mask *out);

/* The detection steps alone, on an RGB image (h, w, 3) whose pixels are `mpp` µm wide (used by
 * tissue_detect, and by tests on synthetic images). Fills mask (h, w) and returns the threshold
 * through *threshold (256 = flat). */
enum wv_status tissue_detect_rgb(const uint8_t *rgb, int w, int h, double mpp,
                                 const struct tissue_params *p, uint8_t *mask, int *threshold);

/* Is there tissue anywhere in the level-0 rectangle [x0, x1) × [y0, y1)? (any mask pixel that
 * overlaps it). Coordinates may extend past the slide. */
int tissue_any_in_rect(const struct tissue_mask *m, double x0, double y0, double x1, double y1);

/* Tissue value at a level-0 point (0 outside the mask). */
int tissue_at(const struct tissue_mask *m, double x, double y);

void tissue_mask_free(struct tissue_mask *m);

#endif
