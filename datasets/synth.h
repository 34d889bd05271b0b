/*
 * synth.h — the synthetic CAMELYON-style cohort generator (DESIGN.md "Layout": datasets/;
 * user guide: docs/synthetic-cohort.md). A slide is a procedural H&E-like picture — white glass,
 * irregular tissue islands of pink stroma with small purple nuclei and fat vacuoles — and, on
 * tumour slides, metastasis polygons filled with crowded, larger, darker, irregular nuclei.
 * The polygons are the source of truth: tumour nuclei are drawn only inside them, the ASAP XML
 * lists them and the mask rasterises them, so all three agree.
 *
 * Everything is a pure function of (seed, options): same seed, same bytes. Pixels are rendered
 * on demand for any rectangle at any scale, so slides of any size are written tile by tile with
 * bounded memory (wsi/slide_writer.h).
 *
 * Files (split by purpose): synth_geom.c (PRNG, islands and lesions, polygon rasteriser),
 * synth_draw.c (RGB rendering), synth_files.c (slide/mask/XML writers), synth.c (the cohort).
 */
#ifndef WV_DATASETS_SYNTH_H
#define WV_DATASETS_SYNTH_H

#include <stdint.h>

#include "src/error.h"
#include "wsi/slide_writer.h"

/* ---- one slide ----------------------------------------------------------------------------- */

struct synth_slide; /* opaque; immutable after creation, so safe to share between threads */

/* One metastasis polygon. */
struct synth_lesion {
    int n_vertices;
    const double *xy;       /* (n_vertices, 2) level-0 px; multiples of 1/16 px (exact in XML) */
    double cx_px, cy_px;    /* centre it was grown around, level-0 px */
    double max_diameter_um; /* longest vertex-to-vertex distance × mpp */
    const char *group;      /* ASAP group: "_0" (>= 200 µm) or "_1" (smaller, ITC-sized) */
};

/* Size classes by longest diameter (the clinical rule): ITC < 200 µm <= micro <= 2 mm < macro. */
#define SYNTH_ITC_MAX_UM 200.0
#define SYNTH_MICRO_MAX_UM 2000.0

/*
 * Build the geometry of one slide: level-0 size w×h px at mpp µm/px; tumour slides get lesions
 * (1–3 of micro/macro size, as large as the tissue allows, and 1–3 ITC-sized < 200 µm), normal
 * slides none. Sizes in [512, 2^31) (so mask level 5 is >= 16 px). Caller frees with synth_slide_free. WV_EINVAL, WV_ENOMEM.
 */
enum wv_status synth_slide_create(uint64_t seed, int64_t w_px, int64_t h_px, double mpp,
                                  int is_tumor, struct synth_slide **out);
void synth_slide_free(struct synth_slide *s);

int64_t synth_slide_width(const struct synth_slide *s);
int64_t synth_slide_height(const struct synth_slide *s);
double synth_slide_mpp(const struct synth_slide *s);
int synth_slide_n_lesions(const struct synth_slide *s);
/* Lesion i in [0, n); the pointer lives as long as s. */
const struct synth_lesion *synth_slide_lesion(const struct synth_slide *s, int i);
/* Longest lesion diameter in µm, 0 on a normal slide. */
double synth_slide_max_lesion_um(const struct synth_slide *s);

/*
 * Render RGB: out is (h, w, 3). Output pixel (i, j) covers level-0 [x0 + i·step, x0+(i+1)·step)
 * × [y0 + j·step, …) and is the mean of ss×ss samples taken at sub-pixel centres (ss >= 1;
 * 1 at level 0, 2 when rendering a reduced level). Thread-safe. WV_ENOMEM on scratch failure.
 */
enum wv_status synth_render_rgb(const struct synth_slide *s, double x0, double y0, double step,
                                int w, int h, int ss, uint8_t *out);

/*
 * Render the tumour mask: out is (h, w) bytes, 255 where level-0 point ((x+i)·ds, (y+j)·ds) —
 * the pixel's top-left corner, as ASAP's AnnotationToMask tests it — lies inside a lesion
 * polygon (nonzero winding), else 0. That is the nearest-neighbour pyramid ASAP writes:
 * level k (r, c) = level 0 (r·2^k, c·2^k). Thread-safe.
 */
void synth_render_mask(const struct synth_slide *s, int64_t x, int64_t y, double ds, int w, int h,
                       uint8_t *out);

struct synth_write_opts {
    enum slide_writer_vendor vendor; /* slide flavour */
    int tile_px;                     /* slide tiles (masks always use 512, as ASAP does) */
    int jpeg_quality;
    int n_threads; /* <= 0: OpenMP default */
    const char *name; /* slide name, for the aperio Filename field and the label image */
};
void synth_write_opts_init(struct synth_write_opts *o);

/* The slide as a pyramidal JPEG TIFF (generic: 2× levels down to <= 1024 px; aperio: 4× levels,
 * thumbnail, label, macro). Atomic. */
enum wv_status synth_slide_write(const struct synth_slide *s, const char *path,
                                 const struct synth_write_opts *o);
/* The mask TIFF: grey, LZW, 512-px tiles, 2× nearest-neighbour levels, at least 6 levels (the
 * CAMELYON16 evaluation reads level 5), generic-tiff. Atomic. */
enum wv_status synth_mask_write(const struct synth_slide *s, const char *path, int n_threads);
/* The lesions as ASAP XML, groups "_0" and "_1". Atomic. */
enum wv_status synth_xml_write(const struct synth_slide *s, const char *path);

/* ---- a cohort ------------------------------------------------------------------------------ */

enum synth_naming {
    SYNTH_NAMES_TRAIN = 0, /* tumor_001…, normal_001… (class in the name, CAMELYON16 training) */
    SYNTH_NAMES_TEST,      /* test_001… in shuffled class order (class only in reference.csv) */
};

struct synth_opts {
    int n_slides;          /* >= 1 */
    uint64_t seed;
    int64_t width_px, height_px; /* level-0 size of every slide (default 8000×6000) */
    double mpp;            /* µm/px at level 0 (default 0.25) */
    enum slide_writer_vendor vendor;
    double tumor_fraction; /* round(n_slides × fraction) tumour slides (default 0.5) */
    enum synth_naming naming;
    int tile_px;           /* slide tile size, 256 or 512 (default 256) */
    int jpeg_quality;      /* default 80 */
    int n_threads;         /* <= 0: OpenMP default */
    int verbose;           /* 1: one progress line per file on stderr */
};
void synth_opts_init(struct synth_opts *o);

/*
 * Write a cohort into outdir (created if missing):
 *   <name>.tif                     every slide (at the top, so a folder scan finds only slides)
 *   annotations/<name>.xml         tumour slides: ASAP XML of the lesion polygons
 *   masks/<name>_mask.tif          tumour slides: the mask pyramid (tumour 255)
 *   reference.csv                  name,class,histotype,size per slide, no header (CAMELYON16)
 *   lesions.csv                    one row per lesion, with a header (our addition)
 * Each file is written atomically. Slide i depends only on (seed, i, class, size, mpp), so
 * re-running with the same options rewrites identical bytes.
 */
enum wv_status synth_cohort_write(const char *outdir, const struct synth_opts *o);

/* The deterministic PRNG used everywhere (splitmix64-seeded xoshiro256**), exposed for tests. */
struct synth_rng {
    uint64_t s[4];
};
void synth_rng_seed(struct synth_rng *r, uint64_t seed);
uint64_t synth_rng_next(struct synth_rng *r);
double synth_rng_uniform(struct synth_rng *r); /* [0, 1) with 53 bits */

#endif
