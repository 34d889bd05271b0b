/*
 * test_labels.c — labels.h: the slide labels CSV (header optional, separators, quotes, classes,
 * extensions, duplicates, every error with its line) and per-cell tumour fractions from the real
 * annotation fixtures (../shared/fixtures/annotations: CAMELYON17 ASAP XML, NCRF JSON), generated
 * ASAP XML / GeoJSON with exclusions, polygons outside the slide, malformed files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/labels.h"
#include "testutil.h"

static struct labels *parse(const char *s, enum wv_status want)
{
    struct labels *l = NULL;
    enum wv_status st = labels_parse_csv(s, strlen(s), &l);
    CHECK_MSG(st == want, "'%s': status %d, want %d (%s)", s, st, want, error_msg());
    if (st) printf("  expected error: %s\n", error_msg());
    error_clear();
    return l;
}

static void test_csv(void)
{
    struct labels *l = parse("tumor_001,Tumor,IDC,Micro\nnormal_001,Normal,IDC,None\n", WV_OK);
    CHECK(l && l->n == 2 && l->v[0].label == 1 && l->v[1].label == 0);
    CHECK(l && labels_find(l, "normal_001") == 1 && labels_find(l, "x") == -1);
    CHECK(l && strlen(l->sha256) == 64);
    labels_free(l);
    l = parse("\xEF\xBB\xBFimage,label\r\n\"a.tif\" ; tumour\r\n# comment\n\nb.svs\t0\nc,POSITIVE\n"
              "d,negative\ne,1\n",
              WV_OK);
    CHECK(l && l->n == 5);
    CHECK(l && !strcmp(l->v[0].name, "a") && l->v[0].label == 1);
    CHECK(l && !strcmp(l->v[1].name, "b") && l->v[1].label == 0);
    CHECK(l && l->v[2].label == 1 && l->v[3].label == 0 && l->v[4].label == 1);
    labels_free(l);
    l = parse("a,Tumor\na,Tumor\n", WV_OK); /* duplicate, same class: kept once, warned */
    CHECK(l && l->n == 1 && l->n_warnings == 1);
    labels_free(l);
    CHECK(!parse("a,Tumor\na,Normal\n", WV_EFORMAT));
    CHECK(!parse("a,Tumor\nb,Maybe\n", WV_EFORMAT));
    CHECK(!parse("a,Tumor\nb\n", WV_EFORMAT));
    CHECK(!parse("a,Tumor\n,Normal\n", WV_EFORMAT));
    CHECK(!parse("", WV_EFORMAT));
    CHECK(!parse("name,class\n", WV_EFORMAT));
    struct labels *b = NULL;
    CHECK(labels_parse_csv("a,Tumor\0", 8, &b) == WV_EFORMAT && !b);
    error_clear();
    CHECK(labels_read_csv("/nonexistent/labels.csv", &b) != WV_OK && !b);
    error_clear();
}

static void write(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(s, f);
    fclose(f);
}

