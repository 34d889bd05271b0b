/*
 * synth_geom.c — the geometry of a synthetic slide (contract: synth.h): the PRNG, tissue islands
 * and metastasis polygons, and the scanline polygon rasteriser the drawing and the mask share.
 * All lengths are level-0 px unless the name says _um.
 */
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"
#include "synth_private.h"

/* Vertices per polygon: islands need many for a ragged outline at several mm; lesions fewer. */
#define ISLAND_VERTS 240
#define LESION_VERTS 96
#define ITC_VERTS 36
/* Island radius as a fraction of its layout cell, before make_islands shrinks the outline to
 * fit the cell. */
#define ISLAND_CELL_FRAC 0.40
/* Radial variation: sum of harmonic amplitudes, and per-vertex jitter. */
#define ISLAND_HARM_SUM 0.25
#define LESION_HARM_SUM 0.30
#define VERTEX_JITTER 0.03
/* A lesion's outline reaches at most this factor × its nominal radius (1 + harmonics + jitter,
 * rounded up); used for placement and spacing. */
#define LESION_REACH 1.35
/* Lesion sizes (µm, longest diameter before the outline's variation). Big lesions are drawn
 * log-uniformly in [BIG_MIN, BIG_MAX] but capped by the island they sit in; ITC-sized ones in
 * [ITC_MIN, ITC_MAX], so with LESION_REACH their longest diameter stays below 200 µm. */
#define BIG_MIN_UM 300.0
#define BIG_MAX_UM 6000.0
/* Smallest nominal radius of a "big" lesion: its outline then spans ~ 2.4× that, > 200 µm. */
#define BIG_MIN_RADIUS_UM 90.0
#define ITC_MIN_UM 50.0
/* ...and may shrink down to this nominal radius (~ 35 µm across) to find room. */
#define ITC_MIN_RADIUS_UM 15.0
#define ITC_MAX_UM 140.0
/* Gap between lesions (µm): more than the evaluation's 75 µm dilation, so they stay separate. */
#define LESION_GAP_UM 100.0
#define PLACE_TRIES 80
/* Glass area per tissue island at least (µm²), so islands stay big enough for micro lesions. */
#define ISLAND_AREA_UM2 1.4e6

/* ---- PRNG ---------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    return synth_mix64(z);
}

void synth_rng_seed(struct synth_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t synth_rng_next(struct synth_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double synth_rng_uniform(struct synth_rng *r) { return synth_unit(synth_rng_next(r)); }

static double urange(struct synth_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * synth_rng_uniform(r);
}

static int irange(struct synth_rng *r, int lo, int hi) /* inclusive */
{
    return lo + (int)(synth_rng_uniform(r) * (hi - lo + 1));
}

/* ---- polygons ------------------------------------------------------------------------------ */

/* Exactly representable in binary and in 4 decimals, so the XML round-trips the polygon. */
static double quantize(double v) { return floor(v * 16.0 + 0.5) / 16.0; }

static void poly_bbox(struct synth_poly *p)
{
    p->xmin = p->ymin = INFINITY;
    p->xmax = p->ymax = -INFINITY;
    for (int i = 0; i < p->n; i++) {
        double x = p->xy[2 * i], y = p->xy[2 * i + 1];
        if (x < p->xmin) p->xmin = x;
        if (x > p->xmax) p->xmax = x;
        if (y < p->ymin) p->ymin = y;
        if (y > p->ymax) p->ymax = y;
    }
}

/*
 * A star-shaped ragged outline around (cx, cy): radius(θ) = (rx cos θ, ry sin θ) scaled by
 * f(θ) = 1 + Σ_{k=2..7} a_k cos(kθ + φ_k) + jitter, Σ|a_k| = harm_sum, turned by a random
 * angle in [-max_rot, max_rot]. Returns the smallest f (so the inscribed radius is
 * >= min_f·min(rx, ry)) through *min_f. Vertices are quantised.
 */
