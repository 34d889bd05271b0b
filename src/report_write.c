/*
 * report_write.c — the report folder of `evaluate` (contract: report.h): metrics.json,
 * per_slide.csv, roc/froc as SVG and PNG (heatmaps/plots.h), and report.html — self-contained:
 * the PNG plots and heatmap thumbnails are embedded as base64 data URIs, so the one file can be
 * mailed or archived. Every file is written atomically.
 */
#define _GNU_SOURCE /* qsort_r */
#include <cairo.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heatmaps/h5store.h"
#include "heatmaps/plots.h"
#include "report_private.h"
#include "strbuf.h"
#include "util.h"
#include "version.h"

/* Longest side of a heatmap thumbnail in the HTML report, px. */
#define THUMB_SIDE 200
/* Slides shown per thumbnail group (highest, lowest, misclassified). */
#define THUMB_PER_GROUP 4

/* ---- text helpers over struct strbuf (src/strbuf.h) ---------------------------------------- */

static void besc(struct strbuf *b, const char *s) /* HTML-escaped text */
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': strbuf_append(b, "&lt;", 4); break;
        case '>': strbuf_append(b, "&gt;", 4); break;
        case '&': strbuf_append(b, "&amp;", 5); break;
        case '"': strbuf_append(b, "&quot;", 6); break;
        default: strbuf_append(b, s, 1);
        }
    }
}

static void bbase64(struct strbuf *b, const uint8_t *d, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        q[0] = t[v >> 18 & 63];
        q[1] = t[v >> 12 & 63];
        q[2] = i + 1 < n ? t[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? t[v & 63] : '=';
        strbuf_append(b, q, 4);
    }
}

static enum wv_status write_buf(struct strbuf *b, const char *dir, const char *name)
{
    if (b->oom) return error_set(WV_ENOMEM, "out of memory writing %s", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return util_write_file_atomic(path, b->p ? b->p : "", b->len);
}

/* CSV field: quoted when it holds a comma, quote or newline. */
static void bcsv(struct strbuf *b, const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\n\r")) {
        strbuf_append(b, s, strlen(s));
        return;
    }
    strbuf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') strbuf_append(b, "\"", 1);
        strbuf_append(b, s, 1);
    }
    strbuf_append(b, "\"", 1);
}

/* ---- metrics.json --------------------------------------------------------------------------- */

static cJSON *num(double v) /* NaN/inf → null */
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *num_array(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n && a; i++) cJSON_AddItemToArray(a, num(v[i]));
    return a;
}

static cJSON *confusion_json(const struct metrics_confusion *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "threshold", num(m->threshold));
    cJSON_AddNumberToObject(o, "tp", (double)m->tp);
    cJSON_AddNumberToObject(o, "fp", (double)m->fp);
    cJSON_AddNumberToObject(o, "tn", (double)m->tn);
    cJSON_AddNumberToObject(o, "fn", (double)m->fn);
    cJSON_AddItemToObject(o, "sensitivity", num(m->sensitivity));
    cJSON_AddItemToObject(o, "specificity", num(m->specificity));
    return o;
}

static const char *mode_name(enum froc_mode m)
{
    return m == FROC_STEP ? "step" : "interp";
}

