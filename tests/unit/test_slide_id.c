/*
 * test_slide_id.c — slide_id.h: the content hash follows its documented recipe exactly
 * (recomputed here from the bytes with sha256.h, small and large files), ignores the path,
 * sees size/header/sample/tail changes, and misses a change outside the hashed bytes (the
 * documented limit); slide id validation and derivation from file names.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/sha256.h"
#include "src/slide_id.h"
#include "testutil.h"

static void write_file(const char *path, const uint8_t *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(d, 1, n, f) == n);
    if (f) fclose(f);
}

/* the recipe of slide_id.h, spelled out independently */
static void reference(const uint8_t *d, int64_t size, char out[SLIDE_ID_HASH_LEN + 1])
{
    struct sha256 h;
    sha256_init(&h);
    uint8_t tag[16] = "wsi-vmamba-fh1";
    sha256_update(&h, tag, 16);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)size >> (8 * i));
    sha256_update(&h, le, 8);
    const int64_t E = 1 << 20, S = 1 << 16;
    if (size <= 2 * E + 16 * S) {
        sha256_update(&h, d, (size_t)size);
    } else {
        sha256_update(&h, d, (size_t)E);
        for (int k = 1; k <= 16; k++) {
            int64_t off = (int64_t)((__int128)size * k / 17);
            sha256_update(&h, d + off, (size_t)S);
        }
        sha256_update(&h, d + size - E, (size_t)E);
    }
    uint8_t dg[32];
    sha256_final(&h, dg);
    strcpy(out, "fast1:");
    sha256_hex(dg, out + 6);
}

static void test_hash(void)
{
    char dir[512], p1[600], p2[600], a[SLIDE_ID_HASH_LEN + 1], b[SLIDE_ID_HASH_LEN + 1],
        r[SLIDE_ID_HASH_LEN + 1];
    snprintf(dir, sizeof dir, "%s/slide_id", tu_tmp());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    snprintf(p1, sizeof p1, "%s/one.svs", dir);
    snprintf(p2, sizeof p2, "%s/renamed.tif", dir);
    const size_t sizes[] = {1, 1000, 2 * (1 << 20) + 16 * (1 << 16),
                            2 * (1 << 20) + 16 * (1 << 16) + 1, 7 * (1 << 20) + 12345};
    for (int s = 0; s < 5; s++) {
        size_t n = sizes[s];
        uint8_t *d = malloc(n);
        uint32_t x = 2463534242u + (uint32_t)s;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d[i] = (uint8_t)x;
        }
        write_file(p1, d, n);
        int64_t sz = 0;
        CHECK(slide_id_content_hash(p1, a, &sz) == WV_OK && sz == (int64_t)n);
        reference(d, (int64_t)n, r);
        CHECK_MSG(!strcmp(a, r), "size %zu: %s vs reference %s", n, a, r);
        CHECK(strlen(a) == SLIDE_ID_HASH_LEN);
        write_file(p2, d, n); /* same bytes, other name */
        CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && !strcmp(a, b));
        if (n > 2 * (1 << 20) + 16 * (1 << 16)) {
            /* a byte in the 5th sample block changes the hash; one between samples does not */
            size_t in_sample = (size_t)((__int128)n * 5 / 17) + 100;
            d[in_sample] ^= 1;
            write_file(p2, d, n);
            CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && strcmp(a, b));
            d[in_sample] ^= 1;
            size_t between = (size_t)((__int128)n * 5 / 17) + (1 << 16) + 1000;
            if (between > (1 << 20) && between + (1 << 20) < n) {
                /* outside the header, tail and samples: not seen (the documented limit) */
                d[between] ^= 1;
                write_file(p2, d, n);
                CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && !strcmp(a, b));
                d[between] ^= 1;
            }
            d[n - 1] ^= 1; /* tail */
            write_file(p2, d, n);
            CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && strcmp(a, b));
            d[n - 1] ^= 1;
            d[10] ^= 1; /* header */
            write_file(p2, d, n);
            CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && strcmp(a, b));
            d[10] ^= 1;
        }
        write_file(p2, d, n - 1 ? n - 1 : 0); /* size */
        CHECK(slide_id_content_hash(p2, b, NULL) == WV_OK && strcmp(a, b));
        free(d);
    }
    char missing[700];
    snprintf(missing, sizeof missing, "%s/none.svs", dir);
    CHECK(slide_id_content_hash(missing, a, NULL) == WV_ENOTFOUND);
    error_clear();
    CHECK(slide_id_content_hash(dir, a, NULL) == WV_EIO); /* a folder */
    printf("  expected: %s\n", error_msg());
    error_clear();
}

static void test_ids(void)
{
    const char *why = NULL;
    CHECK(slide_id_valid("tumor_001", &why) && !why);
    CHECK(slide_id_valid("with space \"q\" é", NULL));
    CHECK(!slide_id_valid("", &why) && !strcmp(why, "empty"));
    CHECK(!slide_id_valid("a/b", &why) && !strcmp(why, "contains '/'"));
    CHECK(!slide_id_valid(".x", &why) && !strcmp(why, "starts with '.'"));
    CHECK(!slide_id_valid("caf\xe9", &why) && !strcmp(why, "not valid UTF-8"));
    CHECK(!slide_id_valid("a\nb", &why) && !strcmp(why, "contains a control character"));
    char big[300];
    memset(big, 'a', 250);
    big[250] = '\0';
    CHECK(!slide_id_valid(big, &why) && !strcmp(why, "longer than 200 bytes"));
    CHECK(!slide_id_utf8_valid("\xc0\x80", 2) && !slide_id_utf8_valid("\xed\xa0\x80", 3));
    CHECK(slide_id_utf8_valid("\xf0\x9f\x98\x80", 4) && !slide_id_utf8_valid("\xf0\x9f\x98", 3));
    char out[SLIDE_ID_MAX_LEN + 1];
    slide_id_from_path("/a/b/new\nline.v1.svs", out, sizeof out);
    CHECK_MSG(!strcmp(out, "new_line.v1"), "%s", out);
    slide_id_from_path("x/.hidden.tif", out, sizeof out);
    CHECK_MSG(!strcmp(out, "_hidden"), "%s", out);
    char longname[400] = "/d/";
    for (int i = 0; i < 110; i++) strcat(longname, "\xc3\xa9"); /* 220 bytes of é */
    strcat(longname, ".svs");
    slide_id_from_path(longname, out, sizeof out);
    CHECK_MSG(strlen(out) == 200 && slide_id_valid(out, NULL), "%zu", strlen(out));
}

int main(void)
{
    test_hash();
    test_ids();
    return tu_finish("test_slide_id");
}
