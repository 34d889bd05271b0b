/*
 * slide.c — the OpenSlide-backed slide handle: open + sanity read, properties, pixel size,
 * level choice and region reads at any scale (pieces bounded by SLIDE_READ_PIECE).
 * Contract and coordinate frames: slide.h. OpenSlide 3.4.1 behaviour relied on:
 * CAMELYON16_PROTOCOL.md §4.1.
 */
#include "slide.h"

#include <errno.h>
#include <math.h>
#include <openslide.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resample.h"
#include "src/util.h"

struct level {
    int64_t w, h;
    double downsample;
    int tile_w, tile_h;
};

struct assoc {
    const char *name; /* owned by OpenSlide */
    int64_t w, h;
};

struct slide {
    openslide_t *osr;
    char *path;
    int n_levels;
    struct level *levels;
    int n_assoc;
    struct assoc *assoc;
    const char *vendor;
    double objective_power;
    double mpp_x, mpp_y, file_mpp_x, file_mpp_y;
    enum slide_mpp_source mpp_source, file_mpp_source;

    /* sticky error: the first failure wins; err_code is read without the lock */
    pthread_mutex_t err_lock;
    _Atomic int err_code;
    char *err;
};

const char *slide_mpp_source_name(enum slide_mpp_source src)
{
    switch (src) {
    case SLIDE_MPP_OPENSLIDE: return "openslide";
    case SLIDE_MPP_TIFF_CM: return "tiff-centimeter";
    case SLIDE_MPP_TIFF_INCH: return "tiff-inch";
    case SLIDE_MPP_USER: return "user";
    case SLIDE_MPP_NONE: break;
    }
    return "none";
}

/* Record the handle's sticky error (first one wins) and the thread's message; returns code.
 * The thread-local message gets the same text so callers can print error_msg(). */
static enum wv_status slide_fail(struct slide *s, enum wv_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum wv_status slide_fail(struct slide *s, enum wv_status code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->err_lock);
    if (!s->err) {
        s->err = strdup(buf);
        atomic_store(&s->err_code, (int)code);
    }
    pthread_mutex_unlock(&s->err_lock);
    return error_set(code, "%s", buf);
}

/* The sticky status, with the message re-recorded for this thread. */
static enum wv_status sticky(struct slide *s)
{
    int code = atomic_load(&s->err_code);
    if (code == WV_OK) return WV_OK;
    pthread_mutex_lock(&s->err_lock);
    error_set((enum wv_status)code, "%s", s->err ? s->err : "earlier read failed");
    pthread_mutex_unlock(&s->err_lock);
    return (enum wv_status)code;
}

/* Whole-string positive finite number, else 0. */
static double parse_positive(const char *v)
{
    if (!v) return 0;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d <= 0) return 0;
    return d;
}

/* Pixel size from the file: openslide.mpp-x/y, else TIFF resolution tags (see slide.h). */
static void find_mpp(struct slide *s)
{
    double mx = parse_positive(openslide_get_property_value(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_X));
    double my = parse_positive(openslide_get_property_value(s->osr, OPENSLIDE_PROPERTY_NAME_MPP_Y));
    if (mx > 0 || my > 0) {
        s->file_mpp_x = mx > 0 ? mx : my;
        s->file_mpp_y = my > 0 ? my : mx;
        s->file_mpp_source = SLIDE_MPP_OPENSLIDE;
        return;
    }
    const char *unit = openslide_get_property_value(s->osr, "tiff.ResolutionUnit");
    double rx = parse_positive(openslide_get_property_value(s->osr, "tiff.XResolution"));
    double ry = parse_positive(openslide_get_property_value(s->osr, "tiff.YResolution"));
    if (!unit || rx <= 0) return;
    if (ry <= 0) ry = rx;
    double um_per_unit;
    enum slide_mpp_source src;
    if (!strcmp(unit, "centimeter")) {
        um_per_unit = 10000.0, src = SLIDE_MPP_TIFF_CM;
    } else if (!strcmp(unit, "inch")) {
        um_per_unit = 25400.0, src = SLIDE_MPP_TIFF_INCH;
    } else {
        return; /* "none": resolution without a physical unit */
    }
    double px = um_per_unit / rx, py = um_per_unit / ry;
    if (px < SLIDE_TIFF_MPP_MIN || px > SLIDE_TIFF_MPP_MAX || py < SLIDE_TIFF_MPP_MIN ||
        py > SLIDE_TIFF_MPP_MAX)
        return; /* not a microscope scan's resolution (72 dpi defaults): unknown */
    s->file_mpp_x = px, s->file_mpp_y = py, s->file_mpp_source = src;
}

