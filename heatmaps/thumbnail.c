/* thumbnail.c — slide thumbnail + tissue outline + region grid as PNG (cairo); see thumbnail.h. */
#include "thumbnail.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/util.h"
#include "wsi/planner.h"
#include "wsi/slide.h"
#include "wsi/tissue.h"

/* Tissue outline: mask pixels that are tissue with a 4-neighbour that is not, drawn as the
 * boundary edges between them, scaled to the picture. */
static void draw_outline(cairo_t *cr, const struct tissue_mask *m, double sx, double sy)
{
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            if (!m->mask[(size_t)y * m->w + x]) continue;
            int left = x == 0 || !m->mask[(size_t)y * m->w + x - 1];
            int right = x == m->w - 1 || !m->mask[(size_t)y * m->w + x + 1];
            int up = y == 0 || !m->mask[(size_t)(y - 1) * m->w + x];
            int down = y == m->h - 1 || !m->mask[(size_t)(y + 1) * m->w + x];
            double x0 = x * sx, x1 = (x + 1) * sx, y0 = y * sy, y1 = (y + 1) * sy;
            if (left) cairo_move_to(cr, x0, y0), cairo_line_to(cr, x0, y1);
            if (right) cairo_move_to(cr, x1, y0), cairo_line_to(cr, x1, y1);
            if (up) cairo_move_to(cr, x0, y0), cairo_line_to(cr, x1, y0);
            if (down) cairo_move_to(cr, x0, y1), cairo_line_to(cr, x1, y1);
        }
    cairo_stroke(cr);
}

enum wv_status thumbnail_write_png(struct slide *s, const struct tissue_mask *mask,
                                   const struct plan *plan, int max_side, const char *path)
{
    if (max_side <= 0) max_side = THUMBNAIL_DEFAULT_SIDE;
    int64_t W0 = slide_level_width(s, 0), H0 = slide_level_height(s, 0);
    double ds = (double)(W0 > H0 ? W0 : H0) / max_side;
    if (ds < 1) ds = 1;
    int w = (int)ceil(W0 / ds), h = (int)ceil(H0 / ds);
    enum wv_status st = WV_OK;
    uint8_t *rgb = wv_malloc((size_t)w * h * 3, "thumbnail pixels");
    cairo_surface_t *surf = NULL;
    cairo_t *cr = NULL;
    char tmp[4096];
    tmp[0] = 0;
    if (!rgb) return WV_ENOMEM;
    if ((st = slide_read_region_ds(s, 0, 0, w, h, ds, ds, rgb)) != WV_OK) goto done;

    surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_ENOMEM, "thumbnail: %s", cairo_status_to_string(cairo_surface_status(surf)));
        goto done;
    }
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);
    for (int y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const uint8_t *p = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            row[x] = (uint32_t)p[3 * x] << 16 | (uint32_t)p[3 * x + 1] << 8 | p[3 * x + 2];
    }
    cairo_surface_mark_dirty(surf);
    cr = cairo_create(surf);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    if (plan) {
        /* picture px per target px */
        double fx = plan->ds_x / ds, fy = plan->ds_y / ds;
        cairo_set_line_width(cr, 1.0);
        double dash[2] = {3.0, 3.0};
        for (size_t i = 0; i < plan->n_regions; i++) {
            const struct plan_region *g = &plan->regions[i];
            cairo_set_source_rgba(cr, 0.2, 0.4, 1.0, 0.6);
            cairo_set_dash(cr, dash, 2, 0);
            cairo_rectangle(cr, g->read.x * fx, g->read.y * fy, g->read.w * fx, g->read.h * fy);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0.0, 0.2, 0.9);
            cairo_set_dash(cr, NULL, 0, 0);
            cairo_rectangle(cr, g->core.x * fx + 0.5, g->core.y * fy + 0.5, g->core.w * fx - 1,
                            g->core.h * fy - 1);
            cairo_stroke(cr);
        }
    }
    if (mask && mask->mask) {
        cairo_set_source_rgb(cr, 0.0, 0.75, 0.0);
        cairo_set_line_width(cr, 2.0);
        draw_outline(cr, mask, mask->downsample_x / ds, mask->downsample_y / ds);
    }
    cairo_surface_flush(surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_EIO, "thumbnail drawing: %s", cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        tmp[0] = 0;
        st = error_set(WV_EINVAL, "thumbnail path too long");
        goto done;
    }
    cairo_status_t cs = cairo_surface_write_to_png(surf, tmp);
    if (cs != CAIRO_STATUS_SUCCESS) {
        st = error_set(WV_EIO, "cannot write thumbnail %s: %s", path, cairo_status_to_string(cs));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = error_set(WV_EIO, "cannot write thumbnail %s: %s", path, strerror(errno));
        goto done;
    }
    tmp[0] = 0;
done:
    if (tmp[0]) unlink(tmp);
    if (cr) cairo_destroy(cr);
    if (surf) cairo_surface_destroy(surf);
    free(rgb);
    return st;
}