static void iso_time(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static cJSON *provenance_json(const struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    char when[32];
    iso_time(when, sizeof when);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "tool", "wsi-vmamba");
    cJSON_AddStringToObject(p, "tool_version", WV_VERSION_STRING);
    cJSON_AddStringToObject(p, "build", WV_BUILD_INFO);
    cJSON_AddStringToObject(p, "evaluated_at", when);
    if (o->command_line) cJSON_AddStringToObject(p, "command_line", o->command_line);
    cJSON_AddStringToObject(p, "reference", o->reference_csv);
    cJSON_AddStringToObject(p, "reference_sha256", c->reference_sha256);
    if (o->scores_csv) {
        cJSON_AddStringToObject(p, "slide_scores", o->scores_csv);
        cJSON_AddStringToObject(p, "slide_scores_sha256", c->scores_sha256);
    }
    if (o->db_path) cJSON_AddStringToObject(p, "results_db", o->db_path);
    if (o->detections_dir) cJSON_AddStringToObject(p, "detections", o->detections_dir);
    if (o->masks_dir) cJSON_AddStringToObject(p, "masks", o->masks_dir);
    if (o->annotations_dir) cJSON_AddStringToObject(p, "annotations", o->annotations_dir);
    if (c->db_tool_version) cJSON_AddStringToObject(p, "analysis_tool_version", c->db_tool_version);
    if (c->db_model_sha256) cJSON_AddStringToObject(p, "model_sha256", c->db_model_sha256);
    if (c->db_params) cJSON_AddStringToObject(p, "analysis_params", c->db_params);
    cJSON *par = cJSON_AddObjectToObject(p, "parameters");
    cJSON_AddBoolToObject(par, "official_quirks", o->official_quirks);
    cJSON_AddStringToObject(par, "froc_mode", mode_name(o->froc_mode));
    cJSON_AddNumberToObject(par, "threshold", o->threshold);
    cJSON_AddNumberToObject(par, "bootstrap", o->bootstrap);
    cJSON_AddNumberToObject(par, "seed", (double)o->seed);
    cJSON *ex = cJSON_AddArrayToObject(par, "exclude");
    for (int i = 0; i < o->n_exclude; i++) cJSON_AddItemToArray(ex, cJSON_CreateString(o->exclude[i]));
    cJSON *fx = cJSON_AddArrayToObject(par, "froc_exclude");
    for (int i = 0; i < o->n_froc_exclude; i++)
        cJSON_AddItemToArray(fx, cJSON_CreateString(o->froc_exclude[i]));
    return p;
}

