/*
 * test_synth.c — unit tests of the synthetic cohort pieces: the PRNG, the pyramid geometry and
 * the TIFF writer (read back through OpenSlide), the ASAP XML writer, and the synthetic slide
 * (mask = polygons by an independent point-in-polygon test, seamless tiles, determinism).
 * Seeds are fixed and printed.
 */
#include <math.h>
#include <openslide.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/asap_xml.h"
#include "datasets/synth.h"
#include "src/util.h"
#include "testutil.h"
#include "wsi/slide_writer.h"

/* ---- PRNG ---------------------------------------------------------------------------------- */

static void test_rng(void)
{
    struct synth_rng a, b, c;
    synth_rng_seed(&a, 42);
    synth_rng_seed(&b, 42);
    synth_rng_seed(&c, 43);
    int same = 1, differ = 0;
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = synth_rng_next(&a), y = synth_rng_next(&b), z = synth_rng_next(&c);
        same &= x == y;
        differ += x != z;
    }
    for (int i = 0; i < 10000; i++) {
        double u = synth_rng_uniform(&a);
        CHECK(u >= 0 && u < 1);
        mean += u / 10000;
    }
    CHECK(same);
    CHECK(differ > 9990);
    CHECK_MSG(fabs(mean - 0.5) < 0.02, "mean %g", mean);
}

/* ---- pyramid geometry ---------------------------------------------------------------------- */

static enum wv_status grey_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w, int h,
                                uint8_t *px)
{
    (void)ctx;
    /* a pattern whose level-k value is a function of the level-0 position: lossless round trip */
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++)
            px[j * w + i] = (uint8_t)(((int64_t)((x + i) * ds) / 64 + (int64_t)((y + j) * ds) / 32 +
                                       level * 40) & 0xff);
    return WV_OK;
}

static enum wv_status rgb_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w, int h,
                               uint8_t *px)
{
    (void)ctx, (void)level, (void)ds;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            uint8_t *p = px + 3 * (j * w + i);
            p[0] = 200, p[1] = 100, p[2] = (uint8_t)(((x + i) / 50 + (y + j) / 50) % 2 ? 180 : 60);
        }
    return WV_OK;
}

/* Texture for JPEG: every 8×8 block different, so quantisation and subsampling matter. */
static enum wv_status noisy_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w, int h,
                                 uint8_t *px)
{
    (void)ctx, (void)ds;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            uint64_t v = (uint64_t)(x + i) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(y + j) * 0xC2B2AE3D27D4EB4Full;
            v ^= v >> 29, v *= 0xBF58476D1CE4E5B9ull, v ^= (uint64_t)level << 7, v ^= v >> 32;
            uint8_t *p = px + 3 * (j * w + i);
            p[0] = (uint8_t)(120 + (v & 63) + ((x + i) % 97)), p[1] = (uint8_t)(60 + ((v >> 8) & 127));
            p[2] = (uint8_t)(90 + ((v >> 16) & 31) + ((y + j) % 61));
        }
    return WV_OK;
}

static enum wv_status failing_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w,
                                   int h, uint8_t *px)
{
    (void)ctx, (void)ds, (void)w, (void)h, (void)px;
    return level == 1 && x == 0 && y == 0 ? WV_ENOMEM : WV_OK;
}

static void test_levels(void)
{
    struct slide_writer_opts o;
    slide_writer_opts_init(&o);
    o.tile_fn = grey_tile;
    int64_t ws[SLIDE_WRITER_MAX_LEVELS], hs[SLIDE_WRITER_MAX_LEVELS];
    int n = 0;
    o.width_px = 8000, o.height_px = 6000;
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_OK);
    CHECK_MSG(n == 4 && ws[3] == 1000 && hs[3] == 750, "generic: %d levels", n);
    o.level_step = 4;
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_OK);
    CHECK_MSG(n == 3 && ws[1] == 2000 && ws[2] == 500 && hs[2] == 375, "aperio: %d levels", n);
    o.level_step = 2;
    o.min_levels = 6;
    o.width_px = 3001, o.height_px = 2003;
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_OK);
    CHECK_MSG(n == 6 && ws[5] == 93 && hs[5] == 62, "mask: %d levels, last %lldx%lld", n,
              (long long)ws[n - 1], (long long)hs[n - 1]);
    /* bad options are refused with a message */
    o.width_px = 20;
    error_clear();
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_EINVAL && error_msg()[0]);
    o.width_px = 1000;
    o.tile_px = 100;
    error_clear();
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_EINVAL);
    o.tile_px = 256;
    o.description = "Aperio lookalike";
    error_clear();
    CHECK(slide_writer_levels(&o, &n, ws, hs) == WV_EINVAL);
    error_clear();
}

