/*
 * labels.h — training labels (issue 5, docs/training.md): slide labels from a CAMELYON16
 * reference.csv-style file, and per-cell tumour fractions from annotation files (ASAP XML,
 * QuPath GeoJSON, NCRF JSON through wsi/annot.h) rasterised onto the head's cell grid.
 */
#ifndef WV_LABELS_H
#define WV_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct slide_label {
    char *name; /* slide id: the CSV's first field without a slide/feature file extension */
    int label;  /* 1 tumour, 0 normal */
};

struct labels {
    size_t n;
    struct slide_label *v;
    char sha256[65]; /* of the file's bytes */
    int n_warnings;  /* duplicate rows with the same class (kept once) */
};

/* Read a labels CSV: one slide per line, "name,class[,anything…]"; separators ',' ';' or tab;
 * surrounding quotes and spaces trimmed; blank lines and lines starting with '#' skipped; the
 * first line is a header (skipped) when its class field is not a class. Classes, case-
 * insensitive: Tumor, Tumour, positive, 1 → 1; Normal, negative, 0 → 0. The name loses a trailing
 * .tif/.tiff/.svs/.ndpi/.mrxs/.scn/.bif/.vms/.h5 extension. Errors (WV_EFORMAT, message with the
 * line number): an unknown class, a missing class field, an empty name, the same name with two
 * classes, no rows at all. *out NULL on error. */
enum wv_status labels_read_csv(const char *path, struct labels **out);
/* The same from memory (tests, fuzzing); sha256 of the bytes. */
enum wv_status labels_parse_csv(const char *data, size_t len, struct labels **out);
void labels_free(struct labels *l);

/* Index of `name` in l, or -1. */
long labels_find(const struct labels *l, const char *name);

/* What labels_cell_fractions found in an annotation file. */
struct labels_annot_info {
    int n_positive, n_negative, n_ignored; /* polygons by class */
    int n_outside;        /* polygons whose bounding box lies wholly outside the slide */
    int n_partly_outside; /* polygons crossing the slide's edge (clipped by the grid) */
    double tumour_cells;  /* Σ fractions */
};

/* Per-cell tumour fractions of a rows × cols grid whose cell (r, c) covers level-0 px
 * [c·cell_px, (c+1)·cell_px) × [r·cell_px, (r+1)·cell_px), from the annotation file `path`
 * (positives minus exclusions, annot_rasterise_fraction with ss × ss samples per cell). slide_w,
 * slide_h (level-0 px) only serve the outside-the-slide counts in info (may be NULL). fraction:
 * (rows, cols) floats in [0, 1]. Errors: the annotation reader's (WV_EFORMAT / WV_EIO /
 * WV_ENOTFOUND), WV_EINVAL for a bad grid. */
enum wv_status labels_cell_fractions(const char *path, int rows, int cols, double cell_px,
                                     int64_t slide_w, int64_t slide_h, int ss, float *fraction,
                                     struct labels_annot_info *info);

#endif