/* Check the path before OpenSlide sees it, so the common mistakes get a precise message. */
static enum wv_status check_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return error_set(WV_EIO, "no such file");
        return error_set(WV_EIO, "cannot access: %s", strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return error_set(WV_EIO, "is a directory, not a slide file");
    if (!S_ISREG(st.st_mode)) return error_set(WV_EIO, "not a regular file");
    if (st.st_size == 0) return error_set(WV_EFORMAT, "empty file (0 bytes)");
    if (access(path, R_OK) != 0) return error_set(WV_EIO, "cannot read: %s", strerror(errno));
    return WV_OK;
}

/* Sanity read: decode a little of the coarsest level and one tile of level 0, so a slide whose
 * tiles are undecodable (unreadable.svs: "Bogus marker length") fails at open, not mid-run. */
static enum wv_status sanity_read(struct slide *s)
{
    int last = s->n_levels - 1;
    struct {
        int level;
        int64_t w, h;
    } probes[2] = {
        {last, 256, 256},
        {0, s->levels[0].tile_w > 0 ? s->levels[0].tile_w : 256,
         s->levels[0].tile_h > 0 ? s->levels[0].tile_h : 256},
    };
    uint8_t *rgb = wv_malloc((size_t)512 * 512 * 3, "sanity read");
    if (!rgb) return WV_ENOMEM;
    enum wv_status st = WV_OK;
    for (int k = 0; k < 2 && st == WV_OK; k++) {
        const struct level *l = &s->levels[probes[k].level];
        int64_t w = probes[k].w < l->w ? probes[k].w : l->w;
        int64_t h = probes[k].h < l->h ? probes[k].h : l->h;
        if (w > 512) w = 512;
        if (h > 512) h = 512;
        /* centre of the level, in level-0 px */
        int64_t x0 = (int64_t)(((l->w - w) / 2) * l->downsample);
        int64_t y0 = (int64_t)(((l->h - h) / 2) * l->downsample);
        st = slide_read_level(s, probes[k].level, x0, y0, w, h, rgb);
    }
    free(rgb);
    return st;
}


/* ---- why OpenSlide refused a TIFF ------------------------------------------------------------- */

static uint64_t rd_u(const uint8_t *p, int n, int big)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[big ? n - 1 - i : i] << (8 * (big ? i : i));
    return v;
}

/* Bytes per value of a TIFF field type (0 for unknown types). */
static int tiff_type_size(unsigned t)
{
    switch (t) {
    case 1: case 2: case 6: case 7: return 1;         /* BYTE ASCII SBYTE UNDEFINED */
    case 3: case 8: return 2;                         /* SHORT SSHORT */
    case 4: case 9: case 11: case 13: return 4;       /* LONG SLONG FLOAT IFD */
    case 5: case 10: case 12: case 16: case 17: case 18: return 8; /* RATIONAL… LONG8 IFD8 */
    }
    return 0;
}

/* When openslide_open returned NULL: if the file is a TIFF, walk its directory chain and say
 * whether it is cut short (a truncated copy of a good slide fails here: SVS files keep their
 * directories after the tile data). Records the message and returns the status; WV_OK when the
 * file is not a TIFF or its structure looks whole (the caller then says "not supported"). */
