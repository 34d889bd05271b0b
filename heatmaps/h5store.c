/*
 * h5store.c — the per-slide HDF5 result file; contract and layout in h5store.h, user-facing
 * description in docs/formats.md, HDF5 1.10.8 advice in CAMELYON16_PROTOCOL.md §5.2.
 * Every HDF5 call goes through H5_TRY, which records the dataset, the call and the innermost
 * message of HDF5's error stack, then jumps to the function's one exit label.
 */
#include "h5store.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/util.h"

/* Chunk shapes. Heatmap/tissue: up to 256 × 256 cells (256 KiB of float32), inside §5.2's
 * 64 KiB–1 MiB band and under the default 1 MiB chunk cache, since the grid is written whole.
 * Coords/scores: 4096 rows (32 KiB / 16 KiB) — CLAM's 32-row chunks make a 10^5-cell file
 * carry thousands of chunk records for no benefit. Features: ~256 KiB of rows. */
#define GRID_CHUNK 256
#define CELL_CHUNK_ROWS 4096
#define FEATURE_CHUNK_BYTES (256 * 1024)
/* gzip level 4: §5.2's advice; level 9 costs 3× the time for a few % on float32 heatmaps. */
#define DEFLATE_LEVEL 4

struct h5store {
    int writer;
    hid_t file;
    hid_t heatmap, tissue, coords, scores, features; /* dataset ids, H5I_INVALID_HID when closed */
    hid_t half;                                      /* float16 file type, when used */
    int rows, cols, feature_dim;
    enum h5store_dtype feature_dtype;
    size_t n_cells;
    int heatmap_done, scores_done, committed;
    char *tmp_path, *final_path;
    enum wv_status err;
    char *errmsg;
};

/* ---- errors ----------------------------------------------------------------------------------- */

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    /* H5E_WALK_UPWARD visits the innermost (most specific) record first. */
    char *buf = data;
    if (n == 0 && e->desc) snprintf(buf, 512, "%s", e->desc);
    return 0;
}

static void h5_innermost(char *buf)
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, buf);
    H5Eclear2(H5E_DEFAULT);
    if (!buf[0]) snprintf(buf, 512, "unknown HDF5 error");
    /* The POSIX driver words I/O failures as "file write failed: time = ..., filename = ...,
     * errno = 28, error message = 'No space left on device', buf = ...": keep the part a person
     * needs. */
    char *em = strstr(buf, "error message = '");
    if (em) {
        char *start = em + strlen("error message = '"), *end = strchr(start, '\'');
        char *colon = strchr(buf, ':');
        if (end && colon && colon < em) {
            *end = 0;
            memmove(colon + 2, start, strlen(start) + 1);
            colon[1] = ' ';
        }
    }
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

static void quiet(void)
{
    /* Per-thread in the thread-safe build: call at each entry point. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Record a failure: message to error_set and to the handle's sticky copy (first one wins). */
__attribute__((format(printf, 3, 4))) static enum wv_status fail(struct h5store *h,
                                                                 enum wv_status code,
                                                                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h && !h->err) {
        h->err = code;
        h->errmsg = strdup(msg);
    }
    return error_set(code, "%s", msg);
}

/* A failed HDF5 call: "<what>: <call>: <innermost HDF5 message>". Disk full and file size limits
 * reach us as the innermost write error, which HDF5 words with errno's text. */
static enum wv_status h5fail(struct h5store *h, const char *what, const char *call)
{
    char inner[512];
    h5_innermost(inner);
    return fail(h, WV_EIO, "%s: %s: %s", what, call, inner);
}

#define H5_TRY(expr, what)                                                                        \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            st = h5fail(h, what, #expr);                                                           \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0) fn(*id);
    *id = H5I_INVALID_HID;
}

/* ---- float16 ----------------------------------------------------------------------------------- */

/* IEEE binary16 as an HDF5 type: 1 sign, 5 exponent (bias 15), 10 mantissa bits; h5py maps it to
 * numpy float16. HDF5 1.10 has no predefined half type. */
