/*
 * report.c — the evaluation behind `wsi-vmamba evaluate` (contract: report.h; rules:
 * docs/evaluation.md, CAMELYON16_PROTOCOL.md §1). Reads the inputs (report_inputs.c), computes
 * the slide-level metrics (metrics.h) and the lesion-level FROC (froc.h) and hands everything to
 * report_write.c.
 */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_private.h"
#include "util.h"
#include "wsi/annot.h"

void report_opts_init(struct report_opts *o)
{
    memset(o, 0, sizeof *o);
    o->froc_mode = FROC_INTERP;
    o->threshold = 0.5;
    o->seed = 0;
}

/* "a, b, c and 4 more" into buf. */
static void name_list(const struct ev_ctx *c, int (*pick)(const struct ev_slide *), char *buf,
                      size_t n, int *count)
{
    int k = 0;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n; i++) {
        if (!pick(&c->slides[i])) continue;
        if (k < 5 && used < n)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", k ? ", " : "",
                                     c->slides[i].name);
        k++;
    }
    if (k > 5 && used < n) snprintf(buf + used, n - used, " and %d more", k - 5);
    *count = k;
}

static int no_score(const struct ev_slide *s)
{
    return !s->has_score;
}

static int no_det(const struct ev_slide *s)
{
    return s->in_froc && !s->has_det;
}

static enum wv_status slide_level(struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    char names[512];
    int missing;
    name_list(c, no_score, names, sizeof names, &missing);
    if (missing) {
        const char *why = "";
        for (int i = 0; i < c->n; i++)
            if (!c->slides[i].has_score && c->slides[i].db_status &&
                !strcmp(c->slides[i].db_status, "failed"))
                why = " (some failed in the database: see its error column)";
        return error_set(WV_ENOTFOUND, "%d of %d reference slides have no slide score: %s%s; "
                         "score them, or drop them with --exclude", missing, c->n, names, why);
    }
    int *y = malloc((size_t)c->n * sizeof *y);
    double *s = malloc((size_t)c->n * sizeof *s);
    if (!y || !s) {
        free(y);
        free(s);
        return error_set(WV_ENOMEM, "out of memory");
    }
    for (int i = 0; i < c->n; i++) {
        y[i] = c->slides[i].label;
        s[i] = c->slides[i].score;
    }
    metrics_at_threshold(y, s, (size_t)c->n, o->threshold, &c->at_thr);
    enum wv_status st = metrics_auc_delong(y, s, (size_t)c->n, &c->auc, &c->auc_var, &c->auc_lo,
                                           &c->auc_hi);
    c->boot_lo = c->boot_hi = NAN;
    if (st == WV_EINVAL) {
        snprintf(c->auc_note, sizeof c->auc_note, "%s", error_msg());
        ev_warn(&c->warn, o->quiet, "slide level: %s", error_msg());
        error_clear();
        c->auc = c->auc_lo = c->auc_hi = c->auc_var = NAN;
        st = WV_OK;
    } else if (!st) {
        c->have_auc = 1;
        st = metrics_roc_curve(y, s, (size_t)c->n, &c->roc);
        if (!st) st = metrics_youden(y, s, (size_t)c->n, &c->youden);
        if (!st && o->bootstrap > 0)
            st = metrics_auc_bootstrap(y, s, (size_t)c->n, o->bootstrap, o->seed, &c->boot_lo,
                                       &c->boot_hi);
    }
    free(y);
    free(s);
    return st;
}

