/*
 * safetensors.c — the safetensors reader (weights.h): 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the data buffer.
 * Every field is validated before use: offsets in range and non-overlapping, sizes equal to
 * numel × dtype size, shape products without overflow. Format notes in docs/weights.md.
 */
#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sha256.h"
#include "weights_private.h"

/* Header size limit: the reference implementation refuses headers above 100 MB. */
#define ST_MAX_HEADER_BYTES ((uint64_t)100 * 1000 * 1000)

struct span {
    uint64_t begin, end;
    const char *name;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int parse_dtype(const char *s, enum weights_dtype *d)
{
    static const struct { const char *name; enum weights_dtype d; } tab[] = {
        {"F32", WDT_F32}, {"F16", WDT_F16}, {"BF16", WDT_BF16}, {"F64", WDT_F64},
        {"I64", WDT_I64}, {"I32", WDT_I32}, {"U8", WDT_U8},     {"BOOL", WDT_BOOL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].name)) {
            *d = tab[i].d;
            return 0;
        }
    return -1;
}

/* A JSON number that is an exact non-negative integer below 2^53 (all doubles can say exactly). */
static int json_u53(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1;
    *v = (uint64_t)d;
    return 0;
}

enum wv_status weights_parse_safetensors(const uint8_t *data, size_t len, struct weights **out)
{
    *out = NULL;
    if (len < 8)
        return error_set(WV_EFORMAT, "safetensors: file is %zu bytes, shorter than the 8-byte "
                                     "header length", len);
    uint64_t hlen;
    memcpy(&hlen, data, 8);
    if (hlen > len - 8)
        return error_set(WV_EFORMAT,
                         "safetensors: header length %llu exceeds the file (%zu bytes after it); "
                         "truncated?",
                         (unsigned long long)hlen, len - 8);
    if (hlen > ST_MAX_HEADER_BYTES)
        return error_set(WV_EFORMAT, "safetensors: header length %llu above the 100 MB limit",
                         (unsigned long long)hlen);
    if (hlen < 2 || data[8] != '{')
        return error_set(WV_EFORMAT, "safetensors: header does not start with '{'");
    const uint8_t *buf = data + 8 + hlen;
    uint64_t buf_len = len - 8 - hlen;

