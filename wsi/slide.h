/*
 * slide.h — whole-slide image access through OpenSlide 3.4.1 (DESIGN.md "Data flow"; OpenSlide
 * facts in CAMELYON16_PROTOCOL.md §4; user notes in docs/slides.md).
 *
 * Coordinate frames used throughout wsi/:
 *   level-0 px   pixels of the full-resolution level, origin top-left (OpenSlide's x, y)
 *   level px     pixels of pyramid level L: level-0 px / downsample(L)
 *   target px    pixels at a target resolution of `target_mpp` µm/px: level-0 px · mpp / target_mpp
 *                (per axis, using mpp-x and mpp-y)
 *
 * Error model (STYLE.md 2.3): every fallible call returns an enum wv_status and records a
 * message with error_set(). A handle also keeps a sticky copy of its first read error: after a
 * failed read every later read returns the same status without doing work, and slide_error()
 * returns the text. Messages are lowercase and name the problem ("not a supported slide format").
 *
 * Thread safety: after slide_open returns, every function except slide_close and slide_set_mpp
 * may be called from several threads at once on one handle (OpenSlide's reads are thread-safe;
 * the sticky error is set under a lock). slide_close needs all other users to be finished.
 */
#ifndef WV_SLIDE_H
#define WV_SLIDE_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

struct slide;

/* Where the pixel size came from. */
enum slide_mpp_source {
    SLIDE_MPP_NONE = 0,  /* unknown: commands that need it ask for --mpp */
    SLIDE_MPP_OPENSLIDE, /* openslide.mpp-x / openslide.mpp-y (vendor metadata) */
    SLIDE_MPP_TIFF_CM,   /* tiff.X/YResolution with tiff.ResolutionUnit centimeter: 10000/res */
    SLIDE_MPP_TIFF_INCH, /* tiff.X/YResolution with tiff.ResolutionUnit inch: 25400/res */
    SLIDE_MPP_USER,      /* set with slide_set_mpp (the CLI's --mpp) */
};
/* "openslide", "tiff-centimeter", "tiff-inch", "user", "none" */
const char *slide_mpp_source_name(enum slide_mpp_source src);

/* A pixel size from TIFF resolution tags is only believed when it lies in
 * [SLIDE_TIFF_MPP_MIN, SLIDE_TIFF_MPP_MAX] µm/px: image writers put 72 dpi (352.8 µm/px) into
 * files that are not microscope scans at all (boxes.tiff), and a slide analysed at 0.5 µm/px
 * from such a value would be upsampled 700×. Outside the range the pixel size is unknown. */
#define SLIDE_TIFF_MPP_MIN 0.01
#define SLIDE_TIFF_MPP_MAX 100.0

/* A level is "good enough" for a needed downsample d when its downsample is ≤ d·(1 + this):
 * OpenSlide computes downsamples from rounded level sizes (4.016 for a nominal 4×, boxes.tiff),
 * and openslide_get_best_level_for_downsample applies no tolerance. 1% of a 10,000-px region is
 * 100 px of slight enlargement at worst, far better than reading a level twice as large. */
#define SLIDE_LEVEL_TOLERANCE 0.01

/* Open `path`, read its properties and do a sanity read (a small region of the lowest-resolution
 * level and one tile of level 0), so a slide whose tiles cannot be decoded fails here.
 * On success *out is a new handle (free with slide_close). On failure *out is NULL, the status is
 * returned and the message says what is wrong: "no such file", "is a directory",
 * "empty file (0 bytes)", "not a supported slide format", "...: <openslide's error>". */
enum wv_status slide_open(const char *path, struct slide **out);
/* Close and free; NULL is fine. No other thread may be using the handle. */
void slide_close(struct slide *s);

/* The first read error on this handle, NULL while there is none. Valid until slide_close. */
const char *slide_error(const struct slide *s);
/* Path given to slide_open. */
const char *slide_path(const struct slide *s);

/* Pyramid. level in [0, slide_level_count). Sizes in level px. Level 0 is the largest. */
int slide_level_count(const struct slide *s);
int64_t slide_level_width(const struct slide *s, int level);
int64_t slide_level_height(const struct slide *s, int level);
/* Level-0 px per level px (1.0 for level 0; OpenSlide's value, often not an integer). */
double slide_level_downsample(const struct slide *s, int level);
/* The coarsest level whose downsample is ≤ downsample·(1 + SLIDE_LEVEL_TOLERANCE); 0 when the
 * request is below 1. */
int slide_best_level(const struct slide *s, double downsample);
/* Tile size of a level from openslide.level[N].tile-width/-height, 0 when not given. */
int slide_level_tile_width(const struct slide *s, int level);
int slide_level_tile_height(const struct slide *s, int level);

