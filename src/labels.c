/*
 * labels.c — slide labels CSV and per-cell tumour fractions from annotations (labels.h).
 */
#include "labels.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sha256.h"
#include "util.h"
#include "wsi/annot.h"

/* a labels file is a list of slide names: 64 MiB is far beyond any cohort */
#define LABELS_MAX_BYTES ((size_t)64 << 20)

void labels_free(struct labels *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->v[i].name);
    free(l->v);
    free(l);
}

long labels_find(const struct labels *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name)) return (long)i;
    return -1;
}

/* 1 tumour, 0 normal, -1 not a class */
static int class_of(const char *s)
{
    static const char *const pos[] = {"tumor", "tumour", "positive", "1"};
    static const char *const neg[] = {"normal", "negative", "0"};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (!strcasecmp(s, pos[i])) return 1;
    for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
        if (!strcasecmp(s, neg[i])) return 0;
    return -1;
}

/* trim spaces and one pair of surrounding quotes in place */
static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '\'' && s[n - 1] == '\''))) {
        s[n - 1] = 0;
        s++;
    }
    return s;
}

static void strip_ext(char *s)
{
    static const char *const ext[] = {".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".scn",
                                      ".bif", ".vms",  ".h5"};
    char *dot = strrchr(s, '.');
    if (!dot) return;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) {
            *dot = 0;
            return;
        }
}

enum wv_status labels_parse_csv(const char *data, size_t len, struct labels **out)
{
    *out = NULL;
    struct labels *l = wv_calloc(1, sizeof *l, "labels");
    char *buf = wv_malloc(len + 1, "labels text");
    if (!l || !buf) {
        free(l);
        free(buf);
        return WV_ENOMEM;
    }
    memcpy(buf, data, len);
    buf[len] = 0;
    if (memchr(data, 0, len)) {
        free(buf);
        labels_free(l);
        return error_set(WV_EFORMAT, "labels: binary data (NUL byte), not a CSV file");
    }
    sha256_buffer_hex(data, len, l->sha256);
    size_t cap = 0;
    enum wv_status st = WV_OK;
    int lineno = 0, first = 1;
    char *save = NULL;
    for (char *line = buf; line && !st; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        if (lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s = trim(s + 3); /* UTF-8 BOM */
        char *sep = strpbrk(s, ",;\t");
        char *name = s, *cls = NULL;
        if (sep) {
            *sep = 0;
            cls = sep + 1;
            char *sep2 = strpbrk(cls, ",;\t");
            if (sep2) *sep2 = 0;
            cls = trim(cls);
        }
        name = trim(name);
        int c = cls ? class_of(cls) : -1;
        if (c < 0 && first) { /* a header */
            first = 0;
            continue;
        }
        first = 0;
        if (!cls) {
            st = error_set(WV_EFORMAT, "labels line %d: no class field (expected name,class)",
                           lineno);
            break;
        }
        if (c < 0) {
            st = error_set(WV_EFORMAT,
                           "labels line %d: class '%.40s' is not Tumor/Normal (or 1/0, "
                           "positive/negative)",
                           lineno, cls);
            break;
        }
        if (!*name) {
            st = error_set(WV_EFORMAT, "labels line %d: empty slide name", lineno);
            break;
        }
        strip_ext(name);
        long k = labels_find(l, name);
        if (k >= 0) {
            if (l->v[k].label != c) {
                st = error_set(WV_EFORMAT, "labels line %d: slide %s listed as both Tumor and Normal",
                               lineno, name);
                break;
            }
            l->n_warnings++;
            continue;
        }
        if (l->n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            struct slide_label *v = realloc(l->v, nc * sizeof *v);
            if (!v) {
                st = error_set(WV_ENOMEM, "labels");
                break;
            }
            l->v = v;
            cap = nc;
        }
        l->v[l->n].name = strdup(name);
        if (!l->v[l->n].name) {
            st = error_set(WV_ENOMEM, "labels");
            break;
        }
        l->v[l->n++].label = c;
    }
    free(buf);
    if (!st && l->n == 0) st = error_set(WV_EFORMAT, "labels: no slide rows (expected name,class)");
    if (st) {
        labels_free(l);
        return st;
    }
    *out = l;
    return WV_OK;
}

enum wv_status labels_read_csv(const char *path, struct labels **out)
{
    *out = NULL;
    uint8_t *data;
    size_t len;
    enum wv_status st = util_read_file(path, LABELS_MAX_BYTES, &data, &len);
    if (st) return st;
    st = labels_parse_csv((const char *)data, len, out);
    free(data);
    return st;
}

enum wv_status labels_cell_fractions(const char *path, int rows, int cols, double cell_px,
                                     int64_t slide_w, int64_t slide_h, int ss, float *fraction,
                                     struct labels_annot_info *info)
{
    if (rows < 1 || cols < 1 || !(cell_px > 0))
        return error_set(WV_EINVAL, "labels: grid %d x %d cells of %g px", rows, cols, cell_px);
    struct annot_set *set;
    enum wv_status st = annot_read(path, &set);
    if (st) return st;
    struct labels_annot_info in;
    memset(&in, 0, sizeof in);
    for (int i = 0; i < set->n; i++) {
        const struct annot_polygon *p = &set->polys[i];
        if (p->cls == ANNOT_POSITIVE) in.n_positive++;
        else if (p->cls == ANNOT_NEGATIVE) in.n_negative++;
        else in.n_ignored++;
        double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
        for (int r = 0; r < p->n_rings; r++)
            for (int v = 0; v < p->rings[r].n; v++) {
                double x = p->rings[r].xy[2 * v], y = p->rings[r].xy[2 * v + 1];
                x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
            }
        if (slide_w > 0 && slide_h > 0 && x1 >= x0) {
            if (x1 < 0 || y1 < 0 || x0 >= (double)slide_w || y0 >= (double)slide_h)
                in.n_outside++;
            else if (x0 < 0 || y0 < 0 || x1 > (double)slide_w || y1 > (double)slide_h)
                in.n_partly_outside++;
        }
    }
    struct annot_grid g = {0, 0, cell_px, rows, cols};
    st = annot_rasterise_fraction(set, &g, ss, fraction);
    annot_set_free(set);
    if (st) return st;
    for (size_t q = 0; q < (size_t)rows * cols; q++) in.tumour_cells += fraction[q];
    if (info) *info = in;
    return WV_OK;
}