static enum wv_status explain_tiff(const char *path, int *is_tiff)
{
    *is_tiff = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return WV_OK;
    enum wv_status st = WV_OK;
    uint8_t h[16];
    fseeko(f, 0, SEEK_END);
    uint64_t size = (uint64_t)ftello(f);
    fseeko(f, 0, SEEK_SET);
    if (fread(h, 1, 16, f) < 8) goto done;
    int big = 0, bigtiff = 0;
    if (h[0] == 'I' && h[1] == 'I') big = 0;
    else if (h[0] == 'M' && h[1] == 'M') big = 1;
    else goto done;
    unsigned magic = (unsigned)rd_u(h + 2, 2, big);
    if (magic == 43) bigtiff = 1;
    else if (magic != 42) goto done;
    *is_tiff = 1;
    uint64_t off = bigtiff ? rd_u(h + 8, 8, big) : rd_u(h + 4, 4, big);
    int cnt_sz = bigtiff ? 8 : 2, ent_sz = bigtiff ? 20 : 12, off_sz = bigtiff ? 8 : 4;
    for (int dir = 0; off != 0 && dir < 10000; dir++) {
        uint8_t buf[20];
        if (off + (uint64_t)cnt_sz > size || fseeko(f, (off_t)off, SEEK_SET) ||
            fread(buf, 1, (size_t)cnt_sz, f) != (size_t)cnt_sz) {
            st = error_set(WV_EFORMAT, "truncated TIFF: directory %d at byte %llu is past the end "
                           "of the file (%llu bytes)", dir, (unsigned long long)off,
                           (unsigned long long)size);
            goto done;
        }
        uint64_t n = rd_u(buf, cnt_sz, big);
        if (off + cnt_sz + n * ent_sz + off_sz > size) {
            st = error_set(WV_EFORMAT, "truncated TIFF: directory %d (%llu entries at byte %llu) "
                           "runs past the end of the file (%llu bytes)", dir, (unsigned long long)n,
                           (unsigned long long)off, (unsigned long long)size);
            goto done;
        }
        for (uint64_t e = 0; e < n; e++) {
            if (fread(buf, 1, (size_t)ent_sz, f) != (size_t)ent_sz) goto done;
            unsigned tag = (unsigned)rd_u(buf, 2, big), type = (unsigned)rd_u(buf + 2, 2, big);
            uint64_t count = bigtiff ? rd_u(buf + 4, 8, big) : rd_u(buf + 4, 4, big);
            uint64_t bytes = count * (uint64_t)tiff_type_size(type);
            if (bytes <= (uint64_t)off_sz) continue; /* value stored inline */
            uint64_t voff = bigtiff ? rd_u(buf + 12, 8, big) : rd_u(buf + 8, 4, big);
            if (voff + bytes > size) {
                st = error_set(WV_EFORMAT, "truncated TIFF: directory %d, tag %u: data at bytes "
                               "%llu..%llu is past the end of the file (%llu bytes)", dir, tag,
                               (unsigned long long)voff, (unsigned long long)(voff + bytes),
                               (unsigned long long)size);
                goto done;
            }
        }
        if (fread(buf, 1, (size_t)off_sz, f) != (size_t)off_sz) goto done;
        off = rd_u(buf, off_sz, big);
    }
done:
    fclose(f);
    return st;
}

enum wv_status slide_open(const char *path, struct slide **out)
{
    *out = NULL;
    enum wv_status st = check_path(path);
    if (st != WV_OK) return st;

    openslide_t *osr = openslide_open(path);
    if (!osr) {
        /* 3.4.1 returns NULL for some corrupt files its detector recognises (CAMELYON16 §4.1) */
        const char *vendor = openslide_detect_vendor(path);
        if (vendor)
            return error_set(WV_EFORMAT, "looks like a %s slide but cannot be opened (corrupt "
                                         "or unsupported variant)", vendor);
        int is_tiff;
        if ((st = explain_tiff(path, &is_tiff)) != WV_OK) return st;
        if (is_tiff)
            return error_set(WV_EUNSUPPORTED, "not a supported slide format (a TIFF, but no "
                             "OpenSlide format accepts its layout; whole-slide TIFFs are tiled "
                             "pyramids)");
        return error_set(WV_EUNSUPPORTED, "not a supported slide format");
    }
    const char *oerr = openslide_get_error(osr);
    if (oerr) {
        error_set(WV_EFORMAT, "cannot open slide: %s", oerr);
        openslide_close(osr);
        return WV_EFORMAT;
    }