static enum wv_status write_json(const struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "provenance", provenance_json(c));
    int nt = 0;
    for (int i = 0; i < c->n; i++) nt += c->slides[i].label;
    cJSON *sl = cJSON_AddObjectToObject(root, "slide_level");
    cJSON_AddNumberToObject(sl, "n_slides", c->n);
    cJSON_AddNumberToObject(sl, "n_tumor", nt);
    cJSON_AddNumberToObject(sl, "n_normal", c->n - nt);
    cJSON_AddItemToObject(sl, "auc", num(c->have_auc ? c->auc : NAN));
    if (!c->have_auc) cJSON_AddStringToObject(sl, "auc_note", c->auc_note);
    cJSON *ci = cJSON_AddObjectToObject(sl, "auc_ci95_delong");
    cJSON_AddItemToObject(ci, "low", num(c->auc_lo));
    cJSON_AddItemToObject(ci, "high", num(c->auc_hi));
    cJSON_AddItemToObject(ci, "variance", num(c->auc_var));
    if (o->bootstrap > 0) {
        cJSON *bc = cJSON_AddObjectToObject(sl, "auc_ci95_bootstrap");
        cJSON_AddItemToObject(bc, "low", num(c->boot_lo));
        cJSON_AddItemToObject(bc, "high", num(c->boot_hi));
        cJSON_AddNumberToObject(bc, "replicates", o->bootstrap);
        cJSON_AddNumberToObject(bc, "seed", (double)o->seed);
        cJSON_AddStringToObject(bc, "method", "stratified percentile");
    }
    if (c->have_auc) cJSON_AddItemToObject(sl, "youden", confusion_json(&c->youden));
    cJSON_AddItemToObject(sl, "at_threshold", confusion_json(&c->at_thr));
    if (c->have_auc) {
        cJSON *roc = cJSON_AddObjectToObject(sl, "roc");
        cJSON_AddItemToObject(roc, "fpr", num_array(c->roc.fpr, c->roc.n_pts));
        cJSON_AddItemToObject(roc, "tpr", num_array(c->roc.tpr, c->roc.n_pts));
        /* the first threshold is +inf (nothing called tumour): null in JSON */
        cJSON_AddItemToObject(roc, "thresholds", num_array(c->roc.thr, c->roc.n_pts));
    }
    cJSON *ll = cJSON_AddObjectToObject(root, "lesion_level");
    cJSON_AddItemToObject(ll, "froc", num(c->have_froc ? c->curve.score : NAN));
    if (!c->have_froc) cJSON_AddStringToObject(ll, "froc_note", c->froc_note);
    cJSON_AddStringToObject(ll, "mode", mode_name(o->froc_mode));
    cJSON_AddBoolToObject(ll, "official_quirks", o->official_quirks);
    cJSON_AddNumberToObject(ll, "n_slides", c->n_froc_slides);
    cJSON_AddNumberToObject(ll, "n_tumor_slides", c->n_froc_tumor);
    cJSON_AddNumberToObject(ll, "n_lesions", c->n_lesions);
    cJSON_AddNumberToObject(ll, "n_itc_excluded", c->n_itc);
    cJSON_AddNumberToObject(ll, "n_false_positives", (double)c->n_fp_total);
    cJSON_AddNumberToObject(ll, "n_detections_outside", (double)c->n_outside);
    cJSON_AddNumberToObject(ll, "n_detections_last_strip", (double)c->n_edge);
    if (c->have_froc) {
        cJSON *se = cJSON_AddObjectToObject(ll, "sensitivity_at");
        for (int i = 0; i < FROC_N_RATES; i++) {
            char k[16];
            snprintf(k, sizeof k, "%g", froc_rates[i]);
            cJSON_AddItemToObject(se, k, num(c->curve.sens_at[i]));
        }
        if (o->bootstrap > 0) {
            cJSON *bc = cJSON_AddObjectToObject(ll, "froc_ci95_bootstrap");
            cJSON_AddItemToObject(bc, "low", num(c->froc_boot_lo));
            cJSON_AddItemToObject(bc, "high", num(c->froc_boot_hi));
            cJSON_AddNumberToObject(bc, "replicates", o->bootstrap);
            cJSON_AddStringToObject(bc, "method", "stratified percentile over slides");
        }
        cJSON *cv = cJSON_AddObjectToObject(ll, "curve");
        cJSON_AddItemToObject(cv, "thresholds", num_array(c->curve.thr, c->curve.n));
        cJSON_AddItemToObject(cv, "avg_fp", num_array(c->curve.avg_fp, c->curve.n));
        cJSON_AddItemToObject(cv, "sensitivity", num_array(c->curve.sens, c->curve.n));
    }
    cJSON *w = cJSON_AddArrayToObject(root, "warnings");
    for (int i = 0; i < c->warn.n; i++) cJSON_AddItemToArray(w, cJSON_CreateString(c->warn.msg[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return error_set(WV_ENOMEM, "out of memory formatting metrics.json");
    struct strbuf b = {0};
    strbuf_append(&b, text, strlen(text));
    strbuf_append(&b, "\n", 1);
    free(text);
    enum wv_status st = write_buf(&b, o->out_dir, "metrics.json");
    free(b.p);
    return st;
}

/* ---- per_slide.csv ------------------------------------------------------------------------- */

/* Shortest of %.15g/%.17g that reads back as the same double. */
static const char *num_text(double v, char out[32])
{
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, 32, "%.17g", v);
    return out;
}

static enum wv_status write_csv(const struct ev_ctx *c)
{
    char nb[32];
    struct strbuf b = {0};
    strbuf_printf(&b, "slide,class,label,score,called_tumor,correct,froc_set,froc_tumor,ground_truth,"
                "mpp_used,n_detections,n_lesions,n_itc,n_lesions_hit,n_fp,n_itc_hits,"
                "n_duplicates,n_outside,n_last_strip,note\n");
    for (int i = 0; i < c->n; i++) {
        const struct ev_slide *s = &c->slides[i];
        int called = s->score >= c->o->threshold;
        bcsv(&b, s->name);
        strbuf_append(&b, ",", 1);
        bcsv(&b, s->ref_class);
        strbuf_printf(&b, ",%d,%s,%d,%d,%d,", s->label, num_text(s->score, nb), called, called == s->label,
                s->in_froc);
        if (s->in_froc) {
            strbuf_printf(&b, "%d,%s,", s->froc_tumor, s->gt_source);
            if (isfinite(s->froc_mpp))
                strbuf_printf(&b, "%.6g", s->froc_mpp);
            strbuf_printf(&b, ",%zu,%d,%d,%zu,%zu,%zu,%zu,%zu,%zu,", s->n_det, s->n_lesions, s->n_itc,
                    s->fr.n_tp_hits, s->fr.n_fp, s->fr.n_itc_hits, s->fr.n_dup, s->fr.n_outside,
                    s->fr.n_edge);
        } else {
            strbuf_printf(&b, ",,,,,,,,,,,,");
        }
        bcsv(&b, s->note);
        strbuf_append(&b, "\n", 1);
    }
    enum wv_status st = write_buf(&b, c->o->out_dir, "per_slide.csv");
    free(b.p);
    return st;
}

/* ---- plots ----------------------------------------------------------------------------------- */

static enum wv_status write_plot(const struct ev_ctx *c, const struct plot_spec *p,
                                 const char *stem)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.svg", c->o->out_dir, stem);
    enum wv_status st = plot_write_svg(p, path);
    if (st) return st;
    snprintf(path, sizeof path, "%s/%s.png", c->o->out_dir, stem);
    return plot_write_png(p, path);
}