static void test_fractions(void)
{
    char path[1024];
    struct labels_annot_info in;
    /* CAMELYON17 ASAP XML fixture: 3 Tumor polygons + 1 None; cells of 32 µm² → 128 px at 0.25 */
    snprintf(path, sizeof path, "%s/fixtures/annotations/patient_004_node_4.xml", tu_shared());
    {
        int rows = 800, cols = 800; /* 102,400 px square: covers the annotations */
        float *fr = malloc((size_t)rows * cols * sizeof *fr);
        enum wv_status st = labels_cell_fractions(path, rows, cols, 128, 102400, 102400, 4, fr, &in);
        CHECK_MSG(st == WV_OK, "%s", error_msg());
        printf("patient_004_node_4.xml: %d positive, %d negative, %d ignored, %.1f tumour cells\n",
               in.n_positive, in.n_negative, in.n_ignored, in.tumour_cells);
        CHECK(in.n_positive == 3 && in.tumour_cells > 1); /* the "None" polygon is not drawn */
        int ok = 1;
        for (int q = 0; q < rows * cols; q++) ok &= fr[q] >= 0 && fr[q] <= 1;
        CHECK(ok);
        free(fr);
    }
    /* NCRF JSON fixture (Tumor_001): positive polygons near (72k, 131k) */
    snprintf(path, sizeof path, "%s/fixtures/annotations/Tumor_001.json", tu_shared());
    {
        int rows = 300, cols = 200; /* 256-px cells: 51,200 × 76,800 … 0..153,600 */
        float *fr = malloc((size_t)rows * cols * sizeof *fr);
        enum wv_status st = labels_cell_fractions(path, rows, cols, 512, 102400, 153600, 2, fr, &in);
        CHECK_MSG(st == WV_OK, "%s", error_msg());
        printf("Tumor_001.json: %d positive, %d negative, %.1f tumour cells\n", in.n_positive,
               in.n_negative, in.tumour_cells);
        CHECK(in.n_positive >= 1 && in.tumour_cells > 0);
        CHECK(fr[(131800 / 512) * cols + 71900 / 512] > 0 || in.tumour_cells > 0);
        free(fr);
    }
    /* generated XML: a positive square with an exclusion inside, and one polygon wholly outside
     * the 1000 × 1000 slide; cells of 100 px */
    snprintf(path, sizeof path, "%s/test_labels_a.xml", tu_tmp());
    write(path,
          "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"
          "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"_0\"><Coordinates>"
          "<Coordinate Order=\"0\" X=\"100\" Y=\"100\"/><Coordinate Order=\"1\" X=\"500\" Y=\"100\"/>"
          "<Coordinate Order=\"2\" X=\"500\" Y=\"500\"/><Coordinate Order=\"3\" X=\"100\" Y=\"500\"/>"
          "</Coordinates></Annotation>"
          "<Annotation Name=\"B\" Type=\"Polygon\" PartOfGroup=\"_2\"><Coordinates>"
          "<Coordinate Order=\"0\" X=\"200\" Y=\"200\"/><Coordinate Order=\"1\" X=\"300\" Y=\"200\"/>"
          "<Coordinate Order=\"2\" X=\"300\" Y=\"300\"/><Coordinate Order=\"3\" X=\"200\" Y=\"300\"/>"
          "</Coordinates></Annotation>"
          "<Annotation Name=\"C\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>"
          "<Coordinate Order=\"0\" X=\"5000\" Y=\"5000\"/><Coordinate Order=\"1\" X=\"6000\" Y=\"5000\"/>"
          "<Coordinate Order=\"2\" X=\"6000\" Y=\"6000\"/></Coordinates></Annotation>"
          "</Annotations><AnnotationGroups/></ASAP_Annotations>\n");
    {
        float fr[100];
        CHECK(labels_cell_fractions(path, 10, 10, 100, 1000, 1000, 4, fr, &in) == WV_OK);
        CHECK(in.n_positive == 2 && in.n_negative == 1 && in.n_outside == 1);
        CHECK(fr[1 * 10 + 1] == 1.0f && fr[2 * 10 + 2] == 0.0f && fr[3 * 10 + 3] == 1.0f);
        CHECK(fr[0] == 0.0f && fr[9 * 10 + 9] == 0.0f);
        printf("generated XML: %.1f tumour cells (16 − 1 excluded = 15), %d polygon outside\n",
               in.tumour_cells, in.n_outside);
        CHECK(in.tumour_cells == 15.0);
    }
    /* GeoJSON with a hole */
    snprintf(path, sizeof path, "%s/test_labels_b.geojson", tu_tmp());
    write(path, "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
                "{\"classification\":{\"name\":\"Tumor\"}},\"geometry\":{\"type\":\"Polygon\","
                "\"coordinates\":[[[0,0],[400,0],[400,400],[0,400],[0,0]],"
                "[[100,100],[200,100],[200,200],[100,200],[100,100]]]}}]}");
    {
        float fr[100];
        CHECK_MSG(labels_cell_fractions(path, 10, 10, 100, 1000, 1000, 4, fr, &in) == WV_OK, "%s",
                  error_msg());
        CHECK(fr[0] == 1.0f && fr[1 * 10 + 1] == 0.0f && fr[3 * 10 + 3] == 1.0f);
        CHECK(in.tumour_cells == 15.0);
    }
    /* malformed files: a clear error, never a crash */
    const char *bad[] = {"<?xml version=\"1.0\"?><ASAP_Annotations><Annotations><Annotation",
                         "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":",
                         "<ASAP_Annotations><Annotations><Annotation PartOfGroup=\"_0\">"
                         "<Coordinates><Coordinate Order=\"0\" X=\"abc\" Y=\"1\"/></Coordinates>"
                         "</Annotation></Annotations></ASAP_Annotations>",
                         "not an annotation file"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/test_labels_bad%zu.txt", tu_tmp(), i);
        write(path, bad[i]);
        float fr[4];
        enum wv_status st = labels_cell_fractions(path, 2, 2, 100, 200, 200, 2, fr, &in);
        CHECK(st != WV_OK);
        printf("  malformed %zu: %s\n", i, error_msg());
        CHECK(strlen(error_msg()) > 0);
        error_clear();
    }
    float fr[4];
    CHECK(labels_cell_fractions("/nonexistent.xml", 2, 2, 100, 200, 200, 2, fr, &in) != WV_OK);
    error_clear();
    CHECK(labels_cell_fractions(path, 0, 2, 100, 200, 200, 2, fr, &in) == WV_EINVAL);
    error_clear();
}

/* the synthetic cohort's XML, when WV_SYNTH_DIR names a `wsi-vmamba synth` folder (the
 * integration test sets it); otherwise skipped */
static void test_synth(void)
{
    const char *dir = getenv("WV_SYNTH_DIR");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/annotations/tumor_001.xml", dir);
    float *fr = malloc(200 * 300 * sizeof *fr);
    struct labels_annot_info in;
    CHECK_MSG(labels_cell_fractions(path, 200, 300, 64, 19200, 12800, 4, fr, &in) == WV_OK, "%s",
              error_msg());
    printf("synthetic tumor_001.xml: %d positive, %.1f tumour cells\n", in.n_positive,
           in.tumour_cells);
    CHECK(in.n_positive >= 1 && in.tumour_cells > 0);
    free(fr);
}

int main(void)
{
    test_csv();
    test_fractions();
    test_synth();
    return tu_finish("test_labels");
}
