/*
 * synth_draw.c — the H&E-like picture of a synthetic slide (contract: synth_render_rgb in
 * synth.h). Everything is a function of level-0 position, so any rectangle at any scale renders
 * seamlessly and the same in every tile split. Per call: label the samples (tissue / tumour by
 * the polygons, via the shared scanline rasteriser), paint stroma or glass from value noise,
 * splat fat vacuoles and nuclei cell by cell from hashed lattices, then box-average ss×ss
 * samples per output pixel. Scratch is allocated per call (thread-safe, no shared state).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"
#include "synth.h"
#include "synth_private.h"

/* sample labels */
#define LAB_TISSUE 1
#define LAB_TUMOR 2
#define LAB_VACUOLE 4

/* Hash salts: one independent field each. */
#define SALT_NOISE1 0x1001
#define SALT_NOISE2 0x1002
#define SALT_GRAIN 0x1003
#define SALT_VACUOLE 0x2001
#define SALT_NUC_NORMAL 0x3001
#define SALT_NUC_TUMOR 0x3002

/* Nuclei, µm. Normal tissue: lymphocyte-like, small, round, sparse (lattice NORMAL_GRID, a
 * nucleus in NORMAL_PROB of cells, coverage ≈ 11%). Tumour: crowded (TUMOR_GRID, TUMOR_PROB),
 * larger, irregular (2nd/3rd harmonic of the outline up to TUMOR_IRREG) and darker (≈ 45%). */
#define NORMAL_GRID_UM 12.0
#define NORMAL_PROB 0.65
#define NORMAL_A_MIN_UM 2.4
#define NORMAL_A_MAX_UM 3.4
#define TUMOR_GRID_UM 10.0
#define TUMOR_PROB 0.92
#define TUMOR_A_MIN_UM 3.6
#define TUMOR_A_MAX_UM 5.6
#define TUMOR_IRREG 0.16
/* Fat vacuoles in normal tissue: lattice, probability, radius range (µm). */
#define VAC_GRID_UM 160.0
#define VAC_PROB 0.10
#define VAC_R_MIN_UM 22.0
#define VAC_R_MAX_UM 55.0
/* Value-noise lattices of the stroma shading (µm). */
#define NOISE1_UM 110.0
#define NOISE2_UM 28.0

struct tile {
    const struct synth_slide *s;
    int sw, sh;        /* samples */
    double sx0, sy0;   /* level-0 position of sample (0, 0) */
    double d;          /* sample spacing, level-0 px */
    double rx0, ry0, rx1, ry1; /* level-0 rectangle covered */
    uint8_t *lab;      /* (sh, sw) */
    float *col;        /* (sh, sw, 3) */
};

/* Round and clamp to a byte. */
static inline uint8_t to_u8(float v)
{
    v = v < 0 ? 0 : v > 255 ? 255 : v;
    return (uint8_t)(v + 0.5f);
}

/* Value noise over a lattice of spacing l (px), cached for the tile. Returns 0 (no memory) or
 * fills *lat (caller frees) — n_i × n_j values in [0, 1) from (i0, j0). */
struct lattice {
    int64_t i0, j0;
    int ni, nj;
    double inv_l;
    float *v;
};

static int lattice_make(const struct tile *t, double l, uint64_t salt, struct lattice *L)
{
    L->v = NULL;
    L->inv_l = 1.0 / l;
    L->i0 = (int64_t)floor(t->rx0 / l) - 1;
    L->j0 = (int64_t)floor(t->ry0 / l) - 1;
    L->ni = (int)((int64_t)floor(t->rx1 / l) + 2 - L->i0 + 1);
    L->nj = (int)((int64_t)floor(t->ry1 / l) + 2 - L->j0 + 1);
    L->v = malloc(sizeof(float) * L->ni * L->nj);
    if (!L->v) return 0;
    for (int j = 0; j < L->nj; j++)
        for (int i = 0; i < L->ni; i++)
            L->v[j * L->ni + i] = (float)synth_unit(synth_hash2(t->s->seed, L->i0 + i, L->j0 + j, salt));
    return 1;
}

/* floor() without a libm call (the default x86-64 target has no SSE4.1 rounding). */
static inline int64_t ffloor(double v)
{
    int64_t i = (int64_t)v;
    return i - (v < (double)i);
}