/* ---- the TIFF writer, read back by OpenSlide ----------------------------------------------- */

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_writer_roundtrip(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/test_synth_grey.tif", tu_tmp());
    struct slide_writer_opts o;
    slide_writer_opts_init(&o);
    o.width_px = 1100, o.height_px = 700;
    o.samples_per_pixel = 1;
    o.codec = SLIDE_WRITER_LZW;
    o.tile_px = 128;
    o.min_levels = 6;
    o.mpp = 0.5;
    o.tile_fn = grey_tile;
    o.n_threads = 2;
    enum wv_status st = slide_writer_write(path, &o);
    CHECK_MSG(st == WV_OK, "%s", error_msg());
    openslide_t *s = openslide_open(path);
    CHECK(s && !openslide_get_error(s));
    if (s && !openslide_get_error(s)) {
        const char *v = openslide_get_property_value(s, "openslide.vendor");
        CHECK_MSG(v && !strcmp(v, "generic-tiff"), "vendor %s", v ? v : "(none)");
        CHECK(openslide_get_level_count(s) == 6);
        int64_t w, h;
        openslide_get_level_dimensions(s, 5, &w, &h);
        CHECK_MSG(w == 34 && h == 21, "level 5 %lldx%lld", (long long)w, (long long)h);
        const char *res = openslide_get_property_value(s, "tiff.XResolution");
        CHECK_MSG(res && fabs(atof(res) - 20000) < 1, "XResolution %s", res ? res : "(none)");
        /* every pixel of level 2 equals the renderer's value (lossless) */
        uint32_t *buf = malloc(sizeof(uint32_t) * 275 * 175);
        openslide_read_region(s, buf, 0, 0, 2, 275, 175);
        int bad = 0;
        for (int j = 0; j < 175 && buf; j++)
            for (int i = 0; i < 275; i++) {
                uint8_t want;
                grey_tile(NULL, 2, 4, i, j, 1, 1, &want);
                bad += (buf[j * 275 + i] & 0xff) != want || (buf[j * 275 + i] >> 24) != 255;
            }
        CHECK_MSG(bad == 0, "%d level-2 pixels differ", bad);
        /* level 5 is narrower than a 128-px tile: the writer shrinks its tiles, else OpenSlide
         * 3.4.1 + libtiff 4.5 read it as zeros (regression test) */
        openslide_read_region(s, buf, 0, 0, 5, 34, 21);
        bad = 0;
        for (int j = 0; j < 21 && buf; j++)
            for (int i = 0; i < 34; i++) {
                uint8_t want;
                grey_tile(NULL, 5, 32, i, j, 1, 1, &want);
                bad += (buf[j * 34 + i] & 0xff) != want || (buf[j * 34 + i] >> 24) != 255;
            }
        CHECK_MSG(bad == 0, "%d level-5 pixels differ", bad);
        free(buf);
    }
    if (s) openslide_close(s);

    /* aperio RGB with associated images */
    snprintf(path, sizeof path, "%s/test_synth_rgb.svs", tu_tmp());
    slide_writer_opts_init(&o);
    o.width_px = 1500, o.height_px = 1000;
    o.vendor = SLIDE_WRITER_APERIO;
    o.level_step = 4;
    o.min_level_px = 200;
    o.mpp = 0.5;
    o.app_mag = 20;
    o.tile_fn = rgb_tile;
    st = slide_writer_write(path, &o);
    CHECK_MSG(st == WV_OK, "%s", error_msg());
    s = openslide_open(path);
    CHECK(s && !openslide_get_error(s));
    if (s && !openslide_get_error(s)) {
        const char *v = openslide_get_property_value(s, "openslide.vendor");
        CHECK_MSG(v && !strcmp(v, "aperio"), "vendor %s", v ? v : "(none)");
        const char *mpp = openslide_get_property_value(s, "openslide.mpp-x");
        CHECK_MSG(mpp && fabs(atof(mpp) - 0.5) < 1e-6, "mpp %s", mpp ? mpp : "(none)");
        const char *mag = openslide_get_property_value(s, "openslide.objective-power");
        CHECK_MSG(mag && !strcmp(mag, "20"), "objective %s", mag ? mag : "(none)");
        CHECK(openslide_get_level_count(s) == 3);
        const char *const *names = openslide_get_associated_image_names(s);
        int n_assoc = 0;
        while (names && names[n_assoc]) n_assoc++;
        CHECK_MSG(n_assoc == 1 && !strcmp(names[0], "thumbnail"), "%d associated images",
                  n_assoc); /* no assoc_fn: thumbnail only */
        uint32_t px;
        openslide_read_region(s, &px, 10, 10, 0, 1, 1); /* JPEG: near (200, 100, 60) */
        int r = (px >> 16) & 0xff, g = (px >> 8) & 0xff, b = px & 0xff;
        CHECK_MSG(abs(r - 200) < 12 && abs(g - 100) < 12 && abs(b - 60) < 12, "pixel %d %d %d",
                  r, g, b);
    }
    if (s) openslide_close(s);

    /* JPEG tiles compressed on the rendering threads decode to the same pixels as libtiff's own
     * encoder's, on every level (both formats, edge tiles, 2 threads) */
    for (int vendor = 0; vendor < 2; vendor++) {
        char pa[4096], pb[4096];
        snprintf(pa, sizeof pa, "%s/test_synth_jpeg_threads.tif", tu_tmp());
        snprintf(pb, sizeof pb, "%s/test_synth_jpeg_libtiff.tif", tu_tmp());
        slide_writer_opts_init(&o);
        o.width_px = 700, o.height_px = 530;
        o.tile_px = vendor ? 128 : 256;
        o.vendor = vendor ? SLIDE_WRITER_APERIO : SLIDE_WRITER_GENERIC;
        o.min_level_px = 100;
        o.jpeg_quality = vendor ? 92 : 75;
        o.tile_fn = noisy_tile;
        o.n_threads = 2;
        st = slide_writer_write(pa, &o);
        CHECK_MSG(st == WV_OK, "%s", error_msg());
        o.jpeg_by_libtiff = 1;
        st = slide_writer_write(pb, &o);
        CHECK_MSG(st == WV_OK, "%s", error_msg());
        openslide_t *a = openslide_open(pa), *b = openslide_open(pb);
        CHECK(a && b && !openslide_get_error(a) && !openslide_get_error(b));
        if (a && b && !openslide_get_error(a) && !openslide_get_error(b)) {
            int nl = openslide_get_level_count(a);
            CHECK(nl >= 3 && nl == openslide_get_level_count(b));
            for (int l = 0; l < nl; l++) {
                int64_t w, h;
                openslide_get_level_dimensions(a, l, &w, &h);
                uint32_t *ba = malloc(sizeof(uint32_t) * w * h), *bb = malloc(sizeof(uint32_t) * w * h);
                openslide_read_region(a, ba, 0, 0, l, w, h);
                openslide_read_region(b, bb, 0, 0, l, w, h);
                int64_t diff = 0, flat = 0;
                for (int64_t q = 0; ba && bb && q < w * h; q++) {
                    diff += ba[q] != bb[q];
                    flat += ba[q] == ba[0];
                }
                CHECK_MSG(ba && bb && diff == 0 && flat < w * h / 2,
                          "vendor %d level %d: %lld of %lld pixels differ", vendor, l, (long long)diff,
                          (long long)(w * h));
                free(ba), free(bb);
            }
        }
        if (a) openslide_close(a);
        if (b) openslide_close(b);
    }

    /* failures: a renderer error and an unwritable folder leave no file behind */
    snprintf(path, sizeof path, "%s/test_synth_fail.tif", tu_tmp());
    unlink(path);
    slide_writer_opts_init(&o);
    o.width_px = 600, o.height_px = 600;
    o.min_level_px = 100;
    o.tile_fn = failing_tile;
    error_clear();
    st = slide_writer_write(path, &o);
    CHECK_MSG(st == WV_ENOMEM && strstr(error_msg(), "level 1"), "%s", error_msg());
    CHECK(!file_exists(path));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(!file_exists(tmp));
    error_clear();
    o.tile_fn = rgb_tile;
    st = slide_writer_write("/nonexistent-dir/x/slide.tif", &o);
    CHECK_MSG(st == WV_EIO && strstr(error_msg(), "/nonexistent-dir/x/slide.tif"), "%s",
              error_msg());
    error_clear();
}

