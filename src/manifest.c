/*
 * manifest.c — CSV slide manifests for `batch` (contract in manifest.h).
 */
#include "manifest.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "slide_id.h"
#include "util.h"

/* One CSV row: fields as malloc'ed strings (they may contain NUL: lengths kept). */
struct row {
    char **f;
    size_t *len;
    size_t n, cap;
    int line;      /* where it starts */
    const char *err; /* a problem found while splitting, or NULL */
};

static void row_clear(struct row *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
    r->err = NULL;
}

static int row_push(struct row *r, const char *s, size_t n)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        char **f = realloc(r->f, cap * sizeof *f);
        if (!f) return -1;
        r->f = f;
        size_t *l = realloc(r->len, cap * sizeof *l);
        if (!l) return -1;
        r->len = l;
        r->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n);
    c[n] = '\0';
    r->f[r->n] = c;
    r->len[r->n] = n;
    r->n++;
    return 0;
}

/* A growable byte buffer for the field being read. */
struct buf {
    char *p;
    size_t n, cap;
};

static int buf_add(struct buf *b, char c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = c;
    return 0;
}

/* Split the next row starting at *pos (line *line). Returns 1 when a row was read, 0 at the end,
 * -1 when memory ran out. Blank and '#' lines are skipped here. */
static int next_row(const char *d, size_t len, size_t *pos, int *line, struct row *r,
                    struct buf *b)
{
    row_clear(r);
    size_t i = *pos;
    /* skip blank lines and comments */
    for (;;) {
        if (i >= len) {
            *pos = i;
            return 0;
        }
        if (d[i] == '\n') {
            i++;
            (*line)++;
            continue;
        }
        if (d[i] == '\r' && i + 1 < len && d[i + 1] == '\n') {
            i += 2;
            (*line)++;
            continue;
        }
        if (d[i] == '#') {
            while (i < len && d[i] != '\n') i++;
            continue;
        }
        break;
    }
    r->line = *line;
    b->n = 0;
    int quoted = 0, after_quote = 0;
    for (;;) {
        if (i >= len || d[i] == '\n' || (d[i] == '\r' && (i + 1 >= len || d[i + 1] == '\n')) ||
            d[i] == ',') {
            /* end of field */
            size_t n = b->n;
            if (!quoted && n && b->p[n - 1] == '\r') n--;
            if (row_push(r, b->p ? b->p : "", n)) return -1;
            b->n = 0;
            quoted = after_quote = 0;
            if (i < len && d[i] == ',') {
                i++;
                continue;
            }
            if (i < len && d[i] == '\r') i++;
            if (i < len && d[i] == '\n') {
                i++;
                (*line)++;
            }
            break;
        }
        char c = d[i];
        if (c == '"' && b->n == 0 && !quoted && !after_quote) {
            /* a quoted field: read to the closing quote */
            quoted = 1;
            i++;
            for (;;) {
                if (i >= len) {
                    r->err = "unterminated quote (the rest of the file is ignored)";
                    *pos = len;
                    return 1;
                }
                if (d[i] == '"') {
                    if (i + 1 < len && d[i + 1] == '"') {
                        if (buf_add(b, '"')) return -1;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (d[i] == '\n') (*line)++;
                if (buf_add(b, d[i])) return -1;
                i++;
            }
            after_quote = 1;
            continue;
        }
        if (after_quote) {
            if (!r->err) r->err = "text after a closing quote";
            i++;
            continue;
        }
        if (buf_add(b, c)) return -1;
        i++;
    }
    *pos = i;
    return 1;
}

static void trim_copy(const char *s, char *out, size_t n)
{
    while (*s == ' ' || *s == '\t') s++;
    snprintf(out, n, "%s", s);
    size_t k = strlen(out);
    while (k && (out[k - 1] == ' ' || out[k - 1] == '\t')) out[--k] = '\0';
    for (char *p = out; *p; p++) *p = (char)tolower((unsigned char)*p);
}

static int name_in(const char *name, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (!strcmp(name, set[i])) return 1;
    return 0;
}

static const char *const PATH_NAMES[] = {"path", "slide_path", "file", "filename", NULL};
static const char *const ID_NAMES[] = {"slide_id", "id", "slide", "name", "image", NULL};
static const char *const LABEL_NAMES[] = {"label", "class", "tumor", "diagnosis", NULL};

void manifest_escape(const char *s, char *out, size_t n)
{
    size_t o = 0, len = strlen(s);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = 1;
        if (c >= 0x80) {
            seq = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
            if (!seq || i + seq > len || !slide_id_utf8_valid(s + i, seq)) seq = 0;
        }
        char tmp[8];
        const char *add;
        size_t an;
        if (c < 0x20 || c == 0x7f || c == '\\' || seq == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            add = tmp;
            an = 4;
            seq = 1;
        } else {
            add = s + i;
            an = seq;
        }
        if (o + an + 4 >= n) {
            if (n >= 4) {
                memcpy(out + (o < n - 4 ? o : n - 4), "...", 4);
                return;
            }
            break;
        }
        memcpy(out + o, add, an);
        o += an;
        i += seq;
    }
    if (n) out[o < n ? o : n - 1] = '\0';
}

__attribute__((format(printf, 3, 4))) static int add_error(struct manifest *m, int line,
                                                           const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct manifest_error *e = realloc(m->errors, (m->n_errors + 1) * sizeof *e);
    if (!e) return -1;
    m->errors = e;
    if (!(e[m->n_errors].msg = strdup(msg))) return -1;
    e[m->n_errors].line = line;
    m->n_errors++;
    return 0;
}

/* Check one row's fields and append an entry (or an error). */
static int take_row(struct manifest *m, const struct row *r, int ci_path, int ci_id, int ci_label,
                    const char *base)
{
    char esc[600];
    if (r->err) return add_error(m, r->line, "%s", r->err);
    if (ci_path < 0 || (size_t)ci_path >= r->n || !r->len[ci_path])
        return add_error(m, r->line, "empty path");
    for (size_t k = 0; k < r->n; k++)
        if (strlen(r->f[k]) != r->len[k]) return add_error(m, r->line, "NUL byte in field %zu", k + 1);
    const char *path = r->f[ci_path];
    manifest_escape(path, esc, sizeof esc);
    if (!slide_id_utf8_valid(path, r->len[ci_path]))
        return add_error(m, r->line, "path %s: not valid UTF-8 (rename the file)", esc);
    const char *id = ci_id >= 0 && (size_t)ci_id < r->n && r->len[ci_id] ? r->f[ci_id] : NULL;
    const char *label =
        ci_label >= 0 && (size_t)ci_label < r->n && r->len[ci_label] ? r->f[ci_label] : NULL;
    const char *why;
    if (id && !slide_id_valid(id, &why)) {
        char e2[600];
        manifest_escape(id, e2, sizeof e2);
        return add_error(m, r->line, "slide id %s: %s", e2, why);
    }
    if (label && (!slide_id_utf8_valid(label, strlen(label)) || strlen(label) > 256))
        return add_error(m, r->line, "label: not valid UTF-8 or longer than 256 bytes");
    /* resolve against the manifest's folder */
    size_t need = strlen(path) + (base ? strlen(base) : 0) + 2;
    char *full = malloc(need);
    if (!full) return -1;
    if (path[0] == '/' || !base || !base[0])
        snprintf(full, need, "%s", path);
    else
        snprintf(full, need, "%s/%s", base, path);
    for (size_t k = 0; k < m->n_entries; k++) {
        const struct manifest_entry *o = &m->entries[k];
        if (!strcmp(o->path, full)) {
            free(full);
            return add_error(m, r->line, "path %s: duplicate of line %d", esc, o->line);
        }
        if (id && o->slide_id && !strcmp(o->slide_id, id)) {
            free(full);
            return add_error(m, r->line, "slide id %s: already given to line %d", id, o->line);
        }
    }
    struct manifest_entry *e = realloc(m->entries, (m->n_entries + 1) * sizeof *e);
    if (!e) {
        free(full);
        return -1;
    }
    m->entries = e;
    e = &m->entries[m->n_entries];
    memset(e, 0, sizeof *e);
    e->path = full;
    e->line = r->line;
    if ((id && !(e->slide_id = strdup(id))) || (label && !(e->label = strdup(label)))) {
        free(e->slide_id);
        free(full);
        return -1;
    }
    m->n_entries++;
    return 0;
}

enum wv_status manifest_parse(const char *data, size_t len, const char *path_base,
                              struct manifest *m)
{
    memset(m, 0, sizeof *m);
    struct row r = {0};
    struct buf b = {0};
    size_t pos = 0;
    int line = 1, first = 1, rc;
    int ci_path = 0, ci_id = 1, ci_label = 2;
    enum wv_status st = WV_OK;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) pos = 3;
    /* The duplicate check is quadratic in rows; fine up to ~1e5 rows (a second) — a hash set
     * would be the fix beyond that. */
    while ((rc = next_row(data, len, &pos, &line, &r, &b)) == 1) {
        if (first) {
            first = 0;
            int hp = -1, hi = -1, hl = -1;
            if (!r.err)
                for (size_t k = 0; k < r.n; k++) {
                    char name[64];
                    trim_copy(r.f[k], name, sizeof name);
                    if (hp < 0 && name_in(name, PATH_NAMES)) hp = (int)k;
                    else if (hi < 0 && name_in(name, ID_NAMES)) hi = (int)k;
                    else if (hl < 0 && name_in(name, LABEL_NAMES)) hl = (int)k;
                }
            if (hp >= 0) {
                m->has_header = 1;
                ci_path = hp;
                ci_id = hi;
                ci_label = hl;
                continue;
            }
        }
        if (take_row(m, &r, ci_path, ci_id, ci_label, path_base)) {
            rc = -1;
            break;
        }
    }
    if (rc < 0) st = error_set(WV_ENOMEM, "manifest: out of memory");
    row_clear(&r);
    free(r.f);
    free(r.len);
    free(b.p);
    if (!st && !m->n_entries && !m->n_errors) st = error_set(WV_EFORMAT, "no slides listed");
    return st;
}

enum wv_status manifest_load(const char *path, struct manifest *m)
{
    memset(m, 0, sizeof *m);
    uint8_t *data = NULL;
    size_t len = 0;
    enum wv_status st = util_read_file(path, MANIFEST_MAX_BYTES, &data, &len);
    if (st) return st;
    char *base = strdup(path);
    if (!base) {
        free(data);
        return error_set(WV_ENOMEM, "manifest: out of memory");
    }
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    else
        base[0] = '\0';
    st = manifest_parse((const char *)data, len, slash ? (base[0] ? base : "/") : NULL, m);
    free(base);
    free(data);
    return st;
}

void manifest_free(struct manifest *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_entries; i++) {
        free(m->entries[i].path);
        free(m->entries[i].slide_id);
        free(m->entries[i].label);
    }
    free(m->entries);
    for (size_t i = 0; i < m->n_errors; i++) free(m->errors[i].msg);
    free(m->errors);
    memset(m, 0, sizeof *m);
}

int manifest_is_manifest_path(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".csv");
}
