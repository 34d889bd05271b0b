/* test_slide.c — wsi/slide.h on the real fixtures (../shared/fixtures/slides): properties,
 * pixel size sources and overrides, level choice with tolerance, reads (exact copy at scale 1,
 * white outside), bad inputs with their messages, and several reader threads on one handle
 * compared with a single-threaded read. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "wsi/slide.h"

static char path_buf[4096];
static const char *fixture(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/fixtures/slides/%s", tu_shared(), name);
    return path_buf;
}

static struct slide *open_ok(const char *name)
{
    struct slide *s = NULL;
    error_clear();
    enum wv_status st = slide_open(fixture(name), &s);
    CHECK_MSG(st == WV_OK && s, "%s: %s", name, error_msg());
    return st == WV_OK ? s : NULL;
}

static void test_properties(void)
{
    struct slide *s = open_ok("CMU-1-Small-Region.svs");
    if (s) {
        CHECK(!strcmp(slide_vendor(s), "aperio"));
        CHECK(slide_level_count(s) == 1);
        CHECK(slide_level_width(s, 0) == 2220 && slide_level_height(s, 0) == 2967);
        CHECK(slide_level_downsample(s, 0) == 1.0);
        CHECK(slide_level_tile_width(s, 0) == 240);
        CHECK(fabs(slide_mpp_x(s) - 0.499) < 1e-9 && fabs(slide_mpp_y(s) - 0.499) < 1e-9);
        CHECK(slide_mpp_source(s) == SLIDE_MPP_OPENSLIDE);
        CHECK(slide_objective_power(s) == 20);
        CHECK(slide_associated_count(s) == 3);
        int found = 0;
        for (int i = 0; i < slide_associated_count(s); i++) {
            const char *n = slide_associated_name(s, i);
            found += !strcmp(n, "label") || !strcmp(n, "macro") || !strcmp(n, "thumbnail");
        }
        CHECK(found == 3);
        CHECK(slide_error(s) == NULL);
        CHECK(slide_set_mpp(s, 0.25) == WV_OK);
        CHECK(slide_mpp_x(s) == 0.25 && slide_mpp_source(s) == SLIDE_MPP_USER);
        CHECK(slide_file_mpp_x(s) == 0.499);
        error_clear();
        CHECK(slide_set_mpp(s, -1) == WV_EINVAL);
        error_clear();
        slide_close(s);
    }

    s = open_ok("tcga-cr-7395-01a-01-ts1.svs");
    if (s) {
        CHECK(!strcmp(slide_vendor(s), "aperio"));
        CHECK(slide_level_count(s) == 2);
        CHECK(slide_level_width(s, 0) == 4443 && slide_level_height(s, 0) == 3567);
        CHECK(slide_level_width(s, 1) == 2221 && slide_level_height(s, 1) == 1783);
        CHECK(fabs(slide_level_downsample(s, 1) - 2.0005055) < 1e-6);
        CHECK(slide_mpp_x(s) == 0 && slide_mpp_source(s) == SLIDE_MPP_NONE);
        CHECK(slide_objective_power(s) == 0);
        CHECK(slide_associated_count(s) == 1 && !strcmp(slide_associated_name(s, 0), "thumbnail"));
        error_clear();
        CHECK(slide_require_mpp(s) == WV_EINVAL);
        CHECK_MSG(strstr(error_msg(), "--mpp") != NULL, "message: %s", error_msg());
        error_clear();
        uint8_t px[3];
        CHECK(slide_read_region_mpp(s, 0, 0, 1, 1, 0.5, px) == WV_EINVAL);
        error_clear();
        /* 2.0005 is within the tolerance of 2 */
        CHECK(slide_best_level(s, 2.0) == 1);
        CHECK(slide_best_level(s, 1.9) == 0);
        slide_close(s);
    }

    s = open_ok("boxes.tiff");
    if (s) {
        CHECK(!strcmp(slide_vendor(s), "generic-tiff"));
        CHECK(slide_level_count(s) == 4);
        static const int64_t dims[4][2] = {{300, 250}, {150, 125}, {75, 62}, {37, 31}};
        for (int i = 0; i < 4; i++)
            CHECK(slide_level_width(s, i) == dims[i][0] && slide_level_height(s, i) == dims[i][1]);
        CHECK(fabs(slide_level_downsample(s, 2) - 4.016129) < 1e-5);
        /* 28.35 px/cm = 72 dpi: implausible for a scan → unknown (slide.h) */
        CHECK(!strcmp(slide_property(s, "tiff.ResolutionUnit"), "centimeter"));
        CHECK(slide_mpp_source(s) == SLIDE_MPP_NONE);
        CHECK(slide_best_level(s, 4.0) == 2); /* 4.016 ≤ 4·1.01: OpenSlide alone would say 1 */
        CHECK(slide_best_level(s, 3.9) == 1);
        CHECK(slide_best_level(s, 100) == 3);
        CHECK(slide_best_level(s, 0.5) == 0);
        slide_close(s);
    }
}

