/*
 * synth_private.h — internals shared by datasets/synth*.c (never included elsewhere).
 * Coordinates are level-0 px as doubles; polygons are closed implicitly.
 */
#ifndef WV_DATASETS_SYNTH_PRIVATE_H
#define WV_DATASETS_SYNTH_PRIVATE_H

#include <stdint.h>

#include "synth.h"

/* Most vertices a generated polygon has (islands use ISLAND_VERTS, lesions fewer); sizes the
 * rasteriser's crossing arrays on the stack. */
#define SYNTH_MAX_VERTS 256

struct synth_poly {
    int n;
    double *xy;                     /* (n, 2) */
    double xmin, ymin, xmax, ymax;  /* bounding box */
};

struct synth_slide {
    int64_t w, h;
    double mpp;
    uint64_t seed; /* drives the textures and nuclei */
    int is_tumor;
    int n_islands;
    struct synth_poly *islands;
    int n_lesions;
    struct synth_poly *lesion_polys;
    struct synth_lesion *lesions; /* public view of lesion_polys */
    double les_xmin, les_ymin, les_xmax, les_ymax; /* union bbox of lesions (empty if none) */
};

/* 64-bit finaliser (splitmix64's): a good hash of one word. */
static inline uint64_t synth_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Hash of a lattice point (i, j) under a seed and a salt (which field it belongs to). */
static inline uint64_t synth_hash2(uint64_t seed, int64_t i, int64_t j, uint64_t salt)
{
    return synth_mix64(seed ^ synth_mix64((uint64_t)i * 0x9E3779B97F4A7C15ULL ^
                                          (uint64_t)j * 0xC2B2AE3D27D4EB4FULL ^ salt));
}

/* Hash → [0, 1) */
static inline double synth_unit(uint64_t h) { return (double)(h >> 11) * (1.0 / 9007199254740992.0); }

/*
 * OR `bit` into lab[u] for u in [0, n) where the point (sx0 + u·sdx, y) lies inside polygon p
 * (nonzero winding; a point exactly on a crossing counts as inside from the left edge). sdx > 0.
 */
void synth_raster_row(const struct synth_poly *p, double y, double sx0, double sdx, int n,
                      uint8_t *lab, uint8_t bit);

#endif
