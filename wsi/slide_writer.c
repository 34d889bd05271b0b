/*
 * slide_writer.c — pyramidal tiled TIFF writer (contract: slide_writer.h; file layouts:
 * CAMELYON16_PROTOCOL.md §4.2). One TIFF handle per call; libtiff messages are captured per
 * handle through TIFFOpenExt's error handler, so concurrent writers never share a buffer.
 * Tiles are rendered in parallel batches (OpenMP) and written in order from this thread; JPEG
 * tiles are also encoded in the parallel part (libjpeg, one complete stream per tile, written raw)
 * — libtiff's encoder ran on the writing thread and was a third of a large slide's time.
 */
#include "slide_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include <jpeglib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "src/util.h"

/* Tiles rendered per batch and thread: enough to keep threads busy between serial writes, small
 * enough that a batch of 512-px RGB tiles stays in a few MiB per thread. */
#define TILES_PER_THREAD 4
/* Aperio's first description line, as real SVS files write it (ignored by OpenSlide). */
#define APERIO_LIB "Aperio Image Library v10.0.50"

/* Per-handle libtiff message capture (the first error wins, like error_set). */
struct tiff_msgs {
    char first[512];
};

static int tiff_error_handler(TIFF *tif, void *user, const char *module, const char *fmt,
                              va_list ap)
{
    (void)tif;
    struct tiff_msgs *m = user;
    if (m && !m->first[0]) {
        char buf[400];
        vsnprintf(buf, sizeof buf, fmt, ap);
        snprintf(m->first, sizeof m->first, "%s%s%s", module ? module : "", module ? ": " : "",
                 buf);
    }
    return 1; /* handled: do not also call the global handler */
}

static int tiff_warning_handler(TIFF *tif, void *user, const char *module, const char *fmt,
                                va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1; /* warnings (unknown tags and the like) are not errors for a writer */
}

void slide_writer_opts_init(struct slide_writer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->samples_per_pixel = 3;
    o->codec = SLIDE_WRITER_JPEG;
    o->jpeg_quality = 80;
    o->tile_px = 256;
    o->level_step = 2;
    o->min_levels = 1;
    o->min_level_px = 1024;
    o->mpp = 0.25;
    o->vendor = SLIDE_WRITER_GENERIC;
    o->app_mag = 40;
    o->bigtiff = -1;
}

static enum wv_status check_opts(const struct slide_writer_opts *o)
{
    if (o->width_px < 1 || o->height_px < 1 || o->width_px >= ((int64_t)1 << 31) ||
        o->height_px >= ((int64_t)1 << 31))
        return error_set(WV_EINVAL, "slide size %lldx%lld out of range [1, 2^31)",
                         (long long)o->width_px, (long long)o->height_px);
    if (o->samples_per_pixel != 1 && o->samples_per_pixel != 3)
        return error_set(WV_EINVAL, "samples per pixel %d, expected 1 or 3",
                         o->samples_per_pixel);
    if (o->codec == SLIDE_WRITER_JPEG &&
        (o->samples_per_pixel != 3 || o->jpeg_quality < 1 || o->jpeg_quality > 100))
        return error_set(WV_EINVAL, "JPEG needs RGB and quality in [1, 100] (spp %d, q %d)",
                         o->samples_per_pixel, o->jpeg_quality);
    if (o->tile_px < 16 || o->tile_px > 4096 || o->tile_px % 16)
        return error_set(WV_EINVAL, "tile size %d px, expected a multiple of 16 in [16, 4096]",
                         o->tile_px);
    if (o->level_step != 2 && o->level_step != 4)
        return error_set(WV_EINVAL, "level step %d, expected 2 or 4", o->level_step);
    if (o->min_levels < 1 || o->min_levels > SLIDE_WRITER_MAX_LEVELS)
        return error_set(WV_EINVAL, "minimum level count %d out of range", o->min_levels);
    if (!(o->mpp > 0 && o->mpp < 1e6))
        return error_set(WV_EINVAL, "mpp %g, expected > 0", o->mpp);
    if (!o->tile_fn) return error_set(WV_EINVAL, "no tile renderer");
    if (o->vendor == SLIDE_WRITER_GENERIC && o->description &&
        !strncmp(o->description, "Aperio", 6))
        return error_set(WV_EINVAL, "a generic-tiff description must not start with \"Aperio\"");
    return WV_OK;
}

