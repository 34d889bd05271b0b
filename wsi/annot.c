/*
 * annot.c — the annotation module's shared part (contract: annot.h): group classes, the set
 * builder the three readers use, format detection and bounding boxes.
 */
#define _GNU_SOURCE /* memmem */
#include "annot.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "annot_private.h"
#include "src/util.h"

const char *annot_class_name(enum annot_class c)
{
    switch (c) {
    case ANNOT_POSITIVE: return "positive";
    case ANNOT_NEGATIVE: return "negative";
    default: return "ignored";
    }
}

enum annot_class annot_class_of_group(const char *g)
{
    /* CAMELYON16 training XMLs: _0 and _1 tumour, _2 non-tumour inside tumour; test XMLs: Tumor and
     * Exclusion; CAMELYON17: metastases and normal (§3.2). QuPath users write Tumor/Tumour. */
    static const char *const pos[] = {"tumor", "tumour", "_0", "_1", "metastases", "metastasis",
                                      "metastatic", "cancer", NULL};
    static const char *const neg[] = {"_2", "exclusion", "normal", "non-tumor", "non-tumour",
                                      "nontumor", "nontumour", NULL};
    if (!g) return ANNOT_IGNORED;
    while (isspace((unsigned char)*g)) g++;
    size_t n = strlen(g);
    while (n && isspace((unsigned char)g[n - 1])) n--;
    for (int i = 0; pos[i]; i++)
        if (strlen(pos[i]) == n && !strncasecmp(g, pos[i], n)) return ANNOT_POSITIVE;
    for (int i = 0; neg[i]; i++)
        if (strlen(neg[i]) == n && !strncasecmp(g, neg[i], n)) return ANNOT_NEGATIVE;
    return ANNOT_IGNORED;
}

enum wv_status annot_builder_init(struct annot_builder *b, const char *format)
{
    memset(b, 0, sizeof *b);
    b->set = wv_calloc(1, sizeof *b->set, "annotation set");
    if (!b->set) return WV_ENOMEM;
    b->set->format = format;
    return WV_OK;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

enum wv_status annot_builder_add(struct annot_builder *b, const char *name, const char *group,
                                 const char *type, enum annot_class cls, int n_rings,
                                 struct annot_polygon **out)
{
    struct annot_set *s = b->set;
    if (n_rings < 1 || n_rings > 1000000)
        return error_set(WV_EFORMAT, "polygon with %d rings", n_rings);
    if (s->n == b->cap) {
        if (b->cap > (1 << 26)) return error_set(WV_EFORMAT, "more than %d polygons", 1 << 26);
        int cap = b->cap ? 2 * b->cap : 16;
        void *p = realloc(s->polys, (size_t)cap * sizeof *s->polys);
        if (!p) return error_set(WV_ENOMEM, "out of memory for %d polygons", cap);
        s->polys = p;
        b->cap = cap;
    }
    struct annot_polygon *p = &s->polys[s->n];
    memset(p, 0, sizeof *p);
    p->name = dup_or_empty(name);
    p->group = dup_or_empty(group);
    p->type = dup_or_empty(type);
    p->rings = calloc((size_t)n_rings, sizeof *p->rings);
    s->n++; /* counted now so that abort frees whatever was allocated */
    if (!p->name || !p->group || !p->type || !p->rings)
        return error_set(WV_ENOMEM, "out of memory for a polygon");
    p->n_rings = n_rings;
    p->cls = cls;
    *out = p;
    return WV_OK;
}

enum wv_status annot_builder_ring(struct annot_builder *b, struct annot_polygon *p, int ring,
                                  int n, const double *xy)
{
    if (ring < 0 || ring >= p->n_rings || n < 0)
        return error_set(WV_EINVAL, "ring %d of %d", ring, p->n_rings);
    if ((size_t)n > ANNOT_MAX_VERTICES - b->n_vertices)
        return error_set(WV_EFORMAT, "more than %d vertices", ANNOT_MAX_VERTICES);
    for (int i = 0; i < 2 * n; i++)
        if (!isfinite(xy[i]))
            return error_set(WV_EFORMAT, "vertex %d: coordinate is not a finite number", i / 2);
    double *c = NULL;
    if (n) {
        c = malloc((size_t)n * 2 * sizeof *c);
        if (!c) return error_set(WV_ENOMEM, "out of memory for %d vertices", n);
        memcpy(c, xy, (size_t)n * 2 * sizeof *c);
    }
    free(p->rings[ring].xy);
    p->rings[ring].xy = c;
    p->rings[ring].n = n;
    b->n_vertices += (size_t)n;
    return WV_OK;
}

struct annot_set *annot_builder_finish(struct annot_builder *b)
{
    struct annot_set *s = b->set;
    s->n_ignored = 0;
    for (int i = 0; i < s->n; i++)
        if (s->polys[i].cls == ANNOT_IGNORED) s->n_ignored++;
    b->set = NULL;
    return s;
}

void annot_builder_abort(struct annot_builder *b)
{
    annot_set_free(b->set);
    b->set = NULL;
}

void annot_set_free(struct annot_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        struct annot_polygon *p = &s->polys[i];
        if (p->rings)
            for (int r = 0; r < p->n_rings; r++) free(p->rings[r].xy);
        free(p->rings);
        free(p->name);
        free(p->group);
        free(p->type);
    }
    free(s->polys);
    free(s);
}

