/*
 * froc.c — the CAMELYON16 lesion-level evaluation (contract: froc.h; rules:
 * CAMELYON16_PROTOCOL.md §1.3–1.7, our choices in docs/evaluation.md). Written from the
 * protocol's description of the official Evaluation_FROC.py, not from its code: mask → exact
 * EDT → distance < 75 µm / 2 → fill holes → 8-connected labels → ITC by major axis; detections
 * → TP per lesion (max probability) / FP / ignored; curve over the pooled probabilities; score.
 */
#include "froc.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wsi/slide.h"

const double froc_rates[FROC_N_RATES] = {0.25, 0.5, 1, 2, 4, 8};

/* ---- exact EDT ------------------------------------------------------------------------------- */

#define EDT_INF INT64_MAX

/* 1-D lower envelope of parabolas (q − i)² + f[q] over the sites with finite f
 * (Felzenszwalb & Huttenlocher 2012). Breakpoints are kept as exact fractions num/den (den > 0),
 * so the result is the exact integer minimum whatever the size. f, d: (n); v: (n) ints,
 * zn/zd: (n + 1). */
static void edt_1d(const int64_t *f, int64_t *d, int n, int *v, __int128 *zn, int64_t *zd,
                   int64_t stride_f, int64_t stride_d)
{
    int k = -1;
    for (int q = 0; q < n; q++) {
        int64_t fq = f[(int64_t)q * stride_f];
        if (fq == EDT_INF) continue;
        if (k < 0) {
            k = 0;
            v[0] = q;
            zd[0] = 0; /* −inf */
            continue;
        }
        __int128 num;
        int64_t den;
        for (;;) {
            int p = v[k];
            int64_t fp = f[(int64_t)p * stride_f];
            num = (__int128)fq + (__int128)q * q - (__int128)fp - (__int128)p * p;
            den = 2 * (int64_t)(q - p);
            /* s <= z[k]? z[0] is −inf */
            if (k > 0 && num * zd[k] <= zn[k] * den) {
                k--;
                continue;
            }
            break;
        }
        k++;
        v[k] = q;
        zn[k] = num;
        zd[k] = den;
    }
    if (k < 0) {
        for (int i = 0; i < n; i++) d[(int64_t)i * stride_d] = EDT_INF;
        return;
    }
    int top = k;
    k = 0;
    for (int i = 0; i < n; i++) {
        /* advance while z[k+1] < i */
        while (k < top && zn[k + 1] < (__int128)i * zd[k + 1]) k++;
        int64_t dx = i - v[k];
        d[(int64_t)i * stride_d] = dx * dx + f[(int64_t)v[k] * stride_f];
    }
}

enum wv_status froc_edt_sq(const uint8_t *feature, int rows, int cols, int64_t *d2)
{
    if (rows < 0 || cols < 0) return error_set(WV_EINVAL, "bad mask size %dx%d", cols, rows);
    int m = rows > cols ? rows : cols;
    size_t npx = (size_t)rows * (size_t)cols;
    int64_t *g = malloc((npx ? npx : 1) * sizeof *g);
    int *v = malloc((size_t)(m + 1) * sizeof *v);
    __int128 *zn = malloc((size_t)(m + 2) * sizeof *zn);
    int64_t *zd = malloc((size_t)(m + 2) * sizeof *zd);
    if (!g || !v || !zn || !zd) {
        free(g);
        free(v);
        free(zn);
        free(zd);
        return error_set(WV_ENOMEM, "out of memory for the distance transform (%dx%d)", cols, rows);
    }
    for (size_t i = 0; i < npx; i++) g[i] = feature[i] ? 0 : EDT_INF;
    /* columns: g(r, c) = vertical squared distance (the 1-D EDT of 0/inf is the same envelope) */
    for (int c = 0; c < cols; c++) edt_1d(g + c, d2 + c, rows, v, zn, zd, cols, cols);
    memcpy(g, d2, npx * sizeof *g);
    for (int r = 0; r < rows; r++)
        edt_1d(g + (size_t)r * cols, d2 + (size_t)r * cols, cols, v, zn, zd, 1, 1);
    free(g);
    free(v);
    free(zn);
    free(zd);
    return WV_OK;
}

/* ---- hole filling and labels ---------------------------------------------------------------- */