enum wv_status slide_writer_levels(const struct slide_writer_opts *o, int *n_levels,
                                   int64_t *widths, int64_t *heights)
{
    enum wv_status st = check_opts(o);
    if (st) return st;
    int n = 0;
    int64_t w = o->width_px, h = o->height_px;
    while (n < SLIDE_WRITER_MAX_LEVELS && w >= 1 && h >= 1) {
        if (widths) widths[n] = w;
        if (heights) heights[n] = h;
        n++;
        int64_t longer = w > h ? w : h;
        if (n >= o->min_levels && longer <= o->min_level_px) break;
        w /= o->level_step;
        h /= o->level_step;
    }
    if (n < o->min_levels)
        return error_set(WV_EINVAL, "a %lldx%lld slide cannot have %d levels at %dx steps",
                         (long long)o->width_px, (long long)o->height_px, o->min_levels,
                         o->level_step);
    *n_levels = n;
    return WV_OK;
}

/* ---- JPEG tiles, encoded on the rendering threads ------------------------------------------------
 * libtiff's own JPEG encoder runs inside TIFFWriteEncodedTile, on the one thread that writes. Here
 * each tile is compressed where it was rendered, as one complete JPEG stream (its own tables, no
 * JPEGTables tag: TIFF 6 technote 2 allows both, and OpenSlide and libtiff read both), with
 * libtiff's settings for PHOTOMETRIC YCbCr + JPEGCOLORMODE RGB — RGB in, YCbCr 2×2 subsampled,
 * jpeg_set_quality(q, FALSE), no JFIF / Adobe markers — so the decoded pixels are the same as
 * before. The stream goes to the file with TIFFWriteRawTile, in tile order. */
struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
};
static void jpeg_err_exit(j_common_ptr ci)
{
    longjmp(((struct jpeg_err *)ci->err)->jb, 1);
}

/* Compress a tp × tp RGB tile; *out (malloc'd by libjpeg's memory destination, free()) and *n.
 * WV_ENOMEM / WV_EIO on a libjpeg error. */
static enum wv_status jpeg_tile(const uint8_t *rgb, int tp, int quality, unsigned char **out,
                                unsigned long *n)
{
    struct jpeg_compress_struct ci;
    struct jpeg_err je;
    /* volatile: read after longjmp */
    unsigned char *volatile buf = NULL;
    *out = NULL;
    *n = 0;
    ci.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jpeg_err_exit;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&ci);
        free(buf);
        return WV_EIO;
    }
    jpeg_create_compress(&ci);
    unsigned char *mb = NULL;
    unsigned long mn = 0;
    jpeg_mem_dest(&ci, &mb, &mn);
    ci.image_width = (JDIMENSION)tp;
    ci.image_height = (JDIMENSION)tp;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci); /* YCbCr, luma sampled 2×2 */
    jpeg_set_quality(&ci, quality, FALSE);
    ci.write_JFIF_header = FALSE;
    ci.write_Adobe_marker = FALSE;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci.next_scanline * tp * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    buf = mb;
    jpeg_destroy_compress(&ci);
    *out = buf;
    *n = mn;
    return WV_OK;
}

/* Tags shared by every directory that holds pixels. */
static void set_pixel_tags(TIFF *t, const struct slide_writer_opts *o, int64_t w, int64_t h,
                           enum slide_writer_codec codec)
{
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, o->samples_per_pixel);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_SOFTWARE, "wsi-vmamba synth");
    if (codec == SLIDE_WRITER_JPEG) {
        /* order matters: JPEGCOLORMODE is a pseudo-tag of the JPEG codec, which exists only
         * once COMPRESSION is set; PHOTOMETRIC YCbCr makes libtiff subsample. */
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
        TIFFSetField(t, TIFFTAG_YCBCRSUBSAMPLING, 2, 2);
        TIFFSetField(t, TIFFTAG_JPEGQUALITY, o->jpeg_quality);
        TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        /* tiles are complete JPEG streams written raw (jpeg_tile): no shared tables */
        if (!o->jpeg_by_libtiff) TIFFSetField(t, TIFFTAG_JPEGTABLESMODE, 0);
    } else {
        TIFFSetField(t, TIFFTAG_COMPRESSION,
                     codec == SLIDE_WRITER_LZW ? COMPRESSION_LZW : COMPRESSION_ADOBE_DEFLATE);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC,
                     o->samples_per_pixel == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    }
}