static enum wv_status make_blob(struct synth_rng *r, double cx, double cy, double rx, double ry,
                                double max_rot, int n, double harm_sum, struct synth_poly *p,
                                double *min_f)
{
    double amp[8], ph[8], sum = 0;
    for (int k = 2; k < 8; k++) {
        amp[k] = urange(r, 0.2, 1.0) / (k - 1);
        ph[k] = urange(r, 0, 2 * M_PI);
        sum += amp[k];
    }
    for (int k = 2; k < 8; k++) amp[k] *= harm_sum / sum;
    double rot = urange(r, -max_rot, max_rot);
    p->n = n;
    p->xy = wv_malloc(sizeof(double) * 2 * n, "polygon");
    if (!p->xy) return WV_ENOMEM;
    double mf = INFINITY;
    for (int i = 0; i < n; i++) {
        double th = 2 * M_PI * i / n;
        double f = 1 + urange(r, -VERTEX_JITTER, VERTEX_JITTER);
        for (int k = 2; k < 8; k++) f += amp[k] * cos(k * th + ph[k]);
        if (f < mf) mf = f;
        double ex = rx * f * cos(th), ey = ry * f * sin(th);
        /* rotate the ellipse so outlines are not axis-aligned */
        p->xy[2 * i] = quantize(cx + ex * cos(rot) - ey * sin(rot));
        p->xy[2 * i + 1] = quantize(cy + ex * sin(rot) + ey * cos(rot));
    }
    poly_bbox(p);
    if (min_f) *min_f = mf;
    return WV_OK;
}

static double max_diameter(const struct synth_poly *p)
{
    double best = 0;
    for (int i = 0; i < p->n; i++)
        for (int j = i + 1; j < p->n; j++) {
            double dx = p->xy[2 * i] - p->xy[2 * j], dy = p->xy[2 * i + 1] - p->xy[2 * j + 1];
            double d = dx * dx + dy * dy;
            if (d > best) best = d;
        }
    return sqrt(best);
}

void synth_raster_row(const struct synth_poly *p, double y, double sx0, double sdx, int n,
                      uint8_t *lab, uint8_t bit)
{
    if (!(y >= p->ymin && y < p->ymax) || n <= 0) return;
    if (p->xmax < sx0 || p->xmin > sx0 + sdx * n) return;
    double xs[SYNTH_MAX_VERTS];
    int dir[SYNTH_MAX_VERTS];
    int nc = 0;
    const double *v = p->xy;
    for (int i = 0; i < p->n; i++) {
        int j = i + 1 == p->n ? 0 : i + 1;
        double y1 = v[2 * i + 1], y2 = v[2 * j + 1];
        int a = y1 <= y, b = y2 <= y;
        if (a == b) continue; /* half-open rule: each vertex counted once */
        double x1 = v[2 * i], x2 = v[2 * j];
        double xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1);
        int d = a ? -1 : 1;
        /* insertion sort: crossings per row are few */
        int k = nc++;
        while (k > 0 && xs[k - 1] > xc) {
            xs[k] = xs[k - 1];
            dir[k] = dir[k - 1];
            k--;
        }
        xs[k] = xc;
        dir[k] = d;
    }
    int wind = 0;
    for (int k = 0; k + 1 < nc; k++) {
        wind += dir[k];
        if (!wind) continue;
        /* samples with xs[k] <= X < xs[k+1] */
        double ua = ceil((xs[k] - sx0) / sdx), ub = ceil((xs[k + 1] - sx0) / sdx);
        if (ua < 0) ua = 0;
        if (ub > n) ub = n;
        for (int u = (int)ua; u < (int)ub; u++) lab[u] |= bit;
    }
}

/* ---- the slide ----------------------------------------------------------------------------- */

void synth_slide_free(struct synth_slide *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_islands; i++) free(s->islands[i].xy);
    for (int i = 0; i < s->n_lesions; i++) free(s->lesion_polys[i].xy);
    free(s->islands);
    free(s->lesion_polys);
    free(s->lesions);
    free(s);
}

