/*
 * plots.h — line plots for the evaluation report (ROC and FROC curves), drawn with cairo as SVG
 * and PNG from one description, axes labelled, operating points marked (issue 6; used by
 * src/report.c). Output is atomic (temp name, rename).
 */
#ifndef WV_PLOTS_H
#define WV_PLOTS_H

#include <stddef.h>

#include "src/error.h"

struct plot_series {
    const double *x, *y; /* (n) data coordinates, drawn in order as a polyline */
    size_t n;
    const char *label;   /* legend text, NULL for none */
    double rgb[3];       /* colour, components in [0, 1] */
};

struct plot_marker {
    double x, y;         /* data coordinates */
    const char *label;   /* text next to the marker, NULL for none */
};

struct plot_spec {
    const char *title, *x_label, *y_label;
    double x_min, x_max, y_min, y_max;
    const double *x_ticks; /* (n_x_ticks) tick positions; NULL: 6 evenly spaced */
    int n_x_ticks;
    int diagonal;          /* draw the chance line y = x (ROC) */
    const struct plot_series *series;
    int n_series;
    const struct plot_marker *markers;
    int n_markers;
    int marker_list; /* 1: marker labels as a list in the top-left corner instead of beside
                        each marker (crowded operating points, e.g. FROC at 1/4 and 1/2) */
};

/* Size of the drawing, px (PNG) or pt (SVG). */
#define PLOT_WIDTH 640
#define PLOT_HEIGHT 520

/* Write the plot as SVG / PNG to path. Points outside the ranges are clipped. WV_EIO with cairo's
 * message on failure. */
enum wv_status plot_write_svg(const struct plot_spec *p, const char *path);
enum wv_status plot_write_png(const struct plot_spec *p, const char *path);

#endif
