/*
 * pipeline.c — the analyze pipeline (contract and data flow in pipeline.h; DESIGN.md "Data
 * flow"; user guide docs/analyze.md). The region ring and its reader threads are in
 * pipeline_read.c (pipeline_private.h); this file plans a slide, runs the backbone and the head,
 * and writes the results.
 */
#include "pipeline.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoder.h"
#include "head.h"
#include "heatmaps/exports.h"
#include "heatmaps/h5store.h"
#include "heatmaps/overlay.h"
#include "heatmaps/resultsdb.h"
#include "lesions.h"
#include "model_file.h"
#include "pipeline_private.h"
#include "slide_id.h"
#include "progress.h"
#include "sha256.h"
#include "util.h"
#include "version.h"
#include "wsi/planner.h"
#include "wsi/slide.h"
#include "wsi/tissue.h"

/* The streaming claim is checked to this tolerance (issue 4); the head is in fact bit-identical
 * for any chunking (tests/unit/test_head.c), so any difference at all would be a bug. */
#define STREAMING_TOL 1e-5

/* ---- stop flag ------------------------------------------------------------------------------ */

/* Set from a signal handler, read by every pipeline thread: a lock-free atomic is both
 * async-signal-safe and race-free (a volatile sig_atomic_t is only the former). */
static atomic_int g_stop_signal;

void pipeline_request_stop(int signo)
{
    atomic_store(&g_stop_signal, signo > 0 ? signo : SIGINT);
}

int pipeline_stop_signal(void)
{
    return atomic_load(&g_stop_signal);
}

void pipeline_clear_stop(void)
{
    atomic_store(&g_stop_signal, 0);
}

enum wv_status pipeline_check_stop(void)
{
    int s = atomic_load(&g_stop_signal);
    if (!s) return WV_OK;
    return error_set(WV_EINTR, "interrupted by %s",
                     s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "a signal");
}

/* ---- options, open, close ------------------------------------------------------------------ */

int pipeline_auto_readers(enum wv_device device, int threads)
{
    if (device != WV_DEVICE_CUDA) return PIPELINE_DEFAULT_READERS;
    int r = threads / 2;
    return r < 2 ? 2 : r > PIPELINE_MAX_AUTO_READERS ? PIPELINE_MAX_AUTO_READERS : r;
}

void pipeline_options_default(struct pipeline_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->dtype = WV_DTYPE_F32;
    o->threads = 0;
    o->readers = 0; /* automatic: pipeline_auto_readers */
    o->queue = PIPELINE_DEFAULT_QUEUE;
    o->overlap_px = -1;
    o->lesion_threshold = 0.5f;
}

struct pipeline {
    struct pipeline_options o;
    char out_dir[4096];
    char png_path[4096];
    struct device_choice dc;
    struct model *model;
    struct encoder *enc;
    struct resultsdb *db;
    int64_t run_id;
    int64_t region_px, overlap_px;
    double target_mpp;
    struct progress prog;
};

int pipeline_readers(const struct pipeline *p) { return p->o.readers; }

const char *pipeline_device_desc(const struct pipeline *p)
{
    return p->dc.desc;
}

/* Is out_dir writable? Create and remove a probe file, so the error names the folder before any
 * slide is read (a read-only folder would otherwise fail only when the database opens). */
static enum wv_status probe_dir(const char *dir)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.wsi-vmamba-probe.%ld", dir, (long)getpid());
    FILE *f = fopen(probe, "wb");
    if (!f) return error_set(WV_EIO, "cannot write to the output folder: %s", strerror(errno));
    fclose(f);
    unlink(probe);
    return WV_OK;
}

enum wv_status pipeline_open(const char *model_path, const struct pipeline_options *o,
                             struct pipeline **out, const char **what)
{
    *out = NULL;
    *what = NULL;
    if (!o->out_dir || !o->out_dir[0]) return error_set(WV_EINVAL, "no output folder given");
    if (o->readers > 64) /* ≤ 0: automatic */
        return error_set(WV_EINVAL, "--readers %d: must be in [1, 64]", o->readers);
    if (o->queue < 1 || o->queue > 64)
        return error_set(WV_EINVAL, "--queue %d: must be in [1, 64]", o->queue);
    if (!(o->lesion_threshold >= 0 && o->lesion_threshold <= 1))
        return error_set(WV_EINVAL, "--lesion-threshold %g: must be in [0, 1]",
                         (double)o->lesion_threshold);
    if (o->mpp < 0 || !isfinite(o->mpp)) return error_set(WV_EINVAL, "--mpp %g: must be > 0", o->mpp);

