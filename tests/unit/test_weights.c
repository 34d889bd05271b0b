/*
 * test_weights.c — the weights module (src/weights.h): golden .pth and .safetensors load to
 * bit-identical tensors; the fp32 writer round-trips; a small hand-made safetensors file parses to
 * the right values for every dtype and fails cleanly when cut at every possible length; malformed
 * headers give errors that name the tensor.
 */
#include <stdint.h>
#include <string.h>

#include "src/error.h"
#include "src/util.h"
#include "src/weights.h"
#include "src/weights_private.h"
#include "testutil.h"

/* A safetensors file from a header text and a data buffer (header padded with spaces). */
static size_t make_st(uint8_t *out, const char *header, const void *data, size_t data_len)
{
    size_t h = strlen(header), hp = (h + 7) / 8 * 8;
    uint64_t h64 = hp;
    memcpy(out, &h64, 8);
    memcpy(out + 8, header, h);
    memset(out + 8 + h, ' ', hp - h);
    memcpy(out + 8 + hp, data, data_len);
    return 8 + hp + data_len;
}

/* Parse and expect failure with a message containing `want`. */
static void expect_fail(const char *label, const char *header, const void *data, size_t len,
                        const char *want)
{
    uint8_t buf[4096];
    size_t n = make_st(buf, header, data, len);
    struct weights *w = (struct weights *)1;
    error_clear();
    enum wv_status st = weights_parse_safetensors(buf, n, &w);
    CHECK_MSG(st != WV_OK && w == NULL, "%s: parsed", label);
    CHECK_MSG(strstr(error_msg(), want) != NULL, "%s: message '%s' lacks '%s'", label,
              error_msg(), want);
    error_clear();
}

static void test_golden(void)
{
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/golden/v2_ds1_weights.safetensors", tu_shared());
    snprintf(p2, sizeof p2, "%s/golden/v2_ds1_weights.pth", tu_shared());
    struct weights *a = NULL, *b = NULL;
    if (weights_load(p1, &a) || weights_load(p2, &b)) {
        fprintf(stderr, "cannot load golden weights (%s); regenerate ../shared/golden?\n",
                error_msg());
        CHECK(0);
        weights_free(a);
        return;
    }
    CHECK(a->n == 114 && b->n == 114);
    CHECK(weights_numel_total(a) == 383042);
    CHECK(!strcmp(a->format, "safetensors") && !strcmp(b->format, "pth"));
    CHECK(!strcmp(a->sha256, "1c38620c5592ced95fda96d2b3fdad3452a64c492c701372ec78d0ffe9e88175"));
    int same = a->n == b->n;
    for (int i = 0; same && i < a->n; i++) {
        const struct weight_tensor *x = &a->t[i], *y = &b->t[i]; /* same file order */
        same = !strcmp(x->name, y->name) && x->ndim == y->ndim && x->numel == y->numel &&
               !memcmp(x->shape, y->shape, sizeof x->shape) &&
               !memcmp(x->data, y->data, (size_t)x->numel * sizeof(float)) &&
               x->source_dtype == WDT_F32 && y->source_dtype == WDT_F32;
        if (!same) fprintf(stderr, "  golden tensor %s differs between .pth and .safetensors\n",
                           x->name);
    }
    CHECK(same);
    printf("golden .pth vs .safetensors: %d tensors bit-equal %s\n", a->n, same ? "OK" : "FAIL");
    const struct weight_tensor *t = weights_find(b, "layers.2.blocks.1.op.x_proj_weight");
    CHECK(t && t->ndim == 3 && t->shape[0] == 4 && t->shape[1] == 6 && t->shape[2] == 64);
    CHECK(weights_find(b, "layers.2.blocks.1.op.nope") == NULL);
    CHECK(error_msg()[0] == 0);

    /* writer round trip, with metadata; names come back sorted */
    char out[1024];
    snprintf(out, sizeof out, "%s/test_weights_roundtrip.safetensors", tu_tmp());
    CHECK(weights_save_safetensors(out, b->t, b->n, "{\"src\":\"golden\",\"n\":3}") == WV_OK);
    struct weights *c = NULL;
    CHECK(weights_load(out, &c) == WV_OK);
    if (c) {
        CHECK(c->n == b->n);
        int ok = 1;
        for (int i = 0; i < b->n; i++) {
            const struct weight_tensor *x = weights_find(c, b->t[i].name);
            ok &= x && x->numel == b->t[i].numel &&
                  !memcmp(x->data, b->t[i].data, (size_t)x->numel * 4);
        }
        for (int i = 1; i < c->n; i++) ok &= strcmp(c->t[i - 1].name, c->t[i].name) < 0;
        CHECK(ok);
        CHECK(c->metadata_json && strstr(c->metadata_json, "\"src\":\"golden\"") &&
              strstr(c->metadata_json, "\"n\":\"3\""));
        uint8_t *raw;
        size_t len;
        CHECK(util_read_file(out, 1 << 24, &raw, &len) == WV_OK);
        uint64_t h;
        memcpy(&h, raw, 8);
        CHECK(h % 8 == 0 && raw[8] == '{' && raw[8 + h - 1] != 0);
        free(raw);
    }
    weights_free(c);
    /* duplicate names and the reserved name are refused by the writer */
    struct weight_tensor dup[2] = {b->t[0], b->t[0]};
    CHECK(weights_save_safetensors(out, dup, 2, NULL) == WV_EINVAL);
    CHECK(strstr(error_msg(), "duplicate") != NULL);
    error_clear();
    weights_free(a);
    weights_free(b);
}

