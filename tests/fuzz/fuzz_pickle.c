/*
 * fuzz_pickle.c — libFuzzer entry for the restricted unpickler through the whole .pth path.
 * Mutating a zip rarely gets past its CRCs, so this target takes the fuzz input as the bytes of
 * data.pkl and wraps them in a valid stored zip (archive/data.pkl + storages archive/data/0..3 of
 * 48, 6, 64 and 16 bytes) before calling weights_parse_pth. Built by build_and_run.sh; replayed by
 * replay.c in ctest over tests/fuzz/corpus/fuzz_pickle.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "src/error.h"
#include "src/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct zbuf {
    uint8_t *p;
    size_t n;
};

static void put(struct zbuf *z, const void *d, size_t n)
{
    memcpy(z->p + z->n, d, n);
    z->n += n;
}
static void put16(struct zbuf *z, unsigned v) { uint8_t b[2] = {v & 255, v >> 8}; put(z, b, 2); }
static void put32(struct zbuf *z, uint32_t v)
{
    uint8_t b[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    put(z, b, 4);
}

/* A minimal zip writer: stored entries, no extra fields. */
static size_t make_zip(uint8_t *out, const char *const *names, const uint8_t *const *datas,
                       const size_t *lens, int n)
{
    struct zbuf z = {out, 0};
    uint32_t offs[8];
    for (int i = 0; i < n; i++) {
        offs[i] = (uint32_t)z.n;
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]);
        put32(&z, 0x04034b50); put16(&z, 20); put16(&z, 0); put16(&z, 0); put16(&z, 0);
        put16(&z, 0); put32(&z, crc); put32(&z, (uint32_t)lens[i]); put32(&z, (uint32_t)lens[i]);
        put16(&z, (unsigned)strlen(names[i])); put16(&z, 0);
        put(&z, names[i], strlen(names[i]));
        put(&z, datas[i], lens[i]);
    }
    size_t cd = z.n;
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]);
        put32(&z, 0x02014b50); put16(&z, 20); put16(&z, 20); put16(&z, 0); put16(&z, 0);
        put16(&z, 0); put16(&z, 0); put32(&z, crc); put32(&z, (uint32_t)lens[i]);
        put32(&z, (uint32_t)lens[i]); put16(&z, (unsigned)strlen(names[i])); put16(&z, 0);
        put16(&z, 0); put16(&z, 0); put16(&z, 0); put32(&z, 0); put32(&z, offs[i]);
        put(&z, names[i], strlen(names[i]));
    }
    size_t cd_len = z.n - cd;
    put32(&z, 0x06054b50); put16(&z, 0); put16(&z, 0); put16(&z, (unsigned)n);
    put16(&z, (unsigned)n); put32(&z, (uint32_t)cd_len); put32(&z, (uint32_t)cd); put16(&z, 0);
    return z.n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1 << 20)) return 0;
    /* storages sized for the seeds: key 0 = 12 floats, 1 = 3 halves, 2 = 16 floats, 3 = 4 */
    static uint8_t storage[64];
    for (int i = 0; i < 16; i++) {
        float f = (float)i * 0.25f;
        memcpy(storage + 4 * i, &f, 4);
    }
    const char *names[] = {"archive/data.pkl", "archive/data/0", "archive/data/1",
                           "archive/data/2", "archive/data/3"};
    const uint8_t *datas[] = {data, storage, storage, storage, storage};
    size_t lens[] = {size, 48, 6, 64, 16};
    uint8_t *zip = malloc(size + 1024);
    if (!zip) return 0;
    size_t n = make_zip(zip, names, datas, lens, 5);
    struct weights *w = NULL;
    if (weights_parse_pth(zip, n, &w) == WV_OK) weights_free(w);
    error_clear();
    free(zip);
    return 0;
}
