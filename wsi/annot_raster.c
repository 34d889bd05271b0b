/*
 * annot_raster.c — polygon rasteriser (contract: annot.h "rasterising"). A scanline engine:
 * for a horizontal line y, every ring's edges that cross it give (x, direction) crossings; sorted
 * by x they give the ring's winding number at every sample point of the line in one sweep.
 * Rules follow ASAP's AnnotationToMask (CAMELYON16_PROTOCOL.md §3.3): non-zero winding, points on
 * a polygon's bounding-box edge are outside, exclusions (negative polygons) are subtracted after
 * all positives. An edge crosses line y when one end is <= y and the other > y (half-open, so a
 * vertex on the line is counted once).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "annot.h"
#include "src/util.h"

struct crossing {
    double x;
    int dir;
};

struct bbox {
    double x0, y0, x1, y1;
};

struct scratch {
    struct crossing *cr;
    size_t cap_cr;
    uint8_t *poly, *pos, *neg; /* (n) each */
    int n;
    struct bbox *boxes; /* one per polygon */
};

static int cmp_crossing(const void *a, const void *b)
{
    double p = ((const struct crossing *)a)->x, q = ((const struct crossing *)b)->x;
    return p < q ? -1 : p > q;
}

static void scratch_free(struct scratch *s)
{
    free(s->cr);
    free(s->poly);
    free(s->pos);
    free(s->neg);
    free(s->boxes);
    memset(s, 0, sizeof *s);
}

static enum wv_status scratch_init(struct scratch *s, const struct annot_set *set, int n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    size_t m = n > 0 ? (size_t)n : 1;
    s->poly = malloc(m);
    s->pos = malloc(m);
    s->neg = malloc(m);
    s->boxes = malloc((size_t)(set->n ? set->n : 1) * sizeof *s->boxes);
    if (!s->poly || !s->pos || !s->neg || !s->boxes) {
        scratch_free(s);
        return error_set(WV_ENOMEM, "out of memory for a raster row of %d points", n);
    }
    for (int i = 0; i < set->n; i++) {
        struct bbox *b = &s->boxes[i];
        b->x0 = b->y0 = INFINITY;
        b->x1 = b->y1 = -INFINITY;
        const struct annot_ring *r = &set->polys[i].rings[0]; /* holes lie inside the outline */
        for (int k = 0; k < r->n; k++) {
            b->x0 = fmin(b->x0, r->xy[2 * k]);
            b->x1 = fmax(b->x1, r->xy[2 * k]);
            b->y0 = fmin(b->y0, r->xy[2 * k + 1]);
            b->y1 = fmax(b->y1, r->xy[2 * k + 1]);
        }
    }
    return WV_OK;
}

/* Crossings of ring r with line y, sorted by x; returns their count or -1 (ENOMEM set). */
static long ring_crossings(struct scratch *s, const struct annot_ring *r, double y)
{
    size_t nc = 0;
    for (int k = 0; k < r->n; k++) {
        const double *a = &r->xy[2 * k], *b = &r->xy[2 * ((k + 1) % r->n)];
        int dir;
        if (a[1] <= y && b[1] > y)
            dir = 1;
        else if (b[1] <= y && a[1] > y)
            dir = -1;
        else
            continue;
        if (nc == s->cap_cr) {
            size_t cap = s->cap_cr ? 2 * s->cap_cr : 64;
            void *p = realloc(s->cr, cap * sizeof *s->cr);
            if (!p) {
                error_set(WV_ENOMEM, "out of memory for %zu edge crossings", cap);
                return -1;
            }
            s->cr = p;
            s->cap_cr = cap;
        }
        s->cr[nc].x = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
        s->cr[nc].dir = dir;
        nc++;
    }
    qsort(s->cr, nc, sizeof *s->cr, cmp_crossing);
    return (long)nc;
}

/* For points i in [lo, hi]: out[i] = v where ring r's winding number is non-zero. */
static enum wv_status ring_fill(struct scratch *s, const struct annot_ring *r, double y,
                                double xs0, double dx, int lo, int hi, uint8_t *out, uint8_t v)
{
    long nc = ring_crossings(s, r, y);
    if (nc < 0) return WV_ENOMEM;
    long k = 0;
    int acc = 0; /* sum of directions of crossings at x <= point: winding = -acc */
    for (int i = lo; i <= hi; i++) {
        double x = xs0 + i * dx;
        while (k < nc && s->cr[k].x <= x) acc += s->cr[k++].dir;
        if (acc) out[i] = v;
        if (k == nc && !acc) break;
    }
    return WV_OK;
}

