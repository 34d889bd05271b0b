/*
 * report_inputs.c — what `evaluate` reads (contract: report.h, report_private.h): the reference
 * CSV, a slide-score CSV, per-slide detection CSVs, the results database (heatmaps/resultsdb.h
 * plus a read-only look at its runs table), slide files for size and pixel size. CSV rules: comma
 * separated, fields trimmed, blank lines skipped, a first line that is not data (a header) is
 * skipped with a warning, any other malformed line is an error naming file and line.
 */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "heatmaps/resultsdb.h"
#include "report_private.h"
#include "sha256.h"
#include "util.h"
#include "wsi/slide.h"

/* Largest CSV read, bytes (a CAMELYON16 detection file is kilobytes). */
#define CSV_MAX_BYTES ((size_t)1 << 30)

void ev_warn(struct ev_warnings *w, int quiet, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!quiet) fprintf(stderr, "wsi-vmamba evaluate: warning: %s\n", buf);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        void *p = realloc(w->msg, (size_t)cap * sizeof *w->msg);
        if (!p) return;
        w->msg = p;
        w->cap = cap;
    }
    w->msg[w->n] = strdup(buf);
    if (w->msg[w->n]) w->n++;
}

void ev_warnings_free(struct ev_warnings *w)
{
    for (int i = 0; i < w->n; i++) free(w->msg[i]);
    free(w->msg);
    memset(w, 0, sizeof *w);
}

static size_t stem_len(const char *s)
{
    static const char *const ext[] = {".tif", ".tiff", ".svs", ".ndpi", ".mrxs", NULL};
    size_t n = strlen(s);
    for (int i = 0; ext[i]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(s + n - e, ext[i])) return n - e;
    }
    return n;
}

int ev_name_eq(const char *a, const char *b)
{
    size_t na = stem_len(a), nb = stem_len(b);
    return na == nb && !strncasecmp(a, b, na);
}

static int find_slide(const struct ev_ctx *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (ev_name_eq(c->slides[i].name, name)) return i;
    return -1;
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Split line (modified in place) on commas into at most max fields; returns the count. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        f[n++] = trim(p);
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || isnan(d)) return -1;
    *v = d;
    return 0;
}

/* Iterate lines of a whole-file buffer: returns the next line (NUL-terminated, without \r\n)
 * or NULL at the end. */
