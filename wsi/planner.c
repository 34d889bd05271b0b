/* planner.c — the region grid, tissue selection and coordinates; contract in planner.h. */
#include "planner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/util.h"
#include "tissue.h"

/* Grids above this many cells are a parameter mistake (R = 1 on a gigapixel slide). */
#define PLAN_MAX_CELLS 100000000LL

void plan_params_default(struct plan_params *p)
{
    p->target_mpp = PLAN_DEFAULT_TARGET_MPP;
    p->region_px = PLAN_DEFAULT_REGION_PX;
    p->overlap_px = PLAN_DEFAULT_OVERLAP_PX;
}

enum wv_status plan_check_params(const struct plan_params *p)
{
    if (!(p->target_mpp > 0) || !isfinite(p->target_mpp))
        return error_set(WV_EINVAL, "target resolution %g µm/px: must be positive", p->target_mpp);
    if (p->region_px < 1 || p->region_px > 1000000)
        return error_set(WV_EINVAL, "region size %lld px: must be in [1, 1000000]",
                         (long long)p->region_px);
    if (p->overlap_px < 0 || p->overlap_px > 1000000)
        return error_set(WV_EINVAL, "overlap %lld px: must be in [0, 1000000]",
                         (long long)p->overlap_px);
    if (p->overlap_px % PLAN_HALO_MULTIPLE)
        return error_set(WV_EINVAL, "overlap %lld px: must be a multiple of %d (the encoder's "
                                    "stride)", (long long)p->overlap_px, PLAN_HALO_MULTIPLE);
    return WV_OK;
}

/* Target-px rectangle → level-0 px, rounding both edges to the nearest level-0 px. */
static struct plan_rect to_l0(struct plan_rect r, double dsx, double dsy)
{
    struct plan_rect o;
    o.x = (int64_t)llround(r.x * dsx);
    o.y = (int64_t)llround(r.y * dsy);
    o.w = (int64_t)llround((r.x + r.w) * dsx) - o.x;
    o.h = (int64_t)llround((r.y + r.h) * dsy) - o.y;
    return o;
}

enum wv_status plan_regions(const struct tissue_mask *mask, int64_t slide_w, int64_t slide_h,
                            double mpp_x, double mpp_y, const struct plan_params *p,
                            struct plan *out)
{
    memset(out, 0, sizeof *out);
    enum wv_status st = plan_check_params(p);
    if (st != WV_OK) return st;
    if (!(mpp_x > 0) || !(mpp_y > 0) || !isfinite(mpp_x) || !isfinite(mpp_y))
        return error_set(WV_EINVAL, "pixel size unknown: give --mpp");
    if (slide_w <= 0 || slide_h <= 0)
        return error_set(WV_EINVAL, "slide size %lldx%lld: must be positive", (long long)slide_w,
                         (long long)slide_h);
    double dsx = p->target_mpp / mpp_x, dsy = p->target_mpp / mpp_y;
    /* the 1e-9 keeps an exact division (W0 = k·ds) from growing a column through rounding */
    int64_t W = (int64_t)ceil(slide_w / dsx - 1e-9), H = (int64_t)ceil(slide_h / dsy - 1e-9);
    if (W < 1) W = 1;
    if (H < 1) H = 1;
    int64_t R = p->region_px, halo = p->overlap_px;
    int64_t cols = (W + R - 1) / R, rows = (H + R - 1) / R;
    if (cols * rows > PLAN_MAX_CELLS)
        return error_set(WV_EINVAL, "region grid %lldx%lld is too large (region size %lld px)",
                         (long long)cols, (long long)rows, (long long)R);
    size_t cap = 0, n = 0;
    struct plan_region *regs = NULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            struct plan_region g;
            g.row = (int)r, g.col = (int)c;
            g.core.x = c * R, g.core.y = r * R;
            g.core.w = W - g.core.x < R ? W - g.core.x : R;
            g.core.h = H - g.core.y < R ? H - g.core.y : R;
            if (mask && !tissue_any_in_rect(mask, g.core.x * dsx, g.core.y * dsy,
                                            (g.core.x + g.core.w) * dsx,
                                            (g.core.y + g.core.h) * dsy))
                continue;
            g.read.x = g.core.x - halo, g.read.y = g.core.y - halo;
            g.read.w = g.core.w + 2 * halo, g.read.h = g.core.h + 2 * halo;
            g.core_l0 = to_l0(g.core, dsx, dsy);
            g.read_l0 = to_l0(g.read, dsx, dsy);
            if (n == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                struct plan_region *nr = realloc(regs, ncap * sizeof *nr);
                if (!nr) {
                    free(regs);
                    return error_set(WV_ENOMEM, "out of memory for %zu planned regions", ncap);
                }
                regs = nr, cap = ncap;
            }
            regs[n++] = g;
        }
    }
    out->params = *p;
    out->ds_x = dsx, out->ds_y = dsy;
    out->width = W, out->height = H;
    out->n_cols = (int)cols, out->n_rows = (int)rows;
    out->n_regions = n;
    out->regions = regs;
    return WV_OK;
}

void plan_free(struct plan *p)
{
    if (!p) return;
    free(p->regions);
    memset(p, 0, sizeof *p);
}
