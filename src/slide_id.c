/*
 * slide_id.c — content hash and slide ids for `batch` (contract in slide_id.h).
 */
#include "slide_id.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"

/* Read exactly n bytes at off into buf; a short read means the file shrank under us. */
static enum wv_status read_at(int fd, int64_t off, int64_t n, uint8_t *buf)
{
    int64_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, (size_t)(n - got), (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return error_set(WV_EIO, "read at byte %lld: %s", (long long)(off + got),
                             strerror(errno));
        }
        if (r == 0)
            return error_set(WV_EIO, "file shrank while being hashed (read %lld of %lld bytes at %lld)",
                             (long long)got, (long long)n, (long long)off);
        got += r;
    }
    return WV_OK;
}

static enum wv_status hash_range(int fd, struct sha256 *h, int64_t off, int64_t n, uint8_t *buf,
                                 int64_t buf_n)
{
    while (n > 0) {
        int64_t k = n < buf_n ? n : buf_n;
        enum wv_status st = read_at(fd, off, k, buf);
        if (st) return st;
        sha256_update(h, buf, (size_t)k);
        off += k;
        n -= k;
    }
    return WV_OK;
}

/* floor(k · size / d) without overflowing 64 bits for any file size */
static int64_t frac_offset(int64_t size, int k, int d)
{
    return size / d * k + size % d * k / d;
}

enum wv_status slide_id_content_hash_fd(int fd, char hash[SLIDE_ID_HASH_LEN + 1],
                                        int64_t *size_bytes)
{
    struct stat sb;
    if (fstat(fd, &sb)) return error_set(WV_EIO, "stat: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode)) return error_set(WV_EIO, "not a regular file");
    int64_t size = (int64_t)sb.st_size;
    const int64_t buf_n = SLIDE_ID_SAMPLE_BYTES;
    uint8_t *buf = wv_malloc((size_t)buf_n, "hash buffer");
    if (!buf) return WV_ENOMEM;
    struct sha256 h;
    sha256_init(&h);
    static const uint8_t tag[16] = "wsi-vmamba-fh1\0";
    sha256_update(&h, tag, sizeof tag);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)size >> (8 * i));
    sha256_update(&h, le, sizeof le);
    enum wv_status st;
    if (size <= SLIDE_ID_WHOLE_MAX_BYTES) {
        st = hash_range(fd, &h, 0, size, buf, buf_n);
    } else {
        st = hash_range(fd, &h, 0, SLIDE_ID_EDGE_BYTES, buf, buf_n);
        for (int k = 1; k <= SLIDE_ID_N_SAMPLES && !st; k++)
            st = hash_range(fd, &h, frac_offset(size, k, SLIDE_ID_N_SAMPLES + 1),
                            SLIDE_ID_SAMPLE_BYTES, buf, buf_n);
        if (!st) st = hash_range(fd, &h, size - SLIDE_ID_EDGE_BYTES, SLIDE_ID_EDGE_BYTES, buf, buf_n);
    }
    free(buf);
    if (st) return st;
    uint8_t d[32];
    sha256_final(&h, d);
    memcpy(hash, SLIDE_ID_HASH_PREFIX, strlen(SLIDE_ID_HASH_PREFIX));
    sha256_hex(d, hash + strlen(SLIDE_ID_HASH_PREFIX));
    if (size_bytes) *size_bytes = size;
    return WV_OK;
}

enum wv_status slide_id_content_hash(const char *path, char hash[SLIDE_ID_HASH_LEN + 1],
                                     int64_t *size_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return error_set(WV_ENOTFOUND, "no such file");
        return error_set(WV_EIO, "cannot open: %s", strerror(errno));
    }
    enum wv_status st = slide_id_content_hash_fd(fd, hash, size_bytes);
    close(fd);
    return st;
}

int slide_id_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

int slide_id_valid(const char *id, const char **why)
{
    const char *w = NULL;
    size_t n = strlen(id);
    if (!n)
        w = "empty";
    else if (n > SLIDE_ID_MAX_LEN)
        w = "longer than 200 bytes";
    else if (id[0] == '.')
        w = "starts with '.'";
    else if (strchr(id, '/'))
        w = "contains '/'";
    else if (!slide_id_utf8_valid(id, n))
        w = "not valid UTF-8";
    else
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
                w = "contains a control character";
                break;
            }
    if (why) *why = w;
    return w == NULL;
}

void slide_id_from_path(const char *path, char *out, size_t n)
{
    char stem[4096];
    util_stem(path, stem, sizeof stem);
    size_t len = strlen(stem);
    size_t cap = n - 1 < SLIDE_ID_MAX_LEN ? n - 1 : SLIDE_ID_MAX_LEN;
    if (len > cap) {
        len = cap;
        /* do not cut a UTF-8 sequence: back up over continuation bytes */
        while (len > 0 && ((unsigned char)stem[len] & 0xC0) == 0x80) len--;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)stem[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '_' : (char)c;
    }
    out[len] = '\0';
    if (out[0] == '.') out[0] = '_';
}
