/*
 * annot_geojson.c — QuPath GeoJSON reader (contract: annot.h; format: CAMELYON16_PROTOCOL.md
 * §3.4). Accepts a FeatureCollection, a single Feature, a bare array of Features (QuPath's export
 * without FEATURE_COLLECTION) or a bare Polygon/MultiPolygon geometry. Only area annotations are
 * read: features whose objectType (or object_type, or properties.type) is not "annotation" —
 * detections, cells, tiles — and non-area geometries (Point, LineString) are counted in n_skipped.
 * The class comes from properties.classification.name (or a plain string classification), else
 * from properties.name. Coordinates: level-0 px, origin top-left; interior rings are holes;
 * each part of a MultiPolygon becomes its own polygon.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "annot.h"
#include "annot_private.h"

static const cJSON *item(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *str_of(const cJSON *o)
{
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

/* One GeoJSON polygon (array of rings, each an array of [x, y, ...]). */
static enum wv_status add_polygon(struct annot_builder *b, const cJSON *rings, const char *name,
                                  const char *group, enum annot_class cls, const char *type)
{
    if (!cJSON_IsArray(rings)) return error_set(WV_EFORMAT, "polygon coordinates are not an array");
    int nr = cJSON_GetArraySize(rings);
    if (nr == 0) return WV_OK; /* an empty polygon: nothing to draw */
    struct annot_polygon *p;
    enum wv_status st = annot_builder_add(b, name, group, type, cls, nr, &p);
    if (st) return st;
    int r = 0;
    for (const cJSON *ring = rings->child; ring; ring = ring->next, r++) {
        if (!cJSON_IsArray(ring)) return error_set(WV_EFORMAT, "ring %d is not an array", r);
        int n = cJSON_GetArraySize(ring);
        if (n > ANNOT_MAX_VERTICES)
            return error_set(WV_EFORMAT, "ring %d: more than %d vertices", r, ANNOT_MAX_VERTICES);
        double *xy = malloc((size_t)(n ? n : 1) * 2 * sizeof *xy);
        if (!xy) return error_set(WV_ENOMEM, "out of memory for %d vertices", n);
        int k = 0;
        for (const cJSON *v = ring->child; v; v = v->next, k++) {
            const cJSON *x = cJSON_GetArrayItem(v, 0), *y = cJSON_GetArrayItem(v, 1);
            if (!cJSON_IsArray(v) || !cJSON_IsNumber(x) || !cJSON_IsNumber(y)) {
                free(xy);
                return error_set(WV_EFORMAT, "ring %d vertex %d is not [x, y]", r, k);
            }
            xy[2 * k] = x->valuedouble;
            xy[2 * k + 1] = y->valuedouble;
        }
        st = annot_builder_ring(b, p, r, n, xy);
        free(xy);
        if (st) return st;
    }
    return WV_OK;
}

static enum wv_status add_geometry(struct annot_builder *b, const cJSON *geom, const char *name,
                                   const char *group, enum annot_class cls)
{
    const char *type = str_of(item(geom, "type"));
    const cJSON *coords = item(geom, "coordinates");
    if (!type) return error_set(WV_EFORMAT, "geometry without a \"type\"");
    if (!strcmp(type, "Polygon")) return add_polygon(b, coords, name, group, cls, type);
    if (!strcmp(type, "MultiPolygon")) {
        if (!cJSON_IsArray(coords))
            return error_set(WV_EFORMAT, "MultiPolygon coordinates are not an array");
        int k = 0;
        for (const cJSON *part = coords->child; part; part = part->next, k++) {
            enum wv_status st = add_polygon(b, part, name, group, cls, type);
            if (st) {
                error_prefix("part %d", k);
                return st;
            }
        }
        return WV_OK;
    }
    if (!strcmp(type, "GeometryCollection")) {
        const cJSON *gs = item(geom, "geometries");
        if (!cJSON_IsArray(gs)) return error_set(WV_EFORMAT, "GeometryCollection without geometries");
        for (const cJSON *g = gs->child; g; g = g->next) {
            enum wv_status st = add_geometry(b, g, name, group, cls);
            if (st) return st;
        }
        return WV_OK;
    }
    b->set->n_skipped++; /* Point, MultiPoint, LineString, …: no area */
    return WV_OK;
}

static enum wv_status add_feature(struct annot_builder *b, const cJSON *f)
{
    if (!cJSON_IsObject(f)) return error_set(WV_EFORMAT, "feature is not an object");
    const char *ftype = str_of(item(f, "type"));
    if (ftype && strcmp(ftype, "Feature")) {
        /* a bare geometry */
        if (item(f, "coordinates") || item(f, "geometries")) return add_geometry(b, f, "", "", ANNOT_IGNORED);
        return error_set(WV_EFORMAT, "object of type '%.40s' is not a Feature", ftype);
    }
    const cJSON *props = item(f, "properties");
    const char *otype = str_of(item(props, "objectType"));
    if (!otype) otype = str_of(item(props, "object_type"));
    if (!otype) otype = str_of(item(props, "type"));
    if (otype && strcmp(otype, "annotation")) {
        b->set->n_skipped++;
        return WV_OK;
    }
    const cJSON *cl = item(props, "classification");
    const char *group = cJSON_IsString(cl) ? cl->valuestring : str_of(item(cl, "name"));
    const char *name = str_of(item(props, "name"));
    enum annot_class cls = annot_class_of_group(group);
    if (cls == ANNOT_IGNORED && !group) cls = annot_class_of_group(name);
    const cJSON *geom = item(f, "geometry");
    if (!geom || cJSON_IsNull(geom)) {
        b->set->n_skipped++;
        return WV_OK;
    }
    return add_geometry(b, geom, name ? name : "", group ? group : "", cls);
}

enum wv_status annot_parse_geojson(const uint8_t *data, size_t len, struct annot_set **out)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)data, len);
    if (!root) return error_set(WV_EFORMAT, "not valid JSON");
    struct annot_builder b;
    enum wv_status st = annot_builder_init(&b, "geojson");
    const cJSON *list = NULL;
    if (!st) {
        if (cJSON_IsArray(root))
            list = root;
        else if (cJSON_IsObject(root)) {
            const char *t = str_of(item(root, "type"));
            if (t && !strcmp(t, "FeatureCollection")) {
                list = item(root, "features");
                if (!cJSON_IsArray(list))
                    st = error_set(WV_EFORMAT, "FeatureCollection without a \"features\" array");
            } else if (t) {
                st = add_feature(&b, root);
            } else {
                st = error_set(WV_EFORMAT, "JSON object is neither GeoJSON nor NCRF annotations");
            }
        } else {
            st = error_set(WV_EFORMAT, "top level is neither an object nor an array");
        }
    }
    int k = 0;
    for (const cJSON *f = list ? list->child : NULL; f && !st; f = f->next, k++) {
        st = add_feature(&b, f);
        if (st) error_prefix("feature %d", k);
    }
    if (!st)
        *out = annot_builder_finish(&b);
    else
        annot_builder_abort(&b);
    cJSON_Delete(root);
    return st;
}
