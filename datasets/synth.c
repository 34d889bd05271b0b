/*
 * synth.c — a synthetic CAMELYON16-style cohort (contract: synth_cohort_write in synth.h; user
 * guide: docs/synthetic-cohort.md): names and classes, one slide after another (tiles render in
 * parallel inside each), then reference.csv and lesions.csv. reference.csv is written last, so
 * its presence marks a complete cohort.
 */
#include "synth.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"
#include "synth_private.h"

/* Histotypes as CAMELYON16's reference.csv lists them, with rough frequencies. */
static const char *const HISTOTYPES[] = {"IDC", "IDC", "IDC", "IDC", "IDC", "IDC",
                                         "ILC", "ILC", "DCIS", "Ductulolobular"};

void synth_opts_init(struct synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_slides = 6;
    o->seed = 1;
    o->width_px = 8000;
    o->height_px = 6000;
    o->mpp = 0.25;
    o->vendor = SLIDE_WRITER_GENERIC;
    o->tumor_fraction = 0.5;
    o->naming = SYNTH_NAMES_TRAIN;
    o->tile_px = 256;
    o->jpeg_quality = 80;
}

/* Growing text buffer for the CSV files. */
struct text {
    char *p;
    size_t len, cap;
};

static enum wv_status text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum wv_status text_add(struct text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) return error_set(WV_EINVAL, "csv line too long");
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *q = realloc(t->p, cap);
        if (!q) return error_set(WV_ENOMEM, "out of memory for csv text");
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->len, line, (size_t)n + 1);
    t->len += n;
    return WV_OK;
}

static enum wv_status join(char *out, size_t n, const char *a, const char *b, const char *c)
{
    if ((size_t)snprintf(out, n, "%s/%s%s", a, b, c ? c : "") >= n)
        return error_set(WV_EINVAL, "%s: path too long", a);
    return WV_OK;
}

enum wv_status synth_cohort_write(const char *outdir, const struct synth_opts *o)
{
    if (o->n_slides < 1 || o->n_slides > 99999)
        return error_set(WV_EINVAL, "slide count %d out of range [1, 99999]", o->n_slides);
    if (!(o->tumor_fraction >= 0 && o->tumor_fraction <= 1))
        return error_set(WV_EINVAL, "tumour fraction %g out of range [0, 1]", o->tumor_fraction);
    char dir_xml[4096], dir_masks[4096], path[4096];
    const char *dir_slides = outdir;
    enum wv_status st;
    if ((st = join(dir_xml, sizeof dir_xml, outdir, "annotations", NULL)) ||
        (st = join(dir_masks, sizeof dir_masks, outdir, "masks", NULL)))
        return st;
    if ((st = util_mkdir_p(outdir)) || (st = util_mkdir_p(dir_xml)) ||
        (st = util_mkdir_p(dir_masks)))
        return st;

    int n = o->n_slides;
    int n_tumor = (int)lround(n * o->tumor_fraction);
    int *is_tumor = wv_calloc(n, sizeof *is_tumor, "classes");
    if (!is_tumor) return WV_ENOMEM;
    for (int i = 0; i < n_tumor; i++) is_tumor[i] = 1;
    if (o->naming == SYNTH_NAMES_TEST) { /* classes hidden in the name: shuffle them */
        struct synth_rng r;
        synth_rng_seed(&r, o->seed ^ 0x7E57C1A55ULL);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(synth_rng_uniform(&r) * (i + 1));
            int t = is_tumor[i];
            is_tumor[i] = is_tumor[j];
            is_tumor[j] = t;
        }
    }
    struct text ref = {0}, les = {0};
    st = text_add(&les, "name,lesion,group,center_x_px,center_y_px,max_diameter_um,size\n");
    int k_tumor = 0, k_normal = 0;
    struct synth_write_opts wo;
    synth_write_opts_init(&wo);
    wo.vendor = o->vendor;
    wo.tile_px = o->tile_px;
    wo.jpeg_quality = o->jpeg_quality;
    wo.n_threads = o->n_threads;
    for (int i = 0; i < n && !st; i++) {
        char name[64];
        if (o->naming == SYNTH_NAMES_TEST)
            snprintf(name, sizeof name, "test_%03d", i + 1);
        else if (is_tumor[i])
            snprintf(name, sizeof name, "tumor_%03d", ++k_tumor);
        else
            snprintf(name, sizeof name, "normal_%03d", ++k_normal);
        /* a slide depends on (seed, its index, its class), not on the rest of the cohort */
        uint64_t seed = synth_mix64(o->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 2 +
                                    (uint64_t)is_tumor[i]);
        struct synth_slide *s = NULL;
        double t0 = util_now();
        st = synth_slide_create(seed, o->width_px, o->height_px, o->mpp, is_tumor[i], &s);
        if (st) {
            error_prefix("%s", name);
            break;
        }
        wo.name = name;
        if (!(st = join(path, sizeof path, dir_slides, name, ".tif")))
            st = synth_slide_write(s, path, &wo);
        if (!st && is_tumor[i]) {
            if (!(st = join(path, sizeof path, dir_xml, name, ".xml")))
                st = synth_xml_write(s, path);
            if (!st && !(st = join(path, sizeof path, dir_masks, name, "_mask.tif")))
                st = synth_mask_write(s, path, o->n_threads);
        }
        struct synth_rng hr;
        synth_rng_seed(&hr, seed ^ 0x4157u);
        const char *histo = HISTOTYPES[(int)(synth_rng_uniform(&hr) * 10)];
        double dmax = synth_slide_max_lesion_um(s);
        /* CAMELYON16 sizes; "ITC" only when a (tiny) slide had room for nothing larger */
        const char *size = !is_tumor[i]                ? "None"
                           : dmax > SYNTH_MICRO_MAX_UM ? "Macro"
                           : dmax >= SYNTH_ITC_MAX_UM  ? "Micro"
                                                       : "ITC";
        if (!st)
            st = text_add(&ref, "%s,%s,%s,%s\n", name, is_tumor[i] ? "Tumor" : "Normal", histo,
                          size);
        for (int l = 0; !st && l < synth_slide_n_lesions(s); l++) {
            const struct synth_lesion *L = synth_slide_lesion(s, l);
            const char *cls = L->max_diameter_um < SYNTH_ITC_MAX_UM     ? "itc"
                              : L->max_diameter_um <= SYNTH_MICRO_MAX_UM ? "micro"
                                                                         : "macro";
            st = text_add(&les, "%s,%d,%s,%.1f,%.1f,%.1f,%s\n", name, l, L->group, L->cx_px,
                          L->cy_px, L->max_diameter_um, cls);
        }
        if (!st && o->verbose)
            fprintf(stderr, "synth: %s  %s  %d lesion%s  %.1f s\n", name,
                    is_tumor[i] ? "Tumor " : "Normal", synth_slide_n_lesions(s),
                    synth_slide_n_lesions(s) == 1 ? "" : "s", util_now() - t0);
        synth_slide_free(s);
    }
    if (!st && !(st = join(path, sizeof path, outdir, "lesions.csv", NULL)))
        st = util_write_file_atomic(path, les.p, les.len);
    if (!st && !(st = join(path, sizeof path, outdir, "reference.csv", NULL)))
        st = util_write_file_atomic(path, ref.p, ref.len);
    free(ref.p);
    free(les.p);
    free(is_tumor);
    return st;
}