static char *next_line(char **cur, char *end)
{
    if (*cur >= end) return NULL;
    char *s = *cur, *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl) {
        *nl = 0;
        *cur = nl + 1;
    } else {
        *cur = end;
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r') s[n - 1] = 0;
    return s;
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

static int parse_class(const char *s)
{
    if (!strcasecmp(s, "tumor") || !strcasecmp(s, "tumour") || !strcmp(s, "1") ||
        !strcasecmp(s, "positive") || !strcasecmp(s, "metastasis") || !strcasecmp(s, "metastases"))
        return 1;
    if (!strcasecmp(s, "normal") || !strcmp(s, "0") || !strcasecmp(s, "negative")) return 0;
    return -1;
}

static int excluded(const struct report_opts *o, const char *name)
{
    for (int i = 0; i < o->n_exclude; i++)
        if (ev_name_eq(o->exclude[i], name)) return 1;
    return 0;
}

enum wv_status ev_read_reference(struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    uint8_t *data;
    size_t len;
    enum wv_status st = util_read_file(o->reference_csv, CSV_MAX_BYTES, &data, &len);
    if (st) {
        error_prefix("%s", o->reference_csv);
        return st;
    }
    sha256_buffer_hex(data, len, c->reference_sha256);
    char *cur = (char *)data, *end = cur + len, *line;
    int lineno = 0, seen_data = 0, n_excluded = 0;
    while ((line = next_line(&cur, end))) {
        lineno++;
        if (is_blank(line)) continue;
        char *f[4];
        int nf = split(line, f, 4);
        int cls = nf >= 2 ? parse_class(f[1]) : -1;
        if (cls < 0 || !f[0][0]) {
            if (!seen_data) {
                seen_data = 1;
                ev_warn(&c->warn, o->quiet, "%s line %d: not a slide row, skipped as a header",
                        o->reference_csv, lineno);
                continue;
            }
            st = error_set(WV_EFORMAT, "%s line %d: expected name,class with class Tumor or "
                           "Normal", o->reference_csv, lineno);
            goto out;
        }
        seen_data = 1;
        if (excluded(o, f[0])) {
            n_excluded++;
            continue;
        }
        if (find_slide(c, f[0]) >= 0) {
            st = error_set(WV_EFORMAT, "%s line %d: slide %s listed twice", o->reference_csv,
                           lineno, f[0]);
            goto out;
        }
        void *p = realloc(c->slides, (size_t)(c->n + 1) * sizeof *c->slides);
        if (!p) {
            st = error_set(WV_ENOMEM, "out of memory for the reference");
            goto out;
        }
        c->slides = p;
        struct ev_slide *s = &c->slides[c->n];
        memset(s, 0, sizeof *s);
        s->name = strdup(f[0]);
        s->ref_class = strdup(f[1]);
        s->label = cls;
        s->gt_source = "";
        c->n++;
        if (!s->name || !s->ref_class) {
            st = error_set(WV_ENOMEM, "out of memory for the reference");
            goto out;
        }
    }
    if (c->n == 0)
        st = error_set(WV_EFORMAT, "%s: no slides%s", o->reference_csv,
                       n_excluded ? " left after --exclude" : "");
out:
    free(data);
    return st;
}

enum wv_status ev_read_scores_csv(struct ev_ctx *c)
{
    const struct report_opts *o = c->o;
    uint8_t *data;
    size_t len;
    enum wv_status st = util_read_file(o->scores_csv, CSV_MAX_BYTES, &data, &len);
    if (st) {
        error_prefix("%s", o->scores_csv);
        return st;
    }
    sha256_buffer_hex(data, len, c->scores_sha256);
    char *cur = (char *)data, *end = cur + len, *line;
    int lineno = 0, seen_data = 0, n_unknown = 0;
    const char *first_unknown = NULL;
    char unknown_buf[256] = "";
    while ((line = next_line(&cur, end))) {
        lineno++;
        if (is_blank(line)) continue;
        char *f[3];
        int nf = split(line, f, 3);
        double p;
        if (nf < 2 || !f[0][0] || parse_double(f[1], &p) || !isfinite(p)) {
            if (!seen_data) {
                seen_data = 1;
                ev_warn(&c->warn, o->quiet, "%s line %d: not a score row, skipped as a header",
                        o->scores_csv, lineno);
                continue;
            }
            st = error_set(WV_EFORMAT, "%s line %d: expected name,probability (a finite number)",
                           o->scores_csv, lineno);
            goto out;
        }
        seen_data = 1;
        int k = find_slide(c, f[0]);
        if (k < 0) {
            if (!n_unknown++) {
                snprintf(unknown_buf, sizeof unknown_buf, "%s", f[0]);
                first_unknown = unknown_buf;
            }
            continue;
        }
        if (c->slides[k].has_score) {
            st = error_set(WV_EFORMAT, "%s line %d: a second score for slide %s", o->scores_csv,
                           lineno, f[0]);
            goto out;
        }
        c->slides[k].has_score = 1;
        c->slides[k].score = p;
    }
    if (n_unknown)
        ev_warn(&c->warn, o->quiet, "%s: %d scored slides are not in the reference (or are "
                "excluded) and were ignored (first: %s)", o->scores_csv, n_unknown, first_unknown);
out:
    free(data);
    return st;
}

enum wv_status ev_parse_detections(struct ev_ctx *c, const char *path, struct froc_detection **det,
                                   size_t *n)
{
    uint8_t *data;
    size_t len;
    *det = NULL;
    *n = 0;
    enum wv_status st = util_read_file(path, CSV_MAX_BYTES, &data, &len);
    if (st) {
        error_prefix("%s", path);
        return st;
    }
    size_t cap = 0;
    char *cur = (char *)data, *end = cur + len, *line;
    int lineno = 0, seen_data = 0, n_frac = 0;
    while ((line = next_line(&cur, end))) {
        lineno++;
        if (is_blank(line)) continue;
        char *f[4];
        int nf = split(line, f, 4);
        double p, x, y;
        if (nf < 3 || parse_double(f[0], &p) || !isfinite(p) || parse_double(f[1], &x) ||
            parse_double(f[2], &y) || fabs(x) > 9e15 || fabs(y) > 9e15) {
            if (!seen_data) {
                seen_data = 1;
                ev_warn(&c->warn, c->o->quiet, "%s line %d: not a detection row, skipped as a "
                        "header (the official script would crash on it)", path, lineno);
                continue;
            }
            st = error_set(WV_EFORMAT, "%s line %d: expected confidence,X,Y (numbers)", path,
                           lineno);
            goto out;
        }
        seen_data = 1;
        if (x != floor(x) || y != floor(y)) n_frac++;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            void *q = realloc(*det, cap * sizeof **det);
            if (!q) {
                st = error_set(WV_ENOMEM, "out of memory for detections of %s", path);
                goto out;
            }
            *det = q;
        }
        (*det)[*n].p = p;
        (*det)[*n].x = (int64_t)floor(x);
        (*det)[*n].y = (int64_t)floor(y);
        (*n)++;
    }
    if (n_frac)
        ev_warn(&c->warn, c->o->quiet, "%s: %d detections have non-integer coordinates; floored "
                "(the official script would crash)", path, n_frac);
out:
    if (st) {
        free(*det);
        *det = NULL;
        *n = 0;
    }
    free(data);
    return st;
}

