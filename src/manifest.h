/*
 * manifest.h — the CSV slide list `batch` takes instead of an archive folder (issue 7;
 * docs/batch.md "Manifest").
 *
 * Format: RFC 4180 CSV (comma separated; a field in double quotes may hold commas, newlines and
 * doubled quotes ""), UTF-8, an optional UTF-8 BOM, LF or CRLF line ends. Blank lines and lines
 * whose first byte is '#' are skipped. Header detection: the first row is a header when one of
 * its fields (case-insensitive, spaces trimmed) is a path column name: path, slide_path, file,
 * filename. With a header, columns are found by name — path: path|slide_path|file|filename;
 * slide id: slide_id|id|slide|name|image; label: label|class|tumor|diagnosis — and other columns
 * are ignored. Without one, the columns are path[,slide_id[,label]]. Unquoted fields are taken
 * as written (spaces are part of a path); a relative path is relative to the manifest's folder.
 *
 * Per-entry errors (the row is dropped, the others stay): empty path, a NUL byte, an
 * unterminated quote (that row and the rest of the file), a field after a closing quote,
 * a path or label that is not valid UTF-8, an invalid slide id (slide_id.h), a duplicate path
 * ("duplicate of line N"), a slide id given twice for different paths. Whether each file exists
 * is the caller's check (batch does it when it hashes).
 */
#ifndef WV_MANIFEST_H
#define WV_MANIFEST_H

#include <stddef.h>

#include "error.h"

/* Longest manifest read (a million slides at ~200 bytes a row). */
#define MANIFEST_MAX_BYTES ((size_t)256 << 20)

struct manifest_entry {
    char *path;     /* as resolved: absolute, or joined to the manifest's folder */
    char *slide_id; /* NULL when the manifest gives none */
    char *label;    /* NULL when the manifest gives none (or the field is empty) */
    int line;       /* 1-based line where the row starts */
};

struct manifest_error {
    int line;  /* 1-based line where the row starts */
    char *msg; /* "unterminated quote", "duplicate of line 3", … (control bytes escaped \xNN) */
};

struct manifest {
    struct manifest_entry *entries;
    size_t n_entries;
    struct manifest_error *errors;
    size_t n_errors;
    int has_header;
};

/* Parse a manifest from memory (path_base: folder that relative paths are joined to, NULL =
 * as written). Per-entry problems go to m->errors; the return is WV_OK unless memory ran out
 * (WV_ENOMEM) or the data holds no row at all, neither good nor bad (WV_EFORMAT "no slides").
 * *m is zeroed first; free with manifest_free (also after an error). */
enum wv_status manifest_parse(const char *data, size_t len, const char *path_base,
                              struct manifest *m);

/* Read and parse the file at path. WV_EIO/WV_ENOTFOUND when it cannot be read. */
enum wv_status manifest_load(const char *path, struct manifest *m);

void manifest_free(struct manifest *m);

/* 1 when the file name ends in ".csv" (case-insensitive): batch treats it as a manifest. */
int manifest_is_manifest_path(const char *path);

/* Write s into out (n bytes) with control characters, '\\' and invalid UTF-8 bytes as \xNN, cut
 * with "..." when too long: for printing paths from untrusted input on one line. */
void manifest_escape(const char *s, char *out, size_t n);

#endif