/* ---- ASAP XML ------------------------------------------------------------------------------ */

static void test_asap_xml(void)
{
    const double xy[] = {12711.2998, 88778.1016, 13357, 87081.0625, -0.00001, 5.5};
    struct asap_polygon p[2] = {
        {"Annotation 0", "Polygon", "_0", NULL, 3, xy},
        {"a<b>&\"c\"", NULL, "Tumor", "#00FF00", 1, xy},
    };
    struct asap_group g[2] = {{"_0", NULL}, {"Tumor", "#FF0000"}};
    char *doc = NULL;
    size_t len = 0;
    CHECK(asap_xml_format(p, 2, g, 2, &doc, &len) == WV_OK);
    if (doc) {
        CHECK(len == strlen(doc));
        CHECK(strstr(doc, "<Annotation Name=\"Annotation 0\" Type=\"Polygon\" PartOfGroup=\"_0\" "
                          "Color=\"#F4FA58\">") != NULL);
        CHECK(strstr(doc, "<Coordinate Order=\"0\" X=\"12711.2998\" Y=\"88778.1016\" />") != NULL);
        CHECK(strstr(doc, "<Coordinate Order=\"1\" X=\"13357\" Y=\"87081.0625\" />") != NULL);
        CHECK(strstr(doc, "<Coordinate Order=\"2\" X=\"0\" Y=\"5.5\" />") != NULL);
        CHECK(strstr(doc, "Name=\"a&lt;b&gt;&amp;&quot;c&quot;\"") != NULL);
        CHECK(strstr(doc, "<Group Name=\"Tumor\" PartOfGroup=\"None\" Color=\"#FF0000\">") != NULL);
        CHECK(!strncmp(doc, "<?xml version=\"1.0\"?>\n<ASAP_Annotations>", 40));
    }
    free(doc);
    const double bad[] = {1, NAN};
    struct asap_polygon q = {NULL, NULL, NULL, NULL, 1, bad};
    error_clear();
    CHECK(asap_xml_format(&q, 1, g, 1, &doc, &len) == WV_EINVAL && doc == NULL);
    error_clear();
}