static hid_t make_half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 ||
        H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* float32 → binary16, round to nearest even; overflow → ±inf, NaN stays NaN. Done here rather
 * than by HDF5's soft conversion so the rounding is known and the write path does no conversion. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)e << 10 | man >> 13;
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++; /* may carry into exponent: ok */
    return (uint16_t)(sign | half);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0) {
        if (!man) {
            x = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            x = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | man << 13;
    } else {
        x = sign | (exp - 15 + 127) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- attributes ------------------------------------------------------------------------------- */

static herr_t attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n,
                         const void *v)
{
    hsize_t dim = (hsize_t)n;
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0 && H5Aclose(a) < 0) r = -1;
    H5Sclose(sp);
    return r;
}
/* n = 0: scalar; else a 1-D array of n values. */
static herr_t attr_f64(hid_t obj, const char *name, int n, const double *v)
{
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, v);
}
static herr_t attr_i64(hid_t obj, const char *name, int n, const int64_t *v)
{
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, n, v);
}
/* Variable-length UTF-8 string: h5py reads it as str (§5.2). */
static herr_t attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    herr_t r = -1;
    if (H5Tset_size(t, H5T_VARIABLE) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0) {
        const char *p = s ? s : "";
        r = attr_write(obj, name, t, t, 0, &p);
    }
    H5Tclose(t);
    return r;
}

/* Read a numeric attribute of n elements (n = 1 for a scalar) converted to double / int64. */
static herr_t attr_read(hid_t obj, const char *name, hid_t mtype, int n, void *v)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t r = -1;
    hid_t sp = H5Aget_space(a);
    if (sp >= 0) {
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        if (np == n) r = H5Aread(a, mtype, v);
        H5Sclose(sp);
    }
    H5Aclose(a);
    return r;
}

static herr_t attr_read_str(hid_t obj, const char *name, char *out, size_t n)
{
    out[0] = 0;
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t r = -1;
    hid_t ft = H5Aget_type(a);
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(ft); /* same cset: HDF5 does not convert ASCII <-> UTF-8 */
            char *p = NULL;
            if (mt >= 0 && H5Aread(a, mt, &p) >= 0) {
                snprintf(out, n, "%s", p ? p : "");
                if (p) H5free_memory(p);
                r = 0;
            }
            if (mt >= 0) H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ft);
            char *buf = sz > 0 && sz < (1u << 20) ? calloc(1, sz + 1) : NULL;
            if (buf && H5Aread(a, ft, buf) >= 0) {
                snprintf(out, n, "%s", buf);
                r = 0;
            }
            free(buf);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return r;
}

/* ---- writing ---------------------------------------------------------------------------------- */

static struct h5store *handle_new(void)
{
    struct h5store *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->file = h->heatmap = h->tissue = h->coords = h->scores = h->features = h->half =
        H5I_INVALID_HID;
    return h;
}

static int valid_slide_id(const char *id)
{
    return id && id[0] && !strchr(id, '/') && strcmp(id, ".") != 0 && strcmp(id, "..") != 0 &&
           strlen(id) < 256;
}

enum wv_status h5store_path(const char *out_dir, const char *slide_id, char *out, size_t n)
{
    if (!out_dir || !valid_slide_id(slide_id))
        return error_set(WV_EINVAL, "slide id '%s': not usable as a file name",
                         slide_id ? slide_id : "(null)");
    int k = snprintf(out, n, "%s/%s.h5", out_dir, slide_id);
    if (k < 0 || (size_t)k >= n) return error_set(WV_EINVAL, "%s/%s.h5: path too long", out_dir, slide_id);
    return WV_OK;
}

/* A chunked, shuffled, deflated dataset of rank 2 (or 1 when dims[1] == 0) with the given
 * current and maximum shape. */
static hid_t create_ds(hid_t file, const char *name, hid_t ftype, int rank, const hsize_t *dims,
                       const hsize_t *maxdims, const hsize_t *chunk)
{
    hid_t sp = H5Screate_simple(rank, dims, maxdims);
    if (sp < 0) return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), ds = H5I_INVALID_HID;
    if (dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
        H5Pset_deflate(dcpl, DEFLATE_LEVEL) >= 0)
        ds = H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

static hsize_t min_h(hsize_t a, hsize_t b) { return a < b ? a : b; }

enum wv_status h5store_create(const char *out_dir, const struct h5store_meta *m, int rows,
                              int cols, int feature_dim, enum h5store_dtype feature_dtype,
                              struct h5store **out)
{
    quiet();
    *out = NULL;
    if (!out_dir || !m) return error_set(WV_EINVAL, "h5store_create: no folder or metadata");
    if (!valid_slide_id(m->slide_id))
        return error_set(WV_EINVAL, "slide id '%s': not usable as a file name",
                         m->slide_id ? m->slide_id : "(null)");
    if (rows <= 0 || cols <= 0)
        return error_set(WV_EINVAL, "%s: heatmap grid %d x %d, expected at least 1 x 1",
                         m->slide_id, rows, cols);
    if (feature_dim < 0 || (feature_dtype != H5STORE_F32 && feature_dtype != H5STORE_F16))
        return error_set(WV_EINVAL, "%s: feature dimension %d / dtype %d invalid", m->slide_id,
                         feature_dim, (int)feature_dtype);
    if (!(m->cell_size_level0 > 0) || !isfinite(m->cell_size_level0) || m->slide_width <= 0 ||
        m->slide_height <= 0)
        return error_set(WV_EINVAL, "%s: cell size %g px / slide size %lld x %lld invalid",
                         m->slide_id, m->cell_size_level0, (long long)m->slide_width,
                         (long long)m->slide_height);

