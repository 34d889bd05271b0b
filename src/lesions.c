/*
 * lesions.c — lesion candidates from a heatmap (lesions.h): 8-connected components above the
 * region threshold (breadth-first labelling), local maxima with greedy non-maximum suppression,
 * sorted by descending probability then row-major cell index.
 */
#include "lesions.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void lesion_params_default(struct lesion_params *p)
{
    p->threshold = 0.5f;
    p->peak_threshold = 0.5f;
    p->nms_radius = 4;
    p->cell_size_px = 32.0;
    p->origin_x_px = 0.0;
    p->origin_y_px = 0.0;
}

static int cmp_lesion(const void *a, const void *b)
{
    const struct lesion *x = a, *y = b;
    if (x->prob != y->prob) return x->prob > y->prob ? -1 : 1;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

/* a peak candidate: value and row-major index */
struct pk {
    float p;
    size_t q;
};
static int cmp_pk(const void *a, const void *b)
{
    const struct pk *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->q > y->q) - (x->q < y->q);
}

static void fill(struct lesion *l, const struct lesion_params *p, int cols, size_t q, float v,
                 size_t area, enum lesion_kind kind)
{
    l->row = (int)(q / (size_t)cols);
    l->col = (int)(q % (size_t)cols);
    l->prob = v;
    l->x_px = p->origin_x_px + (l->col + 0.5) * p->cell_size_px;
    l->y_px = p->origin_y_px + (l->row + 0.5) * p->cell_size_px;
    l->area_cells = area;
    l->kind = kind;
}

/* mark cells within Chebyshev distance `rad` of q as suppressed */
static void suppress(uint8_t *sup, int rows, int cols, size_t q, int rad)
{
    int r = (int)(q / (size_t)cols), c = (int)(q % (size_t)cols);
    int r0 = r - rad < 0 ? 0 : r - rad, r1 = r + rad >= rows ? rows - 1 : r + rad;
    int c0 = c - rad < 0 ? 0 : c - rad, c1 = c + rad >= cols ? cols - 1 : c + rad;
    for (int y = r0; y <= r1; y++) memset(sup + (size_t)y * cols + c0, 1, (size_t)(c1 - c0 + 1));
}

enum wv_status lesions_find(const float *heat, int rows, int cols, const struct lesion_params *p,
                            struct lesion **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (rows < 1 || cols < 1)
        return error_set(WV_EINVAL, "lesions: heatmap %d x %d cells", rows, cols);
    if (!(p->cell_size_px > 0) || p->nms_radius < 0 || isnan(p->threshold) ||
        isnan(p->peak_threshold))
        return error_set(WV_EINVAL, "lesions: cell size %g px, nms radius %d: out of range",
                         p->cell_size_px, p->nms_radius);
    const size_t G = (size_t)rows * cols;
    enum wv_status st = WV_OK;
    int32_t *label = wv_malloc(G * sizeof *label, "lesion labels");
    size_t *queue = wv_malloc(G * sizeof *queue, "lesion queue");
    uint8_t *sup = wv_calloc(G, 1, "lesion suppression map");
    size_t *area = NULL;
    struct pk *peaks = NULL;
    struct lesion *res = NULL;
    size_t n_res = 0, cap = 0, n_reg = 0;
    if (!label || !queue || !sup) {
        st = WV_ENOMEM;
        goto done;
    }
    /* regions: breadth-first labelling from each unlabelled seed in row-major order */
    for (size_t q = 0; q < G; q++) label[q] = -1;
    size_t area_cap = 0;
    for (size_t s = 0; s < G; s++) {
        if (label[s] >= 0 || !(heat[s] >= p->threshold)) continue; /* NaN fails >= */
        size_t head = 0, tail = 0, best = s;
        queue[tail++] = s;
        label[s] = (int32_t)n_reg;
        while (head < tail) {
            size_t q = queue[head++];
            if (heat[q] > heat[best] || (heat[q] == heat[best] && q < best)) best = q;
            int r = (int)(q / (size_t)cols), c = (int)(q % (size_t)cols);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int y = r + dy, x = c + dx;
                    if ((!dy && !dx) || y < 0 || y >= rows || x < 0 || x >= cols) continue;
                    size_t q2 = (size_t)y * cols + x;
                    if (label[q2] < 0 && heat[q2] >= p->threshold) {
                        label[q2] = (int32_t)n_reg;
                        queue[tail++] = q2;
                    }
                }
        }
        if (n_reg == area_cap) {
            area_cap = area_cap ? 2 * area_cap : 64;
            size_t *a2 = realloc(area, area_cap * sizeof *area);
            if (!a2) {
                st = error_set(WV_ENOMEM, "lesion regions");
                goto done;
            }
            area = a2;
        }
        area[n_reg] = tail;
        if (n_res == cap) {
            cap = cap ? 2 * cap : 64;
            struct lesion *r2 = realloc(res, cap * sizeof *res);
            if (!r2) {
                st = error_set(WV_ENOMEM, "lesion candidates");
                goto done;
            }
            res = r2;
        }
        fill(&res[n_res++], p, cols, best, heat[best], tail, LESION_REGION);
        suppress(sup, rows, cols, best, p->nms_radius);
        n_reg++;
    }
    /* peaks: p > each earlier (row-major) neighbour and p ≥ each later one, so a plateau yields
     * its first cell; NaN neighbours are ignored */
    size_t n_pk = 0;
    if (p->peak_threshold <= 1.0f) {
        peaks = wv_malloc(G * sizeof *peaks, "lesion peaks");
        if (!peaks) {
            st = WV_ENOMEM;
            goto done;
        }
        for (size_t q = 0; q < G; q++) {
            float v = heat[q];
            if (!(v >= p->peak_threshold)) continue;
            int r = (int)(q / (size_t)cols), c = (int)(q % (size_t)cols), ok = 1;
            for (int dy = -1; dy <= 1 && ok; dy++)
                for (int dx = -1; dx <= 1 && ok; dx++) {
                    int y = r + dy, x = c + dx;
                    if ((!dy && !dx) || y < 0 || y >= rows || x < 0 || x >= cols) continue;
                    size_t q2 = (size_t)y * cols + x;
                    float w = heat[q2];
                    if (isnan(w)) continue;
                    if (q2 < q ? !(v > w) : !(v >= w)) ok = 0;
                }
            if (ok) peaks[n_pk++] = (struct pk){v, q};
        }
        qsort(peaks, n_pk, sizeof *peaks, cmp_pk);
    }
    for (size_t i = 0; i < n_pk; i++) {
        size_t q = peaks[i].q;
        if (sup[q]) continue;
        if (n_res == cap) {
            cap = cap ? 2 * cap : 64;
            struct lesion *r2 = realloc(res, cap * sizeof *res);
            if (!r2) {
                st = error_set(WV_ENOMEM, "lesion candidates");
                goto done;
            }
            res = r2;
        }
        fill(&res[n_res++], p, cols, q, peaks[i].p, label[q] >= 0 ? area[label[q]] : 0,
             LESION_PEAK);
        suppress(sup, rows, cols, q, p->nms_radius);
    }
    if (n_res) qsort(res, n_res, sizeof *res, cmp_lesion);
done:
    free(label);
    free(queue);
    free(sup);
    free(area);
    free(peaks);
    if (st) {
        free(res);
        return st;
    }
    *out = res;
    *n_out = n_res;
    return WV_OK;
}