    struct slide *s = wv_calloc(1, sizeof *s, "slide handle");
    if (!s) {
        openslide_close(osr);
        return WV_ENOMEM;
    }
    s->osr = osr;
    pthread_mutex_init(&s->err_lock, NULL);
    atomic_init(&s->err_code, WV_OK);
    s->path = strdup(path);
    s->n_levels = openslide_get_level_count(osr);
    if (!s->path) {
        st = error_set(WV_ENOMEM, "out of memory");
        goto fail;
    }
    if (s->n_levels < 1) {
        st = error_set(WV_EFORMAT, "slide has no levels");
        goto fail;
    }
    s->levels = wv_calloc((size_t)s->n_levels, sizeof *s->levels, "slide levels");
    if (!s->levels) {
        st = WV_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < s->n_levels; i++) {
        struct level *l = &s->levels[i];
        openslide_get_level_dimensions(osr, i, &l->w, &l->h);
        l->downsample = openslide_get_level_downsample(osr, i);
        if (l->w <= 0 || l->h <= 0 || !(l->downsample >= 1.0 - 1e-9)) {
            st = error_set(WV_EFORMAT, "level %d: bad size %lldx%lld or downsample %g", i,
                           (long long)l->w, (long long)l->h, l->downsample);
            goto fail;
        }
        char name[64];
        snprintf(name, sizeof name, "openslide.level[%d].tile-width", i);
        l->tile_w = (int)parse_positive(openslide_get_property_value(osr, name));
        snprintf(name, sizeof name, "openslide.level[%d].tile-height", i);
        l->tile_h = (int)parse_positive(openslide_get_property_value(osr, name));
    }
    const char *v = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
    s->vendor = v ? v : "unknown";
    s->objective_power =
        parse_positive(openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER));

    const char *const *names = openslide_get_associated_image_names(osr);
    while (names && names[s->n_assoc]) s->n_assoc++;
    if (s->n_assoc) {
        s->assoc = wv_calloc((size_t)s->n_assoc, sizeof *s->assoc, "associated images");
        if (!s->assoc) {
            st = WV_ENOMEM;
            goto fail;
        }
        for (int i = 0; i < s->n_assoc; i++) {
            s->assoc[i].name = names[i];
            openslide_get_associated_image_dimensions(osr, names[i], &s->assoc[i].w,
                                                      &s->assoc[i].h);
        }
    }

    find_mpp(s);
    s->mpp_x = s->file_mpp_x, s->mpp_y = s->file_mpp_y, s->mpp_source = s->file_mpp_source;

    if ((oerr = openslide_get_error(osr))) {
        st = error_set(WV_EFORMAT, "cannot read slide metadata: %s", oerr);
        goto fail;
    }
    st = sanity_read(s);
    if (st != WV_OK) goto fail;
    *out = s;
    return WV_OK;
fail:
    slide_close(s);
    return st;
}

void slide_close(struct slide *s)
{
    if (!s) return;
    if (s->osr) openslide_close(s->osr);
    pthread_mutex_destroy(&s->err_lock);
    free(s->err);
    free(s->levels);
    free(s->assoc);
    free(s->path);
    free(s);
}

const char *slide_error(const struct slide *s)
{
    if (atomic_load(&((struct slide *)s)->err_code) == WV_OK) return NULL;
    return s->err; /* written once, before err_code is published */
}

const char *slide_path(const struct slide *s) { return s->path; }
int slide_level_count(const struct slide *s) { return s->n_levels; }

int64_t slide_level_width(const struct slide *s, int level)
{
    return level >= 0 && level < s->n_levels ? s->levels[level].w : -1;
}
int64_t slide_level_height(const struct slide *s, int level)
{
    return level >= 0 && level < s->n_levels ? s->levels[level].h : -1;
}
double slide_level_downsample(const struct slide *s, int level)
{
    return level >= 0 && level < s->n_levels ? s->levels[level].downsample : -1.0;
}
int slide_level_tile_width(const struct slide *s, int level)
{
    return level >= 0 && level < s->n_levels ? s->levels[level].tile_w : 0;
}
int slide_level_tile_height(const struct slide *s, int level)
{
    return level >= 0 && level < s->n_levels ? s->levels[level].tile_h : 0;
}

int slide_best_level(const struct slide *s, double downsample)
{
    int best = 0;
    double limit = downsample * (1.0 + SLIDE_LEVEL_TOLERANCE);
    for (int i = 1; i < s->n_levels; i++)
        if (s->levels[i].downsample <= limit && s->levels[i].downsample > s->levels[best].downsample)
            best = i;
    return best;
}

