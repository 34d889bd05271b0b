/*
 * test_edt.c — the exact Euclidean distance transform and the mask steps of src/froc.h against
 * brute force on seeded random masks of awkward sizes (1×1, 1×n, n×1, empty, full, random
 * densities); hole filling (4-connected background) and 8-connected labelling on hand cases.
 * The comparison with scipy itself is tests/integration/eval_edt_check.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/froc.h"
#include "testutil.h"

static uint64_t rng = 12345;
static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng >> 33);
}

static void check_edt(int rows, int cols, int density_pct)
{
    size_t n = (size_t)rows * cols;
    uint8_t *f = malloc(n ? n : 1);
    int64_t *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) f[i] = (int)(rnd() % 100) < density_pct;
    CHECK(froc_edt_sq(f, rows, cols, d) == WV_OK);
    int bad = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int64_t best = INT64_MAX;
            for (int r2 = 0; r2 < rows; r2++)
                for (int c2 = 0; c2 < cols; c2++)
                    if (f[r2 * cols + c2]) {
                        int64_t v = (int64_t)(r - r2) * (r - r2) + (int64_t)(c - c2) * (c - c2);
                        if (v < best) best = v;
                    }
            if (d[r * cols + c] != best && bad++ < 3)
                fprintf(stderr, "  edt %dx%d (%d%%) at (%d,%d): got %lld want %lld\n", rows, cols,
                        density_pct, r, c, (long long)d[r * cols + c], (long long)best);
        }
    CHECK_MSG(bad == 0, "%dx%d density %d: %d mismatches", rows, cols, density_pct, bad);
    free(f);
    free(d);
}

static void test_fill_label(void)
{
    /* a ring with a diagonal leak only: still a hole under 4-connected background */
    const char *pic[] = {
        "........",
        ".####...",
        ".#..#...",
        ".#..#...",
        ".###.#..",
        "........",
        "......#.",
        ".......#",
    };
    uint8_t b[64];
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) b[r * 8 + c] = pic[r][c] == '#';
    CHECK(froc_fill_holes(b, 8, 8) == WV_OK);
    CHECK(b[2 * 8 + 2] && b[3 * 8 + 3] && b[2 * 8 + 3]);
    CHECK(!b[4 * 8 + 4]); /* touches the outside 4-connectedly via (5,4) */
    int32_t lab[64];
    int n;
    CHECK(froc_label(b, 8, 8, lab, &n) == WV_OK);
    /* 8-connected: the ring, (4,5) joined diagonally to (3,4); (6,6)-(7,7) one region */
    CHECK(n == 2);
    CHECK(lab[1 * 8 + 1] == 1 && lab[4 * 8 + 5] == 1 && lab[6 * 8 + 6] == 2 && lab[7 * 8 + 7] == 2);
    /* skimage check from the protocol: a 1×30 line has major axis 4·sqrt((30²−1)/12) */
    uint8_t line[30];
    memset(line, 1, 30);
    CHECK(froc_label(line, 1, 30, lab, &n) == WV_OK && n == 1);
    double ax[2];
    CHECK(froc_major_axis(lab, 1, 30, 1, ax) == WV_OK);
    CHECK(fabs(ax[1] - 34.6218) < 1e-4);
}

int main(void)
{
    const int sizes[][2] = {{1, 1}, {1, 17}, {23, 1}, {2, 2}, {7, 13}, {31, 29}, {40, 64}, {64, 3}};
    const int dens[] = {0, 1, 5, 30, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t k = 0; k < sizeof dens / sizeof *dens; k++)
            check_edt(sizes[i][0], sizes[i][1], dens[k]);
    test_fill_label();
    return tu_finish("test_edt");
}
