/*
 * results_tool.c — driver for results_check.py: writes a deterministic set of result files with
 * the heatmaps/ library (two .h5 files, results.sqlite, exports, a PNG overlay) so Python's h5py,
 * sqlite3, json, csv and xml readers can check them independently.
 *   results_tool write OUTDIR     → files under OUTDIR (pattern documented in results_check.py)
 *   results_tool check FILE.h5    → exit 0 when h5store_check_complete accepts it, else 1 + message
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heatmaps/exports.h"
#include "heatmaps/h5store.h"
#include "heatmaps/overlay.h"
#include "heatmaps/resultsdb.h"

enum { ROWS = 6, COLS = 9, D = 4 };
#define CELL 64.0

static int fail(const char *what)
{
    fprintf(stderr, "results_tool: %s: %s\n", what, error_msg());
    return 1;
}

static int write_h5(const char *out, const char *id, int with_features, char *path, size_t n_path)
{
    static float hm[ROWS * COLS], scores[ROWS * COLS], feats[ROWS * COLS * D];
    static uint8_t ts[ROWS * COLS];
    static int32_t coords[ROWS * COLS * 2];
    size_t n = 0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            int i = r * COLS + c;
            ts[i] = (r + c) % 3 != 0;
            hm[i] = ts[i] ? (float)i / (ROWS * COLS) : 0.0f;
            if (!ts[i]) continue;
            coords[2 * n] = (int32_t)(c * CELL);
            coords[2 * n + 1] = (int32_t)(r * CELL);
            scores[n] = hm[i];
            for (int d = 0; d < D; d++) feats[n * D + d] = (float)n + 0.5f * d;
            n++;
        }
    struct h5store_meta m = {0};
    m.slide_id = id;
    m.slide_width = COLS * 64 - 10;
    m.slide_height = ROWS * 64 - 20;
    m.mpp_x = m.mpp_y = 0.25;
    m.target_mpp = 0.5;
    m.cell_size_level0 = CELL;
    m.patch_level = 0;
    m.downsample_x = m.downsample_y = 1.0;
    m.level_width = m.slide_width;
    m.level_height = m.slide_height;
    m.patch_size = 64;
    m.model_sha256 = "0123456789abcdef";
    m.tool_version = "0.1.0";
    m.save_path = out;
    return h5store_write_file(out, &m, ROWS, COLS, hm, ts, n, coords, scores,
                              with_features ? D : 0, H5STORE_F16, with_features ? feats : NULL,
                              path, n_path) != WV_OK;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "check")) {
        if (h5store_check_complete(argv[2]) == WV_OK) return 0;
        fprintf(stderr, "results_tool: %s\n", error_msg());
        return 1;
    }
    if (argc != 3 || strcmp(argv[1], "write")) {
        fprintf(stderr, "usage: results_tool write OUTDIR | check FILE.h5\n");
        return 2;
    }
    const char *out = argv[2];
    char pa[4096], pb[4096], p[4096];
    if (write_h5(out, "synth_A", 1, pa, sizeof pa)) return fail("synth_A.h5");
    if (write_h5(out, "synth_B", 0, pb, sizeof pb)) return fail("synth_B.h5");

    snprintf(p, sizeof p, "%s/%s", out, RESULTSDB_FILE_NAME);
    struct resultsdb *db = NULL;
    if (resultsdb_open(p, &db)) return fail(p);
    int64_t run = 0;
    struct resultsdb_lesion les[2] = {{0.9, 320, 128, 3}, {0.6, 64, 256, 1}};
    struct resultsdb_scores sc = {0.8, 0.12, 36, 1.5, 2.5, 0.5, 0.25, 5.0};
    struct resultsdb_slide sa = {"synth_A", "/slides/synth_A.tif", 1000, "hashA", "generic-tiff",
                                 COLS * 64 - 10, ROWS * 64 - 20, 0.25, 0.25, "tumor"};
    struct resultsdb_slide sb = sa;
    sb.slide_id = "synth_B";
    sb.content_hash = "hashB";
    sb.label = "normal";
    int bad = resultsdb_run_begin(db, "0.1.0", "0123456789abcdef", "{\"target_mpp\":0.5}", &run) ||
              resultsdb_slide_start(db, &sa) || resultsdb_slide_done(db, "synth_A", &sc, les, 2, pa) ||
              /* run synth_A again: its rows are replaced, not added */
              resultsdb_slide_start(db, &sa) || resultsdb_slide_done(db, "synth_A", &sc, les, 2, pa) ||
              resultsdb_slide_start(db, &sb) || resultsdb_slide_done(db, "synth_B", &sc, NULL, 0, pb) ||
              resultsdb_slide_failed(db, "broken", "/slides/broken.svs",
                                     "not a supported slide format") ||
              resultsdb_run_end(db, run, "done");
    resultsdb_close(db);
    if (bad) return fail("results.sqlite");

    snprintf(p, sizeof p, "%s/synth_A.csv", out);
    if (exports_lesions_csv(p, les, 2)) return fail(p);
    snprintf(p, sizeof p, "%s/synth_A.lesions.geojson", out);
    if (exports_lesions_geojson(p, "synth_A", les, 2)) return fail(p);
    snprintf(p, sizeof p, "%s/synth_A.xml", out);
    if (exports_lesions_asap_xml(p, les, 2)) return fail(p);
    struct exports_slide_prob probs[2] = {{"synth_A", 0.8}, {"synth_B", 0.1}};
    snprintf(p, sizeof p, "%s/slides.csv", out);
    if (exports_slide_csv(p, probs, 2, 0)) return fail(p);

    /* cells GeoJSON and overlay from the heatmap as written */
    struct h5store *h = NULL;
    static float hm[ROWS * COLS];
    static uint8_t ts[ROWS * COLS];
    if (h5store_open_read(pa, &h) || h5store_read_heatmap(h, hm) || h5store_read_tissue(h, ts))
        return fail(pa);
    h5store_close(h);
    snprintf(p, sizeof p, "%s/synth_A.cells.geojson", out);
    if (exports_cells_geojson(p, hm, ROWS, COLS, CELL, 0.0)) return fail(p);
    static uint8_t rgb[(ROWS * 16) * (COLS * 16) * 3];
    memset(rgb, 230, sizeof rgb);
    snprintf(p, sizeof p, "%s/synth_A.png", out);
    if (overlay_write_png_rgb(rgb, COLS * 16, ROWS * 16, 4.0, hm, ts, ROWS, COLS, CELL, p))
        return fail(p);
    printf("wrote %s\n", out);
    return 0;
}
