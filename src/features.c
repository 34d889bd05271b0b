/*
 * features.c — per-slide feature cache (features.h): the analyze pipeline with save_features
 * into <out>/.work, re-written under the final name with the chosen feature dtype and the
 * backbone file's sha256; reading a cache back in the head's cell order.
 */
#include "features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "head.h"
#include "model_file.h"
#include "pipeline.h"
#include "sha256.h"
#include "util.h"
#include "version.h"
#include "vmamba.h"

struct features {
    struct features_options o;
    struct pipeline *p;
    char work[4096];
    char tmp_model[4200];
    char sha[65];
};

void features_options_default(struct features_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->compute_dtype = WV_DTYPE_F32;
    o->target_mpp = 0.5;
    o->overlap_px = -1;
    o->dtype = H5STORE_F16;
}

const char *features_backbone_sha256(const struct features *f) { return f->sha; }

/* A model file around a bare checkpoint: random head, default metadata (target mpp from o). */
static enum wv_status wrap_checkpoint(struct features *f, const char *path)
{
    struct weights *w = NULL;
    struct head *h = NULL;
    enum wv_status st = weights_load(path, &w);
    if (st) return st;
    struct vmamba_config cfg;
    if ((st = vmamba_config_infer(w, "", &cfg))) goto done;
    struct head_config hc;
    head_config_default(&hc, cfg.dims[3]);
    if ((st = head_create_random(&hc, 0, &h))) goto done;
    struct model_meta meta;
    model_meta_default(&meta);
    meta.target_mpp = f->o.target_mpp;
    st = model_file_save(f->tmp_model, w, h, &meta);
done:
    head_free(h);
    weights_free(w);
    return st;
}

enum wv_status features_open(const struct features_options *o, struct features **out,
                             const char **what)
{
    *out = NULL;
    *what = NULL;
    struct features *f = wv_calloc(1, sizeof *f, "features");
    if (!f) return WV_ENOMEM;
    f->o = *o;
    enum wv_status st;
    *what = o->backbone_path;
    if ((st = sha256_file_hex(o->backbone_path, f->sha))) goto fail;
    *what = o->out_dir;
    if ((st = util_mkdir_p(o->out_dir))) goto fail;
    snprintf(f->work, sizeof f->work, "%s/.work", o->out_dir);
    if ((st = util_mkdir_p(f->work))) goto fail;
    const char *model = o->backbone_path;
    struct model *m = NULL;
    if (model_file_load(o->backbone_path, &m) == WV_OK) {
        model_free(m);
    } else { /* not a model file: a backbone checkpoint */
        error_clear();
        snprintf(f->tmp_model, sizeof f->tmp_model, "%s/backbone.%d.safetensors", f->work,
                 (int)getpid());
        *what = o->backbone_path;
        if ((st = wrap_checkpoint(f, o->backbone_path))) goto fail;
        model = f->tmp_model;
    }
    struct pipeline_options po;
    pipeline_options_default(&po);
    po.out_dir = f->work;
    po.device = o->device;
    po.dtype = o->compute_dtype;
    po.threads = o->threads;
    po.mpp = o->mpp;
    po.region_px = o->region_px;
    po.overlap_px = o->overlap_px;
    po.save_features = 1;
    po.quiet = o->quiet;
    st = pipeline_open(model, &po, &f->p, what);
    if (st) goto fail;
    *out = f;
    return WV_OK;
fail:
    features_close(f);
    return st;
}

void features_close(struct features *f)
{
    if (!f) return;
    if (f->p) pipeline_close(f->p, "done");
    if (f->tmp_model[0]) unlink(f->tmp_model);
    if (f->work[0]) {
        /* the scratch pipeline's database goes too; the folder is removed when nothing else
         * (a file of an interrupted slide) is left in it */
        static const char *const db_files[] = {"results.sqlite", "results.sqlite-wal",
                                               "results.sqlite-shm"};
        for (size_t i = 0; i < sizeof db_files / sizeof db_files[0]; i++) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", f->work, db_files[i]);
            unlink(p);
        }
        rmdir(f->work);
    }
    free(f);
}

