/*
 * strbuf.h — a growing NUL-terminated text buffer for writers that build a whole file in memory
 * before writing it atomically (ASAP XML, the HTML report). An allocation failure sets `oom`;
 * later appends do nothing, so a writer checks once at the end instead of after every append.
 */
#ifndef WV_STRBUF_H
#define WV_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p;    /* NUL-terminated text (NULL while empty), owned */
    size_t len; /* bytes in p, without the NUL */
    size_t cap;
    int oom;    /* an append failed for lack of memory */
};

/* Append n bytes of s. */
void strbuf_append(struct strbuf *b, const char *s, size_t n);
/* Append printf-formatted text of any length. */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Release the text; the buffer is empty and usable again. */
void strbuf_free(struct strbuf *b);

#endif
