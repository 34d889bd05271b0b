/*
 * sha256.h — SHA-256 (FIPS 180-4) for model and content hashes recorded in results and metadata.
 * None of the project's libraries exposes a hash, so this small, test-vector-checked one lives here.
 */
#ifndef WV_SHA256_H
#define WV_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t buf[64];
    size_t n_buf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t digest[32]);
/* digest → 64 lowercase hex chars + NUL */
void sha256_hex(const uint8_t digest[32], char hex[65]);
/* One-shot over a buffer, hex output. */
void sha256_buffer_hex(const void *data, size_t len, char hex[65]);
/* Hash a whole file, streaming. */
enum wv_status sha256_file_hex(const char *path, char hex[65]);

#endif