static inline float smooth(float t) { return t * t * (3 - 2 * t); }

/* One axis of a lattice lookup: cell index relative to the cache and the smoothed fraction. */
static inline void lattice_axis(double v, double inv_l, int64_t origin, int *idx, float *frac)
{
    double g = v * inv_l;
    int64_t f = ffloor(g);
    *idx = (int)(f - origin);
    *frac = smooth((float)(g - (double)f));
}

static inline float lattice_bilerp(const struct lattice *L, int i, float tx, int j, float ty)
{
    const float *r0 = L->v + (size_t)j * L->ni + i, *r1 = r0 + L->ni;
    float a = r0[0] + (r0[1] - r0[0]) * tx, b = r1[0] + (r1[1] - r1[0]) * tx;
    return a + (b - a) * ty;
}

/* ---- stroma, glass, tumour cytoplasm ------------------------------------------------------- */

/* Fine grain: a cheap hash of the level-0 pixel, in [-0.5, 0.5). */
static inline float grain(uint64_t seed, int64_t x, int64_t y)
{
    uint64_t h = ((uint64_t)x * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)y * 0xC2B2AE3D27D4EB4FULL) ^ seed;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return (float)(h >> 40) * (1.0f / 16777216.0f) - 0.5f;
}

static enum wv_status paint_base(struct tile *t)
{
    const struct synth_slide *s = t->s;
    /* an octave finer than two samples would only alias: use its mean instead */
    struct lattice n1 = {0}, n2 = {0};
    double l1 = NOISE1_UM / s->mpp, l2 = NOISE2_UM / s->mpp;
    int has1 = l1 >= 2 * t->d, has2 = l2 >= 2 * t->d;
    /* per-column lattice positions and pixel x, computed once per tile */
    int *ci = malloc(sizeof(int) * 2 * t->sw);
    float *cf = malloc(sizeof(float) * 2 * t->sw);
    int64_t *cx = malloc(sizeof(int64_t) * t->sw);
    enum wv_status st = WV_OK;
    if (!ci || !cf || !cx || (has1 && !lattice_make(t, l1, SALT_NOISE1, &n1)) ||
        (has2 && !lattice_make(t, l2, SALT_NOISE2, &n2))) {
        st = WV_ENOMEM;
        goto done;
    }
    const uint64_t gseed = synth_mix64(s->seed ^ SALT_GRAIN);
    for (int u = 0; u < t->sw; u++) {
        double X = t->sx0 + u * t->d;
        cx[u] = ffloor(X);
        ci[2 * u] = ci[2 * u + 1] = 0;
        cf[2 * u] = cf[2 * u + 1] = 0;
        if (has1) lattice_axis(X, n1.inv_l, n1.i0, &ci[2 * u], &cf[2 * u]);
        if (has2) lattice_axis(X, n2.inv_l, n2.i0, &ci[2 * u + 1], &cf[2 * u + 1]);
    }
    for (int v = 0; v < t->sh; v++) {
        double Y = t->sy0 + v * t->d;
        int64_t gy = ffloor(Y);
        int j1 = 0, j2 = 0;
        float ty1 = 0, ty2 = 0;
        if (has1) lattice_axis(Y, n1.inv_l, n1.j0, &j1, &ty1);
        if (has2) lattice_axis(Y, n2.inv_l, n2.j0, &j2, &ty2);
        const uint8_t *lab = t->lab + (size_t)v * t->sw;
        float *c = t->col + (size_t)3 * v * t->sw;
        for (int u = 0; u < t->sw; u++, c += 3) {
            float g = grain(gseed, cx[u], gy);
            if (!(lab[u] & LAB_TISSUE)) {
                c[0] = 242 + 3 * g;
                c[1] = 241 + 3 * g;
                c[2] = 245 + 2 * g;
                continue;
            }
            float a = has1 ? lattice_bilerp(&n1, ci[2 * u], cf[2 * u], j1, ty1) : 0.5f;
            float b = has2 ? lattice_bilerp(&n2, ci[2 * u + 1], cf[2 * u + 1], j2, ty2) : 0.5f;
            if (lab[u] & LAB_TUMOR) { /* tumour cells' cytoplasm: pale violet */
                c[0] = 206 - 18 * a - 8 * b + 10 * g;
                c[1] = 148 - 22 * a - 14 * b + 10 * g;
                c[2] = 200 - 10 * a - 6 * b + 8 * g;
            } else { /* eosin-pink stroma with fibrous shading */
                c[0] = 240 - 12 * a - 8 * b + 10 * g;
                c[1] = 176 - 40 * a - 22 * b + 14 * g;
                c[2] = 206 - 16 * a - 10 * b + 10 * g;
            }
        }
    }
done:
    free(n1.v);
    free(n2.v);
    free(ci);
    free(cf);
    free(cx);
    return st;
}