/* Ground truth of one tumour slide as a level-5 0/1 mask. */
static enum wv_status slide_truth(struct ev_ctx *c, struct ev_slide *s, uint8_t **t, int *rows,
                                  int *cols, double *file_mpp)
{
    const struct report_opts *o = c->o;
    char path[4096], stem[600], stem2[600], stem3[600];
    snprintf(stem, sizeof stem, "%s_mask", s->name);
    snprintf(stem2, sizeof stem2, "%s", s->name);
    snprintf(stem3, sizeof stem3, "%s-mask", s->name);
    *file_mpp = 0;
    if (o->masks_dir) {
        static const char *const exts[] = {".tif", ".tiff", NULL};
        const char *stems[] = {stem, stem3, stem2, NULL};
        if (!ev_find_file(o->masks_dir, stems, exts, path, sizeof path)) {
            struct froc_mask_source src;
            enum wv_status st = froc_mask_read_tiff(path, o->official_quirks, t, rows, cols, &src);
            if (st) {
                error_prefix("%s", path);
                return st;
            }
            s->gt_source = "mask";
            if (!s->width_px) {
                s->width_px = src.width_px;
                s->height_px = src.height_px;
            } else if (s->width_px != src.width_px || s->height_px != src.height_px) {
                ev_warn(&c->warn, o->quiet, "%s: mask is %lldx%lld px but the slide is %lldx%lld; "
                        "the mask's size is used", path, (long long)src.width_px,
                        (long long)src.height_px, (long long)s->width_px, (long long)s->height_px);
                s->width_px = src.width_px;
                s->height_px = src.height_px;
            }
            *file_mpp = src.mpp;
            if (src.tumour_value == 1) {
                ev_warn(&c->warn, o->quiet, "%s: no pixel is 255; value 1 is taken as tumour "
                        "(CAMELYON17 label map). With --official-quirks only 255 counts", path);
                snprintf(s->note, sizeof s->note, "mask tumour = 1");
            } else if (!src.tumour_value && src.n_other) {
                ev_warn(&c->warn, o->quiet, "%s: no pixel is 255%s: this tumour slide has no "
                        "lesion (the official rule: only 255 is tumour)", path,
                        o->official_quirks ? "" : " or 1");
                snprintf(s->note, sizeof s->note, "mask without 255 pixels");
            } else if (!src.tumour_value) {
                ev_warn(&c->warn, o->quiet, "%s: the mask is empty at level %d", path,
                        FROC_EVAL_LEVEL);
                snprintf(s->note, sizeof s->note, "empty mask");
            }
            return WV_OK;
        }
    }
    if (o->annotations_dir) {
        static const char *const exts[] = {".xml", ".geojson", ".json", NULL};
        const char *stems[] = {stem2, NULL};
        if (!ev_find_file(o->annotations_dir, stems, exts, path, sizeof path)) {
            struct annot_set *a;
            enum wv_status st = annot_read(path, &a);
            if (st) {
                error_prefix("%s", path);
                return st;
            }
            if (a->n_ignored)
                ev_warn(&c->warn, o->quiet, "%s: %d annotations in groups that are neither "
                        "tumour nor exclusion were ignored", path, a->n_ignored);
            int64_t w = s->width_px, h = s->height_px;
            if (w <= 0 || h <= 0) {
                /* size unknown: a grid that covers every annotation and detection (+ margin) */
                double x0, y0, x1 = 0, y1 = 0;
                if (annot_bounds(a, ANNOT_IGNORED, &x0, &y0, &x1, &y1)) x1 = y1 = 0;
                for (size_t k = 0; k < s->n_det; k++) {
                    x1 = fmax(x1, (double)s->det[k].x);
                    y1 = fmax(y1, (double)s->det[k].y);
                }
                w = (int64_t)ceil(fmax(x1, 0) / FROC_LEVEL_DS + 16) * FROC_LEVEL_DS;
                h = (int64_t)ceil(fmax(y1, 0) / FROC_LEVEL_DS + 16) * FROC_LEVEL_DS;
                snprintf(s->note, sizeof s->note, "slide size unknown: grid from annotations");
            }
            if (w / FROC_LEVEL_DS > 200000 || h / FROC_LEVEL_DS > 200000 ||
                (w / FROC_LEVEL_DS) * (h / FROC_LEVEL_DS) > ((int64_t)1 << 32)) {
                annot_set_free(a);
                return error_set(WV_EFORMAT, "%s: coordinates too large for a level-%d grid",
                                 path, FROC_EVAL_LEVEL);
            }
            struct annot_grid g = {0, 0, FROC_LEVEL_DS, (int)(h / FROC_LEVEL_DS),
                                   (int)(w / FROC_LEVEL_DS)};
            if (g.rows < 1) g.rows = 1;
            if (g.cols < 1) g.cols = 1;
            *t = malloc((size_t)g.rows * (size_t)g.cols);
            if (!*t) {
                annot_set_free(a);
                return error_set(WV_ENOMEM, "out of memory for a %dx%d mask", g.cols, g.rows);
            }
            /* the points (32c, 32r) as ASAP's mask + nearest-neighbour pyramid would give */
            st = annot_rasterise_mask(a, &g, ANNOT_SAMPLE_CORNER, 1, *t);
            annot_set_free(a);
            if (st) {
                free(*t);
                *t = NULL;
                error_prefix("%s", path);
                return st;
            }
            *rows = g.rows;
            *cols = g.cols;
            s->gt_source = "annotations";
            return WV_OK;
        }
    }
    return error_set(WV_ENOTFOUND, "tumour slide %s has no ground truth: no mask (%s_mask.tif) "
                     "in %s%s%s%s", s->name, s->name, o->masks_dir ? o->masks_dir : "(no --masks)",
                     o->annotations_dir ? " and no annotation (.xml, .geojson, .json) in " : "",
                     o->annotations_dir ? o->annotations_dir : "",
                     "; give it, or drop the slide with --froc-exclude");
}

