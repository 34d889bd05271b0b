/*
 * annot_json.c — NCRF-style JSON reader (contract: annot.h): {"positive": [{"name": "_0",
 * "vertices": [[x, y], ...]}, ...], "negative": [...]}, level-0 px, as written by
 * baidu-research/NCRF's XML converter (fixture: shared/fixtures/annotations/Tumor_001.json).
 * Polygons in "positive" are tumour, in "negative" exclusions, whatever their name.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "annot.h"
#include "annot_private.h"

static enum wv_status read_list(struct annot_builder *b, const cJSON *list, const char *key,
                                enum annot_class cls)
{
    if (!list) return WV_OK;
    if (!cJSON_IsArray(list)) return error_set(WV_EFORMAT, "\"%s\" is not an array", key);
    int idx = 0;
    for (const cJSON *item = list->child; item; item = item->next, idx++) {
        if (!cJSON_IsObject(item))
            return error_set(WV_EFORMAT, "%s[%d] is not an object", key, idx);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *verts = cJSON_GetObjectItemCaseSensitive(item, "vertices");
        if (!cJSON_IsArray(verts))
            return error_set(WV_EFORMAT, "%s[%d]: no \"vertices\" array", key, idx);
        int n = cJSON_GetArraySize(verts);
        if (n > ANNOT_MAX_VERTICES)
            return error_set(WV_EFORMAT, "%s[%d]: more than %d vertices", key, idx,
                             ANNOT_MAX_VERTICES);
        double *xy = malloc((size_t)(n ? n : 1) * 2 * sizeof *xy);
        if (!xy) return error_set(WV_ENOMEM, "out of memory for %d vertices", n);
        int k = 0;
        for (const cJSON *v = verts->child; v; v = v->next, k++) {
            const cJSON *x = cJSON_GetArrayItem(v, 0), *y = cJSON_GetArrayItem(v, 1);
            if (!cJSON_IsArray(v) || !cJSON_IsNumber(x) || !cJSON_IsNumber(y)) {
                free(xy);
                return error_set(WV_EFORMAT, "%s[%d] vertex %d is not [x, y]", key, idx, k);
            }
            xy[2 * k] = x->valuedouble;
            xy[2 * k + 1] = y->valuedouble;
        }
        const char *nm = cJSON_IsString(name) ? name->valuestring : "";
        struct annot_polygon *p;
        enum wv_status st = annot_builder_add(b, nm, nm, "Polygon", cls, 1, &p);
        if (!st) st = annot_builder_ring(b, p, 0, n, xy);
        free(xy);
        if (st) {
            error_prefix("%s[%d]", key, idx);
            return st;
        }
    }
    return WV_OK;
}

enum wv_status annot_parse_ncrf(const uint8_t *data, size_t len, struct annot_set **out)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)data, len);
    if (!root) return error_set(WV_EFORMAT, "not valid JSON");
    struct annot_builder b;
    enum wv_status st = annot_builder_init(&b, "ncrf-json");
    if (!st && !cJSON_IsObject(root)) st = error_set(WV_EFORMAT, "top level is not an object");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(root, "positive");
    const cJSON *neg = cJSON_GetObjectItemCaseSensitive(root, "negative");
    if (!st && !pos && !neg) st = error_set(WV_EFORMAT, "no \"positive\" or \"negative\" list");
    if (!st) st = read_list(&b, pos, "positive", ANNOT_POSITIVE);
    if (!st) st = read_list(&b, neg, "negative", ANNOT_NEGATIVE);
    if (!st)
        *out = annot_builder_finish(&b);
    else
        annot_builder_abort(&b);
    cJSON_Delete(root);
    return st;
}