int annot_parse_number(const char *s, double *out)
{
    char buf[64];
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (!strchr(buf, '.')) {
        char *c = strchr(buf, ',');
        if (c && !strchr(c + 1, ',')) *c = '.';
    }
    char *end;
    double v = strtod(buf, &end);
    if (end == buf || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

enum wv_status annot_parse(const uint8_t *data, size_t len, struct annot_set **out)
{
    *out = NULL;
    size_t i = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) i = 3; /* UTF-8 BOM */
    while (i < len && isspace(data[i])) i++;
    if (i == len) return error_set(WV_EFORMAT, "empty annotation file");
    if (data[i] == '<') return annot_parse_asap(data, len, out);
    if (data[i] == '{' || data[i] == '[') {
        /* NCRF JSON has top-level "positive"/"negative" lists; cheap check before a full parse */
        const char *keys[] = {"\"positive\"", "\"negative\""};
        size_t look = len < 4096 ? len : 4096;
        for (int k = 0; k < 2 && data[i] == '{'; k++)
            if (memmem(data, look, keys[k], strlen(keys[k])))
                return annot_parse_ncrf(data, len, out);
        return annot_parse_geojson(data, len, out);
    }
    return error_set(WV_EFORMAT, "not an annotation file (expected ASAP XML or JSON)");
}

enum wv_status annot_read(const char *path, struct annot_set **out)
{
    uint8_t *data = NULL;
    size_t len = 0;
    *out = NULL;
    enum wv_status st = util_read_file(path, ANNOT_MAX_FILE_BYTES, &data, &len);
    if (st) return st;
    st = annot_parse(data, len, out);
    free(data);
    return st;
}

int annot_bounds(const struct annot_set *s, enum annot_class cls, double *min_x, double *min_y,
                 double *max_x, double *max_y)
{
    double a = INFINITY, b = INFINITY, c = -INFINITY, d = -INFINITY;
    int any = 0;
    for (int i = 0; i < s->n; i++) {
        const struct annot_polygon *p = &s->polys[i];
        if (cls != ANNOT_IGNORED && p->cls != cls) continue;
        for (int r = 0; r < p->n_rings; r++)
            for (int k = 0; k < p->rings[r].n; k++) {
                double x = p->rings[r].xy[2 * k], y = p->rings[r].xy[2 * k + 1];
                a = fmin(a, x);
                b = fmin(b, y);
                c = fmax(c, x);
                d = fmax(d, y);
                any = 1;
            }
    }
    if (!any) return -1;
    *min_x = a;
    *min_y = b;
    *max_x = c;
    *max_y = d;
    return 0;
}

int annot_count(const struct annot_set *s, enum annot_class cls)
{
    int n = 0;
    for (int i = 0; i < s->n; i++) n += s->polys[i].cls == cls;
    return n;
}