static int froc_excluded(const struct report_opts *o, const char *name)
{
    for (int i = 0; i < o->n_froc_exclude; i++)
        if (ev_name_eq(o->froc_exclude[i], name)) return 1;
    return 0;
}

static enum wv_status froc_bootstrap(struct ev_ctx *c, struct froc_opts *fo)
{
    int nt = 0, nn = 0;
    for (int i = 0; i < c->n; i++)
        if (c->slides[i].in_froc) c->slides[i].froc_tumor ? nt++ : nn++;
    const struct froc_slide **tum = malloc((size_t)(nt ? nt : 1) * sizeof *tum);
    const struct froc_slide **nor = malloc((size_t)(nn ? nn : 1) * sizeof *nor);
    const struct froc_slide **rep = malloc((size_t)(nt + nn) * sizeof *rep);
    double *scores = malloc((size_t)c->o->bootstrap * sizeof *scores);
    enum wv_status st = WV_OK;
    if (!tum || !nor || !rep || !scores) {
        st = error_set(WV_ENOMEM, "out of memory for the FROC bootstrap");
        goto out;
    }
    int a = 0, b = 0;
    for (int i = 0; i < c->n; i++)
        if (c->slides[i].in_froc) {
            if (c->slides[i].froc_tumor)
                tum[a++] = &c->slides[i].fr;
            else
                nor[b++] = &c->slides[i].fr;
        }
    struct metrics_rng rng;
    metrics_rng_seed(&rng, c->o->seed ^ 0x46524F43ULL); /* "FROC": a stream apart from the AUC's */
    int n_ok = 0;
    for (int r = 0; r < c->o->bootstrap; r++) {
        for (int k = 0; k < nt; k++) rep[k] = tum[metrics_rng_below(&rng, (uint64_t)nt)];
        for (int k = 0; k < nn; k++) rep[nt + k] = nor[metrics_rng_below(&rng, (uint64_t)nn)];
        struct froc_curve cv;
        st = froc_compute(rep, (size_t)(nt + nn), fo, c->o->froc_mode, &cv);
        if (st == WV_EINVAL) { /* a replicate of ITC-only tumour slides: skip it */
            error_clear();
            st = WV_OK;
            continue;
        }
        if (st) goto out;
        scores[n_ok++] = cv.score;
        froc_curve_free(&cv);
    }
    if (n_ok) {
        c->froc_boot_lo = metrics_percentile(scores, (size_t)n_ok, 2.5);
        c->froc_boot_hi = metrics_percentile(scores, (size_t)n_ok, 97.5);
    }
out:
    free(tum);
    free(nor);
    free(rep);
    free(scores);
    return st;
}