/* Sample index range [*a, *b) whose positions fall in [lo, hi] along one axis. */
static int sample_range(double lo, double hi, double s0, double d, int n, int *a, int *b)
{
    double ua = ceil((lo - s0) / d), ub = floor((hi - s0) / d) + 1;
    if (ua < 0) ua = 0;
    if (ub > n) ub = n;
    *a = (int)ua;
    *b = (int)ub;
    return *a < *b;
}

/* ---- fat vacuoles -------------------------------------------------------------------------- */

static void splat_vacuoles(struct tile *t)
{
    const struct synth_slide *s = t->s;
    double g = VAC_GRID_UM / s->mpp, rmax = VAC_R_MAX_UM / s->mpp;
    int64_t i0 = (int64_t)floor((t->rx0 - rmax) / g), i1 = (int64_t)floor((t->rx1 + rmax) / g);
    int64_t j0 = (int64_t)floor((t->ry0 - rmax) / g), j1 = (int64_t)floor((t->ry1 + rmax) / g);
    for (int64_t j = j0; j <= j1; j++)
        for (int64_t i = i0; i <= i1; i++) {
            uint64_t h = synth_hash2(s->seed, i, j, SALT_VACUOLE);
            if (synth_unit(h) >= VAC_PROB) continue;
            double cx = (i + synth_unit(synth_mix64(h + 1))) * g;
            double cy = (j + synth_unit(synth_mix64(h + 2))) * g;
            double r = (VAC_R_MIN_UM + (VAC_R_MAX_UM - VAC_R_MIN_UM) * synth_unit(synth_mix64(h + 3))) / s->mpp;
            int ua, ub, va, vb;
            if (!sample_range(cx - r, cx + r, t->sx0, t->d, t->sw, &ua, &ub) ||
                !sample_range(cy - r, cy + r, t->sy0, t->d, t->sh, &va, &vb))
                continue;
            double r2 = r * r, rim2 = 0.88 * 0.88 * r2;
            for (int v = va; v < vb; v++) {
                double dy = t->sy0 + v * t->d - cy;
                for (int u = ua; u < ub; u++) {
                    double dx = t->sx0 + u * t->d - cx, q = dx * dx + dy * dy;
                    size_t k = (size_t)v * t->sw + u;
                    if (q >= r2 || (t->lab[k] & (LAB_TISSUE | LAB_TUMOR)) != LAB_TISSUE) continue;
                    float *c = t->col + 3 * k;
                    if (q >= rim2) { /* the cell membrane: a thin, deeper pink rim */
                        c[0] -= 12;
                        c[1] -= 30;
                        c[2] -= 14;
                    } else {
                        t->lab[k] |= LAB_VACUOLE;
                        c[0] = 243, c[1] = 238, c[2] = 244;
                    }
                }
            }
        }
}

/* ---- nuclei -------------------------------------------------------------------------------- */

struct nuc_kind {
    double grid_um, prob, a_min_um, a_max_um, b_ratio_min, irreg;
    float rgb[3], dark[3]; /* base colour and how much darker the darkest ones are */
    uint64_t salt;
    uint8_t need, need_mask; /* draw where (lab & need_mask) == need */
};

static const struct nuc_kind NORMAL_NUC = {
    NORMAL_GRID_UM, NORMAL_PROB, NORMAL_A_MIN_UM, NORMAL_A_MAX_UM, 0.75, 0.04,
    {96, 66, 150}, {22, 18, 22}, SALT_NUC_NORMAL,
    LAB_TISSUE, LAB_TISSUE | LAB_TUMOR | LAB_VACUOLE};
