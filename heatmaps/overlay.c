/* overlay.c — heatmap over the slide thumbnail with a colour bar (cairo); contract in overlay.h.
 * Pixels are blended directly in the cairo surface; outline, bar and labels are cairo paths. */
#include "overlay.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/util.h"
#include "wsi/slide.h"

/* Stops of the colour map at v = 0, 0.25, 0.5, 0.75, 1: chosen so that low probabilities are cool
 * and dark, high ones warm and bright, and neighbouring stops differ in lightness as well as hue. */
static const uint8_t STOPS[5][3] = {
    {40, 20, 120}, {30, 100, 190}, {40, 180, 150}, {245, 205, 40}, {210, 25, 30}};

void overlay_colormap(double v, uint8_t rgb[3])
{
    if (!isfinite(v)) {
        rgb[0] = rgb[1] = rgb[2] = 128;
        return;
    }
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    double t = v * 4;
    int i = (int)t;
    if (i > 3) i = 3;
    double f = t - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (uint8_t)lround(STOPS[i][k] + f * (STOPS[i + 1][k] - STOPS[i][k]));
}

static int is_tissue(const float *hm, const uint8_t *ts, int cols, int r, int c)
{
    size_t i = (size_t)r * cols + c;
    return ts ? ts[i] != 0 : isfinite(hm[i]);
}

/* Boundary edges between tissue and non-tissue cells (as thumbnail.c draws the tissue mask). */
static void draw_outline(cairo_t *cr, const float *hm, const uint8_t *ts, int rows, int cols,
                         double s)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            if (!is_tissue(hm, ts, cols, r, c)) continue;
            double x0 = c * s, x1 = (c + 1) * s, y0 = r * s, y1 = (r + 1) * s;
            if (c == 0 || !is_tissue(hm, ts, cols, r, c - 1))
                cairo_move_to(cr, x0, y0), cairo_line_to(cr, x0, y1);
            if (c == cols - 1 || !is_tissue(hm, ts, cols, r, c + 1))
                cairo_move_to(cr, x1, y0), cairo_line_to(cr, x1, y1);
            if (r == 0 || !is_tissue(hm, ts, cols, r - 1, c))
                cairo_move_to(cr, x0, y0), cairo_line_to(cr, x1, y0);
            if (r == rows - 1 || !is_tissue(hm, ts, cols, r + 1, c))
                cairo_move_to(cr, x0, y1), cairo_line_to(cr, x1, y1);
        }
    cairo_stroke(cr);
}

