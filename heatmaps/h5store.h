/*
 * h5store.h — the per-slide HDF5 result file `<out>/<slide_id>.h5` (DESIGN.md "Results"; CLAM
 * conventions and HDF5 1.10.8 advice in CAMELYON16_PROTOCOL.md §5.1–5.2; layout in docs/formats.md).
 *
 * Layout (all little-endian, row-major, shapes as h5py shows them):
 *   /heatmap   float32 (rows, cols)  tumour probability per cell, NaN exactly where /tissue is 0;
 *              chunked + shuffle + deflate. Attributes: cell_size_level0 (double, level-0 px per
 *              cell side), mpp (double[2], level-0 µm/px x, y), slide_width, slide_height (int64,
 *              level-0 px), target_mpp (double), model_sha256, tool_version (UTF-8 strings).
 *              Cell (r, c) covers level-0 px [c·cell, (c+1)·cell) × [r·cell, (r+1)·cell).
 *   /tissue    uint8 (rows, cols)   1 tissue cell, 0 background; chunked + deflate.
 *   /coords    int32 (N, 2)         (x, y) level-0 top-left of each tissue cell, extendible,
 *              chunked. Attributes exactly as CLAM writes them (patch_size int64 = cell side at
 *              patch_level px, patch_level int64, downsample double[2], level_dim int64[2],
 *              downsampled_level_dim int64[2], name = slide id, save_path) plus patch_size_level0
 *              (double, = cell_size_level0).
 *   /scores    float32 (N)          tumour probability of coords row i.
 *   /features  float32 or float16 (N, D), optional; row i belongs to coords row i. CLAM's feature
 *              readers (features + coords, §5.1) expect float32, so float32 is the default;
 *              float16 halves the size for our own training cache (h5py reads it as float16).
 *   root attribute `complete` (int64 1), written last: a file without it is not a result.
 *
 * Writing is atomic: the file is built as `<out>/.<slide_id>.h5.tmp.<pid>`, closed, fsync'ed and
 * renamed to `<out>/<slide_id>.h5` only after H5Fclose succeeded; on any failure (disk full
 * included) the temp file is removed and a status returned. No half-written file ever sits under
 * the final name; an old complete file under the final name is replaced only by a new complete one.
 *
 * Errors (STYLE.md 2.3): every call returns enum wv_status and sets error_set()'s message, naming
 * the dataset and the innermost message of the HDF5 error stack ("/heatmap: write: no space left
 * on device"). A handle keeps a sticky copy of its first error: later calls on it return the
 * same status without doing work; h5store_error() returns the text. HDF5's automatic error
 * printing is switched off (H5Eset_auto2) by every entry point.
 *
 * Threads: Debian's libhdf5 is thread-safe but serialised by one global lock; one handle must not
 * be used by two threads at once; different handles on different files are fine (but do not gain
 * speed — use processes). Never let two processes write the same slide's file.
 */
#ifndef WV_H5STORE_H
#define WV_H5STORE_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

struct h5store; /* opaque; a writer (h5store_create) or a reader (h5store_open_read) */

/* Storage type of /features. */
enum h5store_dtype {
    H5STORE_F32 = 0, /* IEEE float32 (CLAM-compatible; the default) */
    H5STORE_F16,     /* IEEE half precision; values are rounded on write, widened on read */
};

/* Longest string attribute the reader returns (longer values are truncated on read). */
#define H5STORE_STR_MAX 1024

/* What the writer records about the slide and the grid. All sizes in level-0 px unless stated. */
struct h5store_meta {
    const char *slide_id;     /* CLAM `name`; also the file stem (must be a plain file name:
                                 non-empty, no '/', not "." or "..") */
    int64_t slide_width;      /* level-0 size, px */
    int64_t slide_height;
    double mpp_x, mpp_y;      /* level-0 µm/px (0 when unknown) */
    double target_mpp;        /* µm/px the encoder ran at */
    double cell_size_level0;  /* side of one heatmap cell, level-0 px (e.g. 32·target_mpp/mpp) */
    /* CLAM view of the same grid: the pyramid level a reader should read patches from, its
     * downsample (level-0 px per level px, x and y), its size in level px, and the cell side at
     * that level (integer px, CLAM's patch_size). Level 0 with downsample 1 is always valid:
     * patch_level 0, downsample 1,1, level_dim = slide size, patch_size = round(cell). */
    int patch_level;
    double downsample_x, downsample_y;
    int64_t level_width, level_height;
    int64_t patch_size;
    const char *model_sha256; /* hex; "" or NULL when unknown */
    const char *tool_version; /* e.g. "0.1.0"; NULL → "" */
    const char *save_path;    /* CLAM's save_path attribute (the output folder); NULL → "" */
};

/* ---- writing ------------------------------------------------------------------------------ */

/* Start `<out_dir>/<meta->slide_id>.h5` (as the temp file above) for a grid of rows × cols cells.
 * feature_dim: D of /features, 0 for none; feature_dtype its storage type (ignored when D = 0).
 * Strings in meta are copied. On success *out is a new writer handle; on failure *out is NULL,
 * nothing is left on disk and the status is returned (WV_EINVAL for bad meta/sizes, WV_EIO when
 * the folder cannot be written). */
enum wv_status h5store_create(const char *out_dir, const struct h5store_meta *meta, int rows,
                              int cols, int feature_dim, enum h5store_dtype feature_dtype,
                              struct h5store **out);

