/*
 * slide_id.h — how `batch` names and recognises a slide (issue 7; docs/batch.md "Identity").
 *
 * Content hash ("fast1:" + 64 hex digits): SHA-256 over a fixed byte string built from the file,
 * cheap enough to compute for every slide of an archive at every resume (about 3 MiB read per
 * slide, whatever its size), yet any change of size, header, tail or of one of the sampled blocks
 * gives another hash. The hashed message is, in this order:
 *   1. the 16 bytes "wsi-vmamba-fh1\0\0" (version tag: a new scheme gets a new tag and prefix);
 *   2. the file size in bytes as a uint64, little-endian;
 *   3. when size <= SLIDE_ID_WHOLE_MAX_BYTES: the whole file, and nothing else;
 *      otherwise: bytes [0, EDGE) (the header: TIFF IFDs, vendor metadata),
 *      then for k = 1 .. SLIDE_ID_N_SAMPLES the SLIDE_ID_SAMPLE_BYTES bytes at offset
 *      floor(k · size / (SLIDE_ID_N_SAMPLES + 1)) (fixed fractions 1/17 … 16/17 of the file),
 *      then bytes [size − EDGE, size) (the tail: where most writers put the last tiles and
 *      often the directory), EDGE = SLIDE_ID_EDGE_BYTES.
 * A change that touches none of these bytes and keeps the size is not seen; pixel data edited
 * in place is such a case (documented in docs/batch.md; use a new file name and --retry-failed
 * or delete the result). The hash does not include the path: a renamed or moved slide keeps it.
 *
 * Slide ids: the name of `<out>/<slide_id>.h5` and the slides.slide_id key. Valid ids are
 * 1..SLIDE_ID_MAX_LEN bytes of UTF-8 without control characters or '/', not starting with '.'.
 */
#ifndef WV_SLIDE_ID_H
#define WV_SLIDE_ID_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SLIDE_ID_EDGE_BYTES ((int64_t)1 << 20)   /* 1 MiB: an SVS/NDPI header fits with room */
#define SLIDE_ID_N_SAMPLES 16                    /* 16 × 64 KiB: 1 MiB of samples */
#define SLIDE_ID_SAMPLE_BYTES ((int64_t)1 << 16)
/* At or below this size the whole file is hashed (reading it costs no more than the samples). */
#define SLIDE_ID_WHOLE_MAX_BYTES (2 * SLIDE_ID_EDGE_BYTES + SLIDE_ID_N_SAMPLES * SLIDE_ID_SAMPLE_BYTES)
#define SLIDE_ID_HASH_PREFIX "fast1:"
#define SLIDE_ID_HASH_LEN 70 /* strlen(prefix) + 64 hex */
#define SLIDE_ID_MAX_LEN 200 /* bytes; leaves room for ".h5.tmp.<pid>" in a 255-byte name */

/* The content hash of the file at `path` (follows symlinks) into hash (SLIDE_ID_HASH_LEN + 1
 * bytes, NUL-terminated); *size_bytes (may be NULL) receives the file size. Errors: WV_ENOTFOUND
 * (no such file), WV_EIO (not a regular file, unreadable, or it shrank while being read), with a
 * message naming the path's problem (not the path itself). Thread-safe. */
enum wv_status slide_id_content_hash(const char *path, char hash[SLIDE_ID_HASH_LEN + 1],
                                     int64_t *size_bytes);

/* Same, of an open file descriptor (read with pread; the offset is not moved). */
enum wv_status slide_id_content_hash_fd(int fd, char hash[SLIDE_ID_HASH_LEN + 1],
                                        int64_t *size_bytes);

/* 1 when `id` is a valid slide id (see above), else 0 and, when why is non-NULL, *why says why
 * ("empty", "contains '/'", "starts with '.'", "longer than 200 bytes", "not valid UTF-8",
 * "contains a control character"). */
int slide_id_valid(const char *id, const char **why);

/* 1 when the n bytes at s are valid UTF-8 (no overlong forms, no surrogates), else 0. */
int slide_id_utf8_valid(const char *s, size_t n);

/* The default id of a slide file: its base name without the last extension (util_stem), with
 * every control character replaced by '_', cut to SLIDE_ID_MAX_LEN bytes on a UTF-8 character
 * boundary, and a leading '.' replaced by '_'. out holds at least SLIDE_ID_MAX_LEN + 1 bytes.
 * The result may still be invalid UTF-8 when the name is (check with slide_id_valid). */
void slide_id_from_path(const char *path, char *out, size_t n);

#endif