    /* Workaround (heatmaps/h5store.c, HDF5 1.10.8): when H5Fflush in h5store_commit fails with
     * ENOSPC, the following H5Fclose fails too and the file stays in HDF5's id table; HDF5's own
     * atexit handler (H5_term_library → H5F__close_cb) then segfaults at process exit. Every file
     * the pipeline opens is closed (or abandoned after a failure) by h5store, so the library has
     * nothing to flush at exit: skip its atexit handler. Must precede HDF5's initialisation;
     * later calls fail harmlessly. */
    H5dont_atexit();
    struct pipeline *p = wv_calloc(1, sizeof *p, "pipeline");
    if (!p) return WV_ENOMEM;
    p->o = *o;
    snprintf(p->out_dir, sizeof p->out_dir, "%s", o->out_dir);
    p->o.out_dir = p->out_dir;
    if (o->png_path) {
        snprintf(p->png_path, sizeof p->png_path, "%s", o->png_path);
        p->o.png_path = p->png_path;
    }
    progress_init(&p->prog, stderr, o->quiet);
    enum wv_status st;
    if ((st = device_select(o->device ? o->device : "auto", &p->dc))) goto fail;
    if (p->o.readers <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        p->o.readers = pipeline_auto_readers(p->dc.device, o->threads > 0 ? o->threads
                                                          : nc > 0 ? (int)nc : 1);
    }
    if ((st = model_file_load(model_path, &p->model))) {
        *what = model_path;
        goto fail;
    }
    const struct model_meta *mm = &p->model->meta;
    p->target_mpp = mm->target_mpp;
    int64_t region = o->region_px > 0 ? o->region_px : mm->region_size;
    /* regions must start on the cell grid: round the side down to whole cells (10,000 → 9,984) */
    p->region_px = region / PIPELINE_CELL_PX * PIPELINE_CELL_PX;
    p->overlap_px = o->overlap_px >= 0 ? o->overlap_px : mm->overlap;
    if (p->region_px < PIPELINE_CELL_PX) {
        st = error_set(WV_EINVAL, "region %lld px: must be at least %d (one cell)", (long long)region,
                       PIPELINE_CELL_PX);
        goto fail;
    }
    if (p->region_px > 65536) {
        st = error_set(WV_EINVAL, "region %lld px: must be at most 65536", (long long)region);
        goto fail;
    }
    {
        struct plan_params pp = {p->target_mpp, p->region_px, p->overlap_px};
        if ((st = plan_check_params(&pp))) goto fail;
        if (p->overlap_px % PIPELINE_CELL_PX || p->overlap_px > 4096) {
            st = error_set(WV_EINVAL, "overlap %lld px: must be a multiple of %d, at most 4096",
                           (long long)p->overlap_px, PIPELINE_CELL_PX);
            goto fail;
        }
    }
    {
        struct encoder_options eo = {p->dc.device, p->dc.index, o->dtype, o->threads};
        if ((st = encoder_create(p->model->w, MODEL_BACKBONE_PREFIX, &eo, &p->enc))) {
            *what = model_path;
            goto fail;
        }
    }
    if (encoder_feature_dim(p->enc) != head_get_config(p->model->head)->in_dim) {
        st = error_set(WV_EFORMAT, "backbone feature dim %d, head expects %d",
                       encoder_feature_dim(p->enc), head_get_config(p->model->head)->in_dim);
        *what = model_path;
        goto fail;
    }
    *what = o->out_dir; /* the caller's string: p is freed on failure */
    if ((st = util_mkdir_p(p->out_dir)) || (st = probe_dir(p->out_dir))) goto fail;
    {
        char dbp[4200];
        snprintf(dbp, sizeof dbp, "%s/%s", p->out_dir, RESULTSDB_FILE_NAME);
        if ((st = resultsdb_open(dbp, &p->db))) goto fail;
    }
    {
        char params[2048];
        snprintf(params, sizeof params,
                 "{\"command\":\"analyze\",\"target_mpp\":%.17g,\"region_px\":%lld,"
                 "\"region_px_requested\":%lld,\"overlap_px\":%lld,\"cell_px\":%d,"
                 "\"mpp_override\":%.17g,\"device\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,"
                 "\"readers\":%d,\"queue\":%d,\"lesion_threshold\":%.9g,\"save_features\":%s,"
                 "\"model_trained\":%s}",
                 p->target_mpp, (long long)p->region_px, (long long)region,
                 (long long)p->overlap_px, PIPELINE_CELL_PX, o->mpp,
                 encoder_device_name(p->enc), wv_dtype_name(o->dtype),
                 encoder_backend(p->enc)->threads, p->o.readers, o->queue,
                 (double)o->lesion_threshold, o->save_features ? "true" : "false",
                 mm->trained ? "true" : "false");
        if ((st = resultsdb_run_begin(p->db, WV_VERSION_STRING, p->model->sha256, params,
                                      &p->run_id)))
            goto fail;
    }
    *what = NULL;
    *out = p;
    return WV_OK;
fail:
    resultsdb_close(p->db);
    p->db = NULL;
    pipeline_close(p, NULL);
    return st;
}

