/*
 * plots.c — ROC/FROC line plots with cairo (contract: plots.h). One drawing routine renders onto
 * an SVG or an image surface, so the two files always show the same picture.
 */
#include "plots.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* plot area margins, px: room for the tick labels and axis titles */
#define M_LEFT 70
#define M_RIGHT 20
#define M_TOP 40
#define M_BOTTOM 60

struct frame {
    double x0, y0, w, h; /* plot area on the surface */
    const struct plot_spec *p;
};

static double px(const struct frame *f, double x)
{
    return f->x0 + (x - f->p->x_min) / (f->p->x_max - f->p->x_min) * f->w;
}

static double py(const struct frame *f, double y)
{
    return f->y0 + f->h - (y - f->p->y_min) / (f->p->y_max - f->p->y_min) * f->h;
}

static void text_centered(cairo_t *cr, double x, double y, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - e.width / 2 - e.x_bearing, y);
    cairo_show_text(cr, s);
}

static void draw(cairo_t *cr, const struct plot_spec *p)
{
    struct frame f = {M_LEFT, M_TOP, PLOT_WIDTH - M_LEFT - M_RIGHT,
                      PLOT_HEIGHT - M_TOP - M_BOTTOM, p};
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    /* grid and ticks */
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1);
    char buf[64];
    int nx = p->x_ticks ? p->n_x_ticks : 6;
    for (int i = 0; i < nx; i++) {
        double x = p->x_ticks ? p->x_ticks[i] : p->x_min + (p->x_max - p->x_min) * i / (nx - 1);
        if (x < p->x_min || x > p->x_max) continue;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px(&f, x), f.y0);
        cairo_line_to(cr, px(&f, x), f.y0 + f.h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%g", x);
        text_centered(cr, px(&f, x), f.y0 + f.h + 16, buf);
    }
    for (int i = 0; i <= 5; i++) {
        double y = p->y_min + (p->y_max - p->y_min) * i / 5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, f.x0, py(&f, y));
        cairo_line_to(cr, f.x0 + f.w, py(&f, y));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%.1f", y);
        cairo_text_extents_t e;
        cairo_text_extents(cr, buf, &e);
        cairo_move_to(cr, f.x0 - 6 - e.width - e.x_bearing, py(&f, y) + 4);
        cairo_show_text(cr, buf);
    }
    /* frame */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_stroke(cr);
    /* titles */
    cairo_set_font_size(cr, 14);
    if (p->x_label) text_centered(cr, f.x0 + f.w / 2, PLOT_HEIGHT - 18, p->x_label);
    if (p->y_label) {
        cairo_save(cr);
        cairo_translate(cr, 22, f.y0 + f.h / 2);
        cairo_rotate(cr, -M_PI / 2);
        text_centered(cr, 0, 0, p->y_label);
        cairo_restore(cr);
    }
    cairo_set_font_size(cr, 15);
    if (p->title) text_centered(cr, PLOT_WIDTH / 2.0, 25, p->title);
    /* data, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, f.x0, f.y0, f.w, f.h);
    cairo_clip(cr);
    if (p->diagonal) {
        double dash[] = {5, 4};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        cairo_move_to(cr, px(&f, 0), py(&f, 0));
        cairo_line_to(cr, px(&f, 1), py(&f, 1));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    cairo_set_line_width(cr, 2);
    for (int s = 0; s < p->n_series; s++) {
        const struct plot_series *ser = &p->series[s];
        cairo_set_source_rgb(cr, ser->rgb[0], ser->rgb[1], ser->rgb[2]);
        for (size_t i = 0; i < ser->n; i++) {
            if (i == 0)
                cairo_move_to(cr, px(&f, ser->x[i]), py(&f, ser->y[i]));
            else
                cairo_line_to(cr, px(&f, ser->x[i]), py(&f, ser->y[i]));
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    /* markers */
    cairo_set_font_size(cr, 11);
    for (int m = 0; m < p->n_markers; m++) {
        const struct plot_marker *mk = &p->markers[m];
        if (!isfinite(mk->x) || !isfinite(mk->y)) continue;
        double x = px(&f, fmin(fmax(mk->x, p->x_min), p->x_max));
        double y = py(&f, fmin(fmax(mk->y, p->y_min), p->y_max));
        cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
        cairo_arc(cr, x, y, 4.5, 0, 2 * M_PI);
        cairo_fill(cr);
        if (mk->label && p->marker_list) {
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            cairo_move_to(cr, f.x0 + 10, f.y0 + 18 + 15 * m);
            cairo_show_text(cr, mk->label);
        } else if (mk->label) {
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            double tx = x + 7 > f.x0 + f.w - 120 ? x - 130 : x + 7;
            cairo_move_to(cr, tx, y + 14 > f.y0 + f.h ? y - 8 : y + 14);
            cairo_show_text(cr, mk->label);
        }
    }
    /* legend */
    double ly = f.y0 + f.h - 12 - 16 * (p->n_series - 1);
    for (int s = 0; s < p->n_series; s++) {
        const struct plot_series *ser = &p->series[s];
        if (!ser->label) continue;
        cairo_set_source_rgb(cr, ser->rgb[0], ser->rgb[1], ser->rgb[2]);
        cairo_rectangle(cr, f.x0 + f.w - 210, ly + 16 * s - 8, 14, 4);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_font_size(cr, 12);
        cairo_move_to(cr, f.x0 + f.w - 190, ly + 16 * s - 3);
        cairo_show_text(cr, ser->label);
    }
}

static enum wv_status finish(cairo_surface_t *sf, const char *tmp, const char *path, int png)
{
    cairo_status_t cs = cairo_surface_status(sf);
    if (!cs && png) cs = cairo_surface_write_to_png(sf, tmp);
    cairo_surface_finish(sf);
    if (!cs) cs = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (cs) {
        unlink(tmp);
        return error_set(WV_EIO, "%s: cairo: %s", path, cairo_status_to_string(cs));
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return error_set(WV_EIO, "%s: cannot rename the plot into place", path);
    }
    return WV_OK;
}

static int bad_spec(const struct plot_spec *p)
{
    return !(p->x_max > p->x_min) || !(p->y_max > p->y_min);
}

enum wv_status plot_write_svg(const struct plot_spec *p, const char *path)
{
    if (bad_spec(p)) return error_set(WV_EINVAL, "%s: empty plot range", path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    cairo_surface_t *sf = cairo_svg_surface_create(tmp, PLOT_WIDTH, PLOT_HEIGHT);
    cairo_t *cr = cairo_create(sf);
    draw(cr, p);
    cairo_destroy(cr);
    return finish(sf, tmp, path, 0);
}

enum wv_status plot_write_png(const struct plot_spec *p, const char *path)
{
    if (bad_spec(p)) return error_set(WV_EINVAL, "%s: empty plot range", path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, PLOT_WIDTH, PLOT_HEIGHT);
    cairo_t *cr = cairo_create(sf);
    draw(cr, p);
    cairo_destroy(cr);
    return finish(sf, tmp, path, 1);
}