static enum wv_status write_plots(const struct ev_ctx *c)
{
    char title[400], yl[96], tl[96];
    struct plot_series roc = {c->roc.fpr, c->roc.tpr, c->roc.n_pts, "ROC", {0.12, 0.35, 0.75}};
    struct plot_marker mk[2] = {
        {1 - c->youden.specificity, c->youden.sensitivity, yl},
        {1 - c->at_thr.specificity, c->at_thr.sensitivity, tl},
    };
    snprintf(yl, sizeof yl, "Youden: t=%.4g sens %.3f spec %.3f", c->youden.threshold,
             c->youden.sensitivity, c->youden.specificity);
    snprintf(tl, sizeof tl, "t=%.4g: sens %.3f spec %.3f", c->at_thr.threshold,
             c->at_thr.sensitivity, c->at_thr.specificity);
    if (c->have_auc)
        snprintf(title, sizeof title, "Slide-level ROC: AUC %.4f (95%% CI %.4f-%.4f, DeLong)",
                 c->auc, c->auc_lo, c->auc_hi);
    else
        snprintf(title, sizeof title, "Slide-level ROC: undefined (one class only)");
    struct plot_spec p = {title, "1 - specificity (false-positive rate)", "sensitivity",
                          0, 1, 0, 1, NULL, 0, 1, &roc, c->have_auc, mk, c->have_auc ? 2 : 0, 0};
    enum wv_status st = write_plot(c, &p, "roc");
    if (st) return st;
    /* FROC: the curve from (0, 0) upwards, the six operating points marked */
    size_t n = c->have_froc ? c->curve.n : 0;
    double *x = malloc((n ? n : 1) * sizeof *x), *y = malloc((n ? n : 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return error_set(WV_ENOMEM, "out of memory for the FROC plot");
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = c->curve.avg_fp[n - 1 - i];
        y[i] = c->curve.sens[n - 1 - i];
    }
    struct plot_series fs = {x, y, n, "FROC", {0.75, 0.2, 0.1}};
    struct plot_marker fm[FROC_N_RATES];
    char lab[FROC_N_RATES][48];
    for (int i = 0; i < FROC_N_RATES; i++) {
        snprintf(lab[i], sizeof lab[i], "%g FP/slide: sens %.3f", froc_rates[i], c->curve.sens_at[i]);
        fm[i].x = froc_rates[i];
        fm[i].y = c->curve.sens_at[i];
        fm[i].label = lab[i];
    }
    static const double ticks[] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    if (c->have_froc)
        snprintf(title, sizeof title, "Lesion-level FROC: score %.4f (%s%s)", c->curve.score,
                 mode_name(c->o->froc_mode), c->o->official_quirks ? ", official quirks" : "");
    else
        snprintf(title, sizeof title, "Lesion-level FROC: %s", c->froc_note);
    struct plot_spec q = {title, "average false positives per slide", "sensitivity",
                          0, 8.5, 0, 1, ticks, 9, 0, &fs, c->have_froc, fm,
                          c->have_froc ? FROC_N_RATES : 0, 1};
    st = write_plot(c, &q, "froc");
    free(x);
    free(y);
    return st;
}

/* ---- HTML ------------------------------------------------------------------------------------ */

static void embed_png_file(struct strbuf *b, const struct ev_ctx *c, const char *name, const char *alt)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->o->out_dir, name);
    uint8_t *d;
    size_t n;
    if (util_read_file(path, (size_t)64 << 20, &d, &n)) {
        error_clear();
        strbuf_printf(b, "<p>(%s missing)</p>", name);
        return;
    }
    strbuf_printf(b, "<img alt=\"%s\" src=\"data:image/png;base64,", alt);
    bbase64(b, d, n);
    strbuf_append(b, "\">", 2);
    free(d);
}