enum wv_status pipeline_close(struct pipeline *p, const char *run_status)
{
    if (!p) return WV_OK;
    enum wv_status st = WV_OK;
    if (p->db && run_status) st = resultsdb_run_end(p->db, p->run_id, run_status);
    resultsdb_close(p->db);
    encoder_free(p->enc);
    model_free(p->model);
    free(p);
    return st;
}

/* ---- one slide ------------------------------------------------------------------------------ */

struct slide_job {
    struct pipeline *p;
    const char *path;
    struct pipeline_slide_result *res;
    struct slide *s;
    struct tissue_mask mask;
    struct plan plan;
    int rows, cols;           /* cell grid */
    uint8_t *tissue;          /* (rows, cols) */
    double cell_l0;           /* level-0 px per cell side (x) */
    size_t n_tissue;
    struct region_geom *geom; /* kept regions (≥ 1 tissue cell), plan order */
    size_t n_geom;
    struct head_run *run;
    struct h5store *h5;
    int32_t *order;           /* (n_tissue): cell index of /coords row i */
    size_t n_order;
    float *features;          /* one region's stage-3 map (hs, ws, D) */
    size_t features_cap;
    float *gather;            /* save_features: a region's tissue-cell features (m, D) */
    int32_t *coords;          /* a region's tissue-cell coords (m, 2) */
    float *all_features;      /* check_streaming: (n_tissue, D) in row-major cell order */
    int32_t *rank;            /* check_streaming: (rows, cols) row-major tissue rank or -1 */
    float *heat;              /* (rows, cols) */
    double t_start, t_read, t_encode, t_head, t_write;
    double t_setup, t_wait;   /* t_read before the readers start; encoding thread blocked on them */
};