enum wv_status froc_fill_holes(uint8_t *bin, int rows, int cols)
{
    size_t npx = (size_t)rows * (size_t)cols;
    if (!npx) return WV_OK;
    uint8_t *outside = calloc(npx, 1);
    int32_t *queue = malloc(npx * sizeof *queue);
    if (!outside || !queue) {
        free(outside);
        free(queue);
        return error_set(WV_ENOMEM, "out of memory for hole filling (%dx%d)", cols, rows);
    }
    size_t head = 0, tail = 0;
#define PUSH(i)                                                                                \
    do {                                                                                       \
        size_t i_ = (i);                                                                       \
        if (!bin[i_] && !outside[i_]) {                                                        \
            outside[i_] = 1;                                                                   \
            queue[tail++] = (int32_t)i_;                                                       \
        }                                                                                      \
    } while (0)
    for (int c = 0; c < cols; c++) {
        PUSH((size_t)c);
        PUSH((size_t)(rows - 1) * cols + c);
    }
    for (int r = 0; r < rows; r++) {
        PUSH((size_t)r * cols);
        PUSH((size_t)r * cols + cols - 1);
    }
    while (head < tail) {
        size_t i = (size_t)queue[head++];
        int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
        if (r > 0) PUSH(i - cols);
        if (r < rows - 1) PUSH(i + cols);
        if (c > 0) PUSH(i - 1);
        if (c < cols - 1) PUSH(i + 1);
    }
#undef PUSH
    for (size_t i = 0; i < npx; i++)
        if (!bin[i] && !outside[i]) bin[i] = 1;
    free(outside);
    free(queue);
    return WV_OK;
}

enum wv_status froc_label(const uint8_t *bin, int rows, int cols, int32_t *labels, int *n)
{
    size_t npx = (size_t)rows * (size_t)cols;
    *n = 0;
    if (!npx) return WV_OK;
    memset(labels, 0, npx * sizeof *labels);
    int32_t *queue = malloc(npx * sizeof *queue);
    if (!queue) return error_set(WV_ENOMEM, "out of memory for labelling (%dx%d)", cols, rows);
    int32_t next = 0;
    for (size_t s = 0; s < npx; s++) {
        if (!bin[s] || labels[s]) continue;
        labels[s] = ++next;
        size_t head = 0, tail = 0;
        queue[tail++] = (int32_t)s;
        while (head < tail) {
            size_t i = (size_t)queue[head++];
            int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
            for (int dr = -1; dr <= 1; dr++)
                for (int dc = -1; dc <= 1; dc++) {
                    int rr = r + dr, cc = c + dc;
                    if (rr < 0 || rr >= rows || cc < 0 || cc >= cols) continue;
                    size_t j = (size_t)rr * cols + cc;
                    if (bin[j] && !labels[j]) {
                        labels[j] = next;
                        queue[tail++] = (int32_t)j;
                    }
                }
        }
    }
    free(queue);
    *n = next;
    return WV_OK;
}

enum wv_status froc_major_axis(const int32_t *labels, int rows, int cols, int n, double *major)
{
    double *acc = calloc((size_t)(n + 1) * 6, sizeof *acc); /* count, Σr, Σc, Σrr, Σcc, Σrc */
    if (!acc) return error_set(WV_ENOMEM, "out of memory for %d regions", n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int32_t l = labels[(size_t)r * cols + c];
            if (l <= 0 || l > n) continue;
            double *a = acc + 6 * (size_t)l;
            a[0] += 1;
            a[1] += r;
            a[2] += c;
        }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int32_t l = labels[(size_t)r * cols + c];
            if (l <= 0 || l > n) continue;
            double *a = acc + 6 * (size_t)l;
            double dr = r - a[1] / a[0], dc = c - a[2] / a[0];
            a[3] += dr * dr;
            a[4] += dc * dc;
            a[5] += dr * dc;
        }
    major[0] = 0;
    for (int l = 1; l <= n; l++) {
        const double *a = acc + 6 * (size_t)l;
        if (a[0] == 0) {
            major[l] = 0;
            continue;
        }
        double vr = a[3] / a[0], vc = a[4] / a[0], cv = a[5] / a[0];
        double mean = 0.5 * (vr + vc), dev = sqrt(0.25 * (vr - vc) * (vr - vc) + cv * cv);
        double ev = mean + dev;
        major[l] = 4.0 * sqrt(ev > 0 ? ev : 0);
    }
    free(acc);
    return WV_OK;
}

void froc_mask_free(struct froc_mask *m)
{
    if (!m) return;
    free(m->labels);
    free(m->major_axis_px);
    free(m->is_itc);
    memset(m, 0, sizeof *m);
}