/* Metadata. Strings belong to the handle. vendor: openslide.vendor or "unknown". */
const char *slide_vendor(const struct slide *s);
/* openslide.objective-power parsed as a number; 0 when absent or not a number. */
double slide_objective_power(const struct slide *s);
/* Any OpenSlide property, NULL when absent. */
const char *slide_property(const struct slide *s, const char *name);
/* NULL-terminated list of all property names (OpenSlide's order). */
const char *const *slide_property_names(const struct slide *s);
/* Associated images ("label", "macro", "thumbnail"…): count, names, size in px (−1 if unknown). */
int slide_associated_count(const struct slide *s);
const char *slide_associated_name(const struct slide *s, int i);
void slide_associated_size(const struct slide *s, int i, int64_t *w, int64_t *h);

/* Pixel size of level 0 in µm/px (x and y), 0 when unknown; see enum slide_mpp_source. */
double slide_mpp_x(const struct slide *s);
double slide_mpp_y(const struct slide *s);
enum slide_mpp_source slide_mpp_source(const struct slide *s);
/* The pixel size the file states, whether or not it was overridden (0 when unknown). */
double slide_file_mpp_x(const struct slide *s);
double slide_file_mpp_y(const struct slide *s);
/* Override the pixel size (both axes) with a user value in µm/px, > 0 and finite; WV_EINVAL
 * otherwise. Not thread-safe: call before sharing the handle. */
enum wv_status slide_set_mpp(struct slide *s, double mpp);
/* WV_OK when the pixel size is known, else WV_EINVAL with the message
 * "pixel size unknown (no openslide.mpp-x or usable tiff resolution): give --mpp". */
enum wv_status slide_require_mpp(const struct slide *s);

/* Read the rectangle of level `level` whose top-left is (x0, y0) in level-0 px and whose size is
 * (w, h) in level px, as RGB (h, w, 3) bytes, row stride 3w. This is openslide_read_region,
 * split into pieces of at most SLIDE_READ_PIECE² level px, converted to RGB (un-premultiplied,
 * transparent = white, outside the slide = white). Note OpenSlide interpolates when x0/downsample
 * is not an integer (see docs/slides.md); pieces after the first start at level-0
 * x0 + round(k·SLIDE_READ_PIECE·downsample). Coordinates left of / above the slide are filled
 * with white here rather than passed to OpenSlide, which misplaces such reads on levels with a
 * non-integer downsample. Thread-safe. On error the output is filled with white, the handle's sticky
 * error is set and the status returned. */
enum wv_status slide_read_level(struct slide *s, int level, int64_t x0, int64_t y0, int64_t w,
                                int64_t h, uint8_t *rgb);

/* Read a region at an arbitrary scale: `ds_x`, `ds_y` level-0 px per output px (≥ 1 shrinks).
 * Output pixel (i, j) covers level-0 [x0 + i·ds_x, x0 + (i+1)·ds_x) × [y0 + j·ds_y, …).
 * The level is slide_best_level(min(ds_x, ds_y)); the level's pixels are resampled to the exact
 * scale: a copy when the scale ratio to the level is exactly 1 (then the output equals the
 * level's pixels read at (x0, y0)), area averaging when shrinking, bilinear when enlarging.
 * Memory is bounded (pieces of at most SLIDE_READ_PIECE² level px per call), whatever out_w/out_h.
 * Each piece is read from the level-0 px nearest level px floor(footprint start) − 2, and the
 * resampler uses that px's true (possibly fractional) level position.
 * rgb_out: (out_h, out_w, 3). Thread-safe. On error: white output, sticky error, status. */
enum wv_status slide_read_region_ds(struct slide *s, int64_t x0, int64_t y0, int64_t out_w,
                                    int64_t out_h, double ds_x, double ds_y, uint8_t *rgb_out);

/* Read a region at `target_mpp` µm/px: slide_read_region_ds with ds = target_mpp / mpp per axis.
 * (x0, y0): top-left in level-0 px; (out_w, out_h): size in target px. Needs a known pixel size
 * (slide_require_mpp's error otherwise). rgb_out: (out_h, out_w, 3). Thread-safe. */
enum wv_status slide_read_region_mpp(struct slide *s, int64_t x0, int64_t y0, int64_t out_w,
                                     int64_t out_h, double target_mpp, uint8_t *rgb_out);

/* Largest openslide_read_region the reader issues, per side, in level px: 2048² × 4 bytes =
 * 16 MiB per reader thread, half of OpenSlide 3.4.1's fixed 32 MiB tile cache. */
#define SLIDE_READ_PIECE 2048

#endif
