/*
 * weights.c — the weights module's common part: format detection, the tensor table (add, finish,
 * find, free), dtype conversion, and the fp32 safetensors writer. The readers live in
 * safetensors.c and pth.c (+ pickle.c); the contract is weights.h, file formats docs/weights.md.
 */
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sha256.h"
#include "util.h"
#include "weights_private.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.c assumes a little-endian host (safetensors and torch storages are little-endian)"
#endif

/* The largest checkpoint weights_load reads: 64 GiB, far above any VMamba (B = 350 MB). */
#define WEIGHTS_MAX_FILE_BYTES ((size_t)1 << 36)

static const char *const DTYPE_NAMES[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"};
static const size_t DTYPE_SIZES[] = {4, 2, 2, 8, 8, 4, 1, 1};
_Static_assert(sizeof DTYPE_NAMES / sizeof DTYPE_NAMES[0] == WDT_BOOL + 1, "dtype names");
_Static_assert(sizeof DTYPE_SIZES / sizeof DTYPE_SIZES[0] == WDT_BOOL + 1, "dtype sizes");

size_t wdt_size(enum weights_dtype d) { return (unsigned)d <= WDT_BOOL ? DTYPE_SIZES[d] : 0; }
const char *wdt_name(enum weights_dtype d) { return (unsigned)d <= WDT_BOOL ? DTYPE_NAMES[d] : "?"; }
const char *weights_dtype_name(enum weights_dtype d) { return wdt_name(d); }

enum wv_status shape_numel(const char *name, int ndim, const int64_t *shape, int64_t *numel)
{
    /* Bound: numel * 8 (the widest dtype) must fit in int64 and size_t. */
    const int64_t lim = INT64_MAX / 8;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return error_set(WV_EFORMAT, "tensor %s: negative dimension %lld", name,
                             (long long)shape[i]);
        if (shape[i] != 0 && n > lim / shape[i])
            return error_set(WV_EFORMAT, "tensor %s: shape overflows (too many elements)", name);
        n *= shape[i];
    }
    *numel = n;
    return WV_OK;
}

struct weights *weights_new(const char *format)
{
    struct weights *w = wv_calloc(1, sizeof *w, "weights");
    if (w) snprintf(w->format, sizeof w->format, "%s", format);
    return w;
}

void weights_free(struct weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w->by_name);
    free(w->metadata_json);
    free(w);
}