const char *slide_vendor(const struct slide *s) { return s->vendor; }
double slide_objective_power(const struct slide *s) { return s->objective_power; }
const char *slide_property(const struct slide *s, const char *name)
{
    return openslide_get_property_value(s->osr, name);
}
const char *const *slide_property_names(const struct slide *s)
{
    return openslide_get_property_names(s->osr);
}
int slide_associated_count(const struct slide *s) { return s->n_assoc; }
const char *slide_associated_name(const struct slide *s, int i)
{
    return i >= 0 && i < s->n_assoc ? s->assoc[i].name : NULL;
}
void slide_associated_size(const struct slide *s, int i, int64_t *w, int64_t *h)
{
    *w = i >= 0 && i < s->n_assoc ? s->assoc[i].w : -1;
    *h = i >= 0 && i < s->n_assoc ? s->assoc[i].h : -1;
}

double slide_mpp_x(const struct slide *s) { return s->mpp_x; }
double slide_mpp_y(const struct slide *s) { return s->mpp_y; }
double slide_file_mpp_x(const struct slide *s) { return s->file_mpp_x; }
double slide_file_mpp_y(const struct slide *s) { return s->file_mpp_y; }
enum slide_mpp_source slide_mpp_source(const struct slide *s) { return s->mpp_source; }

enum wv_status slide_set_mpp(struct slide *s, double mpp)
{
    if (!(mpp > 0) || !isfinite(mpp))
        return error_set(WV_EINVAL, "pixel size %g µm/px: must be a positive number", mpp);
    s->mpp_x = s->mpp_y = mpp;
    s->mpp_source = SLIDE_MPP_USER;
    return WV_OK;
}

enum wv_status slide_require_mpp(const struct slide *s)
{
    if (s->mpp_x > 0 && s->mpp_y > 0) return WV_OK;
    return error_set(WV_EINVAL, "pixel size unknown (no openslide.mpp-x or usable tiff "
                                "resolution): give --mpp");
}

/* ---- reading --------------------------------------------------------------------------------- */

static void fill_white(uint8_t *rgb, size_t n_bytes) { memset(rgb, 255, n_bytes); }

/* One openslide_read_region of (w, h) ≤ SLIDE_READ_PIECE² (plus margins) level px at level-0
 * (x, y) into `rgb` with row stride `stride` bytes. `argb` is scratch of w·h words.
 * OpenSlide 3.4.1 misplaces reads that start at negative coordinates on a level with a
 * non-integer downsample (tcga-cr-7395's level 1 read at (−4, −4) comes back shifted by one
 * level px, not 1.9995), so the part left of / above the slide is filled with white here and
 * OpenSlide is only asked for coordinates ≥ 0. */
/* Where read_piece puts the level: the level position of buffer column 0 for a piece read at
 * level-0 coordinate x (X/dl, except for x < 0, see read_piece). */
static double piece_origin(double dl, int64_t x)
{
    if (x >= 0) return x / dl;
    int64_t c0 = (int64_t)ceil(-x / dl), xs = (int64_t)llround(x + c0 * dl);
    if (xs < 0) xs = 0;
    return xs / dl - (double)c0;
}

static enum wv_status read_piece(struct slide *s, int level, int64_t x, int64_t y, int64_t w,
                                 int64_t h, uint32_t *argb, uint8_t *rgb, size_t stride)
{
    double dl = s->levels[level].downsample;
    int64_t c0 = 0, r0 = 0, xs = x, ys = y;
    if (x < 0) {
        c0 = (int64_t)ceil(-x / dl); /* first column at level position ≥ 0 */
        if (c0 > w) c0 = w;
        xs = (int64_t)llround(x + c0 * dl);
        if (xs < 0) xs = 0;
    }
    if (y < 0) {
        r0 = (int64_t)ceil(-y / dl);
        if (r0 > h) r0 = h;
        ys = (int64_t)llround(y + r0 * dl);
        if (ys < 0) ys = 0;
    }
    for (int64_t r = 0; r < h; r++) {
        if (r < r0)
            memset(rgb + (size_t)r * stride, 255, (size_t)w * 3);
        else if (c0)
            memset(rgb + (size_t)r * stride, 255, (size_t)c0 * 3);
    }
    int64_t rw = w - c0, rh = h - r0;
    if (rw <= 0 || rh <= 0) return WV_OK;
    openslide_read_region(s->osr, argb, xs, ys, level, rw, rh);
    const char *oerr = openslide_get_error(s->osr);
    if (oerr)
        return slide_fail(s, WV_EFORMAT, "read of %lldx%lld px at level %d, (%lld, %lld): %s",
                          (long long)rw, (long long)rh, level, (long long)xs, (long long)ys, oerr);
    for (int64_t r = 0; r < rh; r++)
        resample_argb_to_rgb(argb + r * rw, (size_t)rw,
                             rgb + (size_t)(r + r0) * stride + (size_t)c0 * 3);
    return WV_OK;
}

