/* error.c — thread-local first-error-wins messages; see error.h. */
#include "error.h"

#include <stdio.h>
#include <string.h>

#define ERROR_MSG_MAX 1024

static _Thread_local char msg_buf[ERROR_MSG_MAX];
static _Thread_local enum wv_status msg_code = WV_OK;

static const char *const status_names[] = {
    "WV_OK", "WV_EIO", "WV_EFORMAT", "WV_EUNSUPPORTED", "WV_ENOMEM", "WV_EINVAL",
    "WV_ECUDA", "WV_EINTR", "WV_ENOTFOUND", "WV_EDB",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == WV_STATUS_COUNT,
               "status_names must list every enum wv_status");

const char *wv_status_name(enum wv_status s)
{
    if ((unsigned)s >= WV_STATUS_COUNT) return "WV_E?";
    return status_names[s];
}

enum wv_status error_vset(enum wv_status code, const char *fmt, va_list ap)
{
    if (msg_code == WV_OK && code != WV_OK) {
        vsnprintf(msg_buf, sizeof msg_buf, fmt, ap);
        msg_code = code;
    }
    return code;
}

enum wv_status error_set(enum wv_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(code, fmt, ap);
    va_end(ap);
    return code;
}

void error_prefix(const char *fmt, ...)
{
    char pre[512], old[ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, msg_buf, sizeof old);
    size_t np = strlen(pre);
    if (np > sizeof msg_buf - 3) np = sizeof msg_buf - 3;
    memcpy(msg_buf, pre, np);
    memcpy(msg_buf + np, ": ", 2);
    size_t room = sizeof msg_buf - np - 3, no = strnlen(old, room);
    memcpy(msg_buf + np + 2, old, no);
    msg_buf[np + 2 + no] = '\0';
}

const char *error_msg(void) { return msg_code == WV_OK ? "" : msg_buf; }
enum wv_status error_code(void) { return msg_code; }
void error_clear(void)
{
    msg_code = WV_OK;
    msg_buf[0] = '\0';
}