    enum wv_status st = WV_OK;
    struct h5store *h = handle_new();
    hid_t fapl = H5I_INVALID_HID;
    if (!h) return error_set(WV_ENOMEM, "h5store handle");
    h->writer = 1;
    h->rows = rows;
    h->cols = cols;
    h->feature_dim = feature_dim;
    h->feature_dtype = feature_dtype;
    size_t n = strlen(out_dir) + strlen(m->slide_id) + 64;
    h->final_path = malloc(n);
    h->tmp_path = malloc(n);
    if (!h->final_path || !h->tmp_path) {
        st = fail(h, WV_ENOMEM, "h5store paths");
        goto done;
    }
    snprintf(h->final_path, n, "%s/%s.h5", out_dir, m->slide_id);
    snprintf(h->tmp_path, n, "%s/.%s.h5.tmp.%ld", out_dir, m->slide_id, (long)getpid());

    struct stat sb;
    if (stat(out_dir, &sb) != 0) {
        st = fail(h, WV_EIO, "%s: output folder: %s", out_dir, strerror(errno));
        goto done;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st = fail(h, WV_EIO, "%s: output folder: not a directory", out_dir);
        goto done;
    }
    /* Close strongly: H5Fclose must really flush and close even if an id leaked, so its return
     * value tells whether the file is complete. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5_TRY(fapl, h->tmp_path);
    H5_TRY(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), h->tmp_path);
    h->file = H5Fcreate(h->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (h->file < 0) {
        char inner[512];
        h5_innermost(inner);
        st = fail(h, WV_EIO, "%s: cannot create: %s", h->tmp_path, inner);
        goto done;
    }

    hsize_t gd[2] = {(hsize_t)rows, (hsize_t)cols};
    hsize_t gc[2] = {min_h(gd[0], GRID_CHUNK), min_h(gd[1], GRID_CHUNK)};
    h->heatmap = create_ds(h->file, "heatmap", H5T_IEEE_F32LE, 2, gd, NULL, gc);
    H5_TRY(h->heatmap, "/heatmap");
    h->tissue = create_ds(h->file, "tissue", H5T_STD_U8LE, 2, gd, NULL, gc);
    H5_TRY(h->tissue, "/tissue");

    double mpp[2] = {m->mpp_x, m->mpp_y};
    H5_TRY(attr_f64(h->heatmap, "cell_size_level0", 0, &m->cell_size_level0), "/heatmap");
    H5_TRY(attr_f64(h->heatmap, "mpp", 2, mpp), "/heatmap");
    H5_TRY(attr_i64(h->heatmap, "slide_width", 0, &m->slide_width), "/heatmap");
    H5_TRY(attr_i64(h->heatmap, "slide_height", 0, &m->slide_height), "/heatmap");
    H5_TRY(attr_f64(h->heatmap, "target_mpp", 0, &m->target_mpp), "/heatmap");
    H5_TRY(attr_str(h->heatmap, "model_sha256", m->model_sha256), "/heatmap");
    H5_TRY(attr_str(h->heatmap, "tool_version", m->tool_version), "/heatmap");

    hsize_t cd[2] = {0, 2}, cmax[2] = {H5S_UNLIMITED, 2}, cc[2] = {CELL_CHUNK_ROWS, 2};
    h->coords = create_ds(h->file, "coords", H5T_STD_I32LE, 2, cd, cmax, cc);
    H5_TRY(h->coords, "/coords");
    /* CLAM's attributes (§5.1): readers call read_region(coord, patch_level, (patch_size,)*2). */
    int64_t patch_level = m->patch_level, patch_size = m->patch_size;
    double ds[2] = {m->downsample_x, m->downsample_y};
    int64_t ld[2] = {m->level_width, m->level_height};
    H5_TRY(attr_i64(h->coords, "patch_size", 0, &patch_size), "/coords");
    H5_TRY(attr_i64(h->coords, "patch_level", 0, &patch_level), "/coords");
    H5_TRY(attr_f64(h->coords, "downsample", 2, ds), "/coords");
    H5_TRY(attr_i64(h->coords, "downsampled_level_dim", 2, ld), "/coords");
    H5_TRY(attr_i64(h->coords, "level_dim", 2, ld), "/coords");
    H5_TRY(attr_str(h->coords, "name", m->slide_id), "/coords");
    H5_TRY(attr_str(h->coords, "save_path", m->save_path), "/coords");
    H5_TRY(attr_f64(h->coords, "patch_size_level0", 0, &m->cell_size_level0), "/coords");