    enum wv_status st = WV_OK;
    struct span *spans = NULL;
    struct weights *w = NULL;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)data + 8, (size_t)hlen, &endp, 0);
    if (!root) {
        size_t at = endp ? (size_t)(endp - (const char *)data - 8) : 0;
        st = error_set(WV_EFORMAT, "safetensors: header is not valid JSON (near byte %zu of %llu)",
                       at, (unsigned long long)hlen);
        goto done;
    }
    /* The rest of the header may only be padding (spaces; some writers pad with NULs). */
    for (const uint8_t *p = (const uint8_t *)endp; p < data + 8 + hlen; p++)
        if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
            st = error_set(WV_EFORMAT, "safetensors: garbage after the header JSON at byte %zu",
                           (size_t)(p - data));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = error_set(WV_EFORMAT, "safetensors: header is not a JSON object");
        goto done;
    }
    w = weights_new("safetensors");
    int n_entries = cJSON_GetArraySize(root);
    spans = calloc((size_t)(n_entries > 0 ? n_entries : 1), sizeof *spans);
    if (!w || !spans) {
        st = error_set(WV_ENOMEM, "safetensors: out of memory for %d header entries", n_entries);
        goto done;
    }
    int n_spans = 0, seen_meta = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string;
        if (!name || !name[0]) {
            st = error_set(WV_EFORMAT, "safetensors: header has an entry with an empty name");
            goto done;
        }
        if (!strcmp(name, "__metadata__")) {
            if (seen_meta++) {
                st = error_set(WV_EFORMAT, "safetensors: __metadata__ appears twice");
                goto done;
            }
            if (!cJSON_IsObject(e)) {
                st = error_set(WV_EFORMAT, "safetensors: __metadata__ is not a JSON object");
                goto done;
            }
            for (cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    st = error_set(WV_EFORMAT, "safetensors: __metadata__ value \"%s\" is not a "
                                               "string", m->string ? m->string : "");
                    goto done;
                }
            w->metadata_json = cJSON_PrintUnformatted(e);
            if (!w->metadata_json) {
                st = error_set(WV_ENOMEM, "safetensors: out of memory for __metadata__");
                goto done;
            }
            continue;
        }
        if (!cJSON_IsObject(e)) {
            st = error_set(WV_EFORMAT, "tensor %s: header entry is not a JSON object", name);
            goto done;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        enum weights_dtype dt;
        if (!cJSON_IsString(jd)) {
            st = error_set(WV_EFORMAT, "tensor %s: missing or non-string dtype", name);
            goto done;
        }
        if (parse_dtype(jd->valuestring, &dt)) {
            st = error_set(WV_EUNSUPPORTED, "tensor %s: unsupported dtype %.32s", name,
                           jd->valuestring);
            goto done;
        }
        if (!cJSON_IsArray(js)) {
            st = error_set(WV_EFORMAT, "tensor %s: missing or non-array shape", name);
            goto done;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > WEIGHTS_MAX_DIMS) {
            st = error_set(WV_EUNSUPPORTED, "tensor %s: %d dimensions (at most %d supported)",
                           name, ndim, WEIGHTS_MAX_DIMS);
            goto done;
        }
        int64_t shape[WEIGHTS_MAX_DIMS];
        int d = 0;
        for (const cJSON *x = js->child; x; x = x->next, d++) {
            uint64_t v;
            if (json_u53(x, &v)) {
                st = error_set(WV_EFORMAT, "tensor %s: shape entry %d is not a non-negative "
                                           "integer", name, d);
                goto done;
            }
            shape[d] = (int64_t)v;
        }
        int64_t numel;
        if ((st = shape_numel(name, ndim, shape, &numel))) goto done;
        uint64_t b, en;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || json_u53(jo->child, &b) ||
            json_u53(jo->child->next, &en)) {
            st = error_set(WV_EFORMAT, "tensor %s: data_offsets is not [begin, end]", name);
            goto done;
        }
        if (b > en || en > buf_len) {
            st = error_set(WV_EFORMAT,
                           "tensor %s: data_offsets [%llu, %llu] outside the data buffer "
                           "(%llu bytes); truncated?",
                           name, (unsigned long long)b, (unsigned long long)en,
                           (unsigned long long)buf_len);
            goto done;
        }
        /* numel <= INT64_MAX/8 (shape_numel), so the product cannot overflow */
        uint64_t want = (uint64_t)numel * wdt_size(dt);
        if (en - b != want) {
            st = error_set(WV_EFORMAT,
                           "tensor %s: data_offsets span %llu bytes, expected %llu (%lld x %s)",
                           name, (unsigned long long)(en - b), (unsigned long long)want,
                           (long long)numel, wdt_name(dt));
            goto done;
        }
        float *dst;
        if ((st = weights_add(w, name, ndim, shape, dt, &dst))) goto done;
        weights_convert(dt, buf + b, numel, dst);
        spans[n_spans++] = (struct span){b, en, w->t[w->n - 1].name};
    }
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    for (int i = 1; i < n_spans; i++)
        if (spans[i].begin < spans[i - 1].end) {
            st = error_set(WV_EFORMAT, "tensor %s: data_offsets overlap those of tensor %s",
                           spans[i].name, spans[i - 1].name);
            goto done;
        }
    st = weights_finish(w);
done:
    free(spans);
    cJSON_Delete(root);
    if (st) {
        weights_free(w);
        return st;
    }
    sha256_buffer_hex(data, len, w->sha256);
    *out = w;
    return WV_OK;
}
