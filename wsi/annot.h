/*
 * annot.h — tumour annotations: readers for ASAP XML (annot_asap.c), QuPath GeoJSON
 * (annot_geojson.c) and NCRF-style JSON (annot_json.c), and a polygon rasteriser onto any grid
 * of cells (annot_raster.c). Formats and group conventions: CAMELYON16_PROTOCOL.md §3; user
 * notes in docs/evaluation.md. Used by the evaluation (the FROC mask rasterised from XML) and by
 * training (per-cell labels, issue 5).
 *
 * Frame: every coordinate is in level-0 px, origin top-left, x right, y down (the frame of all
 * three formats). A polygon is one or more closed rings (the last vertex joins the first);
 * ring 0 is the outline, rings 1.. are holes (GeoJSON interior rings). A point is inside a ring
 * when the ring's winding number around it is non-zero (ASAP's rule, orientation-independent).
 *
 * Errors (STYLE.md 2.3): readers return enum wv_status and set a message naming the element
 * ("annotation 3 coordinate 7: X 'abc' is not a number"); the CLI prefixes the file name.
 * Hostile input (huge counts, non-finite numbers, deep nesting) gives WV_EFORMAT, never a crash.
 * Thread safety: the functions keep no global state; a set may be read by many threads at once.
 */
#ifndef WV_ANNOT_H
#define WV_ANNOT_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

/* What a polygon means for the tumour mask. */
enum annot_class {
    ANNOT_IGNORED = 0,  /* a group/class we do not know: not drawn (counted in n_ignored) */
    ANNOT_POSITIVE = 1, /* tumour: CAMELYON16 Tumor/_0/_1, CAMELYON17 metastases, QuPath Tumor */
    ANNOT_NEGATIVE = 2, /* non-tumour inside tumour: CAMELYON16 _2/Exclusion, CAMELYON17 normal */
};
/* "positive", "negative", "ignored" */
const char *annot_class_name(enum annot_class c);

/* The class of a group or classification name, case-insensitive: Tumor, Tumour, _0, _1,
 * metastases, metastasis → positive; _2, Exclusion, normal, non-tumor → negative; anything else
 * (None, Stroma, "") → ignored. */
enum annot_class annot_class_of_group(const char *group);

struct annot_ring {
    int n;      /* vertices, >= 1 (rings with < 3 vertices enclose nothing) */
    double *xy; /* (n, 2): x, y in level-0 px */
};

struct annot_polygon {
    char *name;  /* "Annotation 0", a GeoJSON name/id, NCRF name; never NULL ("" when none) */
    char *group; /* ASAP PartOfGroup / QuPath classification / NCRF list name; never NULL */
    char *type;  /* ASAP Type ("Polygon", "Spline", …), GeoJSON geometry type; never NULL */
    enum annot_class cls;
    int n_rings; /* >= 1 */
    struct annot_ring *rings; /* ring 0 outline, 1.. holes */
};

struct annot_set {
    const char *format; /* "asap-xml", "geojson", "ncrf-json" (static string) */
    int n;              /* polygons */
    struct annot_polygon *polys;
    int n_ignored;      /* polygons whose group is unknown (cls == ANNOT_IGNORED) */
    int n_skipped;      /* objects that are not area annotations (GeoJSON points, detections, cells) */
};

/* Largest annotation file read (bytes). Real CAMELYON16 XMLs are < 10 MB. */
#define ANNOT_MAX_FILE_BYTES ((size_t)512 << 20)
/* Most vertices in one file (guards allocations on hostile input). */
#define ANNOT_MAX_VERTICES 50000000

/* Read an annotation file, choosing the reader by content: '<' → ASAP XML; JSON with a top-level
 * "positive" or "negative" array → NCRF JSON; other JSON (FeatureCollection, Feature, an array of
 * Features, a bare geometry) → GeoJSON. On success *out is a new set (annot_set_free); on failure
 * *out is NULL and the message says what is wrong (without the file name). */
enum wv_status annot_read(const char *path, struct annot_set **out);
/* The same from memory (fuzzing, tests): data need not be NUL-terminated. */
enum wv_status annot_parse(const uint8_t *data, size_t len, struct annot_set **out);

/* Format-specific parsers (annot_parse dispatches to these). */
enum wv_status annot_parse_asap(const uint8_t *data, size_t len, struct annot_set **out);
enum wv_status annot_parse_geojson(const uint8_t *data, size_t len, struct annot_set **out);
enum wv_status annot_parse_ncrf(const uint8_t *data, size_t len, struct annot_set **out);

void annot_set_free(struct annot_set *s);

/* Bounding box of every ring of the polygons of class cls (ANNOT_IGNORED: all polygons), level-0
 * px. Returns 0 and fills the box, or -1 when there are no vertices. */
int annot_bounds(const struct annot_set *s, enum annot_class cls, double *min_x, double *min_y,
                 double *max_x, double *max_y);
/* Number of polygons of class cls. */
int annot_count(const struct annot_set *s, enum annot_class cls);

/* ---- rasterising ------------------------------------------------------------------------------ */

/* A grid of cells: cell (r, c) covers level-0 [x0 + c·cell_px, x0 + (c+1)·cell_px) ×
 * [y0 + r·cell_px, …). Level L of a 2×-pyramid is {0, 0, 2^L, H_L, W_L}. */
struct annot_grid {
    double x0_px, y0_px; /* level-0 position of cell (0, 0)'s top-left corner */
    double cell_px;      /* cell side, level-0 px, > 0 */
    int rows, cols;      /* >= 0 */
};

/* Where a binary mask samples each cell. */
enum annot_sample {
    /* the cell's top-left corner (x0 + c·cell, y0 + r·cell): ASAP's AnnotationToMask tests the
     * integer pixel corner, and its nearest-neighbour pyramid keeps the top-left pixel, so this
     * reproduces a CAMELYON16 mask level exactly (§3.3) */
    ANNOT_SAMPLE_CORNER = 0,
    ANNOT_SAMPLE_CENTER, /* the cell centre */
};

/* A point is tumour when it is inside (non-zero winding of the outline and not inside one of its
 * holes) some positive polygon and not inside any negative polygon: exclusions are subtracted
 * after all positives are drawn, as ASAP does with the conversion order _0, _1, _2. As in ASAP,
 * a point on the bounding box edge of a polygon (x == min or max, y == min or max) is outside.
 *
 * mask: (rows, cols) bytes, row-major; set to `value` where tumour, 0 elsewhere. WV_EINVAL on a
 * bad grid, WV_ENOMEM. Cost O(rows · edges + rows · cols). */
enum wv_status annot_rasterise_mask(const struct annot_set *s, const struct annot_grid *g,
                                    enum annot_sample sample, uint8_t value, uint8_t *mask);

/* Tumour fraction per cell: the share of ss × ss sample points (at sub-cell centres,
 * (c + (i + 0.5)/ss)·cell) that are tumour by the rule above; ss in [1, 64]. fraction: (rows,
 * cols) floats in [0, 1], multiples of 1/ss². Memory O(cols·ss). */
enum wv_status annot_rasterise_fraction(const struct annot_set *s, const struct annot_grid *g,
                                        int ss, float *fraction);

/* The scanline engine behind both: classify the points x = xs0 + i·dx (i in [0, n)) on the
 * horizontal line y; inside[i] = 1 for tumour points, else 0. Exposed for tests. */
enum wv_status annot_classify_row(const struct annot_set *s, double y, double xs0, double dx,
                                  int n, uint8_t *inside);

#endif
