/*
 * golden_io.h — read a raw little-endian float32 golden file from ../shared/golden/ (shapes in
 * golden/manifest.json). Used by the golden tests (include once per program).
 */
#ifndef WV_GOLDEN_IO_H
#define WV_GOLDEN_IO_H

#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

/* Read exactly n floats from <shared>/golden/<name>; NULL (and a hint) when missing or wrong size. */
static float *golden_read(const char *name, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s", tu_shared(), name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "missing golden file %s (regenerate with the golden generator, see "
                        "VMAMBA_SPEC.md §10)\n", path);
        return NULL;
    }
    float *d = malloc(n * sizeof *d + 1);
    size_t got = d ? fread(d, sizeof *d, n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        fprintf(stderr, "golden file %s: expected %zu floats (wrong version?)\n", path, n);
        free(d);
        return NULL;
    }
    return d;
}

#endif
