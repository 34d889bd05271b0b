/*
 * annot_asap.c — ASAP XML reader (contract: annot.h; format: CAMELYON16_PROTOCOL.md §3.1–3.2).
 * <Annotation Name Type PartOfGroup> elements anywhere in the document (the root element may be
 * missing), vertices placed by their Order attribute, groups from <AnnotationGroups>, nested
 * groups followed up their PartOfGroup chain to find a known class. libxml2 parses without
 * network access and without expanding entities.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#include "annot.h"
#include "annot_private.h"

/* Deepest element nesting searched (ASAP files are 4 deep; libxml2 itself stops at 256). */
#define MAX_DEPTH 64
/* Longest PartOfGroup chain followed (cycles in hostile files end here). */
#define MAX_GROUP_CHAIN 16

struct group {
    char *name, *parent;
};

struct ctx {
    struct annot_builder b;
    struct group *groups;
    int n_groups, cap_groups;
    int n_annotations;
};

static int is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static char *attr(const xmlNode *n, const char *name)
{
    return (char *)xmlGetProp((xmlNode *)n, (const xmlChar *)name);
}

static enum wv_status collect_group(struct ctx *c, const xmlNode *n)
{
    if (c->n_groups == c->cap_groups) {
        int cap = c->cap_groups ? 2 * c->cap_groups : 8;
        if (cap > (1 << 20)) return error_set(WV_EFORMAT, "more than %d groups", 1 << 20);
        void *p = realloc(c->groups, (size_t)cap * sizeof *c->groups);
        if (!p) return error_set(WV_ENOMEM, "out of memory for groups");
        c->groups = p;
        c->cap_groups = cap;
    }
    char *name = attr(n, "Name"), *parent = attr(n, "PartOfGroup");
    c->groups[c->n_groups].name = strdup(name ? name : "");
    c->groups[c->n_groups].parent = strdup(parent ? parent : "None");
    xmlFree(name);
    xmlFree(parent);
    c->n_groups++;
    if (!c->groups[c->n_groups - 1].name || !c->groups[c->n_groups - 1].parent)
        return error_set(WV_ENOMEM, "out of memory for groups");
    return WV_OK;
}

static enum annot_class class_of(const struct ctx *c, const char *group)
{
    const char *g = group;
    for (int depth = 0; g && depth < MAX_GROUP_CHAIN; depth++) {
        enum annot_class k = annot_class_of_group(g);
        if (k != ANNOT_IGNORED) return k;
        const char *next = NULL;
        for (int i = 0; i < c->n_groups; i++)
            if (!strcmp(c->groups[i].name, g)) {
                next = c->groups[i].parent;
                break;
            }
        g = next;
    }
    return ANNOT_IGNORED;
}

static enum wv_status collect_groups(struct ctx *c, const xmlNode *n, int depth)
{
    if (depth > MAX_DEPTH) return error_set(WV_EFORMAT, "elements nested deeper than %d", MAX_DEPTH);
    for (const xmlNode *k = n; k; k = k->next) {
        if (is_elem(k, "Group")) {
            enum wv_status st = collect_group(c, k);
            if (st) return st;
        }
        if (k->children) {
            enum wv_status st = collect_groups(c, k->children, depth + 1);
            if (st) return st;
        }
    }
    return WV_OK;
}

struct vertex {
    double order, x, y;
    int doc_index;
};

static int cmp_vertex(const void *a, const void *b)
{
    const struct vertex *p = a, *q = b;
    if (p->order != q->order) return p->order < q->order ? -1 : 1;
    return p->doc_index - q->doc_index; /* stable for equal Order */
}