    hsize_t sd = 0, smax = H5S_UNLIMITED, sc = CELL_CHUNK_ROWS;
    h->scores = create_ds(h->file, "scores", H5T_IEEE_F32LE, 1, &sd, &smax, &sc);
    H5_TRY(h->scores, "/scores");

    if (feature_dim > 0) {
        hid_t ft = H5T_IEEE_F32LE;
        size_t esz = 4;
        if (feature_dtype == H5STORE_F16) {
            h->half = make_half_type();
            H5_TRY(h->half, "/features");
            ft = h->half;
            esz = 2;
        }
        hsize_t fd[2] = {0, (hsize_t)feature_dim}, fmax[2] = {H5S_UNLIMITED, (hsize_t)feature_dim};
        hsize_t fr = FEATURE_CHUNK_BYTES / (esz * (size_t)feature_dim);
        hsize_t fc[2] = {fr ? fr : 1, (hsize_t)feature_dim};
        h->features = create_ds(h->file, "features", ft, 2, fd, fmax, fc);
        H5_TRY(h->features, "/features");
    }
done:
    if (fapl >= 0) H5Pclose(fapl);
    if (st != WV_OK) {
        h5store_close(h);
        return st;
    }
    *out = h;
    return WV_OK;
}

/* A handle fit for `what`: an open writer (writer = 1) or a reader (0), with no error pending. */
static enum wv_status check_handle(struct h5store *h, const char *what, int writer)
{
    quiet();
    if (!h) return error_set(WV_EINVAL, "%s: no handle", what);
    if (h->err) return error_set(h->err, "%s", h->errmsg ? h->errmsg : "h5store failed");
    if (writer && (!h->writer || h->committed))
        return error_set(WV_EINVAL, "%s: handle is not an open writer", what);
    if (!writer && h->writer) return error_set(WV_EINVAL, "%s: handle is a writer", what);
    return WV_OK;
}
static enum wv_status check_writer(struct h5store *h, const char *what)
{
    return check_handle(h, what, 1);
}

