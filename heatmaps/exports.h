/*
 * exports.h — result files for other tools (formats in docs/formats.md):
 *   lesion candidates as the CAMELYON16 lesion-task CSV (CAMELYON16_PROTOCOL.md §1.2),
 *   as QuPath-importable GeoJSON points (§3.4) and as ASAP XML dots (§3.1);
 *   heatmap cells as GeoJSON square polygons with their probability;
 *   slide probabilities as the CAMELYON16 slide-level CSV.
 * All coordinates are level-0 px (origin top-left, x right, y down). Every file is written
 * atomically ("<path>.tmp.<pid>", fsync, rename) and streamed, so memory does not grow with the
 * number of rows; on failure nothing is left under `path`. Functions keep no state.
 */
#ifndef WV_EXPORTS_H
#define WV_EXPORTS_H

#include <stddef.h>

#include "heatmaps/resultsdb.h"
#include "src/error.h"

/* CAMELYON16 lesion CSV: one line "confidence,X,Y" per candidate in array order, no header,
 * confidence printed with %.9g (Python float() reads it), X and Y as integers; zero candidates
 * give an empty file (= no detections, §1.2). */
enum wv_status exports_lesions_csv(const char *path, const struct resultsdb_lesion *lesions,
                                   size_t n);

/* GeoJSON FeatureCollection of Point features, one per candidate, QuPath style: objectType
 * "annotation", name "lesion <i>", classification Tumor, measurements {probability, area_cells}.
 * slide_id (may be NULL) goes into each feature's properties as "slide". */
enum wv_status exports_lesions_geojson(const char *path, const char *slide_id,
                                       const struct resultsdb_lesion *lesions, size_t n);

/* GeoJSON FeatureCollection of the heatmap's cells with probability ≥ min_prob (NaN cells are
 * skipped): each a closed square Polygon [[x0,y0],[x1,y0],[x1,y1],[x0,y1],[x0,y0]] in level-0
 * px (cell edges rounded to integers), objectType "detection", measurements {probability}.
 * heatmap: (rows, cols) float32 as in h5store. */
enum wv_status exports_cells_geojson(const char *path, const float *heatmap, int rows, int cols,
                                     double cell_size_level0, double min_prob);

/* ASAP XML: one Annotation of Type "Dot" per candidate (Name "lesion <i> p=<prob>", group
 * "lesion_candidates"), which ASAP shows over the slide. */
enum wv_status exports_lesions_asap_xml(const char *path, const struct resultsdb_lesion *lesions,
                                        size_t n);

/* One slide-level result. */
struct exports_slide_prob {
    const char *name; /* slide name as the reference CSV spells it (e.g. "test_001") */
    double prob;      /* P(slide contains metastasis) */
};
/* CAMELYON16 slide-level CSV: "name,probability" lines (a header line "name,probability" first
 * when header is non-zero); names with ',', '"' or line breaks are quoted RFC 4180 style. */
enum wv_status exports_slide_csv(const char *path, const struct exports_slide_prob *rows, size_t n,
                                 int header);

#endif