/* ---- the synthetic slide ------------------------------------------------------------------- */

/* Independent nonzero-winding test of a point against a polygon (crossing-number form). */
static int inside(const double *xy, int n, double x, double y)
{
    int wind = 0;
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        double x1 = xy[2 * i], y1 = xy[2 * i + 1], x2 = xy[2 * j], y2 = xy[2 * j + 1];
        if (y1 <= y && y2 > y) {
            if ((x2 - x1) * (y - y1) - (x - x1) * (y2 - y1) > 0) wind++;
        } else if (y1 > y && y2 <= y) {
            if ((x2 - x1) * (y - y1) - (x - x1) * (y2 - y1) < 0) wind--;
        }
    }
    return wind != 0;
}

static void test_slide(void)
{
    const uint64_t seed = 1234;
    printf("slide seed %llu\n", (unsigned long long)seed);
    struct synth_slide *s = NULL, *s2 = NULL, *nrm = NULL;
    CHECK(synth_slide_create(seed, 4000, 3000, 0.25, 1, &s) == WV_OK);
    CHECK(synth_slide_create(seed, 4000, 3000, 0.25, 1, &s2) == WV_OK);
    CHECK(synth_slide_create(seed, 4000, 3000, 0.25, 0, &nrm) == WV_OK);
    if (!s || !s2 || !nrm) goto out;
    CHECK(synth_slide_n_lesions(nrm) == 0 && synth_slide_max_lesion_um(nrm) == 0);
    int n = synth_slide_n_lesions(s);
    CHECK_MSG(n >= 1, "%d lesions", n);
    CHECK(n == synth_slide_n_lesions(s2));
    for (int i = 0; i < n; i++) {
        const struct synth_lesion *a = synth_slide_lesion(s, i), *b = synth_slide_lesion(s2, i);
        CHECK(a->n_vertices == b->n_vertices &&
              !memcmp(a->xy, b->xy, sizeof(double) * 2 * a->n_vertices));
        /* vertices are multiples of 1/16 px, inside the slide */
        for (int k = 0; k < 2 * a->n_vertices; k++) {
            CHECK(a->xy[k] * 16 == floor(a->xy[k] * 16));
            CHECK(a->xy[k] > 0 && a->xy[k] < (k % 2 ? 3000 : 4000));
        }
        CHECK(!strcmp(a->group, a->max_diameter_um < SYNTH_ITC_MAX_UM ? "_1" : "_0"));
    }
    CHECK(synth_slide_lesion(s, n) == NULL && synth_slide_lesion(s, -1) == NULL);

    /* mask at level 2 (ds 4) = point-in-polygon at the pixel's top-left level-0 corner */
    int mw = 1000, mh = 750, bad = 0, on = 0;
    uint8_t *m = malloc((size_t)mw * mh);
    synth_render_mask(s, 0, 0, 4, mw, mh, m);
    for (int y = 0; y < mh; y++)
        for (int x = 0; x < mw; x++) {
            int want = 0;
            for (int i = 0; i < n && !want; i++) {
                const struct synth_lesion *L = synth_slide_lesion(s, i);
                want = inside(L->xy, L->n_vertices, x * 4.0, y * 4.0);
            }
            on += m[y * mw + x] == 255;
            bad += m[y * mw + x] != (want ? 255 : 0);
        }
    CHECK_MSG(bad == 0, "%d mask pixels disagree with point-in-polygon", bad);
    CHECK_MSG(on > 0, "empty mask");
    /* a mask tile equals the same part of a bigger render */
    uint8_t *m2 = malloc(100 * 60);
    synth_render_mask(s, 300, 200, 4, 100, 60, m2);
    int diff = 0;
    for (int y = 0; y < 60; y++) diff += memcmp(m2 + y * 100, m + (200 + y) * mw + 300, 100) != 0;
    CHECK(diff == 0);
    free(m2);
    free(m);

    /* RGB: one render equals the same area split into tiles; same seed, same pixels */
    const struct synth_lesion *L = synth_slide_lesion(s, 0);
    double x0 = floor(L->cx_px) - 128, y0 = floor(L->cy_px) - 128;
    uint8_t *whole = malloc(256 * 256 * 3), *part = malloc(128 * 256 * 3),
            *again = malloc(256 * 256 * 3);
    CHECK(synth_render_rgb(s, x0, y0, 1, 256, 256, 1, whole) == WV_OK);
    CHECK(synth_render_rgb(s2, x0, y0, 1, 256, 256, 1, again) == WV_OK);
    CHECK(!memcmp(whole, again, 256 * 256 * 3));
    CHECK(synth_render_rgb(s, x0 + 128, y0, 1, 128, 256, 1, part) == WV_OK);
    diff = 0;
    for (int y = 0; y < 256; y++)
        diff += memcmp(part + y * 128 * 3, whole + (y * 256 + 128) * 3, 128 * 3) != 0;
    CHECK_MSG(diff == 0, "%d rows differ between a tile and the whole", diff);
    /* the lesion centre is tumour: dark and purple compared with normal tissue */
    double sum_t = 0;
    for (int i = 0; i < 256 * 256 * 3; i++) sum_t += whole[i];
    sum_t /= 256 * 256 * 3;
    CHECK_MSG(sum_t < 200, "mean at a lesion %g", sum_t);
    /* a normal slide renders too; downsampled renders work */
    CHECK(synth_render_rgb(nrm, 0, 0, 16, 250, 187, 2, again) == WV_OK);
    free(whole);
    free(part);
    free(again);

    /* options out of range */
    struct synth_slide *t = NULL;
    error_clear();
    CHECK(synth_slide_create(1, 100, 3000, 0.25, 1, &t) == WV_EINVAL && !t);
    error_clear();
    CHECK(synth_slide_create(1, 1000, 1000, 0, 1, &t) == WV_EINVAL && !t);
    error_clear();
out:
    synth_slide_free(s);
    synth_slide_free(s2);
    synth_slide_free(nrm);
}