struct island_info {
    double cx, cy, r_in; /* centre and a radius the outline surely contains */
};

static enum wv_status make_islands(struct synth_slide *s, struct synth_rng *r,
                                   struct island_info *info)
{
    int n = s->n_islands;
    int cols = (int)lround(sqrt(n * (double)s->w / (double)s->h));
    if (cols < 1) cols = 1;
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int cells[16];
    for (int i = 0; i < cols * rows; i++) cells[i] = i;
    for (int i = cols * rows - 1; i > 0; i--) { /* Fisher–Yates: which cells get an island */
        int j = irange(r, 0, i);
        int t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    double cw = (double)s->w / cols, ch = (double)s->h / rows;
    for (int i = 0; i < n; i++) {
        int c = cells[i] % cols, rw = cells[i] / cols;
        double cx = (c + 0.5) * cw + urange(r, -0.04, 0.04) * cw;
        double cy = (rw + 0.5) * ch + urange(r, -0.04, 0.04) * ch;
        double scale = urange(r, 0.85, 1.0);
        double rx = ISLAND_CELL_FRAC * cw * scale, ry = ISLAND_CELL_FRAC * ch * scale;
        /* keep islands roundish: at most 1.6:1 */
        if (rx > 1.6 * ry) rx = 1.6 * ry;
        if (ry > 1.6 * rx) ry = 1.6 * rx;
        double min_f;
        struct synth_poly *p = &s->islands[i];
        /* a small turn only, so the long axis follows the cell's */
        enum wv_status st =
            make_blob(r, cx, cy, rx, ry, 0.3, ISLAND_VERTS, ISLAND_HARM_SUM, p, &min_f);
        if (st) return st;
        /* shrink about the centre until the outline keeps a 3% margin inside its cell, so
         * islands never touch each other or the slide edge */
        double x0 = c * cw + 0.03 * cw, x1 = (c + 1) * cw - 0.03 * cw;
        double y0 = rw * ch + 0.03 * ch, y1 = (rw + 1) * ch - 0.03 * ch;
        double k = 1;
        if (p->xmin < x0) k = fmin(k, (cx - x0) / (cx - p->xmin));
        if (p->xmax > x1) k = fmin(k, (x1 - cx) / (p->xmax - cx));
        if (p->ymin < y0) k = fmin(k, (cy - y0) / (cy - p->ymin));
        if (p->ymax > y1) k = fmin(k, (y1 - cy) / (p->ymax - cy));
        if (k < 1) {
            for (int v = 0; v < p->n; v++) {
                p->xy[2 * v] = quantize(cx + (p->xy[2 * v] - cx) * k);
                p->xy[2 * v + 1] = quantize(cy + (p->xy[2 * v + 1] - cy) * k);
            }
            poly_bbox(p);
        }
        info[i].cx = cx;
        info[i].cy = cy;
        /* chords between vertices cut in by < 0.1% at 240 vertices; 0.95 covers it and the
         * quantisation */
        info[i].r_in = 0.95 * k * min_f * (rx < ry ? rx : ry);
    }
    return WV_OK;
}

struct placed {
    double cx, cy, reach;
};

/* An island index, with probability proportional to its area when by_area (big lesions go
 * where there is room), else uniform. */
static int pick_island(struct synth_rng *r, const struct island_info *info, int n, int by_area)
{
    if (!by_area) return irange(r, 0, n - 1);
    double tot = 0, acc = 0;
    for (int i = 0; i < n; i++) tot += info[i].r_in * info[i].r_in;
    double u = synth_rng_uniform(r) * tot;
    for (int i = 0; i < n; i++) {
        acc += info[i].r_in * info[i].r_in;
        if (u < acc) return i;
    }
    return n - 1;
}

/*
 * Try to place one lesion of nominal diameter d_um inside an island, away from the others.
 * It is capped to what the island holds and shrinks on repeated failure; below rl_min (px,
 * nominal radius) it is given up (*placed_ok = 0).
 */
static enum wv_status place_lesion(struct synth_slide *s, struct synth_rng *r,
                                   const struct island_info *info, struct placed *placed,
                                   double d_um, double rl_min, int verts, int big, int *placed_ok)
{
    double gap = LESION_GAP_UM / s->mpp;
    double rl0 = 0.5 * d_um / s->mpp / LESION_REACH;
    *placed_ok = 0;
    for (int t = 0; t < PLACE_TRIES; t++) {
        double rl = rl0 * pow(0.85, t / 8);
        const struct island_info *isl = &info[pick_island(r, info, s->n_islands, big)];
        /* big ones leave a rim of the island free for ITC-sized ones */
        double cap = (big ? 0.65 : 0.8) * isl->r_in / LESION_REACH;
        if (rl > cap) rl = cap * urange(r, 0.75, 1.0);
        if (rl < rl_min) continue;
        double reach = LESION_REACH * rl;
        double room = 0.9 * isl->r_in - reach;
        if (room <= 0) continue;
        double rho = room * sqrt(synth_rng_uniform(r)), al = urange(r, 0, 2 * M_PI);
        double cx = isl->cx + rho * cos(al), cy = isl->cy + rho * sin(al);
        int clash = 0;
        for (int i = 0; i < s->n_lesions && !clash; i++) {
            double dx = cx - placed[i].cx, dy = cy - placed[i].cy;
            double need = reach + placed[i].reach + gap;
            clash = dx * dx + dy * dy < need * need;
        }
        if (clash) continue;
        struct synth_poly *p = &s->lesion_polys[s->n_lesions];
        double ax = urange(r, 0.9, 1.0), ay = urange(r, 0.9, 1.0);
        enum wv_status st =
            make_blob(r, cx, cy, rl * ax, rl * ay, M_PI, verts, LESION_HARM_SUM, p, NULL);
        if (st) return st;
        struct synth_lesion *L = &s->lesions[s->n_lesions];
        L->n_vertices = p->n;
        L->xy = p->xy;
        L->cx_px = cx;
        L->cy_px = cy;
        L->max_diameter_um = max_diameter(p) * s->mpp;
        L->group = L->max_diameter_um < SYNTH_ITC_MAX_UM ? "_1" : "_0";
        placed[s->n_lesions] = (struct placed){cx, cy, reach};
        s->n_lesions++;
        *placed_ok = 1;
        return WV_OK;
    }
    return WV_OK;
}

enum wv_status synth_slide_create(uint64_t seed, int64_t w, int64_t h, double mpp, int is_tumor,
                                  struct synth_slide **out)
{
    *out = NULL;
    if (w < 512 || h < 512 || w >= ((int64_t)1 << 31) || h >= ((int64_t)1 << 31))
        return error_set(WV_EINVAL, "slide size %lldx%lld out of range [512, 2^31)",
                         (long long)w, (long long)h);
    if (!(mpp >= 0.01 && mpp <= 100))
        return error_set(WV_EINVAL, "mpp %g out of range [0.01, 100]", mpp);
    struct synth_slide *s = wv_calloc(1, sizeof *s, "synthetic slide");
    if (!s) return WV_ENOMEM;
    s->w = w;
    s->h = h;
    s->mpp = mpp;
    s->seed = synth_mix64(seed ^ 0x7E47u);
    s->is_tumor = is_tumor;
    struct synth_rng r;
    synth_rng_seed(&r, seed);
    enum wv_status st = WV_OK;
    struct island_info info[4];
    struct placed placed[8];

