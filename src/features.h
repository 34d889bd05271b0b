/*
 * features.h — the training feature cache (issue 5, docs/training.md): one CLAM-compatible HDF5
 * per slide (heatmaps/h5store.h layout: /coords (N, 2) int32 level-0 top-left of each tissue
 * cell, /features (N, D) float16 or float32, CLAM attributes patch_size, patch_level,
 * downsample, level_dim, name, patch_size_level0, plus mpp, target_mpp and the cell grid the
 * head needs: /tissue (rows, cols) and the heatmap's cell_size_level0). model_sha256 holds the
 * sha256 of the --backbone file. /heatmap and /scores are 0 on tissue (no head ran).
 * The slide is read and encoded by the analyze pipeline (src/pipeline.h, save_features) into
 * <out>/.work, then re-written under its final name with the chosen dtype (atomic: h5store).
 */
#ifndef WV_FEATURES_H
#define WV_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "device_select.h"
#include "error.h"
#include "heatmaps/h5store.h"

struct features_options {
    const char *backbone_path; /* a model file (backbone. tensors) or a backbone checkpoint */
    const char *out_dir;
    const char *device;        /* "auto" (default: a GPU when present), "cpu", "cuda[:N]" */
    enum wv_dtype compute_dtype; /* GPU GEMM storage for the backbone (default f32) */
    int threads;               /* ≤ 0: all cores */
    double mpp;                /* level-0 µm/px override, 0 = the slide's */
    double target_mpp;         /* µm/px the backbone sees (default 0.5; a model file's own) */
    int64_t region_px;         /* 0 = 10000 (or the model file's) */
    int64_t overlap_px;        /* < 0 = 256 (or the model file's) */
    enum h5store_dtype dtype;  /* /features storage (default float16: half the size) */
    int quiet;
};
void features_options_default(struct features_options *o);

struct features;

/* Load the backbone (a model file is used as is; a checkpoint gets a throw-away model file with
 * a random head in <out>/.work) and start the pipeline. *what names the file an error is about. */
enum wv_status features_open(const struct features_options *o, struct features **out,
                             const char **what);

/* Cache one slide. *skipped = 1 (and nothing done) when <out>/<slide_id>.h5 is already complete.
 * final_path (may be NULL) receives the output path. */
enum wv_status features_slide(struct features *f, const char *slide_path, int *skipped,
                              size_t *n_cells, char *final_path, size_t final_path_n);

/* sha256 of the backbone file */
const char *features_backbone_sha256(const struct features *f);
void features_close(struct features *f);

/* Read a cached feature file: grid, tissue and features (n, D) of the tissue cells in row-major
 * cell order (the head's order; /coords rows are sorted into it). Caller frees *tissue and
 * *feat. WV_EFORMAT when the file is incomplete, has no /features, or its coords do not match
 * its tissue grid. */
struct features_file {
    struct h5store_info info;
    uint8_t *tissue; /* (rows, cols) */
    float *feat;     /* (n, D) */
    size_t n;
    char sha256[65]; /* of the file's bytes */
};
enum wv_status features_read(const char *path, struct features_file *out);
void features_file_free(struct features_file *f);

/* features_read without keeping the features (for a trainer that reads them per step, bounded
 * memory): the same checks (complete, /features present, coords on the tissue cells, every
 * feature finite — read in blocks of rows, so memory is O(rows·cols + block)), out->feat NULL. */
enum wv_status features_read_grid(const char *path, struct features_file *out);

/* The features (n, D) of a file checked by features_read_grid, in row-major cell order, into
 * feat (caller-allocated n·D floats). WV_EFORMAT when the file no longer has n cells of D
 * features or a feature is not finite. */
enum wv_status features_read_feat(const char *path, size_t n, int D, float *feat);

#endif
