/*
 * test_overlay.c — heatmaps/overlay: the colour map's ends, the PNG's size, NaN cells left
 * transparent (thumbnail pixel unchanged), tissue cells blended with the map colour, the colour
 * bar (1 at the top, 0 at the bottom), atomic failure (no file, no temp) and the slide path on
 * the CMU-1-Small-Region fixture.
 */
#include "heatmaps/overlay.h"

#include <cairo.h>
#include <dirent.h>
#include <unistd.h>

#include "src/util.h"
#include "testutil.h"
#include "wsi/slide.h"

/* RGB of a pixel of a PNG read back with cairo. */
static void px(cairo_surface_t *s, int x, int y, int rgb[3])
{
    const unsigned char *d = cairo_image_surface_get_data(s);
    uint32_t v = *(const uint32_t *)(const void *)(d + (size_t)y * cairo_image_surface_get_stride(s) + 4 * (size_t)x);
    rgb[0] = (v >> 16) & 255, rgb[1] = (v >> 8) & 255, rgb[2] = v & 255;
}

static int near(const int a[3], double r, double g, double b, int tol)
{
    return abs(a[0] - (int)lround(r)) <= tol && abs(a[1] - (int)lround(g)) <= tol &&
           abs(a[2] - (int)lround(b)) <= tol;
}

int main(void)
{
    uint8_t c0[3], c1[3], cn[3];
    overlay_colormap(0, c0);
    overlay_colormap(1, c1);
    overlay_colormap(NAN, cn);
    CHECK(c1[0] > 150 && c1[1] < 80 && c1[2] < 80); /* 1 is red */
    CHECK(c0[2] > c0[0] && c0[2] > c0[1]);           /* 0 is blue */
    uint8_t lo[3], hi[3];
    overlay_colormap(-3, lo);
    overlay_colormap(7, hi);
    CHECK(!memcmp(lo, c0, 3) && !memcmp(hi, c1, 3));

    /* picture 160 × 80 px of a light grey slide, ds = 4 level-0 px per px; cells of 64 level-0 px
     * = 16 picture px → grid 5 × 10. Column 0 is off tissue (NaN), the rest 0.0 … 1.0. */
    enum { W = 160, H = 80, R = 5, C = 10 };
    static uint8_t rgb[W * H * 3];
    memset(rgb, 220, sizeof rgb);
    float hm[R * C];
    uint8_t ts[R * C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            ts[r * C + c] = c != 0;
            hm[r * C + c] = c ? (c == C - 1 ? 1.0f : (float)r / (R - 1)) : NAN;
        }
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/overlay", tu_tmp());
    util_mkdir_p(dir);
    snprintf(path, sizeof path, "%s/cmu1.png", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/ov.png", dir);
    unlink(path);
    CHECK_MSG(overlay_write_png_rgb(rgb, W, H, 4.0, hm, ts, R, C, 64.0, path) == WV_OK, "%s", error_msg());
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS);
    if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
        CHECK(cairo_image_surface_get_width(s) == W + OVERLAY_BAR_PANEL);
        CHECK(cairo_image_surface_get_height(s) == H);
        int p[3];
        px(s, 8, 40, p); /* centre of an off-tissue cell: the thumbnail as it was */
        CHECK_MSG(near(p, 220, 220, 220, 0), "NaN cell %d %d %d", p[0], p[1], p[2]);
        px(s, 9 * 16 + 8, 2 * 16 + 8, p); /* a cell of value 1: half thumbnail, half red */
        CHECK_MSG(near(p, 0.5 * 220 + 0.5 * c1[0], 0.5 * 220 + 0.5 * c1[1], 0.5 * 220 + 0.5 * c1[2], 1),
                  "value-1 cell %d %d %d", p[0], p[1], p[2]);
        px(s, 3 * 16 + 8, 8, p); /* row 0, value 0 */
        CHECK_MSG(near(p, 0.5 * 220 + 0.5 * c0[0], 0.5 * 220 + 0.5 * c0[1], 0.5 * 220 + 0.5 * c0[2], 1),
                  "value-0 cell %d %d %d", p[0], p[1], p[2]);
        px(s, 16, 40, p); /* the outline between column 0 and 1 is green-ish */
        CHECK_MSG(p[1] > p[0] + 40 && p[1] > p[2] + 40, "outline %d %d %d", p[0], p[1], p[2]);
        px(s, W + 16, 12, p); /* top row of the bar: colour of 1 */
        CHECK_MSG(near(p, c1[0], c1[1], c1[2], 2), "bar top %d %d %d", p[0], p[1], p[2]);
        px(s, W + 16, H - 13, p); /* bottom: colour of 0 */
        CHECK_MSG(near(p, c0[0], c0[1], c0[2], 2), "bar bottom %d %d %d", p[0], p[1], p[2]);
        int dark = 0; /* the labels: some dark text pixels right of the bar */
        for (int y = 0; y < H; y++)
            for (int x = W + 28; x < W + OVERLAY_BAR_PANEL; x++) {
                px(s, x, y, p);
                dark += p[0] < 100 && p[1] < 100 && p[2] < 100;
            }
        CHECK_MSG(dark > 5, "label pixels %d", dark);
    }
    cairo_surface_destroy(s);

    /* failure: folder missing → error, nothing written */
    char bad[1300];
    snprintf(bad, sizeof bad, "%s/missing/ov.png", dir);
    CHECK(overlay_write_png_rgb(rgb, W, H, 4.0, hm, ts, R, C, 64.0, bad) == WV_EIO);
    printf("  missing folder: %s\n", error_msg());
    error_clear();
    CHECK(overlay_write_png_rgb(rgb, 0, H, 4.0, hm, ts, R, C, 64.0, path) == WV_EINVAL);
    error_clear();
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(n == 1); /* only ov.png, no temp */

    /* a real slide: CMU-1-Small-Region.svs (2220 × 2967), cells of 256 level-0 px */
    char sp[1200];
    snprintf(sp, sizeof sp, "%s/fixtures/slides/CMU-1-Small-Region.svs", tu_shared());
    struct slide *sl = NULL;
    if (access(sp, R_OK) == 0 && slide_open(sp, &sl) == WV_OK) {
        int64_t sw = slide_level_width(sl, 0), sh = slide_level_height(sl, 0);
        int cols = (int)((sw + 255) / 256), rows = (int)((sh + 255) / 256);
        float *g = malloc(sizeof(float) * rows * cols);
        for (int i = 0; i < rows * cols; i++) g[i] = (i % 3) ? (float)(i % 11) / 10 : NAN;
        snprintf(path, sizeof path, "%s/cmu1.png", dir);
        CHECK_MSG(overlay_write_png(sl, g, NULL, rows, cols, 256.0, 512, path) == WV_OK, "%s", error_msg());
        cairo_surface_t *t = cairo_image_surface_create_from_png(path);
        CHECK(cairo_surface_status(t) == CAIRO_STATUS_SUCCESS &&
              cairo_image_surface_get_height(t) == 512 &&
              cairo_image_surface_get_width(t) == (int)ceil(sw / (sh / 512.0)) + OVERLAY_BAR_PANEL);
        cairo_surface_destroy(t);
        free(g);
        slide_close(sl);
    } else {
        printf("  CMU-1-Small-Region.svs not available: slide case skipped\n");
        error_clear();
    }
    return tu_finish("test_overlay");
}