enum wv_status froc_mask_build(const uint8_t *tumour, int rows, int cols, double mpp,
                               struct froc_mask *m)
{
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < 1 || !(mpp > 0) || !isfinite(mpp))
        return error_set(WV_EINVAL, "bad evaluation mask (%dx%d, %g µm/px)", cols, rows, mpp);
    size_t npx = (size_t)rows * (size_t)cols;
    enum wv_status st = WV_OK;
    int64_t *d2 = malloc(npx * sizeof *d2);
    uint8_t *bin = malloc(npx);
    m->labels = malloc(npx * sizeof *m->labels);
    if (!d2 || !bin || !m->labels) {
        st = error_set(WV_ENOMEM, "out of memory for a %dx%d evaluation mask", cols, rows);
        goto out;
    }
    m->rows = rows;
    m->cols = cols;
    /* the official threshold: distance < 75 / (0.243 · 2^5 · 2) = 4.8225 px at 0.243 µm/px */
    m->dilation_px = FROC_DILATION_UM / (mpp * FROC_LEVEL_DS * 2);
    m->itc_px = FROC_ITC_UM / (mpp * FROC_LEVEL_DS);
    if ((st = froc_edt_sq(tumour, rows, cols, d2))) goto out;
    for (size_t i = 0; i < npx; i++)
        bin[i] = d2[i] != EDT_INF && sqrt((double)d2[i]) < m->dilation_px;
    if ((st = froc_fill_holes(bin, rows, cols))) goto out;
    if ((st = froc_label(bin, rows, cols, m->labels, &m->n_labels))) goto out;
    m->major_axis_px = malloc((size_t)(m->n_labels + 1) * sizeof *m->major_axis_px);
    m->is_itc = calloc((size_t)(m->n_labels + 1), 1);
    if (!m->major_axis_px || !m->is_itc) {
        st = error_set(WV_ENOMEM, "out of memory for %d lesions", m->n_labels);
        goto out;
    }
    if ((st = froc_major_axis(m->labels, rows, cols, m->n_labels, m->major_axis_px))) goto out;
    for (int l = 1; l <= m->n_labels; l++)
        if (m->major_axis_px[l] < m->itc_px) {
            m->is_itc[l] = 1;
            m->n_itc++;
        }
    m->n_tumors = m->n_labels - m->n_itc;
out:
    free(d2);
    free(bin);
    if (st) froc_mask_free(m);
    return st;
}

enum wv_status froc_mask_read_tiff(const char *path, int only_255, uint8_t **tumour, int *rows,
                                   int *cols, struct froc_mask_source *src)
{
    memset(src, 0, sizeof *src);
    *tumour = NULL;
    struct slide *s = NULL;
    enum wv_status st = slide_open(path, &s);
    if (st) return st;
    int nl = slide_level_count(s);
    if (nl <= FROC_EVAL_LEVEL) {
        slide_close(s);
        return error_set(WV_EFORMAT, "mask has %d pyramid levels; the evaluation reads level %d, "
                         "so it needs at least %d", nl, FROC_EVAL_LEVEL, FROC_EVAL_LEVEL + 1);
    }
    int64_t w = slide_level_width(s, FROC_EVAL_LEVEL), h = slide_level_height(s, FROC_EVAL_LEVEL);
    src->width_px = slide_level_width(s, 0);
    src->height_px = slide_level_height(s, 0);
    src->mpp = slide_mpp_x(s);
    if (w < 1 || h < 1 || w > 200000 || h > 200000 || w * h > ((int64_t)1 << 32)) {
        slide_close(s);
        return error_set(WV_EFORMAT, "mask level %d is %lldx%lld px", FROC_EVAL_LEVEL,
                         (long long)w, (long long)h);
    }
    size_t npx = (size_t)w * (size_t)h;
    uint8_t *rgb = malloc(npx * 3), *t = malloc(npx);
    if (!rgb || !t) {
        free(rgb);
        free(t);
        slide_close(s);
        return error_set(WV_ENOMEM, "out of memory for a %lldx%lld mask level", (long long)w,
                         (long long)h);
    }
    st = slide_read_level(s, FROC_EVAL_LEVEL, 0, 0, w, h, rgb);
    slide_close(s);
    if (st) {
        free(rgb);
        free(t);
        return st;
    }
    size_t n1 = 0;
    for (size_t i = 0; i < npx; i++) {
        uint8_t v = rgb[3 * i];
        if (v == 255)
            src->n_255++;
        else if (v) {
            src->n_other++;
            n1 += v == 1;
        }
    }
    int val = src->n_255 ? 255 : (!only_255 && n1 ? 1 : 0);
    src->tumour_value = val;
    for (size_t i = 0; i < npx; i++) t[i] = val && rgb[3 * i] == val;
    free(rgb);
    *tumour = t;
    *rows = (int)h;
    *cols = (int)w;
    return WV_OK;
}

/* ---- matching -------------------------------------------------------------------------------- */