/* Output size checks shared by the public readers. */
static enum wv_status check_out(int64_t w, int64_t h)
{
    if (w < 0 || h < 0) return error_set(WV_EINVAL, "negative region size %lldx%lld",
                                         (long long)w, (long long)h);
    if (w > 0 && (uint64_t)h > SIZE_MAX / 3 / (uint64_t)w)
        return error_set(WV_EINVAL, "region %lldx%lld is too large", (long long)w, (long long)h);
    return WV_OK;
}

enum wv_status slide_read_level(struct slide *s, int level, int64_t x0, int64_t y0, int64_t w,
                                int64_t h, uint8_t *rgb)
{
    enum wv_status st = check_out(w, h);
    if (st != WV_OK) return st;
    if (level < 0 || level >= s->n_levels)
        return error_set(WV_EINVAL, "level %d out of range (slide has %d)", level, s->n_levels);
    size_t out_bytes = (size_t)w * (size_t)h * 3;
    if ((st = sticky(s)) != WV_OK) {
        fill_white(rgb, out_bytes);
        return st;
    }
    if (!w || !h) return WV_OK;
    int64_t pw = w < SLIDE_READ_PIECE ? w : SLIDE_READ_PIECE;
    int64_t ph = h < SLIDE_READ_PIECE ? h : SLIDE_READ_PIECE;
    uint32_t *argb = wv_malloc((size_t)pw * (size_t)ph * sizeof *argb, "slide read buffer");
    if (!argb) return WV_ENOMEM;
    double dl = s->levels[level].downsample;
    for (int64_t by = 0; by < h && st == WV_OK; by += ph) {
        for (int64_t bx = 0; bx < w && st == WV_OK; bx += pw) {
            int64_t cw = w - bx < pw ? w - bx : pw, ch = h - by < ph ? h - by : ph;
            /* piece origin in level-0 px; exact when dl is an integer (see slide.h) */
            int64_t px = x0 + (int64_t)llround((double)bx * dl);
            int64_t py = y0 + (int64_t)llround((double)by * dl);
            st = read_piece(s, level, px, py, cw, ch, argb, rgb + ((size_t)by * (size_t)w + (size_t)bx) * 3,
                            (size_t)w * 3);
        }
    }
    free(argb);
    if (st != WV_OK) fill_white(rgb, out_bytes);
    return st;
}

/* Is the scale ratio "exactly 1"? Ratios come from divisions of decimal mpp values, so allow
 * rounding noise only (1e-9 of a 10,000-px region is far below a pixel). */
static int is_unit_ratio(double r) { return fabs(r - 1.0) <= 1e-9; }

