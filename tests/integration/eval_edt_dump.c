/* eval_edt_dump.c — test helper for eval_froc_check.py: `eval_edt_dump MASK.raw ROWS COLS` reads
 * (rows, cols) uint8 (non-zero = feature) and writes froc_edt_sq's int64 squared distances to
 * stdout, so Python can compare them with scipy.ndimage.distance_transform_edt. */
#include <stdio.h>
#include <stdlib.h>

#include "src/froc.h"

int main(int argc, char **argv)
{
    if (argc != 4) return 2;
    int rows = atoi(argv[2]), cols = atoi(argv[3]);
    size_t n = (size_t)rows * (size_t)cols;
    uint8_t *f = malloc(n ? n : 1);
    int64_t *d = malloc((n ? n : 1) * sizeof *d);
    FILE *fp = fopen(argv[1], "rb");
    if (!f || !d || !fp || fread(f, 1, n, fp) != n) return 1;
    fclose(fp);
    if (froc_edt_sq(f, rows, cols, d)) return 1;
    fwrite(d, sizeof *d, n, stdout);
    free(f);
    free(d);
    return 0;
}