static enum wv_status lesion_level(struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    c->froc_boot_lo = c->froc_boot_hi = NAN;
    if (!o->masks_dir && !o->annotations_dir) {
        snprintf(c->froc_note, sizeof c->froc_note, "not computed: no --masks or --annotations");
        return WV_OK;
    }
    if (!o->db_path && !o->detections_dir) {
        snprintf(c->froc_note, sizeof c->froc_note, "not computed: no --detections");
        return WV_OK;
    }
    for (int i = 0; i < c->n; i++) c->slides[i].in_froc = !froc_excluded(o, c->slides[i].name);
    char names[512];
    int missing;
    name_list(c, no_det, names, sizeof names, &missing);
    if (missing)
        return error_set(WV_ENOTFOUND, "%d slides of the lesion task have no detections: %s "
                         "(an empty <slide>.csv means none; the official script would silently "
                         "change its FP denominator); give them, or --froc-exclude them",
                         missing, names);
    struct froc_opts fo = {FROC_L0_RESOLUTION_UM, o->official_quirks};
    int n_in = 0;
    for (int i = 0; i < c->n; i++) {
        struct ev_slide *s = &c->slides[i];
        if (!s->in_froc) continue;
        n_in++;
        s->froc_tumor = o->official_quirks ? !strncmp(s->name, "Tumor", 5) : s->label;
        if (o->official_quirks && s->froc_tumor != s->label)
            ev_warn(&c->warn, o->quiet, "%s: the reference says %s but the official filename rule "
                    "(name starts with \"Tumor\") makes it a %s slide for the FROC", s->name,
                    s->ref_class, s->froc_tumor ? "tumour" : "normal");
        enum wv_status st;
        if (!s->froc_tumor) {
            s->froc_mpp = NAN;
            st = froc_match(NULL, s->width_px, s->height_px, s->det, s->n_det, &fo, &s->fr);
            if (st) return st;
            continue;
        }
        uint8_t *t = NULL;
        int rows, cols;
        double file_mpp;
        if ((st = slide_truth(c, s, &t, &rows, &cols, &file_mpp))) return st;
        double mpp = FROC_L0_RESOLUTION_UM;
        if (!o->official_quirks) {
            if (file_mpp > 0)
                mpp = file_mpp;
            else if (s->mpp > 0)
                mpp = s->mpp;
            else
                ev_warn(&c->warn, o->quiet, "%s: pixel size unknown; the official %.3f µm/px is "
                        "used for the 75 µm and 275 µm thresholds", s->name, FROC_L0_RESOLUTION_UM);
        }
        s->froc_mpp = mpp;
        fo.mpp = mpp;
        struct froc_mask m;
        st = froc_mask_build(t, rows, cols, mpp, &m);
        free(t);
        if (st) {
            error_prefix("%s", s->name);
            return st;
        }
        int64_t w = s->width_px, h = s->height_px;
        if (!strcmp(s->gt_source, "annotations") && s->note[0]) w = h = 0;
        st = froc_match(&m, w, h, s->det, s->n_det, &fo, &s->fr);
        s->n_lesions = m.n_tumors;
        s->n_itc = m.n_itc;
        froc_mask_free(&m);
        if (st) return st;
        if (s->n_lesions == 0 && !s->note[0])
            snprintf(s->note, sizeof s->note, "no lesion counts (all ITC)");
    }
    fo.mpp = FROC_L0_RESOLUTION_UM;
    const struct froc_slide **sl = malloc((size_t)(n_in ? n_in : 1) * sizeof *sl);
    if (!sl) return error_set(WV_ENOMEM, "out of memory");
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        struct ev_slide *s = &c->slides[i];
        if (!s->in_froc) continue;
        sl[k++] = &s->fr;
        c->n_froc_tumor += s->froc_tumor;
        c->n_lesions += s->n_lesions;
        c->n_itc += s->n_itc;
        c->n_outside += s->fr.n_outside;
        c->n_edge += s->fr.n_edge;
        c->n_fp_total += s->fr.n_fp;
    }
    c->n_froc_slides = n_in;
    enum wv_status st = froc_compute(sl, (size_t)n_in, &fo, o->froc_mode, &c->curve);
    free(sl);
    if (st == WV_EINVAL) {
        snprintf(c->froc_note, sizeof c->froc_note, "%s", error_msg());
        ev_warn(&c->warn, o->quiet, "lesion level: %s", error_msg());
        error_clear();
        return WV_OK;
    }
    if (st) return st;
    c->have_froc = 1;
    if (c->n_outside)
        ev_warn(&c->warn, o->quiet, "%zu detections lie outside their slide and count as false "
                "positives", c->n_outside);
    if (c->n_edge)
        ev_warn(&c->warn, o->quiet, "%zu detections lie in the last partial 32-px strip of their "
                "slide and were looked up at the nearest level-5 mask pixel", c->n_edge);
    if (o->bootstrap > 0) return froc_bootstrap(c, &fo);
    return WV_OK;
}