static cairo_status_t png_sink(void *ctx, const unsigned char *data, unsigned int len)
{
    struct strbuf *b = ctx;
    strbuf_append(b, (const char *)data, len);
    return b->oom ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

static void ramp(float p, double rgb[3])
{
    /* blue (0) → yellow (0.5) → red (1) */
    double t = p < 0 ? 0 : p > 1 ? 1 : p;
    static const double a[3] = {0.15, 0.3, 0.8}, m[3] = {1.0, 0.9, 0.25}, z[3] = {0.8, 0.08, 0.08};
    for (int k = 0; k < 3; k++)
        rgb[k] = t < 0.5 ? a[k] + (m[k] - a[k]) * t * 2 : m[k] + (z[k] - m[k]) * (t - 0.5) * 2;
}

/* A heatmap thumbnail as an <img>, or a short note why there is none. */
static void thumbnail(struct strbuf *b, const struct ev_ctx *c, const struct ev_slide *s)
{
    char path[4096] = "";
    if (s->h5_path)
        snprintf(path, sizeof path, "%s", s->h5_path);
    else if (c->o->heatmaps_dir)
        snprintf(path, sizeof path, "%s/%s.h5", c->o->heatmaps_dir, s->name);
    else if (c->o->db_path) {
        const char *sl = strrchr(c->o->db_path, '/');
        snprintf(path, sizeof path, "%.*s/%s.h5", sl ? (int)(sl - c->o->db_path) : 1,
                 sl ? c->o->db_path : ".", s->name);
    }
    struct h5store *h = NULL;
    struct h5store_info info;
    float *hm = NULL;
    if (!path[0] || h5store_open_read(path, &h) || h5store_read_info(h, &info) || info.rows < 1 ||
        info.cols < 1 || (size_t)info.rows * info.cols > ((size_t)1 << 28) ||
        !(hm = malloc((size_t)info.rows * info.cols * sizeof *hm)) ||
        h5store_read_heatmap(h, hm)) {
        error_clear();
        strbuf_printf(b, "<div class=\"nothumb\">no heatmap</div>");
        h5store_close(h);
        free(hm);
        return;
    }
    h5store_close(h);
    double scale = (double)THUMB_SIDE / (info.rows > info.cols ? info.rows : info.cols);
    int w = (int)fmax(1, info.cols * scale), hh = (int)fmax(1, info.rows * scale);
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, hh);
    if (cairo_surface_status(sf)) {
        cairo_surface_destroy(sf);
        free(hm);
        strbuf_printf(b, "<div class=\"nothumb\">no heatmap</div>");
        return;
    }
    cairo_surface_flush(sf);
    uint8_t *px = cairo_image_surface_get_data(sf);
    int stride = cairo_image_surface_get_stride(sf);
    for (int y = 0; y < hh; y++)
        for (int x = 0; x < w; x++) {
            int r = (int)(y / scale), cc = (int)(x / scale);
            if (r >= info.rows) r = info.rows - 1;
            if (cc >= info.cols) cc = info.cols - 1;
            float v = hm[(size_t)r * info.cols + cc];
            double rgb[3] = {0.94, 0.94, 0.94};
            if (!isnan(v)) ramp(v, rgb);
            uint32_t *o = (uint32_t *)(px + (size_t)y * stride) + x;
            *o = (uint32_t)(rgb[0] * 255) << 16 | (uint32_t)(rgb[1] * 255) << 8 |
                 (uint32_t)(rgb[2] * 255);
        }
    cairo_surface_mark_dirty(sf);
    struct strbuf png = {0};
    cairo_status_t cs = cairo_surface_write_to_png_stream(sf, png_sink, &png);
    cairo_surface_destroy(sf);
    free(hm);
    if (cs || png.oom) {
        free(png.p);
        strbuf_printf(b, "<div class=\"nothumb\">no heatmap</div>");
        return;
    }
    strbuf_printf(b, "<img alt=\"heatmap %s\" src=\"data:image/png;base64,", s->name);
    bbase64(b, (const uint8_t *)png.p, png.len);
    strbuf_append(b, "\">", 2);
    free(png.p);
}

