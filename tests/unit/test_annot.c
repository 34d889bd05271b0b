/*
 * test_annot.c — annotation readers and the rasteriser (wsi/annot.h): the real fixtures in
 * shared/fixtures/annotations (CAMELYON17 ASAP XML, NCRF JSON of CAMELYON16 Tumor_001: group
 * names, polygon and vertex counts, coordinate ranges), hand-made ASAP (Order, groups, nesting,
 * exclusions, comma decimals), GeoJSON (holes, MultiPolygon, detections skipped), malformed
 * input, and rasterising (corner rule, strict bounding box, holes, exclusions, fractions).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsi/annot.h"

static struct annot_set *parse(const char *text)
{
    struct annot_set *s = NULL;
    if (annot_parse((const uint8_t *)text, strlen(text), &s) != WV_OK) {
        fprintf(stderr, "  parse failed: %s\n", error_msg());
        error_clear();
    }
    return s;
}

static void test_fixtures(void)
{
    char path[1024];
    struct annot_set *s;
    snprintf(path, sizeof path, "%s/fixtures/annotations/patient_004_node_4.xml", tu_shared());
    CHECK(annot_read(path, &s) == WV_OK);
    if (s) {
        CHECK(!strcmp(s->format, "asap-xml") && s->n == 3);
        CHECK(s->polys[0].rings[0].n == 8 && s->polys[1].rings[0].n == 15 &&
              s->polys[2].rings[0].n == 12);
        CHECK(!strcmp(s->polys[0].group, "Tumor") && s->polys[0].cls == ANNOT_POSITIVE);
        CHECK(!strcmp(s->polys[1].name, "Annotation 1") && !strcmp(s->polys[1].type, "Polygon"));
        CHECK(s->polys[0].rings[0].xy[0] == 12711.2998 && s->polys[0].rings[0].xy[1] == 88778.1016);
        double a, b, c, d;
        CHECK(annot_bounds(s, ANNOT_IGNORED, &a, &b, &c, &d) == 0);
        CHECK(a == 10626.2002 && c == 13482.7998 && b == 75345.3984 && d == 89160.6016);
        printf("patient_004_node_4.xml: %d polygons, x %.1f..%.1f, y %.1f..%.1f\n", s->n, a, c, b,
               d);
        annot_set_free(s);
    }
    snprintf(path, sizeof path, "%s/fixtures/annotations/Tumor_001.json", tu_shared());
    CHECK(annot_read(path, &s) == WV_OK);
    if (s) {
        CHECK(!strcmp(s->format, "ncrf-json") && s->n == 2);
        CHECK(s->polys[0].rings[0].n == 855 && s->polys[1].rings[0].n == 1657);
        CHECK(!strcmp(s->polys[0].group, "_0") && !strcmp(s->polys[1].group, "_1"));
        CHECK(annot_count(s, ANNOT_POSITIVE) == 2 && annot_count(s, ANNOT_NEGATIVE) == 0);
        CHECK(s->polys[0].rings[0].xy[0] == 71924 && s->polys[0].rings[0].xy[1] == 131761);
        double a, b, c, d;
        CHECK(annot_bounds(s, ANNOT_POSITIVE, &a, &b, &c, &d) == 0);
        CHECK(a > 60000 && c < 100000 && b > 100000 && d < 200000);
        printf("Tumor_001.json: %d polygons, x %.0f..%.0f, y %.0f..%.0f\n", s->n, a, c, b, d);
        annot_set_free(s);
    }
}

static void test_asap(void)
{
    /* vertices out of document order, a comma decimal, nested group, exclusion */
    const char *xml =
        "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"
        "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"_0\"><Coordinates>"
        "<Coordinate Order=\"2\" X=\"10\" Y=\"10\"/><Coordinate Order=\"0\" X=\"0\" Y=\"0\"/>"
        "<Coordinate Order=\"3\" X=\"0\" Y=\"10\"/><Coordinate Order=\"1\" X=\"10,0\" Y=\"0\"/>"
        "</Coordinates></Annotation>"
        "<Annotation Name=\"B\" Type=\"Spline\" PartOfGroup=\"sub\"><Coordinates>"
        "<Coordinate Order=\"0\" X=\"1e1\" Y=\"2\"/></Coordinates></Annotation>"
        "<Annotation Name=\"C\" PartOfGroup=\"_2\"><Coordinates>"
        "<Coordinate Order=\"0\" X=\"4\" Y=\"4\"/><Coordinate Order=\"1\" X=\"6\" Y=\"4\"/>"
        "<Coordinate Order=\"2\" X=\"6\" Y=\"6\"/><Coordinate Order=\"3\" X=\"4\" Y=\"6\"/>"
        "</Coordinates></Annotation>"
        "<Annotation Name=\"D\" PartOfGroup=\"None\"><Coordinates/></Annotation>"
        "</Annotations><AnnotationGroups><Group Name=\"_0\" PartOfGroup=\"None\"/>"
        "<Group Name=\"sub\" PartOfGroup=\"Tumor\"/></AnnotationGroups></ASAP_Annotations>";
    struct annot_set *s = parse(xml);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(s->n == 4 && s->n_ignored == 1);
    const double *v = s->polys[0].rings[0].xy;
    CHECK(v[0] == 0 && v[1] == 0 && v[2] == 10 && v[3] == 0 && v[4] == 10 && v[5] == 10);
    CHECK(s->polys[1].cls == ANNOT_POSITIVE && !strcmp(s->polys[1].type, "Spline"));
    CHECK(s->polys[1].rings[0].xy[0] == 10);
    CHECK(s->polys[2].cls == ANNOT_NEGATIVE && s->polys[3].cls == ANNOT_IGNORED);
    /* 12×12 grid of 1-px cells at the corner: inside strictly (0, 10), minus the (4, 6) square */
    uint8_t m[144];
    struct annot_grid g = {0, 0, 1, 12, 12};
    CHECK(annot_rasterise_mask(s, &g, ANNOT_SAMPLE_CORNER, 255, m) == WV_OK);
    int ok = 1, count = 0;
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 12; c++) {
            int in = r > 0 && r < 10 && c > 0 && c < 10 && !(r > 4 && r < 6 && c > 4 && c < 6);
            if ((m[r * 12 + c] == 255) != in) ok = 0;
            count += m[r * 12 + c] != 0;
        }
    CHECK_MSG(ok, "corner raster of the square with an exclusion (%d px)", count);
    CHECK(count == 80);
    /* fractions: cell (0..12) of 6 px, 4×4 samples; the square covers 10×10 of 12×12 */
    float fr[4];
    struct annot_grid g2 = {0, 0, 6, 2, 2};
    CHECK(annot_rasterise_fraction(s, &g2, 6, fr) == WV_OK);
    /* cell (0,0) [0,6)²: samples at .5..5.5: all inside the square, minus exclusion (4,6)² → 4 */
    CHECK(fabsf(fr[0] - 32.0f / 36) < 1e-6f);
    CHECK(fabsf(fr[3] - 16.0f / 36) < 1e-6f); /* [6,12)²: x,y in {6.5..9.5} */
    annot_set_free(s);

    const char *bad[] = {
        "<ASAP_Annotations><Annotations><Annotation><Coordinates><Coordinate Order=\"0\" X=\"a\" "
        "Y=\"1\"/></Coordinates></Annotation></Annotations></ASAP_Annotations>",
        "<ASAP_Annotations><Annotations><Annotation><Coordinates><Coordinate Order=\"0\" X=\"nan\""
        " Y=\"1\"/></Coordinates></Annotation></Annotations></ASAP_Annotations>",
        "<ASAP_Annotations><Annotations>",
        "<foo/>",
        "",
        "{\"positive\": 3}",
        "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":"
        "{\"type\":\"Polygon\",\"coordinates\":[[[1,2],[3]]]}}]}",
        "[1,2,",
        "plain text",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct annot_set *t = NULL;
        enum wv_status st = annot_parse((const uint8_t *)bad[i], strlen(bad[i]), &t);
        CHECK_MSG(st == WV_EFORMAT && t == NULL, "bad input %zu accepted", i);
        printf("bad %zu: %s\n", i, error_msg());
        error_clear();
    }
}