    /* 1–4 islands, no more than one per ISLAND_AREA_UM2 of glass */
    int max_islands = (int)((double)w * h * mpp * mpp / (ISLAND_AREA_UM2));
    if (max_islands < 1) max_islands = 1;
    if (max_islands > 4) max_islands = 4;
    s->n_islands = irange(&r, 1, max_islands);
    s->islands = wv_calloc(s->n_islands, sizeof *s->islands, "islands");
    if (!s->islands) {
        st = WV_ENOMEM;
        goto fail;
    }
    st = make_islands(s, &r, info);
    if (st) goto fail;

    s->les_xmin = s->les_ymin = INFINITY;
    s->les_xmax = s->les_ymax = -INFINITY;
    if (is_tumor) {
        s->lesion_polys = wv_calloc(8, sizeof *s->lesion_polys, "lesions");
        s->lesions = wv_calloc(8, sizeof *s->lesions, "lesions");
        if (!s->lesion_polys || !s->lesions) {
            st = WV_ENOMEM;
            goto fail;
        }
        int n_big = irange(&r, 1, 3), n_itc = irange(&r, 1, 3), ok;
        for (int i = 0; i < n_big; i++) {
            /* log-uniform nominal diameter; place_lesion caps it to the island */
            double d_um = exp(urange(&r, log(BIG_MIN_UM), log(BIG_MAX_UM)));
            st = place_lesion(s, &r, info, placed, d_um, BIG_MIN_RADIUS_UM / mpp, LESION_VERTS, 1,
                              &ok);
            if (st) goto fail;
        }
        for (int i = 0; i < n_itc; i++) {
            double d_um = urange(&r, ITC_MIN_UM, ITC_MAX_UM);
            st = place_lesion(s, &r, info, placed, d_um, ITC_MIN_RADIUS_UM / mpp, ITC_VERTS, 0,
                              &ok);
            if (st) goto fail;
        }
        if (s->n_lesions == 0) {
            st = error_set(WV_EINVAL, "a %lldx%lld slide at %g µm/px has no room for a lesion",
                           (long long)w, (long long)h, mpp);
            goto fail;
        }
        for (int i = 0; i < s->n_lesions; i++) {
            const struct synth_poly *p = &s->lesion_polys[i];
            if (p->xmin < s->les_xmin) s->les_xmin = p->xmin;
            if (p->ymin < s->les_ymin) s->les_ymin = p->ymin;
            if (p->xmax > s->les_xmax) s->les_xmax = p->xmax;
            if (p->ymax > s->les_ymax) s->les_ymax = p->ymax;
        }
    }
    *out = s;
    return WV_OK;
fail:
    synth_slide_free(s);
    return st;
}

int64_t synth_slide_width(const struct synth_slide *s) { return s->w; }
int64_t synth_slide_height(const struct synth_slide *s) { return s->h; }
double synth_slide_mpp(const struct synth_slide *s) { return s->mpp; }
int synth_slide_n_lesions(const struct synth_slide *s) { return s->n_lesions; }

const struct synth_lesion *synth_slide_lesion(const struct synth_slide *s, int i)
{
    return i >= 0 && i < s->n_lesions ? &s->lesions[i] : NULL;
}

double synth_slide_max_lesion_um(const struct synth_slide *s)
{
    double m = 0;
    for (int i = 0; i < s->n_lesions; i++)
        if (s->lesions[i].max_diameter_um > m) m = s->lesions[i].max_diameter_um;
    return m;
}

void synth_render_mask(const struct synth_slide *s, int64_t x, int64_t y, double ds, int w, int h,
                       uint8_t *out)
{
    memset(out, 0, (size_t)w * h);
    double X0 = (double)x * ds, Y0 = (double)y * ds;
    double X1 = X0 + w * ds, Y1 = Y0 + h * ds;
    if (s->n_lesions == 0 || s->les_xmax < X0 || s->les_xmin > X1 || s->les_ymax < Y0 ||
        s->les_ymin > Y1)
        return;
    for (int i = 0; i < s->n_lesions; i++) {
        const struct synth_poly *p = &s->lesion_polys[i];
        if (p->xmax < X0 || p->xmin > X1 || p->ymax < Y0 || p->ymin > Y1) continue;
        for (int j = 0; j < h; j++) synth_raster_row(p, (double)(y + j) * ds, X0, ds, w, out + (size_t)j * w, 255);
    }
}
