/*
 * test_lesions.c — lesion candidates (src/lesions.h) on hand-made heatmaps: regions (8-connected,
 * diagonal joins, NaN off tissue), several peaks in one region with and without suppression,
 * sub-threshold peaks, plateaus, coordinates in level-0 px with origin and cell size, order,
 * empty and all-NaN maps, bad arguments.
 */
#include "src/lesions.h"

#include <math.h>
#include <stdlib.h>

#include "testutil.h"

#define N_ NAN

static struct lesion *run(const float *h, int rows, int cols, const struct lesion_params *p,
                          size_t *n)
{
    struct lesion *l = NULL;
    enum wv_status st = lesions_find(h, rows, cols, p, &l, n);
    CHECK_MSG(st == WV_OK, "lesions_find: %s", error_msg());
    return l;
}

static void test_regions(void)
{
    /* two regions: A = a diagonal chain (8-connected) with max 0.9 at (1,1), B = a block with
     * max 0.8 at (3,5); NaN cells (off tissue) break nothing and are never candidates */
    const float h[5 * 7] = {
        0.6f, 0.1f, 0.0f, 0.0f, N_,   0.0f, 0.0f, /* row 0 */
        0.1f, 0.9f, 0.1f, 0.0f, N_,   0.0f, 0.0f, /* row 1 */
        0.0f, 0.1f, 0.7f, 0.0f, 0.0f, 0.6f, 0.6f, /* row 2 */
        N_,   N_,   0.0f, 0.0f, 0.0f, 0.8f, 0.7f, /* row 3 */
        N_,   N_,   0.0f, 0.0f, 0.0f, 0.0f, 0.2f, /* row 4 */
    };
    struct lesion_params p;
    lesion_params_default(&p);
    p.peak_threshold = 2.0f; /* regions only */
    p.cell_size_px = 64;
    p.origin_x_px = 1000;
    p.origin_y_px = 2000;
    size_t n;
    struct lesion *l = run(h, 5, 7, &p, &n);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(l[0].kind == LESION_REGION && l[0].row == 1 && l[0].col == 1 && l[0].prob == 0.9f);
        CHECK(l[0].area_cells == 3); /* (0,0), (1,1), (2,2) */
        CHECK(l[0].x_px == 1000 + 1.5 * 64 && l[0].y_px == 2000 + 1.5 * 64);
        CHECK(l[1].row == 3 && l[1].col == 5 && l[1].area_cells == 4 && l[1].prob == 0.8f);
    }
    free(l);
    /* at 0.65 the chain loses (0,0) but (1,1)+(2,2) stay joined diagonally: still 2 regions */
    p.threshold = 0.65f;
    l = run(h, 5, 7, &p, &n);
    CHECK(n == 2 && l && l[0].area_cells == 2 && l[1].area_cells == 2);
    free(l);
}

static void test_peaks(void)
{
    /* one elongated region with two foci 0.95 at (1,1) and 0.9 at (1,8), and a sub-threshold
     * focus 0.45 at (5,4) */
    float h[7 * 10];
    for (int i = 0; i < 70; i++) h[i] = 0.1f;
    for (int c = 0; c < 10; c++) h[1 * 10 + c] = 0.6f;
    h[1 * 10 + 1] = 0.95f;
    h[1 * 10 + 8] = 0.9f;
    h[1 * 10 + 2] = 0.7f;
    h[5 * 10 + 4] = 0.45f;
    h[6 * 10 + 9] = N_;
    struct lesion_params p;
    lesion_params_default(&p);
    p.threshold = 0.5f;
    p.peak_threshold = 0.4f;
    p.nms_radius = 3;
    size_t n;
    struct lesion *l = run(h, 7, 10, &p, &n);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(l[0].kind == LESION_REGION && l[0].row == 1 && l[0].col == 1 && l[0].area_cells == 10);
        CHECK(l[1].kind == LESION_PEAK && l[1].row == 1 && l[1].col == 8 && l[1].area_cells == 10);
        CHECK(l[2].kind == LESION_PEAK && l[2].row == 5 && l[2].col == 4 && l[2].area_cells == 0 &&
              l[2].prob == 0.45f);
    }
    free(l);
    /* a radius covering the second focus suppresses it; the sub-threshold one too at 4 */
    p.nms_radius = 7;
    l = run(h, 7, 10, &p, &n);
    CHECK(n == 1 && l && l[0].col == 1);
    free(l);
    /* radius 0 keeps every strict local maximum but never duplicates the region's maximum */
    p.nms_radius = 0;
    l = run(h, 7, 10, &p, &n);
    CHECK(n == 3);
    free(l);
}

static void test_plateau_and_order(void)
{
    /* a 2×2 plateau of 0.7 and a separate single cell 0.7: equal probabilities sort row-major;
     * the plateau gives one peak (its first cell) */
    const float h[4 * 6] = {
        0.0f, 0.7f, 0.7f, 0.0f, 0.0f, 0.0f,
        0.0f, 0.7f, 0.7f, 0.0f, 0.0f, 0.7f,
        0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
        0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
    };
    struct lesion_params p;
    lesion_params_default(&p);
    p.threshold = 0.9f; /* no region */
    p.peak_threshold = 0.5f;
    p.nms_radius = 0;
    size_t n;
    struct lesion *l = run(h, 4, 6, &p, &n);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(l[0].row == 0 && l[0].col == 1 && l[0].kind == LESION_PEAK);
        CHECK(l[1].row == 1 && l[1].col == 5);
        CHECK(l[0].x_px == 1.5 * 32 && l[0].y_px == 0.5 * 32);
    }
    free(l);
}

static void test_edges(void)
{
    struct lesion_params p;
    lesion_params_default(&p);
    size_t n = 99;
    struct lesion *l;
    float nan4[4] = {N_, N_, N_, N_};
    l = run(nan4, 2, 2, &p, &n);
    CHECK(n == 0 && l == NULL);
    float one = 0.99f;
    l = run(&one, 1, 1, &p, &n);
    CHECK(n == 1 && l && l[0].area_cells == 1 && l[0].kind == LESION_REGION);
    free(l);
    CHECK(lesions_find(&one, 0, 1, &p, &l, &n) == WV_EINVAL);
    error_clear();
    p.cell_size_px = 0;
    CHECK(lesions_find(&one, 1, 1, &p, &l, &n) == WV_EINVAL);
    error_clear();
    /* all cells above: one region of the whole grid, max at its first maximal cell */
    float full[3 * 3] = {0.6f, 0.6f, 0.6f, 0.6f, 0.8f, 0.8f, 0.6f, 0.6f, 0.6f};
    lesion_params_default(&p);
    l = run(full, 3, 3, &p, &n);
    CHECK(n == 1 && l && l[0].row == 1 && l[0].col == 1 && l[0].area_cells == 9);
    free(l);
}

int main(void)
{
    test_regions();
    test_peaks();
    test_plateau_and_order();
    test_edges();
    return tu_finish("test_lesions");
}
