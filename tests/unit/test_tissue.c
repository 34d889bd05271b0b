/* test_tissue.c — wsi/tissue.h: synthetic images (flat white, flat colour, a stained disc with a
 * hole and a speck), then CMU-1-Small-Region.svs (fraction, a glass corner, a tissue point). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "wsi/slide.h"
#include "wsi/tissue.h"

enum { W = 120, H = 100 };

static void fill(uint8_t *rgb, int n, uint8_t r, uint8_t g, uint8_t b)
{
    for (int k = 0; k < n; k++) rgb[3 * k] = r, rgb[3 * k + 1] = g, rgb[3 * k + 2] = b;
}

static double frac(const uint8_t *m, int n)
{
    int c = 0;
    for (int k = 0; k < n; k++) c += m[k];
    return (double)c / n;
}

static void test_synthetic(void)
{
    uint8_t *rgb = malloc(W * H * 3), *m = malloc(W * H);
    int thr;
    struct tissue_params p;
    tissue_params_default(&p);

    /* all glass, with a little noise: no tissue (not everything) */
    fill(rgb, W * H, 245, 245, 245);
    for (int k = 0; k < W * H; k += 7) rgb[3 * k] = 240;
    CHECK(tissue_detect_rgb(rgb, W, H, 32, &p, m, &thr) == WV_OK);
    CHECK_MSG(frac(m, W * H) == 0, "white slide: fraction %g", frac(m, W * H));
    CHECK(thr == 256);
    /* one flat colour everywhere: a flat histogram, no tissue */
    fill(rgb, W * H, 200, 120, 180);
    CHECK(tissue_detect_rgb(rgb, W, H, 32, &p, m, &thr) == WV_OK);
    CHECK(frac(m, W * H) == 0);
    /* pure black and pure white halves: saturation 0 on both */
    fill(rgb, W * H, 255, 255, 255);
    memset(rgb, 0, W * H * 3 / 2);
    CHECK(tissue_detect_rgb(rgb, W, H, 32, &p, m, &thr) == WV_OK);
    CHECK(frac(m, W * H) == 0);

    /* pink disc (r = 30) with a white hole (r = 5) at (40, 50), a 2×2 speck at (100, 10) */
    fill(rgb, W * H, 240, 240, 242);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int d2 = (x - 40) * (x - 40) + (y - 50) * (y - 50);
            uint8_t *c = rgb + 3 * (y * W + x);
            if (d2 <= 30 * 30 && d2 > 5 * 5) c[0] = 210, c[1] = 120, c[2] = 190;
            if (x >= 100 && x < 102 && y >= 10 && y < 12) c[0] = 150, c[1] = 60, c[2] = 140;
        }
    CHECK(tissue_detect_rgb(rgb, W, H, 32, &p, m, &thr) == WV_OK);
    CHECK(thr >= p.min_saturation && thr < 256);
    CHECK(m[50 * W + 40] == 1);      /* the hole is filled */
    CHECK(m[50 * W + 20] == 1);      /* inside the disc */
    CHECK(m[0] == 0);                /* glass corner */
    CHECK(m[50 * W + 90] == 0);      /* glass */
    CHECK(m[10 * W + 100] == 0);     /* the speck: 4 px·(32 µm)² < 10,000 µm² */
    double want = 3.14159 * 30 * 30 / (W * H);
    CHECK_MSG(fabs(frac(m, W * H) - want) < 0.03, "disc fraction %g, want ~%g", frac(m, W * H), want);
    free(rgb);
    free(m);
}

static void test_cmu(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/slides/CMU-1-Small-Region.svs", tu_shared());
    struct slide *s = NULL;
    if (slide_open(path, &s) != WV_OK) {
        CHECK_MSG(0, "open %s: %s", path, error_msg());
        return;
    }
    struct tissue_mask m;
    CHECK(tissue_detect(s, NULL, &m) == WV_OK);
    printf("CMU-1-Small-Region: mask %dx%d at %.3g µm/px, threshold %d, tissue %.3f\n", m.w, m.h,
           m.mpp_x, m.threshold, m.fraction);
    /* 2220×2967 px at 0.499 µm/px → 32 µm/px = 64.13 level-0 px per mask px → 35×47 */
    CHECK(m.w == 35 && m.h == 47);
    CHECK(fabs(m.mpp_x - 32) < 1e-9 && fabs(m.downsample_x - 32 / 0.499) < 1e-9);
    /* the tissue strip covers roughly 40% of this crop (checked on the thumbnail) */
    CHECK_MSG(m.fraction > 0.30 && m.fraction < 0.55, "fraction %g", m.fraction);
    CHECK(!tissue_at(&m, 50, 50));            /* top-left corner: glass */
    CHECK(!tissue_at(&m, 2150, 100));         /* top-right corner: glass */
    CHECK(!tissue_at(&m, 150, 2500));         /* left edge, lower part: glass */
    CHECK(tissue_at(&m, 1100, 2000));         /* the middle of the strip */
    CHECK(tissue_at(&m, 1000, 2900));         /* tissue cut by the bottom border */
    CHECK(tissue_any_in_rect(&m, 1000, 1000, 1200, 1200));
    CHECK(!tissue_any_in_rect(&m, 0, 0, 300, 300));
    tissue_mask_free(&m);

    /* unknown pixel size → the --mpp message; with an override the mask scale follows */
    struct tissue_params p;
    tissue_params_default(&p);
    p.mask_mpp = 16;
    CHECK(tissue_detect(s, &p, &m) == WV_OK);
    CHECK(m.w == 70 && m.h == 93);
    tissue_mask_free(&m);
    slide_close(s);
}

int main(void)
{
    test_synthetic();
    struct stat st;
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/slides", tu_shared());
    if (stat(path, &st) == 0)
        test_cmu();
    else
        printf("fixtures not found, CMU part skipped\n");
    return tu_finish("test_tissue");
}
