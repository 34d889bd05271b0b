/*
 * pipeline.h — one slide in, heatmap + slide score + lesion candidates out (DESIGN.md "Data flow",
 * issue 4; user guide docs/analyze.md). Joins wsi/ (slide, tissue, planner), the encoder
 * (src/encoder.h), the slide context head (src/head.h), lesions (src/lesions.h) and the results
 * layer (heatmaps/h5store.h, resultsdb.h, overlay.h, exports.h).
 *
 * Per slide: open → pixel size (file or --mpp) → tissue mask → region plan at the model's target
 * µm/px → reader threads fill a bounded ring of region buffers (RGB) in plan order → the
 * consumer runs the backbone over each whole region (core + halo), crops the halo and hands the
 * stage-3 features of the region's tissue cells to the head run (head_run_add) → head_run_finish
 * chunked by region rows with the scan state carried → lesions → <out>/<slide_id>.h5 (atomic),
 * <slide_id>.csv (CAMELYON16 lesion CSV), optional PNG → results.sqlite row 'done'. Any failure
 * marks the slide 'failed' with the message and leaves no result file under a final name.
 *
 * Cell grid: one cell = PIPELINE_CELL_PX px at the target resolution (the backbone's stride).
 * Regions must start on cell boundaries, so the region side is rounded down to a multiple of
 * PIPELINE_CELL_PX (10,000 → 9,984); the halo (overlap) must already be a multiple of it. A
 * region at the right/bottom edge is read with its core rounded up to whole cells (the part past
 * the slide is white). Grid: rows = ⌈height_target / 32⌉, cols = ⌈width_target / 32⌉; cell
 * (r, c) covers level-0 px [c·cell, (c+1)·cell) × [r·cell, (r+1)·cell), cell = 32·target/mpp.
 * A cell is tissue when the tissue mask is tissue at the cell's centre.
 *
 * Memory: queue × (R + 2·overlap)² × 3 bytes of region buffers + one backbone forward of a
 * region + the region's feature map + the head's O(tissue cells · d_h): independent of the slide
 * size except for the head's per-cell state.
 *
 * Interruption: pipeline_request_stop() (async-signal-safe; the CLI's SIGINT/SIGTERM handlers
 * call it) makes the running slide stop at the next region, input row band or backbone stage,
 * with WV_EINTR and the message "interrupted"; the slide is recorded failed "interrupted".
 */
#ifndef WV_PIPELINE_H
#define WV_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "device_select.h"
#include "error.h"

#define PIPELINE_CELL_PX 32          /* target px per heatmap cell: the backbone's stride */
#define PIPELINE_DEFAULT_READERS 2   /* reader threads on the CPU: decoding keeps up with its encoder */
#define PIPELINE_MAX_AUTO_READERS 8  /* cap of the automatic count with a GPU */
#define PIPELINE_DEFAULT_QUEUE 3     /* region buffers: one being encoded, two read ahead */
#define PIPELINE_READ_BAND 1024      /* target px rows per slide read: a stop is seen within one band */

/* Reader threads when the options leave it automatic: PIPELINE_DEFAULT_READERS on the CPU (the
 * encoder needs the cores, and two decoders keep up with it); with a GPU the encoder is ~20×
 * faster and the compute threads mostly idle, so the readers set the pace: half the compute
 * threads, 2 to PIPELINE_MAX_AUTO_READERS (an H200 host with 16 cores waited 48 % of a slide
 * for 8 readers before they shared bands, docs/benchmarks.md). `threads` is the compute thread
 * count the pipeline will use (the batch divides the cores among its workers first). */
int pipeline_auto_readers(enum wv_device device, int threads);