static void test_reads(void)
{
    struct slide *s = open_ok("CMU-1-Small-Region.svs");
    if (!s) return;
    enum { W = 300, H = 200 };
    uint8_t *a = malloc(W * H * 3), *b = malloc(W * H * 3);
    /* scale exactly 1 (target = the slide's own mpp): the level's pixels */
    CHECK(slide_read_level(s, 0, 1000, 1200, W, H, a) == WV_OK);
    CHECK(slide_read_region_mpp(s, 1000, 1200, W, H, 0.499, b) == WV_OK);
    CHECK_MSG(!memcmp(a, b, W * H * 3), "read at the native mpp must equal the level's pixels");
    CHECK(slide_read_region_ds(s, 1000, 1200, W, H, 1.0, 1.0, b) == WV_OK);
    CHECK(!memcmp(a, b, W * H * 3));
    /* far outside the slide and negative coordinates: white */
    CHECK(slide_read_region_mpp(s, -5000, 100000, W, H, 1.0, b) == WV_OK);
    int white = 1;
    for (int k = 0; k < W * H * 3; k++) white &= b[k] == 255;
    CHECK_MSG(white, "outside the slide must be white");
    /* a region straddling the right edge: inside not white, outside white */
    CHECK(slide_read_level(s, 0, 2220 - 10, 1500, 20, 1, a) == WV_OK);
    CHECK(a[3 * 15] == 255 && a[3 * 15 + 1] == 255 && a[3 * 15 + 2] == 255);
    CHECK(slide_read_region_mpp(s, 0, 0, 0, 5, 0.5, b) == WV_OK); /* empty is fine */
    error_clear();
    CHECK(slide_read_region_mpp(s, 0, 0, -1, 5, 0.5, b) == WV_EINVAL);
    error_clear();
    CHECK(slide_read_level(s, 3, 0, 0, 1, 1, b) == WV_EINVAL);
    error_clear();
    CHECK(slide_error(s) == NULL); /* argument errors are not sticky */
    free(a);
    free(b);
    slide_close(s);
}

/* ---- threads ---- */
struct job {
    struct slide *s;
    int index;
    uint8_t *out;
    enum wv_status st;
};
enum { T_W = 257, T_H = 131, N_JOBS = 8 };
static void job_region(int i, int64_t *x, int64_t *y, double *mpp)
{
    *x = 37 + 211 * i, *y = 101 + 305 * i, *mpp = i % 2 ? 1.0 : 0.7;
}
static void *worker(void *arg)
{
    struct job *j = arg;
    int64_t x, y;
    double mpp;
    for (int rep = 0; rep < 3; rep++) {
        job_region(j->index, &x, &y, &mpp);
        j->st = slide_read_region_mpp(j->s, x, y, T_W, T_H, mpp, j->out);
        if (j->st != WV_OK) break;
    }
    return NULL;
}

static void test_threads(void)
{
    struct slide *s = open_ok("CMU-1-Small-Region.svs");
    if (!s) return;
    uint8_t *want[N_JOBS];
    struct job jobs[N_JOBS];
    pthread_t th[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        int64_t x, y;
        double mpp;
        job_region(i, &x, &y, &mpp);
        want[i] = malloc(T_W * T_H * 3);
        CHECK(slide_read_region_mpp(s, x, y, T_W, T_H, mpp, want[i]) == WV_OK);
        jobs[i] = (struct job){s, i, malloc(T_W * T_H * 3), WV_OK};
    }
    for (int i = 0; i < N_JOBS; i++) pthread_create(&th[i], NULL, worker, &jobs[i]);
    for (int i = 0; i < N_JOBS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_JOBS; i++) {
        CHECK(jobs[i].st == WV_OK);
        CHECK_MSG(!memcmp(jobs[i].out, want[i], T_W * T_H * 3), "thread %d differs", i);
        free(jobs[i].out);
        free(want[i]);
    }
    slide_close(s);
}

static void expect_fail(const char *path, const char *msg_part)
{
    struct slide *s = (struct slide *)1;
    error_clear();
    enum wv_status st = slide_open(path, &s);
    CHECK_MSG(st != WV_OK && s == NULL, "%s must fail to open", path);
    CHECK_MSG(strstr(error_msg(), msg_part) != NULL, "%s: message '%s' lacks '%s'", path,
              error_msg(), msg_part);
    error_clear();
}

static void test_bad(void)
{
    char p[4096], q[4096];
    expect_fail(fixture("unopenable.tiff"), "Unsupported TIFF compression");
    expect_fail(fixture("unreadable.svs"), "Bogus marker length");
    expect_fail(fixture("broken.svs"), "not a supported slide format");
    expect_fail(fixture("kidney-48-5.tif"), "not a supported slide format");
    expect_fail(fixture("OS-1-detail.ome.tif"), "not a supported slide format");
    snprintf(p, sizeof p, "%s/no-such-slide.svs", tu_tmp());
    expect_fail(p, "no such file");
    expect_fail(tu_tmp(), "is a directory");
    snprintf(p, sizeof p, "%s/test_slide_empty.svs", tu_tmp());
    FILE *f = fopen(p, "wb");
    if (f) fclose(f);
    expect_fail(p, "empty file");
    /* truncated copy of a good slide: the directories of an SVS follow its tiles */
    snprintf(q, sizeof q, "%s/test_slide_truncated.svs", tu_tmp());
    FILE *in = fopen(fixture("CMU-1-Small-Region.svs"), "rb"), *out = fopen(q, "wb");
    if (in && out) {
        static char buf[1 << 16];
        size_t left = 1500000, n;
        while (left && (n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in)) > 0) {
            fwrite(buf, 1, n, out);
            left -= n;
        }
    }
    if (in) fclose(in);
    if (out) fclose(out);
    expect_fail(q, "truncated TIFF");
}

int main(void)
{
    struct stat st;
    if (stat(fixture("CMU-1-Small-Region.svs"), &st) != 0) {
        printf("test_slide: fixtures not found under %s, skipping\n", tu_shared());
        return 77;
    }
    test_properties();
    test_reads();
    test_threads();
    test_bad();
    return tu_finish("test_slide");
}