static enum wv_status classify_row(struct scratch *s, const struct annot_set *set, double y,
                                   double xs0, double dx, int n, uint8_t *inside)
{
    memset(s->pos, 0, (size_t)n);
    memset(s->neg, 0, (size_t)n);
    int any_neg = 0;
    for (int i = 0; i < set->n; i++) {
        const struct annot_polygon *p = &set->polys[i];
        const struct bbox *b = &s->boxes[i];
        if (p->cls == ANNOT_IGNORED || !(y > b->y0 && y < b->y1)) continue;
        /* sample indices strictly inside (x0, x1) */
        double flo = floor((b->x0 - xs0) / dx) + 1, fhi = ceil((b->x1 - xs0) / dx) - 1;
        if (flo < 0) flo = 0;
        if (fhi > n - 1) fhi = n - 1;
        if (flo > fhi) continue;
        int lo = (int)flo, hi = (int)fhi;
        while (lo <= hi && !(xs0 + lo * dx > b->x0)) lo++;
        while (hi >= lo && !(xs0 + hi * dx < b->x1)) hi--;
        if (lo > hi) continue;
        memset(s->poly + lo, 0, (size_t)(hi - lo + 1));
        enum wv_status st = ring_fill(s, &p->rings[0], y, xs0, dx, lo, hi, s->poly, 1);
        for (int r = 1; r < p->n_rings && !st; r++)
            st = ring_fill(s, &p->rings[r], y, xs0, dx, lo, hi, s->poly, 0);
        if (st) return st;
        uint8_t *dst = p->cls == ANNOT_POSITIVE ? s->pos : s->neg;
        any_neg |= p->cls == ANNOT_NEGATIVE;
        for (int k = lo; k <= hi; k++) dst[k] |= s->poly[k];
    }
    for (int k = 0; k < n; k++) inside[k] = s->pos[k] && !(any_neg && s->neg[k]);
    return WV_OK;
}

static enum wv_status check_grid(const struct annot_grid *g)
{
    if (!g || !(g->cell_px > 0) || !isfinite(g->cell_px) || !isfinite(g->x0_px) ||
        !isfinite(g->y0_px) || g->rows < 0 || g->cols < 0)
        return error_set(WV_EINVAL, "bad raster grid");
    return WV_OK;
}

enum wv_status annot_classify_row(const struct annot_set *set, double y, double xs0, double dx,
                                  int n, uint8_t *inside)
{
    if (n < 0 || !(dx > 0)) return error_set(WV_EINVAL, "bad raster row");
    struct scratch s;
    enum wv_status st = scratch_init(&s, set, n);
    if (!st) st = classify_row(&s, set, y, xs0, dx, n, inside);
    scratch_free(&s);
    return st;
}

enum wv_status annot_rasterise_mask(const struct annot_set *set, const struct annot_grid *g,
                                    enum annot_sample sample, uint8_t value, uint8_t *mask)
{
    enum wv_status st = check_grid(g);
    if (st) return st;
    struct scratch s;
    if ((st = scratch_init(&s, set, g->cols))) return st;
    double off = sample == ANNOT_SAMPLE_CENTER ? 0.5 : 0.0;
    for (int r = 0; r < g->rows && !st; r++) {
        uint8_t *row = mask + (size_t)r * g->cols;
        double y = g->y0_px + (r + off) * g->cell_px;
        st = classify_row(&s, set, y, g->x0_px + off * g->cell_px, g->cell_px, g->cols, row);
        for (int c = 0; c < g->cols; c++) row[c] = row[c] ? value : 0;
    }
    scratch_free(&s);
    return st;
}

enum wv_status annot_rasterise_fraction(const struct annot_set *set, const struct annot_grid *g,
                                        int ss, float *fraction)
{
    enum wv_status st = check_grid(g);
    if (st) return st;
    if (ss < 1 || ss > 64) return error_set(WV_EINVAL, "supersampling %d not in [1, 64]", ss);
    if (g->cols > INT32_MAX / ss) return error_set(WV_EINVAL, "raster row too long");
    int n = g->cols * ss;
    struct scratch s;
    if ((st = scratch_init(&s, set, n))) return st;
    uint8_t *in = malloc((size_t)(n ? n : 1));
    uint32_t *count = calloc((size_t)(g->cols ? g->cols : 1), sizeof *count);
    if (!in || !count) st = error_set(WV_ENOMEM, "out of memory for a raster row");
    double sub = g->cell_px / ss;
    for (int r = 0; r < g->rows && !st; r++) {
        memset(count, 0, (size_t)g->cols * sizeof *count);
        for (int j = 0; j < ss && !st; j++) {
            double y = g->y0_px + r * g->cell_px + (j + 0.5) * sub;
            st = classify_row(&s, set, y, g->x0_px + 0.5 * sub, sub, n, in);
            for (int k = 0; k < n; k++) count[k / ss] += in[k];
        }
        for (int c = 0; c < g->cols; c++)
            fraction[(size_t)r * g->cols + c] = (float)count[c] / (float)(ss * ss);
    }
    free(in);
    free(count);
    scratch_free(&s);
    return st;
}
