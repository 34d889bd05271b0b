/* asap_xml.c — ASAP XML writer (contract: asap_xml.h; format: CAMELYON16_PROTOCOL.md §3.1). */
#include "asap_xml.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/strbuf.h"
#include "src/util.h"

/* Attribute value with &, <, >, " escaped. */
static void sb_attr(struct strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': strbuf_append(b, "&amp;", 5); break;
        case '<': strbuf_append(b, "&lt;", 4); break;
        case '>': strbuf_append(b, "&gt;", 4); break;
        case '"': strbuf_append(b, "&quot;", 6); break;
        default: strbuf_append(b, s, 1);
        }
    }
}

/* "%.4f" without trailing zeros (and without a trailing '.'), "-0" printed as "0". */
static void fmt_coord(char *out, size_t n, double v)
{
    snprintf(out, n, "%.4f", v);
    char *dot = strchr(out, '.');
    if (dot) {
        char *e = out + strlen(out) - 1;
        while (e > dot && *e == '0') *e-- = 0;
        if (e == dot) *e = 0;
    }
    if (!strcmp(out, "-0")) strcpy(out, "0");
}

enum wv_status asap_xml_format(const struct asap_polygon *polys, int n_polys,
                               const struct asap_group *groups, int n_groups, char **out,
                               size_t *len)
{
    *out = NULL;
    *len = 0;
    for (int i = 0; i < n_polys; i++) {
        if (polys[i].n_vertices < 1 || !polys[i].xy)
            return error_set(WV_EINVAL, "annotation %d: no vertices", i);
        for (int k = 0; k < 2 * polys[i].n_vertices; k++)
            if (!isfinite(polys[i].xy[k]))
                return error_set(WV_EINVAL, "annotation %d: vertex %d is not finite", i, k / 2);
    }
    struct strbuf b = {0};
    strbuf_printf(&b, "<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n\t<Annotations>\n");
    for (int i = 0; i < n_polys; i++) {
        const struct asap_polygon *p = &polys[i];
        char name[32];
        snprintf(name, sizeof name, "Annotation %d", i);
        strbuf_printf(&b, "\t\t<Annotation Name=\"");
        sb_attr(&b, p->name ? p->name : name);
        strbuf_printf(&b, "\" Type=\"");
        sb_attr(&b, p->type ? p->type : "Polygon");
        strbuf_printf(&b, "\" PartOfGroup=\"");
        sb_attr(&b, p->group ? p->group : "None");
        strbuf_printf(&b, "\" Color=\"");
        sb_attr(&b, p->color ? p->color : "#F4FA58");
        strbuf_printf(&b, "\">\n\t\t\t<Coordinates>\n");
        for (int k = 0; k < p->n_vertices; k++) {
            char xs[64], ys[64];
            fmt_coord(xs, sizeof xs, p->xy[2 * k]);
            fmt_coord(ys, sizeof ys, p->xy[2 * k + 1]);
            strbuf_printf(&b, "\t\t\t\t<Coordinate Order=\"%d\" X=\"%s\" Y=\"%s\" />\n", k, xs, ys);
        }
        strbuf_printf(&b, "\t\t\t</Coordinates>\n\t\t</Annotation>\n");
    }
    strbuf_printf(&b, "\t</Annotations>\n\t<AnnotationGroups>\n");
    for (int g = 0; g < n_groups; g++) {
        strbuf_printf(&b, "\t\t<Group Name=\"");
        sb_attr(&b, groups[g].name);
        strbuf_printf(&b, "\" PartOfGroup=\"None\" Color=\"");
        sb_attr(&b, groups[g].color ? groups[g].color : "#FF0000");
        strbuf_printf(&b, "\">\n\t\t\t<Attributes />\n\t\t</Group>\n");
    }
    strbuf_printf(&b, "\t</AnnotationGroups>\n</ASAP_Annotations>\n");
    if (b.oom) {
        free(b.p);
        return error_set(WV_ENOMEM, "out of memory formatting ASAP XML");
    }
    *out = b.p;
    *len = b.len;
    return WV_OK;
}

enum wv_status asap_xml_write(const char *path, const struct asap_polygon *polys, int n_polys,
                              const struct asap_group *groups, int n_groups)
{
    char *doc;
    size_t len;
    enum wv_status st = asap_xml_format(polys, n_polys, groups, n_groups, &doc, &len);
    if (!st) st = util_write_file_atomic(path, doc, len);
    if (st) error_prefix("%s", path);
    free(doc);
    return st;
}
