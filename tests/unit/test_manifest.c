/*
 * test_manifest.c — manifest.h: the batch CSV manifest (header detection, columns by name,
 * RFC 4180 quoting with commas/newlines/doubled quotes, BOM, CRLF, comments, relative paths)
 * and every per-entry error with its line (empty path, NUL, unterminated quote, text after a
 * quote, non-UTF-8, bad slide id, duplicate path, slide id given twice); manifest_escape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/manifest.h"
#include "testutil.h"

static void parse(const char *s, size_t n, const char *base, struct manifest *m, enum wv_status want)
{
    enum wv_status st = manifest_parse(s, n, base, m);
    CHECK_MSG(st == want, "status %d, want %d (%s)", st, want, error_msg());
    error_clear();
}

static int has_error(const struct manifest *m, int line, const char *sub)
{
    for (size_t i = 0; i < m->n_errors; i++)
        if (m->errors[i].line == line && strstr(m->errors[i].msg, sub)) return 1;
    return 0;
}

static void test_plain(void)
{
    struct manifest m;
    const char *s = "a.svs\n/abs/b.tif,b_id\nc.ndpi,c_id,tumor\n";
    parse(s, strlen(s), "/base", &m, WV_OK);
    CHECK(m.n_entries == 3 && m.n_errors == 0 && !m.has_header);
    CHECK(!strcmp(m.entries[0].path, "/base/a.svs") && !m.entries[0].slide_id && !m.entries[0].label);
    CHECK(!strcmp(m.entries[1].path, "/abs/b.tif") && !strcmp(m.entries[1].slide_id, "b_id"));
    CHECK(!strcmp(m.entries[2].label, "tumor") && m.entries[2].line == 3);
    manifest_free(&m);
}

static void test_header_quotes(void)
{
    struct manifest m;
    const char *s = "\xEF\xBB\xBF" "Label , Other, PATH ,slide_id\r\n"
                    "normal,x,\"with, comma.svs\",\r\n"
                    "# comment\r\n\r\n"
                    "tumor,y,\"two\nlines \"\"q\"\".svs\",id2\r\n"
                    ",,plain path with spaces.svs,id3";
    parse(s, strlen(s), NULL, &m, WV_OK);
    CHECK(m.has_header && m.n_errors == 0);
    CHECK_MSG(m.n_entries == 3, "%zu entries", m.n_entries);
    if (m.n_entries == 3) {
        CHECK(!strcmp(m.entries[0].path, "with, comma.svs") && !strcmp(m.entries[0].label, "normal"));
        CHECK(!m.entries[0].slide_id && m.entries[0].line == 2);
        CHECK(!strcmp(m.entries[1].path, "two\nlines \"q\".svs") && !strcmp(m.entries[1].slide_id, "id2"));
        CHECK(m.entries[1].line == 5);
        CHECK(!strcmp(m.entries[2].path, "plain path with spaces.svs") && !m.entries[2].label);
        CHECK(m.entries[2].line == 7);
    }
    manifest_free(&m);
}

static void test_errors(void)
{
    struct manifest m;
    const char s[] = "path,slide_id\n"
                     ",x\n"                  /* 2 empty path */
                     "a.svs,ok_a\n"          /* 3 */
                     "a.svs,other\n"         /* 4 duplicate path */
                     "b.svs,ok_a\n"          /* 5 id given twice */
                     "c.svs,bad/id\n"        /* 6 */
                     "d.svs,.hidden\n"       /* 7 */
                     "caf\xe9.svs,\n"        /* 8 non-UTF-8 */
                     "e\0.svs,\n"            /* 9 NUL */
                     "\"f.svs\"x,\n"         /* 10 text after quote */
                     "g.svs,\n"              /* 11 fine */
                     "\"h.svs,\nmore\n";     /* 12 unterminated */
    parse(s, sizeof s - 1, NULL, &m, WV_OK);
    CHECK_MSG(m.n_entries == 2, "%zu entries", m.n_entries);
    CHECK(has_error(&m, 2, "empty path"));
    CHECK(has_error(&m, 4, "duplicate of line 3"));
    CHECK(has_error(&m, 5, "already given to line 3"));
    CHECK(has_error(&m, 6, "contains '/'"));
    CHECK(has_error(&m, 7, "starts with '.'"));
    CHECK(has_error(&m, 8, "not valid UTF-8"));
    CHECK(has_error(&m, 8, "caf\\xe9.svs"));
    CHECK(has_error(&m, 9, "NUL byte"));
    CHECK(has_error(&m, 10, "text after a closing quote"));
    CHECK(has_error(&m, 12, "unterminated quote"));
    CHECK(m.n_errors == 9);
    for (size_t i = 0; i < m.n_errors; i++) printf("  line %d: %s\n", m.errors[i].line, m.errors[i].msg);
    manifest_free(&m);
    parse("", 0, NULL, &m, WV_EFORMAT);
    manifest_free(&m);
    parse("\n\n# only comments\n", 18, NULL, &m, WV_EFORMAT);
    manifest_free(&m);
    parse("path\n", 5, NULL, &m, WV_EFORMAT); /* a header alone */
    manifest_free(&m);
}

static void test_escape(void)
{
    char out[64];
    manifest_escape("a\nb\\c\xe9\xc3\xa9", out, sizeof out);
    CHECK_MSG(!strcmp(out, "a\\x0ab\\x5cc\\xe9\xc3\xa9"), "%s", out);
    manifest_escape("0123456789012345678901234567890123456789", out, 16);
    CHECK_MSG(strlen(out) < 16 && strstr(out, "..."), "%s", out);
    CHECK(manifest_is_manifest_path("x/list.CSV") && !manifest_is_manifest_path("a.svs"));
}

int main(void)
{
    test_plain();
    test_header_quotes();
    test_errors();
    test_escape();
    return tu_finish("test_manifest");
}
