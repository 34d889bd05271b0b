/*
 * slide_writer.h — the synthetic slide writer: streams a pyramidal, tiled TIFF that OpenSlide
 * 3.4.1 opens, tile by tile, from a caller-supplied tile renderer (DESIGN.md "Layout": wsi/
 * "synthetic slide writer (libtiff)"). The file layouts follow CAMELYON16_PROTOCOL.md §4.2
 * exactly: vendor "generic-tiff" (every level a top-level tiled IFD, reduced levels flagged
 * FILETYPE_REDUCEDIMAGE, ResolutionUnit centimetre, X/YResolution = 10^4/(mpp·downsample)) or
 * vendor "aperio" (ImageDescription starting "Aperio" with AppMag and MPP; a stripped thumbnail
 * after level 0; stripped label and macro images at the end, named by line 2 of their
 * description, separated by "\n").
 *
 * Memory is bounded by the tile size and the number of tiles rendered in parallel, never by the
 * slide size: levels are rendered one after the other straight from the renderer (which
 * evaluates its picture at the coarser scale), so no level is ever held whole.
 * The output is deterministic (no time stamps are written) and atomic: the file is written to
 * "<path>.tmp.<pid>", flushed, fsync'ed and renamed; on failure the temp file is removed.
 */
#ifndef WV_WSI_SLIDE_WRITER_H
#define WV_WSI_SLIDE_WRITER_H

#include <stdint.h>

#include "src/error.h"

enum slide_writer_vendor {
    SLIDE_WRITER_GENERIC = 0, /* opens as "generic-tiff" (ASAP/CAMELYON16-like) */
    SLIDE_WRITER_APERIO,      /* opens as "aperio" (SVS-like) */
};

enum slide_writer_codec {
    SLIDE_WRITER_JPEG = 0, /* JPEG, YCbCr 2×2 subsampled; needs samples_per_pixel == 3 */
    SLIDE_WRITER_LZW,      /* lossless (masks, as ASAP's AnnotationToMask writes them) */
    SLIDE_WRITER_DEFLATE,  /* lossless */
};

/* Level index passed to the tile renderer for the aperio thumbnail (an associated image). */
#define SLIDE_WRITER_THUMBNAIL (-1)
/* Fixed sizes of the aperio associated images; the thumbnail's longer side is at most
 * SLIDE_WRITER_THUMB_MAX_PX (real SVS thumbnails are ~ 700–1000 px wide). */
#define SLIDE_WRITER_THUMB_MAX_PX 768
#define SLIDE_WRITER_LABEL_W 256
#define SLIDE_WRITER_LABEL_H 192
#define SLIDE_WRITER_MACRO_W 640
#define SLIDE_WRITER_MACRO_H 256
/* Most pyramid levels a slide can have (2× steps from 2^31 px down to 1 px). */
#define SLIDE_WRITER_MAX_LEVELS 32

/*
 * Fill one tile. pixels is (h, w, spp) bytes, spp fastest, w*spp bytes per row. The tile's
 * top-left pixel is (x, y) in pixels of level `level`; level pixel (x+i, y+j) covers level-0
 * pixels [(x+i)·ds, (x+i+1)·ds) × [(y+j)·ds, (y+j+1)·ds) with ds = level_ds. Tiles on the right
 * and bottom edges extend past the level; fill those pixels too (they are stored as padding).
 * level is SLIDE_WRITER_THUMBNAIL for the aperio thumbnail (then ds is not an integer).
 * Called from several threads at once: must be thread-safe and deterministic. Returns WV_OK or
 * a status (a message set in a worker thread is not carried over; the writer reports the tile).
 */
typedef enum wv_status (*slide_writer_tile_fn)(void *ctx, int level, double level_ds, int64_t x,
                                               int64_t y, int w, int h, uint8_t *pixels);

/* Fill an aperio associated image ("label" or "macro"): rgb is (h, w, 3). Called once each, from
 * the calling thread. */
typedef enum wv_status (*slide_writer_assoc_fn)(void *ctx, const char *name, int w, int h,
                                                uint8_t *rgb);

struct slide_writer_opts {
    int64_t width_px, height_px; /* level-0 size, each in [1, 2^31) */
    int samples_per_pixel;       /* 3 (RGB) or 1 (grey, e.g. a mask) */
    enum slide_writer_codec codec;
    int jpeg_quality;            /* 1..100, JPEG only */
    int tile_px;                 /* tile side, a multiple of 16 in [16, 4096] */
    int level_step;              /* downsample between levels: 2 or 4 */
    int min_levels;              /* write at least this many levels (masks: 6, so level 5 exists) */
    int64_t min_level_px;        /* then stop once a level's longer side is <= this */
    double mpp;                  /* µm per level-0 pixel, > 0 */
    enum slide_writer_vendor vendor;
    int app_mag;                 /* aperio AppMag; 3.4.1 reads objective-power only from an int */
    const char *description;     /* generic: the ImageDescription (must not start with "Aperio");
                                    aperio: extra "|key = value" text appended; may be NULL */
    int bigtiff;                 /* 1 BigTIFF, 0 classic, -1 auto (BigTIFF when the raw level-0
                                    bytes exceed 2 GiB, far below where classic offsets overflow) */
    int n_threads;               /* tiles rendered in parallel; <= 0: OpenMP's default */
    int jpeg_by_libtiff;         /* 1: JPEG tiles through libtiff's encoder on the writing thread
                                    (the reference test_synth holds the default to); 0 (default):
                                    libjpeg on the rendering threads, written raw */
    slide_writer_tile_fn tile_fn;
    slide_writer_assoc_fn assoc_fn; /* aperio only; NULL: no label/macro */
    void *ctx;                      /* passed to tile_fn and assoc_fn */
};

/* Fill opts with defaults: RGB JPEG Q80, 256-px tiles, 2× steps, 1 level minimum, levels down to
 * 1024 px, mpp 0.25, generic, app_mag 40, auto BigTIFF. The caller sets size and tile_fn. */
void slide_writer_opts_init(struct slide_writer_opts *opts);

/* The pyramid the options describe: level k is floor(W/step^k) × floor(H/step^k) (ASAP's rule),
 * levels added while k < min_levels or the previous level's longer side > min_level_px, and
 * while both sides stay >= 1. Writes *n_levels and, when non-NULL, widths/heights (arrays of
 * SLIDE_WRITER_MAX_LEVELS). WV_EINVAL (with a message) on bad options. */
enum wv_status slide_writer_levels(const struct slide_writer_opts *opts, int *n_levels,
                                   int64_t *widths, int64_t *heights);

/* Write the slide to `path` (atomically, see the top of this file). On failure returns a status
 * with a message naming the path and what failed; no file remains at path or its temp name.
 * Thread-safe for distinct paths. */
enum wv_status slide_writer_write(const char *path, const struct slide_writer_opts *opts);

#endif