enum wv_status weights_add(struct weights *w, const char *name, int ndim, const int64_t *shape,
                           enum weights_dtype src, float **data)
{
    if (ndim < 0 || ndim > WEIGHTS_MAX_DIMS)
        return error_set(WV_EUNSUPPORTED, "tensor %s: %d dimensions (at most %d supported)", name,
                         ndim, WEIGHTS_MAX_DIMS);
    int64_t numel = 0; /* set by shape_numel; = 0 silences -O3 maybe-uninitialized */
    enum wv_status st = shape_numel(name, ndim, shape, &numel);
    if (st) return st;
    /* Duplicates are found at finish time (sorted index), but the common case of a repeated
     * name among few tensors is cheap to catch here too; keep it O(1) by checking the last. */
    if (w->n && !strcmp(w->t[w->n - 1].name, name))
        return error_set(WV_EFORMAT, "tensor %s: duplicate name", name);
    if ((w->n & (w->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = w->n ? (size_t)w->n * 2 : 16;
        if (w->n >= (1 << 24)) return error_set(WV_EFORMAT, "too many tensors (%d)", w->n);
        struct weight_tensor *t = realloc(w->t, cap * sizeof *t);
        if (!t) return error_set(WV_ENOMEM, "out of memory for the tensor table");
        w->t = t;
    }
    struct weight_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    /* at least one float so that data is never NULL, even for an empty tensor */
    t->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return error_set(WV_ENOMEM, "tensor %s: out of memory for %lld values", name,
                         (long long)numel);
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    t->source_dtype = src;
    w->n++;
    *data = t->data;
    return WV_OK;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: value = man * 2^-24 */
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void weights_convert(enum weights_dtype src, const uint8_t *raw, int64_t numel, float *out)
{
    for (int64_t i = 0; i < numel; i++) {
        switch (src) {
        case WDT_F32: memcpy(&out[i], raw + 4 * i, 4); break;
        case WDT_F16: {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            out[i] = half_to_float(h);
            break;
        }
        case WDT_BF16: {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case WDT_F64: {
            double d;
            memcpy(&d, raw + 8 * i, 8);
            out[i] = (float)d;
            break;
        }
        case WDT_I64: {
            int64_t v;
            memcpy(&v, raw + 8 * i, 8);
            out[i] = (float)v;
            break;
        }
        case WDT_I32: {
            int32_t v;
            memcpy(&v, raw + 4 * i, 4);
            out[i] = (float)v;
            break;
        }
        case WDT_U8: out[i] = (float)raw[i]; break;
        case WDT_BOOL: out[i] = raw[i] ? 1.0f : 0.0f; break;
        }
    }
}

/* qsort has no context argument; a thread-local keeps concurrent loads independent. */
static _Thread_local const struct weights *tl_sort_ctx;

static int cmp_by_name(const void *a, const void *b)
{
    const struct weights *w = tl_sort_ctx;
    return strcmp(w->t[*(const int *)a].name, w->t[*(const int *)b].name);
}

enum wv_status weights_finish(struct weights *w)
{
    for (int k = 0; k < w->n; k++) {
        const struct weight_tensor *t = &w->t[k];
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(t->data[i]))
                return error_set(WV_EFORMAT, "tensor %s: %s value at index %lld", t->name,
                                 isnan(t->data[i]) ? "NaN" : "infinite (or out of fp32 range)",
                                 (long long)i);
    }
    free(w->by_name);
    w->by_name = malloc((size_t)(w->n ? w->n : 1) * sizeof(int));
    if (!w->by_name) return error_set(WV_ENOMEM, "out of memory for the tensor index");
    for (int i = 0; i < w->n; i++) w->by_name[i] = i;
    tl_sort_ctx = w;
    qsort(w->by_name, (size_t)w->n, sizeof(int), cmp_by_name);
    tl_sort_ctx = NULL;
    for (int i = 1; i < w->n; i++)
        if (!strcmp(w->t[w->by_name[i]].name, w->t[w->by_name[i - 1]].name))
            return error_set(WV_EFORMAT, "tensor %s: duplicate name", w->t[w->by_name[i]].name);
    return WV_OK;
}

const struct weight_tensor *weights_find(const struct weights *w, const char *name)
{
    if (!w || !name) return NULL;
    if (!w->by_name) {
        for (int i = 0; i < w->n; i++)
            if (!strcmp(w->t[i].name, name)) return &w->t[i];
        return NULL;
    }
    int lo = 0, hi = w->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(w->t[w->by_name[mid]].name, name);
        if (c == 0) return &w->t[w->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

long long weights_numel_total(const struct weights *w)
{
    long long s = 0;
    for (int i = 0; w && i < w->n; i++) s += w->t[i].numel;
    return s;
}

/* Detect the format from the content. The order matters: a zip is recognised by its magic
 * before anything else; a safetensors file by a plausible header (length + '{'); a leading
 * pickle PROTO byte or a tar header means torch's pre-1.6 format, which we do not read. */
static enum wv_status parse_any(const uint8_t *data, size_t len, struct weights **out)
{
    if (len >= 4 && data[0] == 'P' && data[1] == 'K' &&
        ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6)))
        return weights_parse_pth(data, len, out);
    if (len >= 9 && data[8] == '{') return weights_parse_safetensors(data, len, out);
    if (len >= 2 && data[0] == 0x80 && data[1] <= 5)
        return error_set(WV_EUNSUPPORTED,
                         "unsupported legacy PyTorch format (a bare pickle, not a zip): "
                         "re-save it with torch>=1.6 (torch.save(torch.load(f), g))");
    if (len >= 262 && !memcmp(data + 257, "ustar", 5))
        return error_set(WV_EUNSUPPORTED,
                         "unsupported legacy PyTorch format (tar): re-save it with torch>=1.6");
    if (len < 9)
        return error_set(WV_EFORMAT, "file is %zu bytes, too short for a checkpoint", len);
    return error_set(WV_EFORMAT,
                     "not a checkpoint: neither safetensors (8-byte length + JSON header) nor a "
                     "PyTorch zip file");
}

enum wv_status weights_load(const char *path, struct weights **out)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    enum wv_status st = util_read_file(path, WEIGHTS_MAX_FILE_BYTES, &data, &len);
    if (st) return st;
    st = parse_any(data, len, out); /* the parsers fill in sha256 */
    free(data);
    return st;
}

/* ---- writer -------------------------------------------------------------------------------- */

static _Thread_local const struct weight_tensor *tl_save_t;
static int cmp_save(const void *a, const void *b)
{
    return strcmp(tl_save_t[*(const int *)a].name, tl_save_t[*(const int *)b].name);
}

/* __metadata__ from a JSON object text: string values kept, other values as their JSON text. */
static enum wv_status build_metadata(const char *metadata_json, cJSON *header)
{
    cJSON *in = cJSON_Parse(metadata_json);
    if (!in || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return error_set(WV_EINVAL, "metadata is not a JSON object");
    }
    cJSON *meta = cJSON_AddObjectToObject(header, "__metadata__");
    enum wv_status st = meta ? WV_OK : error_set(WV_ENOMEM, "out of memory for metadata");
    for (cJSON *it = in->child; it && !st; it = it->next) {
        if (cJSON_IsString(it)) {
            if (!cJSON_AddStringToObject(meta, it->string, it->valuestring))
                st = error_set(WV_ENOMEM, "out of memory for metadata");
        } else {
            char *txt = cJSON_PrintUnformatted(it);
            if (!txt || !cJSON_AddStringToObject(meta, it->string, txt))
                st = error_set(WV_ENOMEM, "out of memory for metadata");
            free(txt);
        }
    }
    cJSON_Delete(in);
    return st;
}

enum wv_status weights_save_safetensors(const char *path, const struct weight_tensor *t, int n,
                                        const char *metadata_json)
{
    enum wv_status st = WV_OK;
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    cJSON *header = cJSON_CreateObject();
    char *htxt = NULL;
    uint8_t *buf = NULL;
    if (!order || !header) {
        st = error_set(WV_ENOMEM, "out of memory writing %s", path);
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    tl_save_t = t;
    qsort(order, (size_t)n, sizeof(int), cmp_save);
    tl_save_t = NULL;
    if (metadata_json && (st = build_metadata(metadata_json, header))) goto done;
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        const struct weight_tensor *x = &t[order[k]];
        if (k && !strcmp(x->name, t[order[k - 1]].name)) {
            st = error_set(WV_EINVAL, "tensor %s: duplicate name", x->name);
            goto done;
        }
        if (!strcmp(x->name, "__metadata__")) {
            st = error_set(WV_EINVAL, "tensor name __metadata__ is reserved by safetensors");
            goto done;
        }
        cJSON *e = cJSON_AddObjectToObject(header, x->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = NULL;
        if (e && shape && cJSON_AddStringToObject(e, "dtype", "F32")) {
            for (int d = 0; d < x->ndim; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)x->shape[d]));
            offs = cJSON_AddArrayToObject(e, "data_offsets");
        }
        if (!offs) {
            st = error_set(WV_ENOMEM, "out of memory writing %s", path);
            goto done;
        }
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += (uint64_t)x->numel * 4;
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    htxt = cJSON_PrintUnformatted(header);
    if (!htxt) {
        st = error_set(WV_ENOMEM, "out of memory writing %s", path);
        goto done;
    }
    size_t hlen = strlen(htxt), hpad = (hlen + 7) / 8 * 8;
    size_t total = 8 + hpad + (size_t)off;
    buf = malloc(total);
    if (!buf) {
        st = error_set(WV_ENOMEM, "out of memory writing %s (%zu bytes)", path, total);
        goto done;
    }
    uint64_t h64 = hpad;
    memcpy(buf, &h64, 8);
    memcpy(buf + 8, htxt, hlen);
    memset(buf + 8 + hlen, ' ', hpad - hlen);
    uint8_t *p = buf + 8 + hpad;
    for (int k = 0; k < n; k++) {
        const struct weight_tensor *x = &t[order[k]];
        memcpy(p, x->data, (size_t)x->numel * 4);
        p += (size_t)x->numel * 4;
    }
    st = util_write_file_atomic(path, buf, total);
done:
    free(buf);
    free(htxt);
    cJSON_Delete(header);
    free(order);
    return st;
}