/* Write the whole grid once: heatmap (rows, cols) float32 probabilities (NaN where tissue is 0;
 * the writer stores NaN for every cell whose tissue value is 0 whatever heatmap holds there),
 * tissue (rows, cols) 0/1. Must be called exactly once before h5store_commit. */
enum wv_status h5store_write_heatmap(struct h5store *h, const float *heatmap,
                                     const uint8_t *tissue);

/* Append n cells: coords (n, 2) int32 (x, y) level-0 px; features (n, D) float32 (converted to
 * the storage type), NULL iff feature_dim is 0. May be called any number of times (e.g. once per
 * region) so features never need to be held whole; rows keep the order of the calls. */
enum wv_status h5store_append_cells(struct h5store *h, size_t n, const int32_t *coords,
                                    const float *features);

/* Write /scores: n float32 probabilities, one per appended coords row; n must equal the number
 * of rows appended so far (no more cells may be appended afterwards). Call once. */
enum wv_status h5store_write_scores(struct h5store *h, size_t n, const float *scores);

/* Finish a writer: check that heatmap and scores were written, write `complete`, close the file,
 * fsync it, rename it to the final name and fsync the folder. After WV_OK the result is in place;
 * on error the temp file is removed. Either way the handle still needs h5store_close.
 * If final_path is non-NULL it receives the final path (at most final_path_n bytes incl. NUL). */
enum wv_status h5store_commit(struct h5store *h, char *final_path, size_t final_path_n);

/* One-shot writer: create + write_heatmap + append_cells(n, coords, features) + write_scores +
 * commit + close. features may be NULL (feature_dim 0). */
enum wv_status h5store_write_file(const char *out_dir, const struct h5store_meta *meta, int rows,
                                  int cols, const float *heatmap, const uint8_t *tissue, size_t n,
                                  const int32_t *coords, const float *scores, int feature_dim,
                                  enum h5store_dtype feature_dtype, const float *features,
                                  char *final_path, size_t final_path_n);

/* Final path of a slide's result: "<out_dir>/<slide_id>.h5". WV_EINVAL if it does not fit in n. */
enum wv_status h5store_path(const char *out_dir, const char *slide_id, char *out, size_t n);

/* ---- reading ------------------------------------------------------------------------------ */

/* Everything a reader learns from the file's shapes and attributes. Strings are copies
 * (truncated to H5STORE_STR_MAX - 1 bytes). */
struct h5store_info {
    int rows, cols;            /* /heatmap shape */
    size_t n_cells;            /* /coords rows = /scores length */
    int feature_dim;           /* D, 0 when the file has no /features */
    enum h5store_dtype feature_dtype;
    int complete;              /* 1 when the `complete` attribute is present and 1 */
    int64_t slide_width, slide_height;
    double mpp_x, mpp_y, target_mpp, cell_size_level0;
    int patch_level;
    int64_t patch_size;
    double patch_size_level0;
    double downsample_x, downsample_y;
    int64_t level_width, level_height;
    char slide_id[H5STORE_STR_MAX];     /* /coords `name` */
    char model_sha256[H5STORE_STR_MAX];
    char tool_version[H5STORE_STR_MAX];
};

/* Open an existing result file read-only (a reader handle; free with h5store_close). Fails with
 * WV_ENOTFOUND when the file does not exist, WV_EFORMAT when it is not HDF5 or lacks /heatmap,
 * /tissue, /coords or /scores or their attributes or has inconsistent shapes. A file without
 * `complete` opens (info.complete = 0) so tools can inspect it. */
enum wv_status h5store_open_read(const char *path, struct h5store **out);

/* Shapes and attributes of an open reader. */
enum wv_status h5store_read_info(struct h5store *h, struct h5store_info *info);

/* /heatmap into out (rows, cols) float32. */
enum wv_status h5store_read_heatmap(struct h5store *h, float *out);
/* /tissue into out (rows, cols) uint8. */
enum wv_status h5store_read_tissue(struct h5store *h, uint8_t *out);
/* Rows [start, start + n) of /coords into out (n, 2) int32. */
enum wv_status h5store_read_coords(struct h5store *h, size_t start, size_t n, int32_t *out);
/* Elements [start, start + n) of /scores into out (n). */
enum wv_status h5store_read_scores(struct h5store *h, size_t start, size_t n, float *out);
/* Rows [start, start + n) of /features into out (n, D) float32 (float16 files are widened).
 * WV_ENOTFOUND when the file has no features. */
enum wv_status h5store_read_features(struct h5store *h, size_t start, size_t n, float *out);

/* Is there a complete result at `path`? WV_OK when the file opens read-only, has /heatmap,
 * /tissue, /coords and /scores with consistent shapes and the root attribute complete = 1;
 * WV_ENOTFOUND when no file is there; WV_EFORMAT (message says what is missing) otherwise.
 * Used by batch resume. Sets the thread's error message only for non-OK results. */
enum wv_status h5store_check_complete(const char *path);

/* ---- both ----------------------------------------------------------------------------------- */

/* The handle's first error, NULL while there is none. Valid until h5store_close. */
const char *h5store_error(const struct h5store *h);

/* Close and free; NULL is fine. A writer that was not committed successfully is aborted: its
 * temp file is removed (nothing appears under the final name). */
void h5store_close(struct h5store *h);

#endif