enum wv_status overlay_write_png_rgb(const uint8_t *rgb, int w, int h, double ds,
                                     const float *heatmap, const uint8_t *tissue, int rows,
                                     int cols, double cell, const char *path)
{
    if (!rgb || !heatmap || !path || w <= 0 || h <= 0 || rows <= 0 || cols <= 0 || !(ds > 0) ||
        !(cell > 0) || w > 32767 - OVERLAY_BAR_PANEL || h > 32767)
        return error_set(WV_EINVAL, "overlay %s: picture %d x %d (ds %g), grid %d x %d, cell %g "
                         "invalid", path ? path : "(null)", w, h, ds, rows, cols, cell);
    enum wv_status st = WV_OK;
    int W = w + OVERLAY_BAR_PANEL, H = h < 64 ? 64 : h;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = NULL;
    char tmp[4096];
    tmp[0] = 0;
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_ENOMEM, "overlay %s: %s", path,
                       cairo_status_to_string(cairo_surface_status(surf)));
        goto done;
    }
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);
    for (int y = 0; y < H; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        for (int x = 0; x < W; x++) row[x] = 0xffffff;
        if (y >= h) continue;
        /* picture px centre → level-0 → cell */
        long r = (long)floor((y + 0.5) * ds / cell);
        const uint8_t *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            double R = p[3 * x], G = p[3 * x + 1], B = p[3 * x + 2];
            long c = (long)floor((x + 0.5) * ds / cell);
            if (r < rows && c < cols) {
                float v = heatmap[(size_t)r * cols + c];
                if (isfinite(v) && (!tissue || tissue[(size_t)r * cols + c])) {
                    uint8_t m[3];
                    overlay_colormap(v, m);
                    R = (1 - OVERLAY_ALPHA) * R + OVERLAY_ALPHA * m[0];
                    G = (1 - OVERLAY_ALPHA) * G + OVERLAY_ALPHA * m[1];
                    B = (1 - OVERLAY_ALPHA) * B + OVERLAY_ALPHA * m[2];
                }
            }
            row[x] = (uint32_t)lround(R) << 16 | (uint32_t)lround(G) << 8 | (uint32_t)lround(B);
        }
    }
    /* colour bar: x in [w + 8, w + 24), top = 1, bottom = 0, over the middle of the panel height */
    int bar_x = w + 8, bar_w = 16, bar_top = 12, bar_h = H - 24;
    for (int y = 0; y < bar_h; y++) {
        uint8_t m[3];
        overlay_colormap(bar_h > 1 ? 1.0 - (double)y / (bar_h - 1) : 1.0, m);
        uint32_t px = (uint32_t)m[0] << 16 | (uint32_t)m[1] << 8 | m[2];
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)(bar_top + y) * stride);
        for (int x = 0; x < bar_w; x++) row[bar_x + x] = px;
    }
    cairo_surface_mark_dirty(surf);
    cr = cairo_create(surf);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    cairo_save(cr);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, 0.0, 0.55, 0.0);
    cairo_set_line_width(cr, 1.5);
    draw_outline(cr, heatmap, tissue, rows, cols, cell / ds);
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, bar_x - 0.5, bar_top - 0.5, bar_w + 1, bar_h + 1);
    cairo_stroke(cr);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 11);
    cairo_move_to(cr, bar_x + bar_w + 5, bar_top + 8);
    cairo_show_text(cr, "1");
    cairo_move_to(cr, bar_x + bar_w + 5, bar_top + bar_h);
    cairo_show_text(cr, "0");
    cairo_surface_flush(surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_EIO, "overlay %s: drawing: %s", path,
                       cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        tmp[0] = 0;
        st = error_set(WV_EINVAL, "overlay %s: path too long", path);
        goto done;
    }
    cairo_status_t cs = cairo_surface_write_to_png(surf, tmp);
    if (cs != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_EIO, "overlay %s: cannot write: %s", path, cairo_status_to_string(cs));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = error_set(WV_EIO, "overlay %s: rename from temp file: %s", path, strerror(errno));
        goto done;
    }
    tmp[0] = 0;
done:
    if (tmp[0]) unlink(tmp);
    if (cr) cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return st;
}

enum wv_status overlay_write_png(struct slide *s, const float *heatmap, const uint8_t *tissue,
                                 int rows, int cols, double cell, int max_side, const char *path)
{
    if (!s) return error_set(WV_EINVAL, "overlay: no slide");
    if (max_side <= 0) max_side = OVERLAY_DEFAULT_SIDE;
    int64_t W0 = slide_level_width(s, 0), H0 = slide_level_height(s, 0);
    if (W0 <= 0 || H0 <= 0) return error_set(WV_EINVAL, "overlay: slide size %lld x %lld",
                                             (long long)W0, (long long)H0);
    double ds = (double)(W0 > H0 ? W0 : H0) / max_side;
    if (ds < 1) ds = 1;
    int w = (int)ceil(W0 / ds), h = (int)ceil(H0 / ds);
    uint8_t *rgb = wv_malloc((size_t)w * h * 3, "overlay thumbnail");
    if (!rgb) return WV_ENOMEM;
    enum wv_status st = slide_read_region_ds(s, 0, 0, w, h, ds, ds, rgb);
    if (!st) st = overlay_write_png_rgb(rgb, w, h, ds, heatmap, tissue, rows, cols, cell, path);
    free(rgb);
    return st;
}