enum wv_status h5store_write_heatmap(struct h5store *h, const float *heatmap,
                                     const uint8_t *tissue)
{
    enum wv_status st = check_writer(h, "/heatmap");
    if (st) return st;
    if (h->heatmap_done) return error_set(WV_EINVAL, "/heatmap: already written");
    if (!heatmap || !tissue) return error_set(WV_EINVAL, "/heatmap: no data");
    size_t n = (size_t)h->rows * h->cols;
    float *hm = malloc(n * sizeof *hm);
    uint8_t *ts = malloc(n);
    if (!hm || !ts) {
        st = fail(h, WV_ENOMEM, "/heatmap: %zu cells", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ts[i] = tissue[i] ? 1 : 0;
        if (!ts[i]) {
            hm[i] = NAN;
        } else if (!isfinite(heatmap[i])) {
            /* NaN must mean "off tissue" and nothing else: a tissue cell without a value is a bug
             * upstream, not something to store. Not sticky: the caller may retry. */
            st = error_set(WV_EINVAL, "/heatmap: cell (%zu, %zu) is tissue but its value is %g",
                           i / (size_t)h->cols, i % (size_t)h->cols, (double)heatmap[i]);
            goto done;
        } else {
            hm[i] = heatmap[i];
        }
    }
    H5_TRY(H5Dwrite(h->heatmap, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hm), "/heatmap");
    H5_TRY(H5Dwrite(h->tissue, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ts), "/tissue");
    h->heatmap_done = 1;
done:
    free(hm);
    free(ts);
    return st;
}

/* Rows [start, start + n) of `cols` elements of a dataset (rank 1 or 2), written from or read
 * into buf in memory type mtype. */
static enum wv_status rows_io(struct h5store *h, hid_t ds, const char *what, int rank, size_t start,
                              size_t n, hsize_t cols, hid_t mtype, int write, void *buf)
{
    enum wv_status st = WV_OK;
    hid_t fsp = H5I_INVALID_HID, msp = H5I_INVALID_HID;
    hsize_t s[2] = {(hsize_t)start, 0}, c[2] = {(hsize_t)n, cols};
    fsp = H5Dget_space(ds);
    H5_TRY(fsp, what);
    H5_TRY(H5Sselect_hyperslab(fsp, H5S_SELECT_SET, s, NULL, c, NULL), what);
    msp = H5Screate_simple(rank, c, NULL);
    H5_TRY(msp, what);
    if (write) H5_TRY(H5Dwrite(ds, mtype, msp, fsp, H5P_DEFAULT, buf), what);
    else H5_TRY(H5Dread(ds, mtype, msp, fsp, H5P_DEFAULT, buf), what);
done:
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    return st;
}

/* Append n rows of `cols` elements to an extendible dataset. */
static enum wv_status append_rows(struct h5store *h, hid_t ds, const char *what, int rank,
                                  size_t old_n, size_t n, hsize_t cols, hid_t mtype,
                                  const void *data)
{
    enum wv_status st = WV_OK;
    hsize_t newd[2] = {(hsize_t)(old_n + n), cols};
    H5_TRY(H5Dset_extent(ds, newd), what);
    st = rows_io(h, ds, what, rank, old_n, n, cols, mtype, 1, (void *)data);
done:
    return st;
}

enum wv_status h5store_append_cells(struct h5store *h, size_t n, const int32_t *coords,
                                    const float *features)
{
    enum wv_status st = check_writer(h, "/coords");
    uint16_t *half = NULL;
    if (st) return st;
    if (h->scores_done) return error_set(WV_EINVAL, "/coords: cells appended after /scores");
    if (n == 0) return WV_OK;
    if (!coords || (h->feature_dim > 0) != (features != NULL))
        return error_set(WV_EINVAL, "/coords: %s", !coords ? "no coordinates"
                                                           : "features given iff feature_dim > 0");
    if ((st = append_rows(h, h->coords, "/coords", 2, h->n_cells, n, 2, H5T_NATIVE_INT32, coords)))
        return st;
    if (h->feature_dim > 0) {
        size_t ne = n * (size_t)h->feature_dim;
        if (h->feature_dtype == H5STORE_F16) {
            half = malloc(ne * sizeof *half);
            if (!half) return fail(h, WV_ENOMEM, "/features: %zu values", ne);
            for (size_t i = 0; i < ne; i++) half[i] = f32_to_f16(features[i]);
            st = append_rows(h, h->features, "/features", 2, h->n_cells, n,
                             (hsize_t)h->feature_dim, h->half, half);
            free(half);
        } else {
            st = append_rows(h, h->features, "/features", 2, h->n_cells, n,
                             (hsize_t)h->feature_dim, H5T_NATIVE_FLOAT, features);
        }
        if (st) return st;
    }
    h->n_cells += n;
    return WV_OK;
}

enum wv_status h5store_write_scores(struct h5store *h, size_t n, const float *scores)
{
    enum wv_status st = check_writer(h, "/scores");
    if (st) return st;
    if (h->scores_done) return error_set(WV_EINVAL, "/scores: already written");
    if (n != h->n_cells)
        return error_set(WV_EINVAL, "/scores: %zu values, expected %zu (one per coords row)", n,
                         h->n_cells);
    if (n && !scores) return error_set(WV_EINVAL, "/scores: no data");
    if (n && (st = append_rows(h, h->scores, "/scores", 1, 0, n, 0, H5T_NATIVE_FLOAT, scores)))
        return st;
    h->scores_done = 1;
    return WV_OK;
}

static enum wv_status fsync_path(struct h5store *h, const char *path, int dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY);
    if (fd < 0) return fail(h, WV_EIO, "%s: open for fsync: %s", path, strerror(errno));
    int r = fsync(fd), e = errno;
    close(fd);
    /* Some file systems refuse fsync on a directory (EINVAL); the rename is still atomic. */
    if (r != 0 && !(dir && (e == EINVAL || e == EBADF)))
        return fail(h, WV_EIO, "%s: fsync: %s", path, strerror(e));
    return WV_OK;
}