static void test_small_and_truncation(void)
{
    /* a: F32 (2,3); b: F16 (4) incl. a subnormal; c: BF16 (2); d: F64 (1); e: I64 (1);
     * f: U8 (2); g: BOOL (2); s: F32 scalar () */
    uint8_t data[128];
    size_t k = 0;
    for (int i = 0; i < 6; i++) {
        float f = (float)i - 2.5f;
        memcpy(data + k, &f, 4);
        k += 4;
    }
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}; /* 1, -2, 65504, 2^-24 */
    memcpy(data + k, h, 8);
    k += 8;
    uint16_t bf[2] = {0x3f80, 0xc0a0}; /* 1, -5 */
    memcpy(data + k, bf, 4);
    k += 4;
    double d = 0.125;
    memcpy(data + k, &d, 8);
    k += 8;
    int64_t e = -7;
    memcpy(data + k, &e, 8);
    k += 8;
    data[k++] = 200;
    data[k++] = 3;
    data[k++] = 0;
    data[k++] = 9;
    float s = 42;
    memcpy(data + k, &s, 4);
    k += 4;
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[32,36]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[36,44]},"
        "\"e\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[44,52]},"
        "\"f\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[52,54]},"
        "\"g\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[54,56]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[56,60]}}";
    uint8_t file[2048];
    size_t n = make_st(file, hdr, data, k);
    struct weights *w = NULL;
    CHECK(weights_parse_safetensors(file, n, &w) == WV_OK);
    if (!w) {
        fprintf(stderr, "  %s\n", error_msg());
        return;
    }
    CHECK(w->n == 8 && w->metadata_json && !strcmp(w->metadata_json, "{\"format\":\"pt\"}"));
    const struct weight_tensor *t = weights_find(w, "a");
    CHECK(t && t->ndim == 2 && t->numel == 6 && t->data[0] == -2.5f && t->data[5] == 2.5f);
    t = weights_find(w, "b");
    CHECK(t && t->source_dtype == WDT_F16 && t->data[0] == 1.0f && t->data[1] == -2.0f &&
          t->data[2] == 65504.0f && t->data[3] == 0x1p-24f);
    t = weights_find(w, "c");
    CHECK(t && t->data[0] == 1.0f && t->data[1] == -5.0f);
    t = weights_find(w, "d");
    CHECK(t && t->data[0] == 0.125f);
    t = weights_find(w, "e");
    CHECK(t && t->data[0] == -7.0f && t->source_dtype == WDT_I64);
    t = weights_find(w, "f");
    CHECK(t && t->data[0] == 200.0f && t->data[1] == 3.0f);
    t = weights_find(w, "g");
    CHECK(t && t->data[0] == 0.0f && t->data[1] == 1.0f);
    t = weights_find(w, "s");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->data[0] == 42.0f);
    weights_free(w);

    /* every prefix of the file must fail cleanly (no crash, no result, a message) */
    int all_fail = 1;
    for (size_t cut = 0; cut < n; cut++) {
        struct weights *x = NULL;
        error_clear();
        enum wv_status st = weights_parse_safetensors(file, cut, &x);
        if (st == WV_OK || x || !error_msg()[0]) {
            all_fail = 0;
            fprintf(stderr, "  prefix of %zu bytes: status %d\n", cut, st);
            weights_free(x);
        }
    }
    CHECK(all_fail);
    printf("safetensors truncated at all %zu lengths: %s\n", n, all_fail ? "OK" : "FAIL");
    error_clear();
}