static void ctx_free(struct ev_ctx *c)
{
    for (int i = 0; i < c->n; i++) {
        struct ev_slide *s = &c->slides[i];
        free(s->name);
        free(s->ref_class);
        free(s->det);
        free(s->h5_path);
        free(s->db_status);
        free(s->db_error);
        froc_slide_free(&s->fr);
    }
    free(c->slides);
    free(c->db_tool_version);
    free(c->db_model_sha256);
    free(c->db_params);
    metrics_roc_free(&c->roc);
    froc_curve_free(&c->curve);
    ev_warnings_free(&c->warn);
}

enum wv_status report_evaluate(const struct report_opts *o, struct report_summary *sum)
{
    struct ev_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.auc = c.auc_lo = c.auc_hi = c.boot_lo = c.boot_hi = NAN;
    c.froc_boot_lo = c.froc_boot_hi = NAN;
    enum wv_status st = WV_OK;
    if (!o->reference_csv || !o->out_dir || (!o->db_path == !o->scores_csv)) {
        st = error_set(WV_EINVAL, "need --reference, --out and one of --db or --slide-scores");
        goto out;
    }
    if ((st = ev_read_reference(&c))) goto out;
    if (o->db_path)
        st = ev_read_db(&c);
    else {
        st = ev_read_scores_csv(&c);
        if (!st && o->detections_dir) st = ev_read_detections_dir(&c);
    }
    if (st) goto out;
    if (o->slides_dir && (st = ev_read_slide_info(&c))) goto out;
    if ((st = slide_level(&c))) goto out;
    if ((st = lesion_level(&c))) goto out;
    if ((st = util_mkdir_p(o->out_dir))) goto out;
    if ((st = ev_write_outputs(&c))) goto out;
    if (sum) {
        memset(sum, 0, sizeof *sum);
        sum->n_slides = c.n;
        for (int i = 0; i < c.n; i++) sum->n_tumor += c.slides[i].label;
        sum->n_normal = c.n - sum->n_tumor;
        sum->auc = c.have_auc ? c.auc : NAN;
        sum->auc_lo = c.have_auc ? c.auc_lo : NAN;
        sum->auc_hi = c.have_auc ? c.auc_hi : NAN;
        sum->froc = c.have_froc ? c.curve.score : NAN;
        sum->n_froc_slides = c.n_froc_slides;
        sum->n_lesions = c.n_lesions;
        sum->n_warnings = c.warn.n;
    }
out:
    ctx_free(&c);
    return st;
}