struct pipeline_options {
    const char *out_dir;        /* output folder (created if missing) — required */
    const char *device;         /* "auto", "cpu", "cuda", "cuda:N" (default "auto": a GPU when
                                   this build has CUDA and one is present, else the CPU) */
    enum wv_dtype dtype;        /* GPU GEMM storage (default f32) */
    int threads;                /* compute threads, ≤ 0 = all cores */
    int readers;                /* reader threads ≥ 1; ≤ 0 = automatic (pipeline_auto_readers) */
    int queue;                  /* region buffers ≥ 1 */
    double mpp;                 /* level-0 µm/px override, 0 = the slide's own */
    int64_t region_px;          /* region side, target px; 0 = the model's (rounded down to 32) */
    int64_t overlap_px;         /* halo, target px, multiple of 32; < 0 = the model's */
    const char *png_path;       /* write this PNG overlay (one slide), or NULL */
    int png_dir;                /* write <out>/<slide_id>.png for every slide */
    int save_features;          /* add /features (float32) to the .h5 */
    float lesion_threshold;     /* heatmap threshold for lesion regions/peaks and tumour area */
    int quiet;                  /* no progress output */
    int check_streaming;        /* testing: also run the head unchunked on the same collected
                                   grid; fail when any output differs by more than 1e-5 */
};

/* Defaults as listed above (out_dir NULL). */
void pipeline_options_default(struct pipeline_options *o);

/* What one slide gave (filled by pipeline_run_slide on success; slide_id also on failure). */
struct pipeline_slide_result {
    char slide_id[256];
    char h5_path[4096];
    int rows, cols;               /* heatmap grid */
    size_t n_regions;             /* planned (tissue-touching) regions */
    size_t n_tissue_cells;
    size_t n_lesions;
    double slide_prob;            /* NaN when the slide has no tissue cell */
    double tumor_area_mm2;
    double seconds_read, seconds_encode, seconds_head, seconds_write, seconds_total;
    /* not in results.sqlite: seconds_read = seconds_setup (open, hash, tissue, plan) +
     * seconds_readers (the reader threads' busy time, summed over them; overlaps encode);
     * seconds_wait: time the encoding thread waited for the readers' next region */
    double seconds_setup, seconds_readers, seconds_wait;
    double streaming_max_diff;    /* with check_streaming: max |chunked − unchunked|, else 0 */
    int64_t region_px, overlap_px; /* the values used (region rounded to whole cells) */
};

struct pipeline;

/* Load the model, build the encoder on the chosen device, create out_dir and open
 * <out_dir>/results.sqlite with a new runs row (status 'running'). On failure nothing is
 * written to the database; *what names the file the error is about (the model path, out_dir,
 * or NULL for option errors) so the CLI can print "wsi-vmamba: <what>: <message>". */
enum wv_status pipeline_open(const char *model_path, const struct pipeline_options *o,
                             struct pipeline **out, const char **what);

/* "cpu" or "cuda:0 (NVIDIA …)" */
/* Reader threads the pipeline runs (the automatic count resolved at open). */
int pipeline_readers(const struct pipeline *p);
const char *pipeline_device_desc(const struct pipeline *p);

/* Analyse one slide (see the file comment). On failure the status and message are returned
 * (the message without the slide path: the CLI adds it) and the slide is recorded 'failed' with
 * the message in results.sqlite. WV_EINTR after pipeline_request_stop(). */
enum wv_status pipeline_run_slide(struct pipeline *p, const char *slide_path,
                                  struct pipeline_slide_result *res);

/* End the run (runs.status = run_status, e.g. "done", "failed", "interrupted") and free
 * everything; NULL is fine. Returns the status of ending the run. */
enum wv_status pipeline_close(struct pipeline *p, const char *run_status);

/* Ask the running pipeline to stop (async-signal-safe: one atomic store). */
void pipeline_request_stop(int signo);
/* The signal number given to pipeline_request_stop, 0 when none. */
int pipeline_stop_signal(void);
/* Forget a stop request (tests; a batch driver that goes on after handling it). */
void pipeline_clear_stop(void);

#endif