enum wv_status features_slide(struct features *f, const char *slide_path, int *skipped,
                              size_t *n_cells, char *final_path, size_t final_path_n)
{
    char id[256], fin[4096];
    *skipped = 0;
    util_stem(slide_path, id, sizeof id);
    enum wv_status st = h5store_path(f->o.out_dir, id, fin, sizeof fin);
    if (st) return st;
    if (final_path) snprintf(final_path, final_path_n, "%s", fin);
    if (h5store_check_complete(fin) == WV_OK) {
        *skipped = 1;
        return WV_OK;
    }
    error_clear();
    struct pipeline_slide_result res;
    if ((st = pipeline_run_slide(f->p, slide_path, &res))) return st;
    /* re-write: dtype, backbone sha256, 0 heatmap/scores */
    struct h5store *r = NULL;
    struct h5store_info in;
    float *heat = NULL, *feat = NULL, *scores = NULL;
    uint8_t *tissue = NULL;
    int32_t *coords = NULL;
    if ((st = h5store_open_read(res.h5_path, &r)) || (st = h5store_read_info(r, &in))) goto done;
    const size_t G = (size_t)in.rows * in.cols, n = in.n_cells, D = (size_t)in.feature_dim;
    heat = wv_malloc((G ? G : 1) * sizeof *heat, "features heatmap");
    tissue = wv_malloc(G ? G : 1, "features tissue");
    coords = wv_malloc((n ? n : 1) * 2 * sizeof *coords, "features coords");
    feat = wv_malloc((n ? n : 1) * (D ? D : 1) * sizeof *feat, "features");
    scores = wv_calloc(n ? n : 1, sizeof *scores, "features scores");
    if (!heat || !tissue || !coords || !feat || !scores) {
        st = WV_ENOMEM;
        goto done;
    }
    if ((st = h5store_read_tissue(r, tissue)) || (n && (st = h5store_read_coords(r, 0, n, coords))) ||
        (n && D && (st = h5store_read_features(r, 0, n, feat))))
        goto done;
    for (size_t q = 0; q < G; q++) heat[q] = tissue[q] ? 0.0f : NAN;
    struct h5store_meta hm = {.slide_id = id,
                              .slide_width = in.slide_width,
                              .slide_height = in.slide_height,
                              .mpp_x = in.mpp_x,
                              .mpp_y = in.mpp_y,
                              .target_mpp = in.target_mpp,
                              .cell_size_level0 = in.cell_size_level0,
                              .patch_level = in.patch_level,
                              .downsample_x = in.downsample_x,
                              .downsample_y = in.downsample_y,
                              .level_width = in.level_width,
                              .level_height = in.level_height,
                              .patch_size = in.patch_size,
                              .model_sha256 = f->sha,
                              .tool_version = WV_VERSION_STRING,
                              .save_path = f->o.out_dir};
    st = h5store_write_file(f->o.out_dir, &hm, in.rows, in.cols, heat, tissue, n, coords, scores,
                            (int)D, f->o.dtype, D ? feat : NULL, fin, sizeof fin);
    if (n_cells) *n_cells = n;
done:
    h5store_close(r);
    unlink(res.h5_path);
    {
        /* the pipeline's lesion CSV of this slide is of no use for a feature cache */
        char csv[4400];
        snprintf(csv, sizeof csv, "%s/%s.csv", f->work, id);
        unlink(csv);
    }
    free(heat);
    free(tissue);
    free(coords);
    free(feat);
    free(scores);
    return st;
}

/* ---- reading -------------------------------------------------------------------------------- */

void features_file_free(struct features_file *f)
{
    free(f->tissue);
    free(f->feat);
    f->tissue = NULL;
    f->feat = NULL;
}

struct rowkey {
    int32_t y, x;
    size_t i;
};
static int cmp_key(const void *a, const void *b)
{
    const struct rowkey *p = a, *q = b;
    if (p->y != q->y) return p->y < q->y ? -1 : 1;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return 0;
}

/* Row-major order of the file's rows: key[k].i = file row of the k-th tissue cell. With tissue
 * (rows·cols) given, checks that each row lands on its tissue cell. */
static enum wv_status order_rows(struct h5store *r, const struct h5store_info *in,
                                 const uint8_t *tissue, size_t n, struct rowkey **key_out)
{
    *key_out = NULL;
    int32_t *coords = wv_malloc((n ? n : 1) * 2 * sizeof *coords, "feature coords");
    struct rowkey *key = wv_malloc((n ? n : 1) * sizeof *key, "feature order");
    enum wv_status st = WV_OK;
    if (!coords || !key) {
        st = WV_ENOMEM;
        goto done;
    }
    if (n && (st = h5store_read_coords(r, 0, n, coords))) goto done;
    /* row-major cell order = sorted by (y, x); check each row lands on its tissue cell */
    for (size_t i = 0; i < n; i++) key[i] = (struct rowkey){coords[2 * i + 1], coords[2 * i], i};
    qsort(key, n, sizeof *key, cmp_key);
    if (tissue) {
        const size_t G = (size_t)in->rows * in->cols;
        const double cell = in->cell_size_level0 > 0 ? in->cell_size_level0 : 1;
        size_t k = 0;
        for (size_t q = 0; q < G && !st; q++) {
            if (!tissue[q]) continue;
            const struct rowkey *e = &key[k];
            long rr = lround(e->y / cell), cc = lround(e->x / cell);
            if (rr != (long)(q / in->cols) || cc != (long)(q % in->cols))
                st = error_set(WV_EFORMAT, "coords row %zu (%d, %d) is not tissue cell (%zu, %zu)",
                               e->i, e->x, e->y, q / in->cols, q % in->cols);
            k++;
        }
    }
done:
    free(coords);
    if (st) free(key);
    else *key_out = key;
    return st;
}