enum wv_status slide_read_region_ds(struct slide *s, int64_t x0, int64_t y0, int64_t out_w,
                                    int64_t out_h, double ds_x, double ds_y, uint8_t *rgb_out)
{
    enum wv_status st = check_out(out_w, out_h);
    if (st != WV_OK) return st;
    if (!(ds_x > 0) || !(ds_y > 0) || !isfinite(ds_x) || !isfinite(ds_y))
        return error_set(WV_EINVAL, "bad scale %g x %g level-0 px per output px", ds_x, ds_y);
    size_t out_bytes = (size_t)out_w * (size_t)out_h * 3;
    if ((st = sticky(s)) != WV_OK) {
        fill_white(rgb_out, out_bytes);
        return st;
    }
    if (!out_w || !out_h) return WV_OK;
    int level = slide_best_level(s, ds_x < ds_y ? ds_x : ds_y);
    const struct level *l = &s->levels[level];
    double dl = l->downsample, rx = ds_x / dl, ry = ds_y / dl;
    if (is_unit_ratio(rx) && is_unit_ratio(ry))
        return slide_read_level(s, level, x0, y0, out_w, out_h, rgb_out);

    /* Output tiles whose level footprint (+ margins) stays within a SLIDE_READ_PIECE² read. */
    const int margin = 2;
    int64_t tw = (int64_t)floor((SLIDE_READ_PIECE - 2 * margin - 2) / rx);
    int64_t th = (int64_t)floor((SLIDE_READ_PIECE - 2 * margin - 2) / ry);
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    if (tw > out_w) tw = out_w;
    if (th > out_h) th = out_h;
    int64_t bw_max = (int64_t)ceil(tw * rx) + 2 * margin + 2;
    int64_t bh_max = (int64_t)ceil(th * ry) + 2 * margin + 2;
    uint32_t *argb = wv_malloc((size_t)bw_max * (size_t)bh_max * sizeof *argb, "slide read buffer");
    uint8_t *buf = wv_malloc((size_t)bw_max * (size_t)bh_max * 3, "slide read buffer");
    if (!argb || !buf) {
        st = WV_ENOMEM;
        goto done;
    }
    int64_t W0 = s->levels[0].w, H0 = s->levels[0].h;
    size_t ostride = (size_t)out_w * 3;
    for (int64_t j0 = 0; j0 < out_h && st == WV_OK; j0 += th) {
        int64_t ch = out_h - j0 < th ? out_h - j0 : th;
        for (int64_t i0 = 0; i0 < out_w && st == WV_OK; i0 += tw) {
            int64_t cw = out_w - i0 < tw ? out_w - i0 : tw;
            uint8_t *dst = rgb_out + (size_t)j0 * ostride + (size_t)i0 * 3;
            /* the tile's footprint in level-0 px */
            double fx0 = x0 + i0 * ds_x, fx1 = x0 + (i0 + cw) * ds_x;
            double fy0 = y0 + j0 * ds_y, fy1 = y0 + (j0 + ch) * ds_y;
            if (fx1 <= 0 || fy1 <= 0 || fx0 >= W0 || fy0 >= H0) {
                for (int64_t r = 0; r < ch; r++) fill_white(dst + (size_t)r * ostride, (size_t)cw * 3);
                continue; /* wholly outside the slide (a padded halo): no read */
            }
            /* buffer origin: the level-0 px nearest to level px floor(ax) − margin. Its level
             * position bx = X/dl is fractional when dl is not an integer (by at most 0.5/dl
             * level px); OpenSlide then interpolates, and the resampler uses the true bx */
            double ax = fx0 / dl, ay = fy0 / dl;
            int64_t X = (int64_t)llround((floor(ax) - margin) * dl);
            int64_t Y = (int64_t)llround((floor(ay) - margin) * dl);
            double bx = piece_origin(dl, X), by = piece_origin(dl, Y);
            int64_t bw = (int64_t)ceil(fx1 / dl - bx) + margin;
            int64_t bh = (int64_t)ceil(fy1 / dl - by) + margin;
            if (bw > bw_max) bw = bw_max;
            if (bh > bh_max) bh = bh_max;
            st = read_piece(s, level, X, Y, bw, bh, argb, buf, (size_t)bw * 3);
            if (st != WV_OK) break;
            if (rx >= 1.0 && ry >= 1.0)
                st = resample_area_rgb(buf, (int)bw, (int)bh, (size_t)bw * 3, ax - bx, ay - by, rx,
                                       ry, dst, (int)cw, (int)ch, ostride);
            else
                resample_bilinear_rgb(buf, (int)bw, (int)bh, (size_t)bw * 3, ax - bx, ay - by, rx,
                                      ry, dst, (int)cw, (int)ch, ostride);
        }
    }
done:
    free(argb);
    free(buf);
    if (st != WV_OK) fill_white(rgb_out, out_bytes);
    return st;
}

enum wv_status slide_read_region_mpp(struct slide *s, int64_t x0, int64_t y0, int64_t out_w,
                                     int64_t out_h, double target_mpp, uint8_t *rgb_out)
{
    enum wv_status st = slide_require_mpp(s);
    if (st != WV_OK) return st;
    if (!(target_mpp > 0) || !isfinite(target_mpp))
        return error_set(WV_EINVAL, "target resolution %g µm/px: must be positive", target_mpp);
    return slide_read_region_ds(s, x0, y0, out_w, out_h, target_mpp / s->mpp_x,
                                target_mpp / s->mpp_y, rgb_out);
}
