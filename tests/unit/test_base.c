/* test_base.c — error model and sha256 (FIPS 180-4 test vectors). */
#include <string.h>

#include "src/error.h"
#include "src/sha256.h"
#include "src/util.h"
#include "testutil.h"

static enum wv_status fail_inner(void) { return error_set(WV_EFORMAT, "inner cause %d", 7); }

int main(void)
{
    char hex[65];
    sha256_buffer_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    sha256_buffer_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_buffer_hex(m, strlen(m), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* one million 'a' in uneven pieces exercises buffering */
    struct sha256 s;
    sha256_init(&s);
    char a[777];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        sha256_update(&s, a, k);
        left -= k;
    }
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));

    error_clear();
    CHECK(error_code() == WV_OK && !strcmp(error_msg(), ""));
    CHECK(fail_inner() == WV_EFORMAT);
    error_set(WV_EIO, "outer must not overwrite");
    CHECK(!strcmp(error_msg(), "inner cause 7"));
    error_prefix("file.svs");
    CHECK(!strcmp(error_msg(), "file.svs: inner cause 7"));
    CHECK(!strcmp(wv_status_name(WV_EFORMAT), "WV_EFORMAT"));
    error_clear();

    uint8_t *buf;
    size_t len;
    CHECK(util_read_file("/nonexistent/x", 100, &buf, &len) == WV_EIO);
    error_clear();
    CHECK(util_read_file("/", 100, &buf, &len) == WV_EIO);
    CHECK(strstr(error_msg(), "directory") != NULL);
    error_clear();
    char stem[64];
    util_stem("/a/b/slide.name.svs", stem, sizeof stem);
    CHECK(!strcmp(stem, "slide.name"));
    return tu_finish("test_base");
}