static void test_geojson(void)
{
    const char *gj =
        "{\"type\":\"FeatureCollection\",\"features\":["
        "{\"type\":\"Feature\",\"id\":\"x\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
        "[[[0,0],[20,0],[20,20],[0,20],[0,0]],[[5,5],[15,5],[15,15],[5,15],[5,5]]]},"
        "\"properties\":{\"objectType\":\"annotation\",\"classification\":{\"name\":\"Tumor\","
        "\"color\":[200,0,0]}}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"MultiPolygon\",\"coordinates\":"
        "[[[[30,0],[40,0],[40,10],[30,10]]],[[[50,0],[60,0],[60,10]]]]},"
        "\"properties\":{\"name\":\"Tumor\"}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,1]},"
        "\"properties\":{\"objectType\":\"annotation\"}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],"
        "[1,1]]]},\"properties\":{\"objectType\":\"detection\"}},"
        "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,0],"
        "[1,1]]]},\"properties\":{\"classification\":{\"name\":\"Stroma\"}}}]}";
    struct annot_set *s = parse(gj);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(!strcmp(s->format, "geojson") && s->n == 4 && s->n_skipped == 2 && s->n_ignored == 1);
    CHECK(s->polys[0].n_rings == 2 && s->polys[0].cls == ANNOT_POSITIVE);
    CHECK(s->polys[1].cls == ANNOT_POSITIVE && s->polys[2].cls == ANNOT_POSITIVE);
    uint8_t m[25 * 70];
    struct annot_grid g = {0, 0, 1, 25, 70};
    CHECK(annot_rasterise_mask(s, &g, ANNOT_SAMPLE_CENTER, 1, m) == WV_OK);
    CHECK(m[2 * 70 + 2] == 1 && m[10 * 70 + 10] == 0 && m[17 * 70 + 17] == 1); /* hole */
    CHECK(m[5 * 70 + 35] == 1 && m[2 * 70 + 58] == 1 && m[8 * 70 + 52] == 0);  /* triangle */
    CHECK(m[22 * 70 + 2] == 0);
    annot_set_free(s);
    /* a bare array of features and a lone Feature */
    s = parse("[{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[0,0],"
              "[4,0],[4,4]]]},\"properties\":{\"classification\":{\"name\":\"Tumor\"}}}]");
    CHECK(s && s->n == 1);
    annot_set_free(s);
}

int main(void)
{
    test_fixtures();
    test_asap();
    test_geojson();
    return tu_finish("test_annot");
}