static void set_resolution(TIFF *t, double mpp, double ds)
{
    /* ASAP's way (§4.2): pixels per centimetre at this level */
    float res = (float)(1e4 / (mpp * ds));
    TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(t, TIFFTAG_XRESOLUTION, res);
    TIFFSetField(t, TIFFTAG_YRESOLUTION, res);
}

struct wctx {
    const char *path;
    const struct slide_writer_opts *o;
    TIFF *t;
    struct tiff_msgs msgs;
};

static enum wv_status tiff_fail(struct wctx *c, const char *what)
{
    return error_set(WV_EIO, "%s: %s: %s", c->path, what,
                     c->msgs.first[0] ? c->msgs.first : "libtiff error");
}

/* One pyramid level as tiles, rendered in parallel batches and written in row-major order. */
static enum wv_status write_level(struct wctx *c, int level, double ds, int64_t w, int64_t h,
                                  const char *description)
{
    const struct slide_writer_opts *o = c->o;
    const int spp = o->samples_per_pixel;
    /* Tiles no larger than the level: OpenSlide 3.4.1 reads non-JPEG tiles through libtiff's
     * RGBA interface with the full tile width, and libtiff 4.5 then warns "Raster width of 512
     * shall not be larger than image width of 250" and returns zeros — a 8000-px mask's level 5
     * read all black until tiles were shrunk here (tests/integration/synth_check.py cohort). */
    int64_t shorter = w < h ? w : h;
    int tp = o->tile_px;
    if (tp > shorter) tp = shorter >= 32 ? (int)(shorter / 16) * 16 : 16;
    set_pixel_tags(c->t, o, w, h, o->codec);
    TIFFSetField(c->t, TIFFTAG_TILEWIDTH, (uint32_t)tp);
    TIFFSetField(c->t, TIFFTAG_TILELENGTH, (uint32_t)tp);
    if (o->vendor == SLIDE_WRITER_GENERIC) {
        if (level > 0) TIFFSetField(c->t, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    }
    /* resolution on every level, ASAP-style; harmless for aperio (OpenSlide reads MPP there) */
    set_resolution(c->t, o->mpp, ds);
    if (description) TIFFSetField(c->t, TIFFTAG_IMAGEDESCRIPTION, description);

    int n_threads = o->n_threads;
#ifdef _OPENMP
    if (n_threads <= 0) n_threads = omp_get_max_threads();
#endif
    if (n_threads <= 0) n_threads = 1;
    const int64_t tiles_x = (w + tp - 1) / tp, tiles_y = (h + tp - 1) / tp;
    const int64_t n_tiles = tiles_x * tiles_y;
    int batch = n_threads * TILES_PER_THREAD;
    if (batch > n_tiles) batch = (int)n_tiles;
    const size_t tile_bytes = (size_t)tp * tp * spp;
    const int jpeg = o->codec == SLIDE_WRITER_JPEG && !o->jpeg_by_libtiff;
    uint8_t *buf = wv_malloc(tile_bytes * batch, "tile batch");
    enum wv_status *sts = wv_calloc(batch, sizeof *sts, "tile status");
    unsigned char **enc = jpeg ? wv_calloc(batch, sizeof *enc, "encoded tiles") : NULL;
    unsigned long *enc_n = jpeg ? wv_calloc(batch, sizeof *enc_n, "encoded sizes") : NULL;
    enum wv_status st = WV_OK;
    if (!buf || !sts || (jpeg && (!enc || !enc_n))) {
        st = WV_ENOMEM;
        goto done;
    }
    for (int64_t first = 0; first < n_tiles && !st; first += batch) {
        int n = (int)(n_tiles - first < batch ? n_tiles - first : batch);
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
        for (int i = 0; i < n; i++) {
            int64_t ti = first + i;
            int64_t tx = ti % tiles_x, ty = ti / tiles_x;
            uint8_t *tb = buf + (size_t)i * tile_bytes;
            sts[i] = o->tile_fn(o->ctx, level, ds, tx * tp, ty * tp, tp, tp, tb);
            if (!sts[i] && jpeg) sts[i] = jpeg_tile(tb, tp, o->jpeg_quality, &enc[i], &enc_n[i]);
        }
        for (int i = 0; i < n && !st; i++) {
            int64_t ti = first + i;
            if (sts[i]) {
                st = error_set(sts[i], "%s: %s tile (%lld, %lld) of level %d failed: %s", c->path,
                               jpeg ? "rendering or JPEG-encoding" : "rendering",
                               (long long)(ti % tiles_x), (long long)(ti / tiles_x), level,
                               wv_status_name(sts[i]));
            } else if (jpeg ? TIFFWriteRawTile(c->t, (uint32_t)ti, enc[i], (tmsize_t)enc_n[i]) < 0
                            : TIFFWriteEncodedTile(c->t, (uint32_t)ti, buf + (size_t)i * tile_bytes,
                                                   (tmsize_t)tile_bytes) < 0) {
                st = tiff_fail(c, "cannot write tile");
            }
        }
        for (int i = 0; jpeg && i < n; i++) free(enc[i]), enc[i] = NULL;
    }
    if (!st && !TIFFWriteDirectory(c->t)) st = tiff_fail(c, "cannot write directory");
done:
    free(enc);
    free(enc_n);
    free(sts);
    free(buf);
    return st;
}

/* A stripped RGB directory (an aperio associated image), LZW, 16 rows per strip as in the
 * §4.2 recipe. rgb is (h, w, 3). */
static enum wv_status write_stripped(struct wctx *c, int w, int h, const uint8_t *rgb,
                                     const char *description)
{
    struct slide_writer_opts rgbopts = *c->o;
    rgbopts.samples_per_pixel = 3;
    set_pixel_tags(c->t, &rgbopts, w, h, SLIDE_WRITER_LZW);
    TIFFSetField(c->t, TIFFTAG_ROWSPERSTRIP, 16);
    TIFFSetField(c->t, TIFFTAG_IMAGEDESCRIPTION, description);
    for (int y = 0; y < h; y++)
        if (TIFFWriteScanline(c->t, (void *)(rgb + (size_t)y * w * 3), (uint32_t)y, 0) < 0)
            return tiff_fail(c, "cannot write associated image");
    if (!TIFFWriteDirectory(c->t)) return tiff_fail(c, "cannot write directory");
    return WV_OK;
}

static enum wv_status write_thumbnail(struct wctx *c)
{
    const struct slide_writer_opts *o = c->o;
    int64_t longer = o->width_px > o->height_px ? o->width_px : o->height_px;
    double ds = (double)longer / SLIDE_WRITER_THUMB_MAX_PX;
    if (ds < 1) ds = 1;
    int w = (int)floor(o->width_px / ds), h = (int)floor(o->height_px / ds);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    uint8_t *rgb = wv_malloc((size_t)w * h * 3, "thumbnail");
    if (!rgb) return WV_ENOMEM;
    enum wv_status st = WV_OK;
    if (o->samples_per_pixel == 3) {
        st = o->tile_fn(o->ctx, SLIDE_WRITER_THUMBNAIL, ds, 0, 0, w, h, rgb);
        if (st) st = error_set(st, "%s: rendering the thumbnail failed", c->path);
    } else {
        /* grey slide: render grey, expand in place from the end */
        st = o->tile_fn(o->ctx, SLIDE_WRITER_THUMBNAIL, ds, 0, 0, w, h, rgb);
        for (int64_t i = (int64_t)w * h - 1; !st && i >= 0; i--)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = rgb[i];
    }
    char desc[256];
    snprintf(desc, sizeof desc, APERIO_LIB "\n%lldx%lld -> %dx%d - ", (long long)o->width_px,
             (long long)o->height_px, w, h);
    if (!st) st = write_stripped(c, w, h, rgb, desc);
    free(rgb);
    return st;
}

static enum wv_status write_assoc(struct wctx *c, const char *name, int w, int h)
{
    const struct slide_writer_opts *o = c->o;
    uint8_t *rgb = wv_malloc((size_t)w * h * 3, name);
    if (!rgb) return WV_ENOMEM;
    enum wv_status st = o->assoc_fn(o->ctx, name, w, h, rgb);
    if (st) st = error_set(st, "%s: rendering the %s image failed", c->path, name);
    /* "\n", not "\r\n": OpenSlide 3.4.1 names the image by the first word of line 2 (§4.2) */
    char desc[128];
    snprintf(desc, sizeof desc, APERIO_LIB "\n%s %dx%d", name, w, h);
    if (!st) st = write_stripped(c, w, h, rgb, desc);
    free(rgb);
    return st;
}

static const char *codec_name(enum slide_writer_codec c)
{
    return c == SLIDE_WRITER_JPEG ? "JPEG/RGB" : c == SLIDE_WRITER_LZW ? "LZW" : "Deflate";
}

enum wv_status slide_writer_write(const char *path, const struct slide_writer_opts *o)
{
    int n_levels;
    int64_t ws[SLIDE_WRITER_MAX_LEVELS], hs[SLIDE_WRITER_MAX_LEVELS];
    enum wv_status st = slide_writer_levels(o, &n_levels, ws, hs);
    if (st) {
        error_prefix("%s", path);
        return st;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return error_set(WV_EINVAL, "%s: path too long", path);

    struct wctx c = {.path = path, .o = o};
    int big = o->bigtiff;
    if (big < 0)
        big = (double)o->width_px * o->height_px * o->samples_per_pixel > 2147483648.0;
    TIFFOpenOptions *topts = TIFFOpenOptionsAlloc();
    if (!topts) return error_set(WV_ENOMEM, "%s: out of memory", path);
    TIFFOpenOptionsSetErrorHandlerExtR(topts, tiff_error_handler, &c.msgs);
    TIFFOpenOptionsSetWarningHandlerExtR(topts, tiff_warning_handler, NULL);
    c.t = TIFFOpenExt(tmp, big ? "w8" : "w", topts);
    TIFFOpenOptionsFree(topts);
    if (!c.t) {
        int e = errno;
        return error_set(WV_EIO, "%s: cannot create: %s", path,
                         c.msgs.first[0] ? c.msgs.first : strerror(e));
    }

    char desc[1024];
    const char *extra = o->description ? o->description : "";
    for (int k = 0; k < n_levels && !st; k++) {
        double ds = pow(o->level_step, k);
        const char *d = NULL;
        if (o->vendor == SLIDE_WRITER_APERIO) {
            /* §4.2: "Aperio" first; the first |-field (library line and geometry) is ignored;
             * every "key = value" pair after it becomes aperio.<key>. */
            if (k == 0)
                snprintf(desc, sizeof desc,
                         APERIO_LIB "\r\n%lldx%lld [0,0 %lldx%lld] (%dx%d) %s Q=%d"
                                    "|AppMag = %d|MPP = %.4f%s",
                         (long long)ws[0], (long long)hs[0], (long long)ws[0], (long long)hs[0],
                         o->tile_px, o->tile_px, codec_name(o->codec), o->jpeg_quality,
                         o->app_mag, o->mpp, extra);
            else
                snprintf(desc, sizeof desc,
                         APERIO_LIB "\r\n%lldx%lld [0,0 %lldx%lld] (%dx%d) -> %lldx%lld %s Q=%d",
                         (long long)ws[0], (long long)hs[0], (long long)ws[0], (long long)hs[0],
                         o->tile_px, o->tile_px, (long long)ws[k], (long long)hs[k],
                         codec_name(o->codec), o->jpeg_quality);
            d = desc;
        } else if (k == 0 && o->description) {
            d = o->description;
        }
        st = write_level(&c, k, ds, ws[k], hs[k], d);
        /* aperio: directory 1 is always the thumbnail (§4.2) */
        if (!st && k == 0 && o->vendor == SLIDE_WRITER_APERIO) st = write_thumbnail(&c);
    }
    if (!st && o->vendor == SLIDE_WRITER_APERIO && o->assoc_fn) {
        st = write_assoc(&c, "label", SLIDE_WRITER_LABEL_W, SLIDE_WRITER_LABEL_H);
        if (!st) st = write_assoc(&c, "macro", SLIDE_WRITER_MACRO_W, SLIDE_WRITER_MACRO_H);
    }
    if (!st && !TIFFFlush(c.t)) st = tiff_fail(&c, "cannot flush");
    TIFFClose(c.t);
    if (!st && c.msgs.first[0]) st = tiff_fail(&c, "write failed");
    if (!st) {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) {
            int e = errno;
            st = error_set(WV_EIO, "%s: cannot flush to disk: %s", path, strerror(e));
        }
        if (fd >= 0) close(fd);
    }
    if (!st && rename(tmp, path) != 0) {
        int e = errno;
        st = error_set(WV_EIO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    if (st) unlink(tmp);
    return st;
}