static enum wv_status read_annotation(struct ctx *c, const xmlNode *n)
{
    int idx = c->n_annotations++;
    char *name = attr(n, "Name"), *type = attr(n, "Type"), *group = attr(n, "PartOfGroup");
    struct vertex *v = NULL;
    int nv = 0, cap = 0;
    enum wv_status st = WV_OK;
    for (const xmlNode *k = n->children; k && !st; k = k->next) {
        if (!is_elem(k, "Coordinates")) continue;
        for (const xmlNode *e = k->children; e; e = e->next) {
            if (!is_elem(e, "Coordinate")) continue;
            if (nv == cap) {
                cap = cap ? 2 * cap : 64;
                if (cap > ANNOT_MAX_VERTICES) {
                    st = error_set(WV_EFORMAT, "annotation %d: more than %d vertices", idx,
                                   ANNOT_MAX_VERTICES);
                    break;
                }
                void *p = realloc(v, (size_t)cap * sizeof *v);
                if (!p) {
                    st = error_set(WV_ENOMEM, "out of memory for vertices");
                    break;
                }
                v = p;
            }
            char *so = attr(e, "Order"), *sx = attr(e, "X"), *sy = attr(e, "Y");
            struct vertex *w = &v[nv];
            w->doc_index = nv;
            w->order = nv;
            if (so && annot_parse_number(so, &w->order))
                st = error_set(WV_EFORMAT, "annotation %d coordinate %d: Order '%.40s' is not a "
                               "number", idx, nv, so);
            else if (!sx || annot_parse_number(sx, &w->x))
                st = error_set(WV_EFORMAT, "annotation %d coordinate %d: X '%.40s' is not a number",
                               idx, nv, sx ? sx : "(missing)");
            else if (!sy || annot_parse_number(sy, &w->y))
                st = error_set(WV_EFORMAT, "annotation %d coordinate %d: Y '%.40s' is not a number",
                               idx, nv, sy ? sy : "(missing)");
            xmlFree(so);
            xmlFree(sx);
            xmlFree(sy);
            if (st) break;
            nv++;
        }
    }
    if (!st) {
        if (nv > 1) qsort(v, (size_t)nv, sizeof *v, cmp_vertex);
        double *xy = malloc((size_t)(nv ? nv : 1) * 2 * sizeof *xy);
        if (!xy) st = error_set(WV_ENOMEM, "out of memory for vertices");
        for (int i = 0; i < nv && xy; i++) {
            xy[2 * i] = v[i].x;
            xy[2 * i + 1] = v[i].y;
        }
        const char *g = group && strcmp(group, "None") ? group : "";
        struct annot_polygon *p;
        if (!st) st = annot_builder_add(&c->b, name, g, type ? type : "Polygon", class_of(c, g), 1, &p);
        if (!st) st = annot_builder_ring(&c->b, p, 0, nv, xy);
        free(xy);
    }
    free(v);
    xmlFree(name);
    xmlFree(type);
    xmlFree(group);
    return st;
}

static enum wv_status collect_annotations(struct ctx *c, const xmlNode *n, int depth)
{
    if (depth > MAX_DEPTH) return error_set(WV_EFORMAT, "elements nested deeper than %d", MAX_DEPTH);
    for (const xmlNode *k = n; k; k = k->next) {
        if (is_elem(k, "Annotation")) {
            enum wv_status st = read_annotation(c, k);
            if (st) return st;
            continue;
        }
        if (k->children && k->type == XML_ELEMENT_NODE) {
            enum wv_status st = collect_annotations(c, k->children, depth + 1);
            if (st) return st;
        }
    }
    return WV_OK;
}

/* libxml2's encoding layer reports conversion failures through the generic error handler even
 * with XML_PARSE_NOERROR ("encoding error : input conversion failed"); our error comes back
 * through error_set, so nothing may reach stderr directly. */
static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

enum wv_status annot_parse_asap(const uint8_t *data, size_t len, struct annot_set **out)
{
    *out = NULL;
    xmlSetGenericErrorFunc(NULL, xml_silent); /* per thread in libxml2's threaded build */
    if (len > (size_t)INT32_MAX) return error_set(WV_EFORMAT, "XML larger than 2 GiB");
    xmlDoc *doc = xmlReadMemory((const char *)data, (int)len, "annotation.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        char msg[200] = "malformed";
        if (e && e->message) {
            snprintf(msg, sizeof msg, "%s", e->message);
            size_t n = strlen(msg);
            while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.')) msg[--n] = 0;
        }
        int line = e ? e->line : 0;
        return error_set(WV_EFORMAT, "not well-formed XML (line %d: %s)", line, msg);
    }
    struct ctx c;
    memset(&c, 0, sizeof c);
    enum wv_status st = annot_builder_init(&c.b, "asap-xml");
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!st && root) st = collect_groups(&c, root, 0);
    if (!st && root) st = collect_annotations(&c, root, 0);
    if (!st && c.n_annotations == 0 && (!root || strcmp((const char *)root->name, "ASAP_Annotations")))
        st = error_set(WV_EFORMAT, "no <ASAP_Annotations> root and no <Annotation> elements");
    if (!st)
        *out = annot_builder_finish(&c.b);
    else
        annot_builder_abort(&c.b);
    for (int i = 0; i < c.n_groups; i++) {
        free(c.groups[i].name);
        free(c.groups[i].parent);
    }
    free(c.groups);
    xmlFreeDoc(doc);
    return st;
}