int ev_find_file(const char *dir, const char *const *stems, const char *const *exts, char *out,
                 size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int found = -1, best = 1 << 30;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        for (int s = 0; stems[s]; s++)
            for (int x = 0; exts[x]; x++) {
                size_t ls = strlen(stems[s]), lx = strlen(exts[x]);
                if (strlen(nm) == ls + lx && !strncasecmp(nm, stems[s], ls) &&
                    !strcasecmp(nm + ls, exts[x]) && s * 16 + x < best) {
                    best = s * 16 + x;
                    snprintf(out, n, "%s/%s", dir, nm);
                    found = 0;
                }
            }
    }
    closedir(d);
    return found;
}

enum wv_status ev_read_detections_dir(struct ev_ctx *c)
{
    const char *dir = c->o->detections_dir;
    struct stat sb;
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
        return error_set(WV_EIO, "%s: not a folder", dir);
    static const char *const exts[] = {".csv", NULL};
    char path[4096];
    for (int i = 0; i < c->n; i++) {
        struct ev_slide *s = &c->slides[i];
        const char *stems[] = {s->name, NULL};
        char stem[512];
        snprintf(stem, sizeof stem, "%.*s", (int)stem_len(s->name), s->name);
        stems[0] = stem;
        if (ev_find_file(dir, stems, exts, path, sizeof path)) continue;
        free(s->det);
        enum wv_status st = ev_parse_detections(c, path, &s->det, &s->n_det);
        if (st) return st;
        s->has_det = 1;
    }
    return WV_OK;
}

/* ---- database ---------------------------------------------------------------------------------- */

struct list_ctx {
    struct ev_ctx *c;
    int n_unknown;
    char first_unknown[256];
    enum wv_status st;
};

static int on_row(void *ctx, const struct resultsdb_row *row)
{
    struct list_ctx *l = ctx;
    struct ev_ctx *c = l->c;
    int k = find_slide(c, row->slide_id);
    if (k < 0) {
        if (!l->n_unknown++) snprintf(l->first_unknown, sizeof l->first_unknown, "%s", row->slide_id);
        return 0;
    }
    struct ev_slide *s = &c->slides[k];
    free(s->db_status);
    free(s->db_error);
    s->db_status = strdup(row->status ? row->status : "");
    s->db_error = row->error ? strdup(row->error) : NULL;
    s->width_px = row->width;
    s->height_px = row->height;
    s->mpp = row->mpp_x;
    if (row->h5_path) {
        free(s->h5_path);
        s->h5_path = strdup(row->h5_path);
    }
    if (row->status && !strcmp(row->status, "done") && row->has_scores) {
        s->has_score = 1;
        s->score = row->scores.slide_prob;
        s->has_det = 1; /* lesions read below; zero rows is a valid empty detection list */
    }
    return 0;
}

