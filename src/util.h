/*
 * util.h — small helpers every module uses: checked allocation, whole-file reads, directories,
 * paths, timing, peak memory. All fallible functions follow error.h.
 */
#ifndef WV_UTIL_H
#define WV_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* malloc/calloc that record WV_ENOMEM with `what` in the message on failure (return NULL). */
void *wv_malloc(size_t n, const char *what);
void *wv_calloc(size_t count, size_t size, const char *what);

/* Read a whole regular file into a malloc'ed buffer (NUL-terminated, not counted in *len).
 * Refuses directories and files larger than max_bytes. Caller frees *data. */
enum wv_status util_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len);

/* Write `len` bytes to path atomically: to "<path>.tmp.<pid>", fsync, rename. */
enum wv_status util_write_file_atomic(const char *path, const void *data, size_t len);

/* mkdir -p; ok if it exists as a directory. */
enum wv_status util_mkdir_p(const char *path);

/* Base name without directory and without the last extension ("a/b/x.svs" → "x").
 * Writes at most n bytes including NUL. */
void util_stem(const char *path, char *out, size_t n);

/* Monotonic seconds. */
double util_now(void);

/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
size_t util_peak_rss(void);

#endif