static void test_bad_headers(void)
{
    uint8_t z[64] = {0};
    expect_fail("bad json", "{\"a\":{\"dtype\":", z, 8, "not valid JSON");
    expect_fail("not object", "[1,2]", z, 0, "does not start with");
    expect_fail("out of range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                z, 8, "tensor w: data_offsets [0, 16] outside");
    expect_fail("begin>end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", z,
                8, "tensor w: data_offsets");
    expect_fail("overlap",
                "{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                z, 16, "tensor q: data_offsets overlap those of tensor p");
    expect_fail("dtype size", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                z, 16, "tensor w: data_offsets span 16 bytes, expected 8");
    expect_fail("dtype", "{\"w\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", z, 8,
                "tensor w: unsupported dtype C64");
    expect_fail("overflow",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,8],"
                "\"data_offsets\":[0,0]}}",
                z, 0, "tensor w: shape overflows");
    expect_fail("negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", z,
                0, "tensor w: shape entry 0");
    expect_fail("fraction", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                z, 8, "tensor w: shape entry 0");
    expect_fail("ndim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                        "\"data_offsets\":[0,4]}}", z, 8, "tensor w: 9 dimensions");
    expect_fail("no dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", z, 8,
                "tensor w: missing or non-string dtype");
    expect_fail("offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", z, 8,
                "tensor w: data_offsets is not [begin, end]");
    expect_fail("dup", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", z, 8,
                "tensor w: duplicate name");
    expect_fail("meta", "{\"__metadata__\":{\"x\":[1]}}", z, 0, "__metadata__ value \"x\"");
    expect_fail("garbage", "{} x", z, 0, "garbage after the header JSON");
    float nan_inf[2] = {1.0f, 0};
    uint32_t nan_bits = 0x7fc00000u;
    memcpy(&nan_inf[1], &nan_bits, 4);
    expect_fail("nan", "{\"layers.0.x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                nan_inf, 8, "tensor layers.0.x: NaN value at index 1");
    uint16_t hinf[2] = {0x3c00, 0xfc00};
    expect_fail("f16 inf", "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", hinf,
                4, "tensor h: infinite");
    double big = 1e300;
    expect_fail("f64 range", "{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                &big, 8, "tensor d: infinite (or out of fp32 range)");
}

static void test_detection(void)
{
    char p[1024];
    struct weights *w = NULL;
    snprintf(p, sizeof p, "%s/does/not/exist.pth", tu_tmp());
    CHECK(weights_load(p, &w) == WV_EIO && !w);
    error_clear();
    /* torch's legacy (pre-1.6) format: a bare pickle whose first object is the magic number */
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20,
                                     0x6a, 0xa8, 0x50, 0x19, 0x2e};
    snprintf(p, sizeof p, "%s/test_weights_legacy.pth", tu_tmp());
    CHECK(util_write_file_atomic(p, legacy, sizeof legacy) == WV_OK);
    CHECK(weights_load(p, &w) == WV_EUNSUPPORTED && !w);
    CHECK(strstr(error_msg(), "legacy") && strstr(error_msg(), "torch>=1.6"));
    error_clear();
    snprintf(p, sizeof p, "%s/test_weights_text.pth", tu_tmp());
    CHECK(util_write_file_atomic(p, "hello world, not weights", 24) == WV_OK);
    CHECK(weights_load(p, &w) == WV_EFORMAT && strstr(error_msg(), "not a checkpoint"));
    error_clear();
    /* a zip that is not a torch file */
    static const uint8_t empty_zip[22] = {'P', 'K', 5, 6};
    CHECK(weights_parse_pth(empty_zip, sizeof empty_zip, &w) == WV_EFORMAT && !w);
    CHECK(strstr(error_msg(), "data.pkl") != NULL);
    error_clear();
    /* a hand-built table without an index still finds by linear search */
    struct weights *x = weights_new("test");
    float *v;
    int64_t shp[1] = {2};
    CHECK(x && weights_add(x, "b", 1, shp, WDT_F32, &v) == WV_OK);
    v[0] = v[1] = 0;
    CHECK(weights_add(x, "b", 1, shp, WDT_F32, &v) == WV_EFORMAT); /* duplicate */
    error_clear();
    CHECK(weights_find(x, "b") && !weights_find(x, "a"));
    weights_free(x);
}

int main(void)
{
    test_golden();
    test_small_and_truncation();
    test_bad_headers();
    test_detection();
    return tu_finish("test_weights");
}
