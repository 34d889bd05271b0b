/*
 * error.h — the one error model of wsi-vmamba (STYLE.md 2.3).
 *
 * Every fallible function returns an enum wv_status; the innermost code that knows the cause
 * records a message with error_set(), which returns the code, so failing is one line:
 *     return error_set(WV_EFORMAT, "tensor %s: shape (%d), expected (%d)", name, a, b);
 * Messages live in a C11 _Thread_local buffer, so reader threads and batch workers never
 * overwrite each other. The first message wins until error_clear(): the original cause survives
 * when callers add no context of their own. Use error_prefix() to add context (a file name).
 */
#ifndef WV_ERROR_H
#define WV_ERROR_H

#include <stdarg.h>

enum wv_status {
    WV_OK = 0,
    WV_EIO,          /* a read/write/open failed (file system, disk full) */
    WV_EFORMAT,      /* the file's content is malformed, truncated or inconsistent */
    WV_EUNSUPPORTED, /* a valid input this build cannot handle */
    WV_ENOMEM,       /* an allocation failed */
    WV_EINVAL,       /* a bad argument or option value */
    WV_ECUDA,        /* a CUDA/cuBLAS call failed */
    WV_EINTR,        /* interrupted (SIGINT/SIGTERM) */
    WV_ENOTFOUND,    /* a named thing (tensor, slide, row) does not exist */
    WV_EDB,          /* a database (SQLite/HDF5) call failed */
    WV_STATUS_COUNT
};

/* Short stable name of a status ("WV_EIO"); never NULL. */
const char *wv_status_name(enum wv_status s);

/* Record the message for the current thread unless one is already recorded; returns code.
 * The message is lowercase, without trailing period or newline. */
enum wv_status error_set(enum wv_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum wv_status error_vset(enum wv_status code, const char *fmt, va_list ap);

/* Prepend "<prefix>: " to the current thread's message (adds context on the way up). */
void error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The current thread's message, "" when none. Valid until the next error_* call. */
const char *error_msg(void);
/* Status recorded with the current message, WV_OK when none. */
enum wv_status error_code(void);
/* Forget the current thread's message. */
void error_clear(void);

#endif