/* The features in row-major cell order into feat (n·D), or (feat NULL) only the finiteness
 * check, reading FEAT_BLOCK rows at a time. */
#define FEAT_BLOCK 4096
static enum wv_status read_rows(struct h5store *r, const struct rowkey *key, size_t n, size_t D,
                                float *feat)
{
    enum wv_status st = WV_OK;
    if (n == 0) return WV_OK;
    if (feat) {
        float *raw = wv_malloc(n * D * sizeof *raw, "features");
        if (!raw) return WV_ENOMEM;
        if (!(st = h5store_read_features(r, 0, n, raw)))
            for (size_t k = 0; k < n; k++)
                memcpy(feat + k * D, raw + key[k].i * D, D * sizeof *raw);
        free(raw);
        for (size_t q = 0; q < n * D && !st; q++)
            if (!isfinite(feat[q]))
                st = error_set(WV_EFORMAT, "feature %zu of cell %zu is not finite", q % D, q / D);
        return st;
    }
    /* check only: file order, then name the cell in row-major order like the full read */
    size_t *rank = wv_malloc(n * sizeof *rank, "feature order");
    float *blk = wv_malloc((n < FEAT_BLOCK ? n : FEAT_BLOCK) * D * sizeof *blk, "features");
    if (!rank || !blk) {
        free(rank), free(blk);
        return WV_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) rank[key[k].i] = k;
    size_t bad_cell = SIZE_MAX, bad_ch = 0;
    for (size_t s0 = 0; s0 < n && !st; s0 += FEAT_BLOCK) {
        const size_t m = n - s0 < FEAT_BLOCK ? n - s0 : FEAT_BLOCK;
        if ((st = h5store_read_features(r, s0, m, blk))) break;
        for (size_t q = 0; q < m * D; q++)
            if (!isfinite(blk[q]) && rank[s0 + q / D] < bad_cell) {
                bad_cell = rank[s0 + q / D];
                bad_ch = q % D;
            }
    }
    if (!st && bad_cell != SIZE_MAX)
        st = error_set(WV_EFORMAT, "feature %zu of cell %zu is not finite", bad_ch, bad_cell);
    free(rank), free(blk);
    return st;
}

static enum wv_status read_impl(const char *path, struct features_file *out, int with_feat)
{
    memset(out, 0, sizeof *out);
    struct h5store *r = NULL;
    enum wv_status st;
    struct rowkey *key = NULL;
    if ((st = sha256_file_hex(path, out->sha256))) return st;
    if ((st = h5store_open_read(path, &r)) || (st = h5store_read_info(r, &out->info))) goto done;
    const struct h5store_info *in = &out->info;
    if (!in->complete) {
        st = error_set(WV_EFORMAT, "feature file is incomplete (no 'complete' attribute)");
        goto done;
    }
    if (in->feature_dim <= 0) {
        st = error_set(WV_EFORMAT, "no /features (make it with 'wsi-vmamba features')");
        goto done;
    }
    const size_t G = (size_t)in->rows * in->cols, n = in->n_cells, D = (size_t)in->feature_dim;
    out->tissue = wv_malloc(G ? G : 1, "feature tissue");
    if (with_feat) out->feat = wv_malloc((n ? n : 1) * D * sizeof *out->feat, "features");
    if (!out->tissue || (with_feat && !out->feat)) {
        st = WV_ENOMEM;
        goto done;
    }
    if ((st = h5store_read_tissue(r, out->tissue))) goto done;
    size_t nt = 0;
    for (size_t q = 0; q < G; q++) nt += out->tissue[q] != 0;
    if (nt != n) {
        st = error_set(WV_EFORMAT, "%zu feature rows but %zu tissue cells", n, nt);
        goto done;
    }
    if ((st = order_rows(r, in, out->tissue, n, &key))) goto done;
    if ((st = read_rows(r, key, n, D, out->feat))) goto done;
    out->n = n;
done:
    h5store_close(r);
    free(key);
    if (st) features_file_free(out);
    return st;
}

enum wv_status features_read(const char *path, struct features_file *out)
{
    return read_impl(path, out, 1);
}

enum wv_status features_read_grid(const char *path, struct features_file *out)
{
    return read_impl(path, out, 0);
}

enum wv_status features_read_feat(const char *path, size_t n, int D, float *feat)
{
    struct h5store *r = NULL;
    struct h5store_info in;
    struct rowkey *key = NULL;
    enum wv_status st;
    if ((st = h5store_open_read(path, &r)) || (st = h5store_read_info(r, &in))) goto done;
    if (!in.complete || in.n_cells != n || in.feature_dim != D) {
        st = error_set(WV_EFORMAT, "feature file changed during training (%zu cells of %d "
                                   "features, expected %zu of %d)",
                       (size_t)in.n_cells, in.feature_dim, n, D);
        goto done;
    }
    if ((st = order_rows(r, &in, NULL, n, &key))) goto done;
    st = read_rows(r, key, n, (size_t)D, feat);
done:
    h5store_close(r);
    free(key);
    return st;
}
