/* test_planner.c — wsi/planner.h on synthetic tissue masks: parameter checks, grid size, which
 * regions are kept, their order, core/read rectangles and level-0 coordinates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsi/planner.h"
#include "wsi/tissue.h"

/* A mask of mw×mh px, each covering ds×ds level-0 px, all background. */
static struct tissue_mask make_mask(int mw, int mh, double ds, int64_t sw, int64_t sh)
{
    struct tissue_mask m;
    memset(&m, 0, sizeof m);
    m.mask = calloc((size_t)mw * mh, 1);
    m.w = mw, m.h = mh;
    m.downsample_x = m.downsample_y = ds;
    m.mpp_x = m.mpp_y = ds * 0.25;
    m.slide_w = sw, m.slide_h = sh;
    return m;
}

static void test_params(void)
{
    struct plan_params p;
    plan_params_default(&p);
    CHECK(p.region_px == 10000 && p.overlap_px == 256 && p.target_mpp == 0.5);
    CHECK(plan_check_params(&p) == WV_OK);
    p.overlap_px = 100;
    error_clear();
    CHECK(plan_check_params(&p) == WV_EINVAL);
    CHECK_MSG(strstr(error_msg(), "multiple of 32") != NULL, "%s", error_msg());
    error_clear();
    p.overlap_px = -32;
    CHECK(plan_check_params(&p) == WV_EINVAL);
    error_clear();
    p.overlap_px = 0;
    CHECK(plan_check_params(&p) == WV_OK);
    p.region_px = 0;
    CHECK(plan_check_params(&p) == WV_EINVAL);
    error_clear();
    p.region_px = 64, p.target_mpp = 0;
    CHECK(plan_check_params(&p) == WV_EINVAL);
    error_clear();
    struct plan pl;
    p.target_mpp = 0.5;
    CHECK(plan_regions(NULL, 100, 100, 0, 0, &p, &pl) == WV_EINVAL); /* unknown mpp */
    error_clear();
}

static void test_grid(void)
{
    /* slide 1000×700 level-0 px at 0.25 µm/px; target 0.5 µm/px → 500×350 target px;
     * R = 128 → grid 4×3 (last column 116 px wide, last row 94 px high) */
    struct plan_params p = {0.5, 128, 32};
    struct plan pl;
    CHECK(plan_regions(NULL, 1000, 700, 0.25, 0.25, &p, &pl) == WV_OK);
    CHECK(pl.width == 500 && pl.height == 350);
    CHECK(pl.n_cols == 4 && pl.n_rows == 3 && pl.n_regions == 12);
    CHECK(pl.ds_x == 2.0);
    /* row-major order */
    int ordered = 1;
    for (size_t i = 0; i < pl.n_regions; i++)
        ordered &= pl.regions[i].row == (int)i / 4 && pl.regions[i].col == (int)i % 4;
    CHECK(ordered);
    const struct plan_region *g = &pl.regions[0];
    CHECK(g->core.x == 0 && g->core.y == 0 && g->core.w == 128 && g->core.h == 128);
    CHECK(g->read.x == -32 && g->read.y == -32 && g->read.w == 192 && g->read.h == 192);
    CHECK(g->core_l0.x == 0 && g->core_l0.w == 256 && g->read_l0.x == -64 && g->read_l0.w == 384);
    g = &pl.regions[11]; /* last: row 2, col 3 */
    CHECK(g->core.x == 384 && g->core.y == 256 && g->core.w == 116 && g->core.h == 94);
    CHECK(g->read.x == 352 && g->read.w == 180 && g->read.h == 158); /* padded past the edge */
    CHECK(g->core_l0.x == 768 && g->core_l0.y == 512 && g->core_l0.w == 232 && g->core_l0.h == 188);
    /* cores tile the slide exactly */
    int64_t area = 0;
    for (size_t i = 0; i < pl.n_regions; i++) area += pl.regions[i].core.w * pl.regions[i].core.h;
    CHECK(area == 500 * 350);
    plan_free(&pl);

    /* non-integer scale: 0.499 µm/px slide at 0.5 → level-0 coordinates rounded; neighbours
     * share their boundary */
    struct plan_params q = {0.5, 100, 0};
    CHECK(plan_regions(NULL, 2220, 2967, 0.499, 0.499, &q, &pl) == WV_OK);
    CHECK(pl.width == 2216 && pl.height == 2962); /* ceil(2220·0.998) */
    int shared = 1;
    for (size_t i = 0; i + 1 < pl.n_regions; i++)
        if (pl.regions[i + 1].row == pl.regions[i].row)
            shared &= pl.regions[i].core_l0.x + pl.regions[i].core_l0.w == pl.regions[i + 1].core_l0.x;
    CHECK(shared);
    CHECK(pl.regions[1].core_l0.x == 100); /* round(100 · 1.002004) = 100 */
    CHECK(pl.regions[5].core_l0.x == 501); /* round(500 · 1.002004) = 501 */
    plan_free(&pl);
}

static void test_tissue_selection(void)
{
    /* slide 1024×1024 level-0 px, 0.25 µm/px, mask at 32× (32×32 px); target 0.5, R = 64
     * target px = 128 level-0 px = 4 mask px → 8×8 grid */
    struct tissue_mask m = make_mask(32, 32, 32, 1024, 1024);
    struct plan_params p = {0.5, 64, 0};
    struct plan pl;
    CHECK(plan_regions(&m, 1024, 1024, 0.25, 0.25, &p, &pl) == WV_OK);
    CHECK(pl.n_cols == 8 && pl.n_rows == 8 && pl.n_regions == 0); /* no tissue, no regions */
    plan_free(&pl);
    /* one tissue pixel at mask (9, 5) → level-0 [288, 320) × [160, 192) → region row 1, col 2 */
    m.mask[5 * 32 + 9] = 1;
    /* a 2×1 blob on the border between cols 3/4 of row 6 → mask (15..16, 26) */
    m.mask[26 * 32 + 15] = m.mask[26 * 32 + 16] = 1;
    CHECK(plan_regions(&m, 1024, 1024, 0.25, 0.25, &p, &pl) == WV_OK);
    CHECK(pl.n_regions == 3);
    if (pl.n_regions == 3) {
        CHECK(pl.regions[0].row == 1 && pl.regions[0].col == 2);
        CHECK(pl.regions[1].row == 6 && pl.regions[1].col == 3);
        CHECK(pl.regions[2].row == 6 && pl.regions[2].col == 4);
        CHECK(pl.regions[0].core_l0.x == 256 && pl.regions[0].core_l0.y == 128);
    }
    plan_free(&pl);
    /* halo does not select: tissue only in a neighbour's halo keeps just its own region */
    p.overlap_px = 64;
    CHECK(plan_regions(&m, 1024, 1024, 0.25, 0.25, &p, &pl) == WV_OK);
    CHECK(pl.n_regions == 3);
    plan_free(&pl);
    /* mask pixel touching a core only at its edge: mask (8, 5) covers [256, 288) — inside col 2;
     * mask (7, 5) covers [224, 256) — col 1 only */
    memset(m.mask, 0, 32 * 32);
    m.mask[5 * 32 + 7] = 1;
    p.overlap_px = 0;
    CHECK(plan_regions(&m, 1024, 1024, 0.25, 0.25, &p, &pl) == WV_OK);
    CHECK(pl.n_regions == 1 && pl.regions[0].col == 1);
    plan_free(&pl);
    free(m.mask);
}

int main(void)
{
    test_params();
    test_grid();
    test_tissue_selection();
    return tu_finish("test_planner");
}