void froc_slide_free(struct froc_slide *s)
{
    if (!s) return;
    free(s->fp);
    free(s->tp);
    memset(s, 0, sizeof *s);
}

/* Python's floor division for a positive divisor. */
static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

enum wv_status froc_match(const struct froc_mask *m, int64_t width_px, int64_t height_px,
                          const struct froc_detection *det, size_t n_det,
                          const struct froc_opts *o, struct froc_slide *out)
{
    memset(out, 0, sizeof *out);
    out->n_det = n_det;
    out->is_tumor = m != NULL;
    out->fp = malloc((n_det ? n_det : 1) * sizeof *out->fp);
    int slots = m ? m->n_labels : 0;
    out->tp = calloc((size_t)(slots ? slots : 1), sizeof *out->tp);
    float *tpf = calloc((size_t)(slots ? slots : 1), sizeof *tpf);
    if (!out->fp || !out->tp || !tpf) {
        free(tpf);
        froc_slide_free(out);
        return error_set(WV_ENOMEM, "out of memory for %zu detections", n_det);
    }
    out->n_slots = slots;
    out->n_tumors = m ? m->n_tumors : 0;
    for (size_t i = 0; i < n_det; i++) {
        const struct froc_detection *d = &det[i];
        if (!m) {
            out->fp[out->n_fp++] = d->p;
            continue;
        }
        int64_t r = floordiv(d->y, FROC_LEVEL_DS), c = floordiv(d->x, FROC_LEVEL_DS);
        int outside = d->x < 0 || d->y < 0;
        if (width_px > 0 && height_px > 0)
            outside |= d->x >= width_px || d->y >= height_px;
        else
            outside |= r >= m->rows || c >= m->cols;
        if (outside) {
            out->n_outside++;
            out->fp[out->n_fp++] = d->p;
            continue;
        }
        if (r >= m->rows || c >= m->cols) { /* last partial 32-px strip of the slide */
            out->n_edge++;
            if (r >= m->rows) r = m->rows - 1;
            if (c >= m->cols) c = m->cols - 1;
        }
        int32_t hit = m->labels[(size_t)r * m->cols + (size_t)c];
        if (hit == 0) {
            out->fp[out->n_fp++] = d->p;
        } else if (m->is_itc[hit]) {
            out->n_itc_hits++;
        } else if (o->float32_tp) {
            /* TP_probs is a float32 array: the comparison widens the stored float32 */
            if (d->p > (double)tpf[hit - 1]) {
                if (tpf[hit - 1] == 0) out->n_tp_hits++; else out->n_dup++;
                tpf[hit - 1] = (float)d->p;
            } else if (d->p > 0) {
                out->n_dup++;
            } else {
                out->n_nonpos++;
            }
        } else {
            if (d->p > out->tp[hit - 1]) {
                if (out->tp[hit - 1] == 0) out->n_tp_hits++; else out->n_dup++;
                out->tp[hit - 1] = d->p;
            } else if (d->p > 0) {
                out->n_dup++;
            } else {
                out->n_nonpos++;
            }
        }
    }
    if (o->float32_tp)
        for (int l = 0; l < slots; l++) out->tp[l] = (double)tpf[l];
    free(tpf);
    return WV_OK;
}

/* ---- curve and score ------------------------------------------------------------------------- */

void froc_curve_free(struct froc_curve *c)
{
    if (!c) return;
    free(c->thr);
    free(c->avg_fp);
    free(c->sens);
    memset(c, 0, sizeof *c);
}

static int cmp_double(const void *a, const void *b)
{
    double p = *(const double *)a, q = *(const double *)b;
    return p < q ? -1 : p > q;
}

/* The threshold as numpy compares it with a float32 array: a Python float is cast to float32
 * (value-based casting in numpy 1.x, weak scalars in 2.x) unless it does not fit. */
static double f32_threshold(double t)
{
    return fabs(t) <= FLT_MAX ? (double)(float)t : t;
}

/* np.interp(x, xp, fp) for one x; xp ascending (duplicates allowed), n >= 1. */
static double np_interp(double x, const double *xp, const double *fp, size_t n)
{
    if (n == 1) return fp[0];
    if (x > xp[n - 1]) return fp[n - 1];
    if (x < xp[0]) return fp[0];
    size_t j = 0, lo = 0, hi = n; /* j = last index with xp[j] <= x */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x >= xp[mid])
            lo = mid + 1;
        else
            hi = mid;
    }
    j = lo - 1;
    if (j == n - 1 || xp[j] == x) return fp[j];
    double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    double r = slope * (x - xp[j]) + fp[j];
    if (isnan(r)) {
        r = slope * (x - xp[j + 1]) + fp[j + 1];
        if (isnan(r) && fp[j] == fp[j + 1]) r = fp[j];
    }
    return r;
}

