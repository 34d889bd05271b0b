/*
 * slides_dump.c — test driver: read one region through wsi/slide.h and dump it raw, so
 * slides_read_check.py can compare it with python3-openslide and a numpy reference.
 *   slides_dump SLIDE X0 Y0 W H TARGET_MPP OUT.rgb [MPP_OVERRIDE]
 * (X0, Y0) level-0 px, (W, H) target px; OUT gets H·W·3 bytes (RGB, row-major). Prints one
 * line "level L downsample D ds_x DX ds_y DY" on stdout. Exit 0 / 1 with the error on stderr.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wsi/slide.h"

int main(int argc, char **argv)
{
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: slides_dump SLIDE X0 Y0 W H TARGET_MPP OUT.rgb [MPP]\n");
        return 2;
    }
    struct slide *s = NULL;
    if (slide_open(argv[1], &s) != WV_OK) {
        fprintf(stderr, "slides_dump: %s: %s\n", argv[1], error_msg());
        return 1;
    }
    long long x0 = atoll(argv[2]), y0 = atoll(argv[3]), w = atoll(argv[4]), h = atoll(argv[5]);
    double target = atof(argv[6]);
    int rc = 1;
    uint8_t *rgb = NULL;
    if (argc == 9 && slide_set_mpp(s, atof(argv[8])) != WV_OK) goto done;
    if (slide_require_mpp(s) != WV_OK) goto done;
    rgb = malloc((size_t)(w * h * 3 > 0 ? w * h * 3 : 1));
    if (!rgb) goto done;
    if (slide_read_region_mpp(s, x0, y0, w, h, target, rgb) != WV_OK) goto done;
    double dsx = target / slide_mpp_x(s), dsy = target / slide_mpp_y(s);
    int level = slide_best_level(s, dsx < dsy ? dsx : dsy);
    printf("level %d downsample %.17g ds_x %.17g ds_y %.17g\n", level,
           slide_level_downsample(s, level), dsx, dsy);
    FILE *f = fopen(argv[7], "wb");
    if (!f || fwrite(rgb, 1, (size_t)(w * h * 3), f) != (size_t)(w * h * 3)) {
        fprintf(stderr, "slides_dump: cannot write %s\n", argv[7]);
        if (f) fclose(f);
        goto done;
    }
    fclose(f);
    rc = 0;
done:
    if (rc && error_msg()[0]) fprintf(stderr, "slides_dump: %s: %s\n", argv[1], error_msg());
    free(rgb);
    slide_close(s);
    return rc;
}
