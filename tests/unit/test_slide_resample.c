/* test_slide_resample.c — wsi/resample.h on tiny generated images: ARGB un-premultiplying,
 * exact copies, area averaging against hand-computed values, bilinear at the identity. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsi/resample.h"

static void test_argb(void)
{
    /* CAMELYON16_PROTOCOL §4.1: RGBA (200,100,50,α=128) reads back as A=128 R=100 G=50 B=25 */
    uint32_t px[4] = {0x80643219u, 0x00000000u, 0xff0a141eu, 0x01010101u};
    uint8_t rgb[12];
    resample_argb_to_rgb(px, 4, rgb);
    CHECK(abs(rgb[0] - 200) <= 1 && abs(rgb[1] - 100) <= 1 && abs(rgb[2] - 50) <= 1);
    CHECK(rgb[3] == 255 && rgb[4] == 255 && rgb[5] == 255); /* transparent → white */
    CHECK(rgb[6] == 10 && rgb[7] == 20 && rgb[8] == 30);    /* opaque: unchanged */
    CHECK(rgb[9] == 255 && rgb[10] == 255 && rgb[11] == 255);
}

static void test_area(void)
{
    enum { SW = 6, SH = 4 };
    uint8_t src[SH][SW][3];
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++)
            for (int c = 0; c < 3; c++) src[y][x][c] = (uint8_t)(10 * x + 40 * y + c);
    uint8_t dst[SH][SW][3];
    /* identity at an integer offset: exact copy */
    CHECK(resample_area_rgb(&src[0][0][0], SW, SH, SW * 3, 1, 1, 1, 1, &dst[0][0][0], SW - 1, SH - 1,
                            SW * 3) == WV_OK);
    int same = 1;
    for (int y = 0; y < SH - 1; y++)
        for (int x = 0; x < SW - 1; x++)
            for (int c = 0; c < 3; c++) same &= dst[y][x][c] == src[y + 1][x + 1][c];
    CHECK_MSG(same, "identity area resample must copy exactly");
    /* 2× shrink: mean of 2×2 blocks: 10x + 40y + c averaged = 10(2i+.5) + 40(2j+.5) + c */
    uint8_t d2[2][3][3];
    CHECK(resample_area_rgb(&src[0][0][0], SW, SH, SW * 3, 0, 0, 2, 2, &d2[0][0][0], 3, 2, 9) ==
          WV_OK);
    int ok = 1;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 3; c++) {
                double want = 10 * (2 * i + 0.5) + 40 * (2 * j + 0.5) + c;
                ok &= fabs(d2[j][i][c] - want) <= 0.5 + 1e-9;
            }
    CHECK_MSG(ok, "2x area shrink");
    /* 1.5× at offset 0.25: pixel 0 covers [0.25, 1.75): weights 0.75 (x=0), 0.75 (x=1) */
    uint8_t d3[1][1][3];
    CHECK(resample_area_rgb(&src[0][0][0], SW, SH, SW * 3, 0.25, 0, 1.5, 1, &d3[0][0][0], 1, 1, 3) ==
          WV_OK);
    CHECK(d3[0][0][0] == 5); /* (0·0.75 + 10·0.75)/1.5 */
    /* footprint leaving the buffer counts white: [5.5, 6.5) → half x=5 (50), half white */
    CHECK(resample_area_rgb(&src[0][0][0], SW, SH, SW * 3, 5.5, 0, 1, 1, &d3[0][0][0], 1, 1, 3) ==
          WV_OK);
    CHECK(abs(d3[0][0][0] - 153) <= 1); /* (50 + 255)/2 = 152.5 */
}

static void test_bilinear(void)
{
    enum { SW = 5, SH = 3 };
    uint8_t src[SH][SW][3], dst[SH][SW][3];
    for (int y = 0; y < SH; y++)
        for (int x = 0; x < SW; x++)
            for (int c = 0; c < 3; c++) src[y][x][c] = (uint8_t)(7 * x + 50 * y + 3 * c);
    resample_bilinear_rgb(&src[0][0][0], SW, SH, SW * 3, 0, 0, 1, 1, &dst[0][0][0], SW, SH, SW * 3);
    CHECK_MSG(!memcmp(src, dst, sizeof src), "bilinear identity");
    /* 2× enlargement: output centre 1.5/2 = 0.75 → source coordinate 0.25 between x=0 and 1 */
    uint8_t up[1][4][3];
    resample_bilinear_rgb(&src[0][0][0], SW, SH, SW * 3, 0, 0, 0.5, 1, &up[0][0][0], 4, 1, 12);
    CHECK(up[0][0][0] == 0);           /* clamped to the edge pixel */
    CHECK(abs(up[0][1][0] - 2) <= 1);  /* 0.25·7 = 1.75 */
    CHECK(abs(up[0][2][0] - 5) <= 1);  /* 0.75·7 = 5.25 */
}

int main(void)
{
    test_argb();
    test_area();
    test_bilinear();
    return tu_finish("test_slide_resample");
}
