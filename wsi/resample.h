/*
 * resample.h — RGB resampling used by the slide reader (wsi/slide.c): area averaging when
 * shrinking, bilinear when enlarging, plus OpenSlide's premultiplied ARGB → RGB conversion.
 * Plain loops, no intrinsics; everything is pure (no global state), so any thread may call it.
 *
 * Geometry (both resamplers): source pixel (u, v) covers the square [u, u+1) × [v, v+1) of the
 * source frame. Output pixel (i, j) covers [ox + i·sx, ox + (i+1)·sx) × [oy + j·sy, oy + (j+1)·sy)
 * in that frame: sx, sy are source pixels per output pixel (> 1 shrinks), ox, oy the output
 * origin in source pixels (may be fractional). Outside the buffer: white for area averaging, the
 * edge pixel repeated for bilinear (callers read a margin around the footprint).
 */
#ifndef WV_RESAMPLE_H
#define WV_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

/* Convert n premultiplied ARGB pixels (native-endian uint32, A in bits 24–31, as
 * openslide_read_region writes them) to RGB: un-premultiply (c·255/α, rounded, clamped);
 * α = 0 becomes white. `rgb` holds 3n bytes. `argb` and `rgb` may not overlap. */
void resample_argb_to_rgb(const uint32_t *argb, size_t n, uint8_t *rgb);

/* Area averaging: each output pixel is the mean of the source pixels its rectangle covers,
 * each weighted by the covered area, rounded to nearest. Exact copy when sx = sy = 1 and ox, oy
 * are integers. Any sx, sy > 0 works; use it for sx, sy >= 1.
 *   src: (sh, sw, 3) RGB, row stride src_stride bytes
 *   dst: (dh, dw, 3) RGB, row stride dst_stride bytes
 * Returns WV_ENOMEM (message set) if its scratch cannot be allocated, else WV_OK. */
enum wv_status resample_area_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, double ox,
                                 double oy, double sx, double sy, uint8_t *dst, int dw, int dh,
                                 size_t dst_stride);

/* Bilinear: output pixel centre (ox + (i+½)·sx, oy + (j+½)·sy) is interpolated between the four
 * nearest source pixel centres (u+½, v+½); beyond the outermost centres the edge pixel is
 * repeated. For enlarging (sx, sy < 1). Same layouts as resample_area_rgb. Cannot fail. */
void resample_bilinear_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, double ox,
                           double oy, double sx, double sy, uint8_t *dst, int dw, int dh,
                           size_t dst_stride);

#endif