/* cell (r, c) centre is tissue; and is it inside the slide's target-px extent */
static enum wv_status make_grid(struct slide_job *j)
{
    const struct plan *pl = &j->plan;
    j->rows = (int)((pl->height + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
    j->cols = (int)((pl->width + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
    j->cell_l0 = PIPELINE_CELL_PX * pl->ds_x;
    double cell_y = PIPELINE_CELL_PX * pl->ds_y;
    size_t nc = (size_t)j->rows * j->cols;
    if (!(j->tissue = wv_calloc(nc, 1, "tissue grid"))) return WV_ENOMEM;
    if (!(j->heat = wv_malloc(nc * sizeof *j->heat, "heatmap"))) return WV_ENOMEM;
    /* a cell counts only when a planned region holds it (always true: a tissue cell's centre
     * lies in a tissue mask pixel that overlaps the region core around it) */
    uint8_t *covered = wv_calloc(nc, 1, "grid");
    if (!covered) return WV_ENOMEM;
    for (size_t i = 0; i < pl->n_regions; i++) {
        const struct plan_region *rg = &pl->regions[i];
        int r0 = (int)(rg->core.y / PIPELINE_CELL_PX), c0 = (int)(rg->core.x / PIPELINE_CELL_PX);
        int nr = (int)((rg->core.h + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
        int ncl = (int)((rg->core.w + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
        for (int r = r0; r < r0 + nr && r < j->rows; r++)
            memset(covered + (size_t)r * j->cols + c0, 1,
                   (size_t)(c0 + ncl <= j->cols ? ncl : j->cols - c0));
    }
    for (int r = 0; r < j->rows; r++)
        for (int c = 0; c < j->cols; c++) {
            size_t k = (size_t)r * j->cols + c;
            if (covered[k] && tissue_at(&j->mask, (c + 0.5) * j->cell_l0, (r + 0.5) * cell_y)) {
                j->tissue[k] = 1;
                j->n_tissue++;
            }
        }
    free(covered);
    /* keep the regions that hold at least one tissue cell, with their read geometry */
    if (pl->n_regions && !(j->geom = wv_calloc(pl->n_regions, sizeof *j->geom, "regions")))
        return WV_ENOMEM;
    int64_t ov = pl->params.overlap_px;
    for (size_t i = 0; i < pl->n_regions; i++) {
        const struct plan_region *rg = &pl->regions[i];
        struct region_geom g = {0};
        g.row0 = (int)(rg->core.y / PIPELINE_CELL_PX);
        g.col0 = (int)(rg->core.x / PIPELINE_CELL_PX);
        g.n_rows = (int)((rg->core.h + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
        g.n_cols = (int)((rg->core.w + PIPELINE_CELL_PX - 1) / PIPELINE_CELL_PX);
        size_t m = 0;
        for (int r = g.row0; r < g.row0 + g.n_rows; r++)
            for (int c = g.col0; c < g.col0 + g.n_cols; c++) m += j->tissue[(size_t)r * j->cols + c];
        if (!m) continue;
        g.n_tissue = m;
        /* the read rectangle: whole cells + the halo; past the slide edge the reader gives white */
        g.read_w = g.n_cols * PIPELINE_CELL_PX + 2 * (int)ov;
        g.read_h = g.n_rows * PIPELINE_CELL_PX + 2 * (int)ov;
        g.x0_l0 = rg->read_l0.x;
        g.y0_l0 = rg->read_l0.y;
        j->geom[j->n_geom++] = g;
    }
    return WV_OK;
}

/* input rows of a region for the backbone: RGB bytes → normalised fp32, (rows, W, 3) */
struct rows_src {
    const uint8_t *rgb;
    int W, threads;
    float scale[3], bias[3]; /* (v/255 − mean)/std = v·scale + bias */
};

void pipeline_rgb_to_input(const uint8_t *in, float *dst, size_t npix, const float scale[3],
                           const float bias[3], int threads)
{
    /* 4 pixels = 12 values per step with the channel pattern unrolled, so the compiler
     * vectorises it; each value is v·scale[c] + bias[c] exactly as one pixel at a time */
    float S[12], Bv[12];
    for (int k = 0; k < 12; k++) S[k] = scale[k % 3], Bv[k] = bias[k % 3];
    const size_t n = npix * 3, n12 = n / 12;
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1) if (n12 > 16384)
    for (size_t q = 0; q < n12; q++) {
        const uint8_t *a = in + q * 12;
        float *o = dst + q * 12;
#pragma omp simd
        for (int k = 0; k < 12; k++) o[k] = a[k] * S[k] + Bv[k];
    }
    for (size_t j = n12 * 12; j < n; j++) dst[j] = in[j] * scale[j % 3] + bias[j % 3];
}

/* The encoder's row callback: on the GPU the host converts every input row before it is copied
 * (one 10,496² region: 330 M values, ~1 s on one core of the dev VM), so the conversion runs on
 * the compute threads. */
static enum wv_status region_rows(void *user, int b, int row0, int rows, float *dst)
{
    const struct rows_src *src = user;
    enum wv_status st = pipeline_check_stop();
    if (st) return st;
    pipeline_rgb_to_input(src->rgb + (size_t)row0 * src->W * 3, dst, (size_t)rows * src->W,
                          src->scale, src->bias, src->threads);
    return WV_OK;
}

static enum wv_status stage_check(void *user, const char *name, const float *map, int B, int H,
                                  int W, int C)
{
    return pipeline_check_stop();
}

/* one region: encode, crop the halo, hand tissue cells to the head, append coords (+features) */
static enum wv_status encode_region(struct slide_job *j, const struct region_geom *g,
                                    const uint8_t *rgb)
{
    struct pipeline *p = j->p;
    const int D = encoder_feature_dim(p->enc);
    int hs, ws;
    encoder_feature_size(p->enc, g->read_h, g->read_w, &hs, &ws);
    const int off = (int)(j->plan.params.overlap_px / PIPELINE_CELL_PX);
    if (hs != g->n_rows + 2 * off || ws != g->n_cols + 2 * off)
        return error_set(WV_EUNSUPPORTED,
                         "backbone maps a %d×%d region to %d×%d cells, expected stride %d",
                         g->read_w, g->read_h, ws, hs, PIPELINE_CELL_PX);
    size_t need = (size_t)hs * ws * D;
    if (need > j->features_cap) {
        free(j->features);
        if (!(j->features = wv_malloc(need * sizeof(float), "region features"))) return WV_ENOMEM;
        j->features_cap = need;
    }
    const struct model_meta *mm = &p->model->meta;
    struct rows_src src = {.rgb = rgb, .W = g->read_w, .threads = encoder_backend(p->enc)->threads};
    for (int c = 0; c < 3; c++) {
        src.scale[c] = 1.0f / (255.0f * mm->norm_std[c]);
        src.bias[c] = -mm->norm_mean[c] / mm->norm_std[c];
    }
    double t0 = util_now();
    enum wv_status st = encoder_forward(p->enc, g->read_h, g->read_w, region_rows, &src,
                                        stage_check, NULL, j->features);
    double t1 = util_now();
    j->t_encode += t1 - t0;
    if (st) return st;
    const float *core = j->features + ((size_t)off * ws + off) * D;
    if ((st = head_run_add(j->run, g->row0, g->col0, g->n_rows, g->n_cols, core, (size_t)ws)))
        return st;
    /* this region's tissue cells, row-major: coords, optional features, row order */
    size_t m = 0;
    for (int r = 0; r < g->n_rows; r++)
        for (int c = 0; c < g->n_cols; c++) {
            size_t cell = (size_t)(g->row0 + r) * j->cols + (g->col0 + c);
            if (!j->tissue[cell]) continue;
            const float *f = core + ((size_t)r * ws + c) * D;
            j->coords[2 * m] = (int32_t)llround((g->col0 + c) * j->cell_l0);
            j->coords[2 * m + 1] = (int32_t)llround((g->row0 + r) * PIPELINE_CELL_PX * j->plan.ds_y);
            if (j->gather) memcpy(j->gather + m * D, f, (size_t)D * sizeof(float));
            if (j->all_features) memcpy(j->all_features + (size_t)j->rank[cell] * D, f,
                                        (size_t)D * sizeof(float));
            j->order[j->n_order++] = (int32_t)cell;
            m++;
        }
    if (m != g->n_tissue) /* make_grid counted them: cannot differ */
        return error_set(WV_EINVAL, "region (%d, %d): %zu tissue cells, planned %zu", g->row0,
                         g->col0, m, g->n_tissue);
    st = h5store_append_cells(j->h5, m, j->coords, j->gather);
    j->t_head += util_now() - t1;
    return st;
}

/* the streaming check: the head once more, unchunked, on the collected features */
static enum wv_status check_streaming(struct slide_job *j, const struct head_outputs *ho)
{
    size_t nc = (size_t)j->rows * j->cols;
    float *prob = wv_malloc(nc * sizeof *prob, "check");
    if (!prob) return WV_ENOMEM;
    struct head_grid grid = {j->rows, j->cols, j->tissue, j->all_features,
                             head_get_config(j->p->model->head)->in_dim};
    struct head_outputs one = {.cell_prob = prob};
    enum wv_status st = head_forward(j->p->model->head, &grid, 0, encoder_backend(j->p->enc)->threads,
                                     &one);
    if (!st) {
        double d = 0;
        for (size_t k = 0; k < nc; k++) {
            if (!j->tissue[k]) continue;
            double e = fabs((double)prob[k] - (double)ho->cell_prob[k]);
            if (!(e <= d)) d = e; /* NaN propagates as a failure */
        }
        if (isfinite(ho->slide_prob) || isfinite(one.slide_prob)) {
            double e = fabs((double)ho->slide_prob - (double)one.slide_prob);
            if (!(e <= d)) d = e;
        }
        j->res->streaming_max_diff = d;
        if (!(d <= STREAMING_TOL))
            st = error_set(WV_EINVAL, "streaming check: chunked head differs from one pass by %g",
                           d);
    }
    free(prob);
    return st;
}

static void free_job(struct slide_job *j)
{
    h5store_close(j->h5);
    head_run_free(j->run);
    free(j->order);
    free(j->features);
    free(j->gather);
    free(j->coords);
    free(j->all_features);
    free(j->rank);
    free(j->heat);
    free(j->tissue);
    free(j->geom);
    plan_free(&j->plan);
    tissue_mask_free(&j->mask);
    slide_close(j->s);
}

static enum wv_status write_results(struct slide_job *j, const struct head_outputs *ho)
{
    struct pipeline *p = j->p;
    struct pipeline_slide_result *res = j->res;
    double t0 = util_now();
    enum wv_status st;
    char csv[4400], png[4400] = "";
    res->h5_path[0] = '\0';
    /* lesion candidates and area from the heatmap */
    struct lesion_params lp;
    lesion_params_default(&lp);
    lp.threshold = lp.peak_threshold = p->o.lesion_threshold;
    lp.cell_size_px = j->cell_l0;
    struct lesion *les = NULL;
    size_t n_les = 0;
    struct resultsdb_lesion *dbl = NULL;
    float *scores = NULL;
    if ((st = lesions_find(j->heat, j->rows, j->cols, &lp, &les, &n_les))) goto out;
    if (n_les && !(dbl = wv_calloc(n_les, sizeof *dbl, "lesions"))) {
        st = WV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_les; i++) {
        dbl[i].prob = les[i].prob;
        dbl[i].x = llround(les[i].x_px);
        dbl[i].y = llround(les[i].y_px);
        dbl[i].area_cells = les[i].area_cells ? (int64_t)les[i].area_cells : 1;
    }
    size_t above = 0;
    size_t nc = (size_t)j->rows * j->cols;
    for (size_t k = 0; k < nc; k++) above += j->tissue[k] && j->heat[k] >= p->o.lesion_threshold;
    double cell_mm = PIPELINE_CELL_PX * p->target_mpp / 1000.0;
    res->tumor_area_mm2 = (double)above * cell_mm * cell_mm;
    res->n_lesions = n_les;
    /* the .h5: heatmap, scores in /coords row order, commit (atomic rename) */
    if (!(scores = wv_malloc((j->n_order ? j->n_order : 1) * sizeof *scores, "scores"))) {
        st = WV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < j->n_order; i++) scores[i] = j->heat[j->order[i]];
    if ((st = pipeline_check_stop())) goto out;
    if ((st = h5store_write_heatmap(j->h5, j->heat, j->tissue)) ||
        (st = h5store_write_scores(j->h5, j->n_order, scores)))
        goto out;
    if ((st = h5store_commit(j->h5, res->h5_path, sizeof res->h5_path))) goto out;
    /* the lesion CSV and the picture beside it; a failure here withdraws the .h5 too */
    snprintf(csv, sizeof csv, "%s/%s.csv", p->out_dir, res->slide_id);
    if ((st = exports_lesions_csv(csv, dbl, n_les))) goto undo;
    if (p->o.png_path)
        snprintf(png, sizeof png, "%s", p->o.png_path);
    else if (p->o.png_dir)
        snprintf(png, sizeof png, "%s/%s.png", p->out_dir, res->slide_id);
    if (png[0] && (st = overlay_write_png(j->s, j->heat, j->tissue, j->rows, j->cols, j->cell_l0,
                                          0, png)))
        goto undo;
    if ((st = pipeline_check_stop())) goto undo;
    j->t_write += util_now() - t0;
    res->seconds_write = j->t_write;
    res->seconds_total = util_now() - j->t_start;
    struct resultsdb_scores sc = {
        .slide_prob = ho->slide_prob,      .tumor_area_mm2 = res->tumor_area_mm2,
        .n_tissue_cells = (int64_t)j->n_tissue, .seconds_read = res->seconds_read,
        .seconds_encode = res->seconds_encode, .seconds_head = res->seconds_head,
        .seconds_write = res->seconds_write, .seconds_total = res->seconds_total};
    if ((st = resultsdb_slide_done(p->db, res->slide_id, &sc, dbl, n_les, res->h5_path))) goto undo;
    goto out;
undo:
    if (res->h5_path[0]) unlink(res->h5_path);
    res->h5_path[0] = '\0';
    unlink(csv);
    if (png[0]) unlink(png);
out:
    free(scores);
    free(dbl);
    free(les);
    return st;
}

static enum wv_status run_slide(struct slide_job *j)
{
    struct pipeline *p = j->p;
    struct pipeline_slide_result *res = j->res;
    enum wv_status st;
    double t0 = j->t_start = util_now();
    if ((st = slide_open(j->path, &j->s))) return st;
    if (p->o.mpp > 0 && (st = slide_set_mpp(j->s, p->o.mpp))) return st;
    if ((st = slide_require_mpp(j->s))) return st;
    /* the slide's row first (status running), so a failure below is recorded against it */
    {
        /* the same fast content hash `batch` identifies slides by (src/slide_id.h): about
         * 3 MiB read whatever the slide's size, instead of hashing gigabytes */
        char hash[SLIDE_ID_HASH_LEN + 1];
        int64_t size_bytes = 0;
        if ((st = slide_id_content_hash(j->path, hash, &size_bytes))) return st;
        struct resultsdb_slide rs = {
            .slide_id = res->slide_id, .path = j->path,
            .size_bytes = size_bytes,
            .content_hash = hash,  .vendor = slide_vendor(j->s),
            .width = slide_level_width(j->s, 0), .height = slide_level_height(j->s, 0),
            .mpp_x = slide_mpp_x(j->s), .mpp_y = slide_mpp_y(j->s)};
        if ((st = resultsdb_slide_start(p->db, &rs))) return st;
    }
    if ((st = pipeline_check_stop())) return st;
    if ((st = tissue_detect(j->s, NULL, &j->mask))) return st;
    struct plan_params pp = {p->target_mpp, p->region_px, p->overlap_px};
    if ((st = plan_regions(&j->mask, slide_level_width(j->s, 0), slide_level_height(j->s, 0),
                           slide_mpp_x(j->s), slide_mpp_y(j->s), &pp, &j->plan)))
        return st;
    if ((int64_t)(j->plan.height / PIPELINE_CELL_PX) > 1000000 ||
        (int64_t)(j->plan.width / PIPELINE_CELL_PX) > 1000000)
        return error_set(WV_EUNSUPPORTED, "slide is %lld×%lld px at %g µm/px: too large",
                         (long long)j->plan.width, (long long)j->plan.height, p->target_mpp);
    if ((st = make_grid(j))) return st;
    res->rows = j->rows;
    res->cols = j->cols;
    res->n_regions = j->n_geom;
    res->n_tissue_cells = j->n_tissue;
    res->region_px = p->region_px;
    res->overlap_px = p->overlap_px;
    j->t_read = j->t_setup = util_now() - t0;

    /* per-slide buffers: all sized by the largest region, not by the slide */
    const int D = encoder_feature_dim(p->enc);
    size_t max_cells = 0;
    for (size_t i = 0; i < j->n_geom; i++)
        if ((size_t)j->geom[i].n_rows * j->geom[i].n_cols > max_cells)
            max_cells = (size_t)j->geom[i].n_rows * j->geom[i].n_cols;
    if (!(j->order = wv_malloc((j->n_tissue + 1) * sizeof *j->order, "cell order")) ||
        !(j->coords = wv_malloc((max_cells + 1) * 2 * sizeof *j->coords, "coords")) ||
        (p->o.save_features &&
         !(j->gather = wv_malloc((max_cells + 1) * D * sizeof *j->gather, "features"))))
        return WV_ENOMEM;
    if (p->o.check_streaming) {
        size_t nc = (size_t)j->rows * j->cols;
        if (!(j->all_features = wv_malloc((j->n_tissue + 1) * D * sizeof(float), "features")) ||
            !(j->rank = wv_malloc(nc * sizeof *j->rank, "rank")))
            return WV_ENOMEM;
        int32_t k = 0;
        for (size_t c = 0; c < nc; c++) j->rank[c] = j->tissue[c] ? k++ : -1;
    }
    if ((st = head_run_create(p->model->head, j->rows, j->cols, j->tissue, &j->run))) return st;
    {
        struct h5store_meta hm = {
            .slide_id = res->slide_id,
            .slide_width = slide_level_width(j->s, 0),
            .slide_height = slide_level_height(j->s, 0),
            .mpp_x = slide_mpp_x(j->s), .mpp_y = slide_mpp_y(j->s),
            .target_mpp = p->target_mpp, .cell_size_level0 = j->cell_l0,
            /* CLAM's view: level 0, downsample 1, patch = the cell rounded to whole px */
            .patch_level = 0, .downsample_x = 1, .downsample_y = 1,
            .level_width = slide_level_width(j->s, 0), .level_height = slide_level_height(j->s, 0),
            .patch_size = llround(j->cell_l0), .model_sha256 = p->model->sha256,
            .tool_version = WV_VERSION_STRING, .save_path = p->out_dir};
        if ((st = h5store_create(p->out_dir, &hm, j->rows, j->cols, p->o.save_features ? D : 0,
                                 H5STORE_F32, &j->h5)))
            return st;
    }

    /* regions: readers fill the ring in plan order, this thread encodes them in that order */
    double mpix_total = 0, mpix_done = 0;
    for (size_t i = 0; i < j->n_geom; i++)
        mpix_total += (double)j->geom[i].read_w * j->geom[i].read_h / 1e6;
    progress_begin(&p->prog, res->slide_id, j->n_geom, mpix_total);
    struct region_ring *ring = NULL;
    double read_s = 0;
    if (j->n_geom) {
        struct ring_params rp = {.s = j->s, .geom = j->geom, .n = j->n_geom,
                                 .target_mpp = p->target_mpp, .ds_y = j->plan.ds_y,
                                 .readers = p->o.readers, .queue = p->o.queue};
        if ((st = ring_start(&rp, &ring))) {
            progress_end(&p->prog, "failed");
            return st;
        }
    }
    for (size_t i = 0; i < j->n_geom && !st; i++) {
        const uint8_t *rgb;
        double tw = util_now();
        st = ring_wait(ring, i, &rgb);
        j->t_wait += util_now() - tw;
        if (st) break;
        st = encode_region(j, &j->geom[i], rgb);
        ring_release(ring, i);
        mpix_done += (double)j->geom[i].read_w * j->geom[i].read_h / 1e6;
        progress_update(&p->prog, i + 1, mpix_done);
        if (!st) st = pipeline_check_stop();
    }
    if (ring) read_s = ring_stop(ring);
    j->t_read += read_s;
    progress_end(&p->prog, st ? "failed" : NULL);
    if (st) return st;
    free(j->features);
    j->features = NULL;
    j->features_cap = 0;

    /* the head over the whole grid, chunked by region rows, the scan state carried */
    double th = util_now();
    struct head_outputs ho = {.cell_prob = j->heat};
    int chunk = (int)(p->region_px / PIPELINE_CELL_PX);
    if ((st = head_run_finish(j->run, chunk, encoder_backend(p->enc)->threads, &ho))) return st;
    if (p->o.check_streaming && (st = check_streaming(j, &ho))) return st;
    j->t_head += util_now() - th;
    res->slide_prob = ho.slide_prob;
    res->seconds_read = j->t_read;
    res->seconds_encode = j->t_encode;
    res->seconds_head = j->t_head;
    res->seconds_setup = j->t_setup;
    res->seconds_wait = j->t_wait;
    res->seconds_readers = read_s;
    if ((st = pipeline_check_stop())) return st;
    return write_results(j, &ho);
}

enum wv_status pipeline_run_slide(struct pipeline *p, const char *slide_path,
                                  struct pipeline_slide_result *res)
{
    memset(res, 0, sizeof *res);
    res->slide_prob = NAN;
    util_stem(slide_path, res->slide_id, sizeof res->slide_id);
    if (!res->slide_id[0]) snprintf(res->slide_id, sizeof res->slide_id, "slide");
    struct slide_job j = {.p = p, .path = slide_path, .res = res};
    error_clear();
    enum wv_status st = run_slide(&j);
    free_job(&j); /* an uncommitted .h5 is removed here */
    if (st) {
        char reason[1024];
        snprintf(reason, sizeof reason, "%s", error_msg()[0] ? error_msg() : wv_status_name(st));
        error_clear();
        if (resultsdb_slide_failed(p->db, res->slide_id, slide_path, reason)) {
            char why[512];
            snprintf(why, sizeof why, "%s", error_msg());
            error_clear();
            error_set(st, "%s (and recording the failure failed: %s)", reason, why);
        } else {
            error_clear();
            error_set(st, "%s", reason);
        }
    }
    return st;
}