static const struct nuc_kind TUMOR_NUC = {
    TUMOR_GRID_UM, TUMOR_PROB, TUMOR_A_MIN_UM, TUMOR_A_MAX_UM, 0.6, TUMOR_IRREG,
    {74, 42, 120}, {30, 22, 24}, SALT_NUC_TUMOR,
    LAB_TUMOR, LAB_TUMOR};

static void splat_nuclei(struct tile *t, const struct nuc_kind *K, double rx0, double ry0,
                         double rx1, double ry1)
{
    const struct synth_slide *s = t->s;
    const uint64_t gseed = synth_mix64(s->seed ^ (K->salt + 7)); /* chromatin granules */
    double g = K->grid_um / s->mpp;
    double reach = K->a_max_um / s->mpp * (1 + 2 * K->irreg);
    int64_t i0 = (int64_t)floor((rx0 - reach) / g), i1 = (int64_t)floor((rx1 + reach) / g);
    int64_t j0 = (int64_t)floor((ry0 - reach) / g), j1 = (int64_t)floor((ry1 + reach) / g);
    for (int64_t j = j0; j <= j1; j++)
        for (int64_t i = i0; i <= i1; i++) {
            uint64_t h = synth_hash2(s->seed, i, j, K->salt);
            if (synth_unit(h) >= K->prob) continue;
            double cx = (i + synth_unit(synth_mix64(h + 1))) * g;
            double cy = (j + synth_unit(synth_mix64(h + 2))) * g;
            double a = (K->a_min_um + (K->a_max_um - K->a_min_um) * synth_unit(synth_mix64(h + 3))) / s->mpp;
            double b = a * (K->b_ratio_min + (1 - K->b_ratio_min) * synth_unit(synth_mix64(h + 4)));
            double ang = 2 * M_PI * synth_unit(synth_mix64(h + 5));
            double e2 = K->irreg * synth_unit(synth_mix64(h + 6));
            double e3 = K->irreg * synth_unit(synth_mix64(h + 7));
            double p2 = 2 * M_PI * synth_unit(synth_mix64(h + 8));
            double p3 = 2 * M_PI * synth_unit(synth_mix64(h + 9));
            float dk = (float)synth_unit(synth_mix64(h + 10));
            int vesicular = synth_unit(synth_mix64(h + 11)) < 0.3; /* pale open chromatin */
            double R = a * (1 + e2 + e3);
            int ua, ub, va, vb;
            if (!sample_range(cx - R, cx + R, t->sx0, t->d, t->sw, &ua, &ub) ||
                !sample_range(cy - R, cy + R, t->sy0, t->d, t->sh, &va, &vb))
                continue;
            double ca = cos(ang), sa = sin(ang);
            double c2 = cos(p2), s2 = sin(p2), c3 = cos(p3), s3 = sin(p3);
            float base[3];
            for (int c = 0; c < 3; c++) base[c] = K->rgb[c] - dk * K->dark[c];
            for (int v = va; v < vb; v++) {
                double dy = t->sy0 + v * t->d - cy;
                for (int u = ua; u < ub; u++) {
                    size_t k = (size_t)v * t->sw + u;
                    if ((t->lab[k] & K->need_mask) != K->need) continue;
                    double dx = t->sx0 + u * t->d - cx;
                    double pp = (dx * ca + dy * sa) / a, qq = (-dx * sa + dy * ca) / b;
                    double r2 = pp * pp + qq * qq;
                    double lim = 1;
                    if (r2 > 1e-12 && (e2 > 0 || e3 > 0)) {
                        /* cos/sin of 2θ and 3θ from the normalised position, no atan2 */
                        double rr = sqrt(r2), co = pp / rr, si = qq / rr;
                        double co2 = co * co - si * si, si2 = 2 * co * si;
                        double co3 = co2 * co - si2 * si, si3 = si2 * co + co2 * si;
                        lim = 1 + e2 * (co2 * c2 - si2 * s2) + e3 * (co3 * c3 - si3 * s3);
                    }
                    if (r2 >= lim * lim) continue;
                    float gr = grain(gseed, ffloor(t->sx0 + u * t->d), ffloor(t->sy0 + v * t->d));
                    float f = (float)(r2 / (lim * lim)); /* 0 centre → 1 edge */
                    float shade = 18 * gr;               /* chromatin granules */
                    if (vesicular && f < 0.45f) shade += 26; /* open centre */
                    if (f > 0.75f) shade -= 10;              /* nuclear membrane */
                    float *col = t->col + 3 * k;
                    col[0] = base[0] + shade;
                    col[1] = base[1] + 0.8f * shade;
                    col[2] = base[2] + 0.7f * shade;
                }
            }
        }
}