enum wv_status h5store_commit(struct h5store *h, char *final_path, size_t final_path_n)
{
    enum wv_status st = check_writer(h, "h5store_commit");
    if (st) goto done;
    if (!h->heatmap_done || !h->scores_done) {
        st = fail(h, WV_EINVAL, "%s: commit before %s was written", h->final_path,
                  !h->heatmap_done ? "/heatmap" : "/scores");
        goto done;
    }
    close_id(&h->heatmap, H5Dclose);
    close_id(&h->tissue, H5Dclose);
    close_id(&h->coords, H5Dclose);
    close_id(&h->scores, H5Dclose);
    close_id(&h->features, H5Dclose);
    close_id(&h->half, H5Tclose);
    int64_t one = 1;
    /* `complete` last: a reader that finds it knows every dataset before it was written. */
    H5_TRY(attr_i64(h->file, "complete", 0, &one), "complete attribute");
    H5_TRY(H5Fflush(h->file, H5F_SCOPE_GLOBAL), h->tmp_path);
    herr_t r = H5Fclose(h->file);
    h->file = H5I_INVALID_HID;
    if (r < 0) {
        st = h5fail(h, h->tmp_path, "H5Fclose");
        goto done;
    }
    if ((st = fsync_path(h, h->tmp_path, 0))) goto done;
    if (rename(h->tmp_path, h->final_path) != 0) {
        st = fail(h, WV_EIO, "%s: rename from temp file: %s", h->final_path, strerror(errno));
        goto done;
    }
    h->committed = 1;
    /* The parent folder: make the rename itself durable. */
    char *dir = strdup(h->final_path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        fsync_path(h, slash ? dir : ".", 1);
        free(dir);
    }
    if (final_path && final_path_n) snprintf(final_path, final_path_n, "%s", h->final_path);
done:
    if (st && h && h->writer && h->tmp_path) {
        if (h->file >= 0) H5Fclose(h->file);
        h->file = H5I_INVALID_HID;
        unlink(h->tmp_path);
    }
    return st;
}

enum wv_status h5store_write_file(const char *out_dir, const struct h5store_meta *meta, int rows,
                                  int cols, const float *heatmap, const uint8_t *tissue, size_t n,
                                  const int32_t *coords, const float *scores, int feature_dim,
                                  enum h5store_dtype feature_dtype, const float *features,
                                  char *final_path, size_t final_path_n)
{
    struct h5store *h = NULL;
    enum wv_status st = h5store_create(out_dir, meta, rows, cols, feature_dim, feature_dtype, &h);
    if (st) return st;
    if (!(st = h5store_write_heatmap(h, heatmap, tissue)) &&
        !(st = h5store_append_cells(h, n, coords, features)) &&
        !(st = h5store_write_scores(h, n, scores)))
        st = h5store_commit(h, final_path, final_path_n);
    h5store_close(h);
    return st;
}

/* ---- reading ---------------------------------------------------------------------------------- */

