/*
 * test_exports.c — heatmaps/exports: the CAMELYON16 lesion CSV (exact text, no header, integer
 * coordinates, empty file for no candidates), lesion and cell GeoJSON parsed back with cJSON,
 * ASAP XML parsed back with libxml2, the slide-level CSV with quoting, and failures that leave
 * nothing behind. Python's csv/json/xml readers check the same files in results_check.py.
 */
#include "heatmaps/exports.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <unistd.h>

#include "src/util.h"
#include "testutil.h"

static char dir[1024];

static char *slurp(const char *name)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint8_t *d = NULL;
    size_t n = 0;
    if (util_read_file(p, 1 << 24, &d, &n) != WV_OK) {
        error_clear();
        return NULL;
    }
    return (char *)d;
}

static const char *P(const char *name)
{
    static char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/exports", tu_tmp());
    util_mkdir_p(dir);
    struct resultsdb_lesion les[3] = {{0.95, 12000, 34000, 7}, {0.5, 1, 2, 1}, {1e-7, 0, 99999, 1}};

    CHECK(exports_lesions_csv(P("lesions.csv"), les, 3) == WV_OK);
    char *t = slurp("lesions.csv");
    CHECK_MSG(t && !strcmp(t, "0.95,12000,34000\n0.5,1,2\n1e-07,0,99999\n"), "csv: %s", t ? t : "(none)");
    free(t);
    CHECK(exports_lesions_csv(P("empty.csv"), NULL, 0) == WV_OK);
    t = slurp("empty.csv");
    CHECK(t && t[0] == 0);
    free(t);

    CHECK(exports_lesions_geojson(P("lesions.geojson"), "tumor_\"001\"", les, 3) == WV_OK);
    t = slurp("lesions.geojson");
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    CHECK(j != NULL);
    if (j) {
        cJSON *type = cJSON_GetObjectItem(j, "type"), *f = cJSON_GetObjectItem(j, "features");
        CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, "FeatureCollection"));
        CHECK(cJSON_GetArraySize(f) == 3);
        cJSON *f0 = cJSON_GetArrayItem(f, 0);
        cJSON *g = cJSON_GetObjectItem(f0, "geometry"), *pr = cJSON_GetObjectItem(f0, "properties");
        cJSON *co = cJSON_GetObjectItem(g, "coordinates");
        CHECK(!strcmp(cJSON_GetObjectItem(g, "type")->valuestring, "Point"));
        CHECK(cJSON_GetArrayItem(co, 0)->valuedouble == 12000 && cJSON_GetArrayItem(co, 1)->valuedouble == 34000);
        CHECK(!strcmp(cJSON_GetObjectItem(pr, "objectType")->valuestring, "annotation"));
        CHECK(!strcmp(cJSON_GetObjectItem(pr, "slide")->valuestring, "tumor_\"001\""));
        cJSON *m = cJSON_GetObjectItem(pr, "measurements");
        CHECK(cJSON_GetObjectItem(m, "probability")->valuedouble == 0.95);
        CHECK(cJSON_GetObjectItem(m, "area_cells")->valuedouble == 7);
        cJSON_Delete(j);
    }
    free(t);

    float hm[6] = {NAN, 0.2f, 0.9f, 0.6f, NAN, 0.05f};
    CHECK(exports_cells_geojson(P("cells.geojson"), hm, 2, 3, 32.5, 0.1) == WV_OK);
    t = slurp("cells.geojson");
    j = t ? cJSON_Parse(t) : NULL;
    CHECK(j != NULL);
    if (j) {
        cJSON *f = cJSON_GetObjectItem(j, "features");
        CHECK(cJSON_GetArraySize(f) == 3); /* 0.2, 0.9, 0.6; NaN and 0.05 left out */
        cJSON *ring = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(f, 2), "geometry"), "coordinates"), 0);
        CHECK(cJSON_GetArraySize(ring) == 5);
        cJSON *p0 = cJSON_GetArrayItem(ring, 0), *p2 = cJSON_GetArrayItem(ring, 2);
        /* third feature = cell (1, 0): x 0..33 (32.5 rounded), y 33..65 */
        CHECK(cJSON_GetArrayItem(p0, 0)->valuedouble == 0 && cJSON_GetArrayItem(p0, 1)->valuedouble == 33);
        CHECK(cJSON_GetArrayItem(p2, 0)->valuedouble == 33 && cJSON_GetArrayItem(p2, 1)->valuedouble == 65);
        cJSON_Delete(j);
    }
    free(t);

    CHECK(exports_lesions_asap_xml(P("lesions.xml"), les, 3) == WV_OK);
    xmlDocPtr doc = xmlReadFile(P("lesions.xml"), NULL, XML_PARSE_NONET);
    CHECK(doc != NULL);
    if (doc) {
        xmlNodePtr root = xmlDocGetRootElement(doc);
        CHECK(root && !xmlStrcmp(root->name, (const xmlChar *)"ASAP_Annotations"));
        int n_ann = 0, ok_first = 0;
        for (xmlNodePtr a = root ? root->children : NULL; a; a = a->next)
            if (!xmlStrcmp(a->name, (const xmlChar *)"Annotations"))
                for (xmlNodePtr b = a->children; b; b = b->next)
                    if (!xmlStrcmp(b->name, (const xmlChar *)"Annotation")) {
                        xmlChar *ty = xmlGetProp(b, (const xmlChar *)"Type");
                        for (xmlNodePtr cs = b->children; cs; cs = cs->next)
                            for (xmlNodePtr c = cs->children; c; c = c->next)
                                if (n_ann == 0 && !xmlStrcmp(c->name, (const xmlChar *)"Coordinate")) {
                                    xmlChar *x = xmlGetProp(c, (const xmlChar *)"X"), *y = xmlGetProp(c, (const xmlChar *)"Y");
                                    ok_first = x && y && !strcmp((char *)x, "12000") && !strcmp((char *)y, "34000") && ty && !strcmp((char *)ty, "Dot");
                                    xmlFree(x);
                                    xmlFree(y);
                                }
                        xmlFree(ty);
                        n_ann++;
                    }
        CHECK(n_ann == 3 && ok_first);
        xmlFreeDoc(doc);
    }
    xmlCleanupParser();

    struct exports_slide_prob sp[3] = {{"test_001", 0.25}, {"odd,name \"x\"", 1}, {"n", 0}};
    CHECK(exports_slide_csv(P("slides.csv"), sp, 3, 0) == WV_OK);
    t = slurp("slides.csv");
    CHECK_MSG(t && !strcmp(t, "test_001,0.25\n\"odd,name \"\"x\"\"\",1\nn,0\n"), "%s", t ? t : "(none)");
    free(t);
    CHECK(exports_slide_csv(P("slides_h.csv"), sp, 1, 1) == WV_OK);
    t = slurp("slides_h.csv");
    CHECK(t && !strcmp(t, "name,probability\ntest_001,0.25\n"));
    free(t);

    /* bad input and unwritable places: an error, and nothing under the name */
    struct resultsdb_lesion nanl = {NAN, 1, 1, 1};
    unlink(P("nan.csv"));
    CHECK(exports_lesions_csv(P("nan.csv"), &nanl, 1) == WV_EINVAL);
    CHECK(access(P("nan.csv"), F_OK) != 0);
    error_clear();
    CHECK(exports_lesions_csv(P("missing/x.csv"), les, 3) == WV_EIO);
    printf("  missing folder: %s\n", error_msg());
    error_clear();
    CHECK(exports_cells_geojson(P("c.geojson"), hm, 0, 3, 32, 0) == WV_EINVAL);
    error_clear();
    int tmp_left = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) tmp_left += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    CHECK(tmp_left == 0);
    return tu_finish("test_exports");
}