/* ---- a tiny cohort through the library ----------------------------------------------------- */

static void test_cohort(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/test_synth_cohort", tu_tmp());
    struct synth_opts o;
    synth_opts_init(&o);
    o.n_slides = 3;
    o.seed = 99;
    o.width_px = 2000, o.height_px = 1500;
    o.naming = SYNTH_NAMES_TEST;
    o.tumor_fraction = 0.34; /* round(1.02) = 1 tumour slide */
    enum wv_status st = synth_cohort_write(dir, &o);
    CHECK_MSG(st == WV_OK, "%s", error_msg());
    snprintf(path, sizeof path, "%s/reference.csv", dir);
    uint8_t *ref = NULL;
    size_t len = 0;
    CHECK(util_read_file(path, 1 << 20, &ref, &len) == WV_OK);
    if (ref) {
        int tumors = 0, lines = 0;
        for (char *p = (char *)ref; (p = strchr(p, '\n')); p++) lines++;
        for (char *p = (char *)ref; (p = strstr(p, ",Tumor,")); p++) tumors++;
        CHECK_MSG(lines == 3 && tumors == 1, "%d lines, %d tumour:\n%s", lines, tumors, ref);
        CHECK(!strncmp((char *)ref, "test_001,", 9));
    }
    free(ref);
    o.n_slides = 0;
    error_clear();
    CHECK(synth_cohort_write(dir, &o) == WV_EINVAL);
    error_clear();
}

int main(void)
{
    test_rng();
    test_levels();
    test_writer_roundtrip();
    test_asap_xml();
    test_slide();
    test_cohort();
    return tu_finish("test_synth");
}