/* Open a dataset that must exist, with the given rank; dims filled. */
static enum wv_status open_ds(struct h5store *h, const char *path, const char *name, int rank,
                              hid_t *out, hsize_t *dims)
{
    *out = H5I_INVALID_HID;
    if (H5Lexists(h->file, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return fail(h, WV_EFORMAT, "%s: no /%s dataset", path, name);
    }
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) return h5fail(h, path, name);
    hid_t sp = H5Dget_space(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r != rank) {
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(ds);
        return fail(h, WV_EFORMAT, "%s: /%s has rank %d, expected %d", path, name, r, rank);
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    *out = ds;
    return WV_OK;
}

enum wv_status h5store_open_read(const char *path, struct h5store **out)
{
    quiet();
    *out = NULL;
    struct stat sb;
    if (!path) return error_set(WV_EINVAL, "h5store_open_read: no path");
    if (stat(path, &sb) != 0)
        return error_set(errno == ENOENT ? WV_ENOTFOUND : WV_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return error_set(WV_EFORMAT, "%s: not a regular file", path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return error_set(WV_EFORMAT, "%s: not an HDF5 file", path);
    }
    struct h5store *h = handle_new();
    enum wv_status st = WV_OK;
    hsize_t d[2], t[2], c[2], s[2], f[2];
    if (!h) return error_set(WV_ENOMEM, "h5store handle");
    h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h->file < 0) {
        char inner[512];
        h5_innermost(inner);
        st = fail(h, WV_EFORMAT, "%s: cannot open: %s", path, inner);
        goto done;
    }
    if ((st = open_ds(h, path, "heatmap", 2, &h->heatmap, d)) ||
        (st = open_ds(h, path, "tissue", 2, &h->tissue, t)) ||
        (st = open_ds(h, path, "coords", 2, &h->coords, c)) ||
        (st = open_ds(h, path, "scores", 1, &h->scores, s)))
        goto done;
    if (d[0] != t[0] || d[1] != t[1] || c[1] != 2 || c[0] != s[0] || d[0] == 0 || d[1] == 0 ||
        d[0] > INT_MAX || d[1] > INT_MAX) {
        st = fail(h, WV_EFORMAT,
                  "%s: inconsistent shapes: heatmap (%llu, %llu), tissue (%llu, %llu), coords "
                  "(%llu, %llu), scores (%llu)",
                  path, (unsigned long long)d[0], (unsigned long long)d[1],
                  (unsigned long long)t[0], (unsigned long long)t[1], (unsigned long long)c[0],
                  (unsigned long long)c[1], (unsigned long long)s[0]);
        goto done;
    }
    h->rows = (int)d[0];
    h->cols = (int)d[1];
    h->n_cells = (size_t)c[0];
    if (H5Lexists(h->file, "features", H5P_DEFAULT) > 0) {
        if ((st = open_ds(h, path, "features", 2, &h->features, f))) goto done;
        hid_t ft = H5Dget_type(h->features);
        size_t sz = ft >= 0 ? H5Tget_size(ft) : 0;
        int is_float = ft >= 0 && H5Tget_class(ft) == H5T_FLOAT;
        if (ft >= 0) H5Tclose(ft);
        if (f[0] != c[0] || f[1] == 0 || f[1] > INT_MAX || !is_float || (sz != 2 && sz != 4)) {
            st = fail(h, WV_EFORMAT, "%s: /features: shape (%llu, %llu) or type (float%zu) "
                      "does not match %llu coords rows", path, (unsigned long long)f[0],
                      (unsigned long long)f[1], sz * 8, (unsigned long long)c[0]);
            goto done;
        }
        h->feature_dim = (int)f[1];
        h->feature_dtype = sz == 2 ? H5STORE_F16 : H5STORE_F32;
    }
    H5Eclear2(H5E_DEFAULT);
done:
    if (st) {
        h5store_close(h);
        return st;
    }
    *out = h;
    return WV_OK;
}

static enum wv_status check_reader(struct h5store *h, const char *what)
{
    return check_handle(h, what, 0);
}

enum wv_status h5store_read_info(struct h5store *h, struct h5store_info *info)
{
    enum wv_status st = check_reader(h, "h5store_read_info");
    if (st) return st;
    memset(info, 0, sizeof *info);
    info->rows = h->rows;
    info->cols = h->cols;
    info->n_cells = h->n_cells;
    info->feature_dim = h->feature_dim;
    info->feature_dtype = h->feature_dtype;
    double mpp[2], ds[2];
    int64_t ld[2], pl = 0, complete = 0;
    const char *bad = NULL;
    if (attr_read(h->heatmap, "cell_size_level0", H5T_NATIVE_DOUBLE, 1, &info->cell_size_level0) < 0)
        bad = "/heatmap cell_size_level0";
    else if (attr_read(h->heatmap, "mpp", H5T_NATIVE_DOUBLE, 2, mpp) < 0)
        bad = "/heatmap mpp";
    else if (attr_read(h->heatmap, "slide_width", H5T_NATIVE_INT64, 1, &info->slide_width) < 0)
        bad = "/heatmap slide_width";
    else if (attr_read(h->heatmap, "slide_height", H5T_NATIVE_INT64, 1, &info->slide_height) < 0)
        bad = "/heatmap slide_height";
    else if (attr_read(h->heatmap, "target_mpp", H5T_NATIVE_DOUBLE, 1, &info->target_mpp) < 0)
        bad = "/heatmap target_mpp";
    else if (attr_read_str(h->heatmap, "model_sha256", info->model_sha256, H5STORE_STR_MAX) < 0)
        bad = "/heatmap model_sha256";
    else if (attr_read_str(h->heatmap, "tool_version", info->tool_version, H5STORE_STR_MAX) < 0)
        bad = "/heatmap tool_version";
    else if (attr_read(h->coords, "patch_size", H5T_NATIVE_INT64, 1, &info->patch_size) < 0)
        bad = "/coords patch_size";
    else if (attr_read(h->coords, "patch_level", H5T_NATIVE_INT64, 1, &pl) < 0)
        bad = "/coords patch_level";
    else if (attr_read(h->coords, "downsample", H5T_NATIVE_DOUBLE, 2, ds) < 0)
        bad = "/coords downsample";
    else if (attr_read(h->coords, "level_dim", H5T_NATIVE_INT64, 2, ld) < 0)
        bad = "/coords level_dim";
    else if (attr_read(h->coords, "patch_size_level0", H5T_NATIVE_DOUBLE, 1,
                       &info->patch_size_level0) < 0)
        bad = "/coords patch_size_level0";
    else if (attr_read_str(h->coords, "name", info->slide_id, H5STORE_STR_MAX) < 0)
        bad = "/coords name";
    H5Eclear2(H5E_DEFAULT);
    if (bad) return fail(h, WV_EFORMAT, "%s: attribute missing or malformed", bad);
    info->mpp_x = mpp[0];
    info->mpp_y = mpp[1];
    info->downsample_x = ds[0];
    info->downsample_y = ds[1];
    info->level_width = ld[0];
    info->level_height = ld[1];
    info->patch_level = (int)pl;
    if (attr_read(h->file, "complete", H5T_NATIVE_INT64, 1, &complete) >= 0 && complete == 1)
        info->complete = 1;
    H5Eclear2(H5E_DEFAULT);
    return WV_OK;
}

static enum wv_status read_rows(struct h5store *h, hid_t ds, const char *what, int rank,
                                size_t total, size_t start, size_t n, hsize_t cols, hid_t mtype,
                                void *out)
{
    enum wv_status st = check_reader(h, what);
    if (st) return st;
    if (start > total || n > total - start)
        return error_set(WV_EINVAL, "%s: rows [%zu, %zu) outside [0, %zu)", what, start,
                         start + n, total);
    if (n == 0) return WV_OK;
    return rows_io(h, ds, what, rank, start, n, cols, mtype, 0, out);
}

enum wv_status h5store_read_heatmap(struct h5store *h, float *out)
{
    if (!h || h->writer) return check_reader(h, "/heatmap");
    return read_rows(h, h->heatmap, "/heatmap", 2, (size_t)h->rows, 0, (size_t)h->rows,
                     (hsize_t)h->cols, H5T_NATIVE_FLOAT, out);
}

enum wv_status h5store_read_tissue(struct h5store *h, uint8_t *out)
{
    if (!h || h->writer) return check_reader(h, "/tissue");
    return read_rows(h, h->tissue, "/tissue", 2, (size_t)h->rows, 0, (size_t)h->rows,
                     (hsize_t)h->cols, H5T_NATIVE_UINT8, out);
}

enum wv_status h5store_read_coords(struct h5store *h, size_t start, size_t n, int32_t *out)
{
    if (!h || h->writer) return check_reader(h, "/coords");
    return read_rows(h, h->coords, "/coords", 2, h->n_cells, start, n, 2, H5T_NATIVE_INT32, out);
}

enum wv_status h5store_read_scores(struct h5store *h, size_t start, size_t n, float *out)
{
    if (!h || h->writer) return check_reader(h, "/scores");
    return read_rows(h, h->scores, "/scores", 1, h->n_cells, start, n, 0, H5T_NATIVE_FLOAT, out);
}

enum wv_status h5store_read_features(struct h5store *h, size_t start, size_t n, float *out)
{
    if (!h || h->writer) return check_reader(h, "/features");
    if (h->feature_dim == 0) return error_set(WV_ENOTFOUND, "/features: not in this file");
    hsize_t D = (hsize_t)h->feature_dim;
    if (h->feature_dtype == H5STORE_F32)
        return read_rows(h, h->features, "/features", 2, h->n_cells, start, n, D,
                         H5T_NATIVE_FLOAT, out);
    /* float16: read the raw halves (file type = memory type, no conversion), widen here. */
    hid_t ft = H5Dget_type(h->features);
    if (ft < 0) return h5fail(h, "/features", "H5Dget_type");
    size_t ne = n * (size_t)D;
    uint16_t *half = malloc(ne ? ne * sizeof *half : 1);
    enum wv_status st;
    if (!half) {
        st = fail(h, WV_ENOMEM, "/features: %zu values", ne);
    } else {
        st = read_rows(h, h->features, "/features", 2, h->n_cells, start, n, D, ft, half);
        if (!st)
            for (size_t i = 0; i < ne; i++) out[i] = f16_to_f32(half[i]);
    }
    free(half);
    H5Tclose(ft);
    return st;
}

enum wv_status h5store_check_complete(const char *path)
{
    struct h5store *h = NULL;
    struct h5store_info info;
    enum wv_status st = h5store_open_read(path, &h);
    if (st) return st;
    st = h5store_read_info(h, &info);
    if (!st && !info.complete) st = error_set(WV_EFORMAT, "%s: not complete (no `complete` attribute)", path);
    h5store_close(h);
    return st;
}

/* ---- both ------------------------------------------------------------------------------------- */

const char *h5store_error(const struct h5store *h)
{
    return h && h->err ? (h->errmsg ? h->errmsg : wv_status_name(h->err)) : NULL;
}

void h5store_close(struct h5store *h)
{
    if (!h) return;
    quiet();
    close_id(&h->heatmap, H5Dclose);
    close_id(&h->tissue, H5Dclose);
    close_id(&h->coords, H5Dclose);
    close_id(&h->scores, H5Dclose);
    close_id(&h->features, H5Dclose);
    close_id(&h->half, H5Tclose);
    close_id(&h->file, H5Fclose);
    H5Eclear2(H5E_DEFAULT);
    if (h->writer && !h->committed && h->tmp_path) unlink(h->tmp_path);
    free(h->tmp_path);
    free(h->final_path);
    free(h->errmsg);
    free(h);
}