/* ---- the whole picture --------------------------------------------------------------------- */

enum wv_status synth_render_rgb(const struct synth_slide *s, double x0, double y0, double step,
                                int w, int h, int ss, uint8_t *out)
{
    if (w <= 0 || h <= 0 || ss < 1 || !(step > 0))
        return error_set(WV_EINVAL, "render: bad request %dx%d step %g ss %d", w, h, step, ss);
    struct tile t = {.s = s, .sw = w * ss, .sh = h * ss, .d = step / ss};
    t.sx0 = x0 + 0.5 * t.d;
    t.sy0 = y0 + 0.5 * t.d;
    t.rx0 = x0;
    t.ry0 = y0;
    t.rx1 = x0 + w * step;
    t.ry1 = y0 + h * step;
    size_t n = (size_t)t.sw * t.sh;
    t.lab = calloc(n, 1);
    t.col = malloc(n * 3 * sizeof(float));
    if (!t.lab || !t.col) {
        free(t.lab);
        free(t.col);
        return error_set(WV_ENOMEM, "render: out of memory for %dx%d samples", t.sw, t.sh);
    }
    int any_tissue = 0, any_tumor = 0;
    for (int i = 0; i < s->n_islands; i++) {
        const struct synth_poly *p = &s->islands[i];
        if (p->xmax < t.rx0 || p->xmin > t.rx1 || p->ymax < t.ry0 || p->ymin > t.ry1) continue;
        any_tissue = 1;
        for (int v = 0; v < t.sh; v++)
            synth_raster_row(p, t.sy0 + v * t.d, t.sx0, t.d, t.sw, t.lab + (size_t)v * t.sw, LAB_TISSUE);
    }
    for (int i = 0; i < s->n_lesions; i++) {
        const struct synth_poly *p = &s->lesion_polys[i];
        if (p->xmax < t.rx0 || p->xmin > t.rx1 || p->ymax < t.ry0 || p->ymin > t.ry1) continue;
        any_tumor = 1;
        for (int v = 0; v < t.sh; v++)
            synth_raster_row(p, t.sy0 + v * t.d, t.sx0, t.d, t.sw, t.lab + (size_t)v * t.sw, LAB_TUMOR);
    }
    enum wv_status st = paint_base(&t);
    if (st) {
        free(t.lab);
        free(t.col);
        return error_set(st, "render: out of memory for noise lattices");
    }
    if (any_tissue) {
        splat_vacuoles(&t);
        splat_nuclei(&t, &NORMAL_NUC, t.rx0, t.ry0, t.rx1, t.ry1);
    }
    if (any_tumor) {
        /* only the part of the tile a lesion can reach */
        double a0 = fmax(t.rx0, s->les_xmin), b0 = fmax(t.ry0, s->les_ymin);
        double a1 = fmin(t.rx1, s->les_xmax), b1 = fmin(t.ry1, s->les_ymax);
        if (a0 <= a1 && b0 <= b1) splat_nuclei(&t, &TUMOR_NUC, a0, b0, a1, b1);
    }
    /* box filter ss×ss samples → one pixel (level 0: ss = 1, a plain conversion) */
    if (ss == 1) {
        const float *c = t.col;
        for (size_t k = 0; k < (size_t)w * h * 3; k++) out[k] = to_u8(c[k]);
    } else {
        float inv = 1.0f / (float)(ss * ss);
        for (int j = 0; j < h; j++)
            for (int i = 0; i < w; i++) {
                float acc[3] = {0, 0, 0};
                for (int b = 0; b < ss; b++) {
                    const float *row = t.col + 3 * ((size_t)(j * ss + b) * t.sw + (size_t)i * ss);
                    for (int a = 0; a < ss; a++)
                        for (int c = 0; c < 3; c++) acc[c] += row[3 * a + c];
                }
                uint8_t *o = out + 3 * ((size_t)j * w + i);
                for (int c = 0; c < 3; c++) o[c] = to_u8(acc[c] * inv);
            }
    }
    free(t.lab);
    free(t.col);
    return WV_OK;
}