static int cmp_score_desc(const void *a, const void *b, void *ctx)
{
    const struct ev_ctx *c = ctx;
    double p = c->slides[*(const int *)a].score, q = c->slides[*(const int *)b].score;
    return p > q ? -1 : p < q;
}

static void thumb_group(struct strbuf *b, const struct ev_ctx *c, const char *title, const int *idx,
                        int n)
{
    strbuf_printf(b, "<h3>%s</h3><div class=\"thumbs\">", title);
    if (!n) strbuf_printf(b, "<p>none</p>");
    for (int i = 0; i < n; i++) {
        const struct ev_slide *s = &c->slides[idx[i]];
        strbuf_printf(b, "<figure>");
        thumbnail(b, c, s);
        strbuf_printf(b, "<figcaption>");
        besc(b, s->name);
        strbuf_printf(b, " (%s) score %.4f</figcaption></figure>", s->label ? "tumour" : "normal",
                s->score);
    }
    strbuf_printf(b, "</div>");
}

static void fmt_ci(char *out, size_t n, double lo, double hi)
{
    if (isfinite(lo) && isfinite(hi))
        snprintf(out, n, "%.4f – %.4f", lo, hi);
    else
        snprintf(out, n, "n/a");
}

static enum wv_status write_html(const struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    struct strbuf b = {0};
    char when[32], ci[64], bci[64];
    iso_time(when, sizeof when);
    int nt = 0;
    for (int i = 0; i < c->n; i++) nt += c->slides[i].label;
    strbuf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<title>wsi-vmamba evaluation</title><style>"
                "body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}"
                "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
                "padding:3px 7px;text-align:right}th{background:#eee}td.l{text-align:left}"
                "tr.miss{background:#fde8e8}.thumbs{display:flex;flex-wrap:wrap;gap:12px}"
                "figure{margin:0;font-size:12px}.nothumb{width:120px;height:60px;border:1px "
                "dashed #aaa;color:#888;display:flex;align-items:center;justify-content:center}"
                ".big{font-size:20px}.warn{color:#a15c00}img{max-width:100%%}"
                "</style></head><body>\n<h1>wsi-vmamba evaluation report</h1>\n");
    strbuf_printf(&b, "<p>CAMELYON16 protocol (docs/evaluation.md). %d slides (%d tumour, %d normal). "
                "Generated %s by wsi-vmamba %s.</p>\n", c->n, nt, c->n - nt, when,
            WV_VERSION_STRING);
    /* headline */
    strbuf_printf(&b, "<h2>Summary</h2><table>");
    fmt_ci(ci, sizeof ci, c->auc_lo, c->auc_hi);
    fmt_ci(bci, sizeof bci, c->boot_lo, c->boot_hi);
    if (c->have_auc)
        strbuf_printf(&b, "<tr><th>Slide AUC</th><td class=\"big\">%.4f</td><td class=\"l\">95%% CI "
                    "%s (DeLong)%s%s%s</td></tr>", c->auc, ci, o->bootstrap ? "; " : "",
                o->bootstrap ? bci : "", o->bootstrap ? " (bootstrap)" : "");
    else {
        strbuf_printf(&b, "<tr><th>Slide AUC</th><td class=\"big\">n/a</td><td class=\"l\">");
        besc(&b, c->auc_note);
        strbuf_printf(&b, "</td></tr>");
    }
    if (c->have_froc) {
        fmt_ci(bci, sizeof bci, c->froc_boot_lo, c->froc_boot_hi);
        strbuf_printf(&b, "<tr><th>FROC score</th><td class=\"big\">%.4f</td><td class=\"l\">mean "
                    "sensitivity at 1/4, 1/2, 1, 2, 4, 8 FP/slide (%s%s); %d slides, %d lesions, "
                    "%d ITC excluded%s%s</td></tr>", c->curve.score, mode_name(o->froc_mode),
                o->official_quirks ? ", official quirks" : "", c->n_froc_slides, c->n_lesions,
                c->n_itc, o->bootstrap ? "; 95% CI " : "", o->bootstrap ? bci : "");
    } else {
        strbuf_printf(&b, "<tr><th>FROC score</th><td class=\"big\">n/a</td><td class=\"l\">");
        besc(&b, c->froc_note);
        strbuf_printf(&b, "</td></tr>");
    }
    strbuf_printf(&b, "</table>\n");
    /* operating points */
    strbuf_printf(&b, "<h2>Operating points</h2><table><tr><th>point</th><th>threshold</th>"
                "<th>sensitivity</th><th>specificity</th><th>TP</th><th>FP</th><th>TN</th>"
                "<th>FN</th></tr>");
    const struct metrics_confusion *pts[2] = {c->have_auc ? &c->youden : NULL, &c->at_thr};
    const char *pn[2] = {"Youden", "given threshold"};
    for (int i = 0; i < 2; i++) {
        if (!pts[i]) continue;
        strbuf_printf(&b, "<tr><td class=\"l\">%s</td><td>%.4g</td><td>%.4f</td><td>%.4f</td><td>%zu"
                    "</td><td>%zu</td><td>%zu</td><td>%zu</td></tr>", pn[i], pts[i]->threshold,
                pts[i]->sensitivity, pts[i]->specificity, pts[i]->tp, pts[i]->fp, pts[i]->tn,
                pts[i]->fn);
    }
    strbuf_printf(&b, "</table>\n");
    if (c->have_froc) {
        strbuf_printf(&b, "<h3>FROC sensitivities</h3><table><tr><th>FP/slide</th>");
        for (int i = 0; i < FROC_N_RATES; i++) strbuf_printf(&b, "<th>%g</th>", froc_rates[i]);
        strbuf_printf(&b, "</tr><tr><td class=\"l\">sensitivity</td>");
        for (int i = 0; i < FROC_N_RATES; i++) strbuf_printf(&b, "<td>%.4f</td>", c->curve.sens_at[i]);
        strbuf_printf(&b, "</tr></table>\n");
    }
    /* plots */
    strbuf_printf(&b, "<h2>Curves</h2><div class=\"thumbs\">");
    embed_png_file(&b, c, "roc.png", "ROC curve");
    embed_png_file(&b, c, "froc.png", "FROC curve");
    strbuf_printf(&b, "</div>\n");
    /* thumbnails */
    int *idx = malloc((size_t)c->n * sizeof *idx), *mis = malloc((size_t)c->n * sizeof *mis);
    if (idx && mis) {
        for (int i = 0; i < c->n; i++) idx[i] = i;
        qsort_r(idx, (size_t)c->n, sizeof *idx, cmp_score_desc, (void *)c);
        int nm = 0;
        for (int i = 0; i < c->n && nm < THUMB_PER_GROUP; i++) {
            const struct ev_slide *s = &c->slides[idx[i]];
            if ((s->score >= o->threshold) != s->label) mis[nm++] = idx[i];
        }
        int k = c->n < THUMB_PER_GROUP ? c->n : THUMB_PER_GROUP;
        int low[THUMB_PER_GROUP];
        for (int i = 0; i < k; i++) low[i] = idx[c->n - 1 - i];
        strbuf_printf(&b, "<h2>Heatmaps</h2><p>Tumour probability per cell (blue 0, yellow 0.5, red 1; "
                    "grey off tissue), from each slide's .h5 result file where one is found.</p>");
        thumb_group(&b, c, "Highest-scoring slides", idx, k);
        thumb_group(&b, c, "Lowest-scoring slides", low, k);
        char t[96];
        snprintf(t, sizeof t, "Misclassified at threshold %.4g", o->threshold);
        thumb_group(&b, c, t, mis, nm);
    }
    free(idx);
    free(mis);
    /* per-slide table */
    strbuf_printf(&b, "<h2>Per slide</h2><p>Also in per_slide.csv. Rows shaded: misclassified at "
                "threshold %.4g.</p><table><tr><th>slide</th><th>class</th><th>score</th>"
                "<th>called</th><th>FROC</th><th>lesions</th><th>ITC</th><th>hit</th>"
                "<th>FP</th><th>detections</th><th>note</th></tr>", o->threshold);
    for (int i = 0; i < c->n; i++) {
        const struct ev_slide *s = &c->slides[i];
        int called = s->score >= o->threshold;
        strbuf_printf(&b, "<tr%s><td class=\"l\">", called != s->label ? " class=\"miss\"" : "");
        besc(&b, s->name);
        strbuf_printf(&b, "</td><td class=\"l\">");
        besc(&b, s->ref_class);
        strbuf_printf(&b, "</td><td>%.4f</td><td>%s</td>", s->score, called ? "tumour" : "normal");
        if (s->in_froc)
            strbuf_printf(&b, "<td>%s</td><td>%d</td><td>%d</td><td>%zu</td><td>%zu</td><td>%zu</td>",
                    s->froc_tumor ? "tumour" : "normal", s->n_lesions, s->n_itc, s->fr.n_tp_hits,
                    s->fr.n_fp, s->n_det);
        else
            strbuf_printf(&b, "<td>-</td><td></td><td></td><td></td><td></td><td></td>");
        strbuf_printf(&b, "<td class=\"l\">");
        besc(&b, s->note);
        strbuf_printf(&b, "</td></tr>\n");
    }
    strbuf_printf(&b, "</table>\n");
    /* warnings and provenance */
    if (c->warn.n) {
        strbuf_printf(&b, "<h2>Warnings</h2><ul class=\"warn\">");
        for (int i = 0; i < c->warn.n; i++) {
            strbuf_printf(&b, "<li>");
            besc(&b, c->warn.msg[i]);
            strbuf_printf(&b, "</li>");
        }
        strbuf_printf(&b, "</ul>\n");
    }
    cJSON *prov = provenance_json(c);
    char *pt = cJSON_Print(prov);
    cJSON_Delete(prov);
    strbuf_printf(&b, "<h2>Provenance</h2><pre>");
    besc(&b, pt ? pt : "");
    free(pt);
    strbuf_printf(&b, "</pre>\n<p>Rules: the official CAMELYON16 evaluation (mask level 5, 75 µm "
                "dilation by exact EDT, hole filling, 8-connected lesions, ITC exclusion by major "
                "axis &lt; 275 µm, FROC = mean sensitivity at 1/4..8 FP/slide); every choice "
                "beyond the official code is listed in docs/evaluation.md.</p></body></html>\n");
    enum wv_status st = write_buf(&b, o->out_dir, "report.html");
    free(b.p);
    return st;
}

enum wv_status ev_write_outputs(struct ev_ctx *c)
{
    enum wv_status st;
    if ((st = write_json(c))) return st;
    if ((st = write_csv(c))) return st;
    if ((st = write_plots(c))) return st;
    return write_html(c);
}