double froc_sens_at(const struct froc_curve *c, double rate, enum froc_mode mode)
{
    if (!c->n) return NAN;
    if (mode == FROC_STEP) {
        double best = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->avg_fp[i] <= rate && c->sens[i] > best) best = c->sens[i];
        return best;
    }
    double *xp = malloc(c->n * sizeof *xp), *fp = malloc(c->n * sizeof *fp);
    if (!xp || !fp) {
        free(xp);
        free(fp);
        return NAN;
    }
    for (size_t i = 0; i < c->n; i++) { /* reversed: ascending avgFP */
        xp[i] = c->avg_fp[c->n - 1 - i];
        fp[i] = c->sens[c->n - 1 - i];
    }
    double r = np_interp(rate, xp, fp, c->n);
    free(xp);
    free(fp);
    return r;
}

enum wv_status froc_compute(const struct froc_slide *const *slides, size_t n_slides,
                            const struct froc_opts *o, enum froc_mode mode, struct froc_curve *c)
{
    memset(c, 0, sizeof *c);
    if (n_slides == 0) return error_set(WV_EINVAL, "no slides to evaluate: the FROC is undefined");
    size_t nf = 0, nt = 0;
    long n_tumors = 0;
    for (size_t i = 0; i < n_slides; i++) {
        nf += slides[i]->n_fp;
        nt += (size_t)slides[i]->n_slots;
        n_tumors += slides[i]->n_tumors;
    }
    if (n_tumors == 0)
        return error_set(WV_EINVAL, "no lesion counts (no tumour slide, or only isolated tumour "
                         "cells): the FROC is undefined");
    double *F = malloc((nf ? nf : 1) * sizeof *F), *T = malloc((nt ? nt : 1) * sizeof *T);
    double *all = malloc((nf + nt ? nf + nt : 1) * sizeof *all);
    if (!F || !T || !all) {
        free(F);
        free(T);
        free(all);
        return error_set(WV_ENOMEM, "out of memory for %zu probabilities", nf + nt);
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n_slides; i++) {
        for (size_t k = 0; k < slides[i]->n_fp; k++) F[a++] = slides[i]->fp[k];
        for (int k = 0; k < slides[i]->n_slots; k++) T[b++] = slides[i]->tp[k];
    }
    qsort(F, nf, sizeof *F, cmp_double);
    qsort(T, nt, sizeof *T, cmp_double);
    memcpy(all, F, nf * sizeof *F);
    memcpy(all + nf, T, nt * sizeof *T);
    qsort(all, nf + nt, sizeof *all, cmp_double);
    size_t nd = 0;
    for (size_t i = 0; i < nf + nt; i++)
        if (nd == 0 || all[i] != all[nd - 1]) all[nd++] = all[i];
    /* sorted(set(...))[1:]: the smallest distinct value is never a threshold */
    size_t nthr = nd > 0 ? nd - 1 : 0;
    c->n = nthr + 1;
    c->thr = malloc(c->n * sizeof *c->thr);
    c->avg_fp = malloc(c->n * sizeof *c->avg_fp);
    c->sens = malloc(c->n * sizeof *c->sens);
    if (!c->thr || !c->avg_fp || !c->sens) {
        free(F);
        free(T);
        free(all);
        froc_curve_free(c);
        return error_set(WV_ENOMEM, "out of memory for a FROC curve of %zu points", nd);
    }
    c->n_slides = (int)n_slides;
    c->n_tumors = (int)n_tumors;
    size_t pf = 0, pt = 0; /* first index with value >= threshold */
    for (size_t k = 0; k < nthr; k++) {
        double t = all[k + 1];
        double tt = o->float32_tp ? f32_threshold(t) : t;
        while (pf < nf && F[pf] < t) pf++;
        while (pt < nt && T[pt] < tt) pt++;
        c->thr[k] = t;
        c->avg_fp[k] = (double)(nf - pf) / (double)n_slides;
        c->sens[k] = (double)(nt - pt) / (double)n_tumors;
    }
    c->thr[nthr] = NAN;
    c->avg_fp[nthr] = 0;
    c->sens[nthr] = 0;
    free(F);
    free(T);
    free(all);
    double sum = 0;
    for (int i = 0; i < FROC_N_RATES; i++) {
        c->sens_at[i] = froc_sens_at(c, froc_rates[i], mode);
        sum += c->sens_at[i];
    }
    c->score = sum / FROC_N_RATES;
    return WV_OK;
}