static char *col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? strdup((const char *)t) : NULL;
}

/* The latest run's provenance (the runs table of resultsdb.h's schema); only reads. Opened
 * read-write (without create) on purpose: a WAL database's last connection deletes the -wal and
 * -shm files only when it can write, and a read-only one left them behind after `evaluate`.
 * SQLite falls back to read-only by itself when the file is write-protected. */
static void read_runs(struct ev_ctx *c)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(c->o->db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return;
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT tool_version, model_sha256, params_json FROM runs "
                           "ORDER BY run_id DESC LIMIT 1", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        c->db_tool_version = col_text(q, 0);
        c->db_model_sha256 = col_text(q, 1);
        c->db_params = col_text(q, 2);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
}

enum wv_status ev_read_db(struct ev_ctx *c)
{
    const char *path = c->o->db_path;
    struct stat sb;
    if (stat(path, &sb)) return error_set(WV_EIO, "%s: no such file", path);
    if (!S_ISREG(sb.st_mode)) return error_set(WV_EIO, "%s: not a regular file", path);
    struct resultsdb *db = NULL;
    enum wv_status st = resultsdb_open(path, &db);
    if (st) return st;
    struct list_ctx l = {c, 0, "", WV_OK};
    st = resultsdb_list(db, NULL, on_row, &l);
    for (int i = 0; i < c->n && !st; i++) {
        struct ev_slide *s = &c->slides[i];
        if (!s->has_det) continue;
        struct resultsdb_lesion *les = NULL;
        size_t nl = 0;
        st = resultsdb_lesions(db, s->name, &les, &nl);
        if (st == WV_ENOTFOUND) {
            error_clear();
            st = WV_OK;
        }
        if (st) break;
        /* the db keys slides by their id; try the id as stored when names differ in case */
        s->det = malloc((nl ? nl : 1) * sizeof *s->det);
        if (!s->det) {
            free(les);
            st = error_set(WV_ENOMEM, "out of memory for lesions");
            break;
        }
        for (size_t k = 0; k < nl; k++) {
            s->det[k].p = les[k].prob;
            s->det[k].x = les[k].x;
            s->det[k].y = les[k].y;
        }
        s->n_det = nl;
        free(les);
    }
    resultsdb_close(db);
    if (st) {
        error_prefix("%s", path);
        return st;
    }
    if (l.n_unknown)
        ev_warn(&c->warn, c->o->quiet, "%s: %d slides are not in the reference (or are excluded) "
                "and were ignored (first: %s)", path, l.n_unknown, l.first_unknown);
    read_runs(c);
    if (c->o->detections_dir) {
        ev_warn(&c->warn, c->o->quiet, "--detections given with --db: detections are read from "
                "%s instead of the database", c->o->detections_dir);
        for (int i = 0; i < c->n; i++) {
            free(c->slides[i].det);
            c->slides[i].det = NULL;
            c->slides[i].n_det = 0;
            c->slides[i].has_det = 0;
        }
        return ev_read_detections_dir(c);
    }
    return WV_OK;
}

enum wv_status ev_read_slide_info(struct ev_ctx *c)
{
    static const char *const exts[] = {".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".scn", NULL};
    char path[4096], stem[512];
    for (int i = 0; i < c->n; i++) {
        struct ev_slide *s = &c->slides[i];
        snprintf(stem, sizeof stem, "%.*s", (int)stem_len(s->name), s->name);
        const char *stems[] = {stem, NULL};
        if (ev_find_file(c->o->slides_dir, stems, exts, path, sizeof path)) continue;
        struct slide *sl;
        if (slide_open(path, &sl)) {
            ev_warn(&c->warn, c->o->quiet, "%s: %s (size and pixel size unknown)", path,
                    error_msg());
            error_clear();
            continue;
        }
        s->width_px = slide_level_width(sl, 0);
        s->height_px = slide_level_height(sl, 0);
        if (slide_mpp_x(sl) > 0) s->mpp = slide_mpp_x(sl);
        slide_close(sl);
    }
    return WV_OK;
}
