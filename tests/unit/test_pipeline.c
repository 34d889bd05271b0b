/*
 * test_pipeline.c — src/pipeline.h and src/progress.h on tiny generated inputs: a 1280×960
 * generic-TIFF slide (a pink disc on white) written with wsi/slide_writer.h and a model file with
 * the "tiny" random backbone and a small random head. Checks the grid, the streaming claim
 * (chunked head == one unchunked pass, bit-identical), independence of --readers/--queue/--threads,
 * a stop request (WV_EINTR, slide recorded failed, no new .h5), and the progress output.
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heatmaps/h5store.h"
#include "heatmaps/resultsdb.h"
#include "src/head.h"
#include "src/model_file.h"
#include "src/pipeline.h"
#include "src/pipeline_private.h"
#include "src/progress.h"
#include "src/util.h"
#include "src/vmamba.h"
#include "testutil.h"
#include "wsi/slide_writer.h"

#define SLIDE_W 1280
#define SLIDE_H 960
#define SLIDE_MPP 0.5

/* white with a pink disc (radius 200 px = 100 µm, well above the tissue filter's 10,000 µm²)
 * and a smaller purple one */
static enum wv_status tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w, int h,
                           uint8_t *px)
{
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            double X = (x + i + 0.5) * ds, Y = (y + j + 0.5) * ds;
            double d1 = hypot(X - 560, Y - 480), d2 = hypot(X - 1000, Y - 300);
            uint8_t *p = px + ((size_t)j * w + i) * 3;
            if (d1 < 200) {
                p[0] = 225, p[1] = (uint8_t)(120 + ((int)X * 7 + (int)Y * 3) % 40), p[2] = 190;
            } else if (d2 < 130) {
                p[0] = 150, p[1] = 90, p[2] = 190;
            } else {
                p[0] = p[1] = p[2] = 245;
            }
        }
    return WV_OK;
}

static int make_inputs(const char *dir, char *slide, char *model, size_t n)
{
    snprintf(slide, n, "%s/disc.tif", dir);
    snprintf(model, n, "%s/model.safetensors", dir);
    struct slide_writer_opts o;
    slide_writer_opts_init(&o);
    o.width_px = SLIDE_W;
    o.height_px = SLIDE_H;
    o.mpp = SLIDE_MPP;
    o.tile_fn = tile;
    o.n_threads = 1;
    if (slide_writer_write(slide, &o)) return -1;
    struct vmamba_config cfg;
    struct weights *bw = NULL;
    struct head *hd = NULL;
    if (model_backbone_preset("tiny", &cfg) || vmamba_random_weights(&cfg, 3, &bw)) return -1;
    struct head_config hc;
    head_config_default(&hc, cfg.dims[3]);
    hc.d_h = 16;
    head_config_derive(&hc);
    if (head_create_random(&hc, 4, &hd)) return -1;
    struct model_meta mm;
    model_meta_default(&mm);
    mm.target_mpp = 1.0; /* the slide is read at half its resolution: 640×480 target px */
    mm.region_size = 150; /* rounded down to 128 by the pipeline */
    mm.overlap = 32;
    enum wv_status st = model_file_save(model, bw, hd, &mm);
    head_free(hd);
    weights_free(bw);
    return st ? -1 : 0;
}

static void test_progress(const char *dir)
{
    char buf[32];
    progress_format_eta(42.4, buf, sizeof buf);
    CHECK(!strcmp(buf, "42s"));
    progress_format_eta(185, buf, sizeof buf);
    CHECK(!strcmp(buf, "3m05s"));
    progress_format_eta(3720, buf, sizeof buf);
    CHECK(!strcmp(buf, "1h02m"));
    progress_format_eta(NAN, buf, sizeof buf);
    CHECK(!strcmp(buf, "?"));
    char path[1024];
    snprintf(path, sizeof path, "%s/progress.log", dir);
    FILE *f = fopen(path, "w+");
    CHECK(f != NULL);
    if (!f) return;
    struct progress p;
    progress_init(&p, f, 0);
    CHECK(p.mode == PROGRESS_LOG); /* a file is not a terminal */
    progress_begin(&p, "slide7", 4, 2.0);
    for (size_t i = 1; i <= 4; i++) progress_update(&p, i, 0.5 * i);
    progress_end(&p, NULL);
    struct progress q;
    progress_init(&q, f, 1);
    progress_begin(&q, "quiet", 4, 2.0);
    progress_update(&q, 4, 2.0);
    progress_end(&q, "x");
    rewind(f);
    char text[1024] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK_MSG(strstr(text, "slide7: 4 regions, 2.0 Mpix to encode\n") != NULL, "%s", text);
    CHECK_MSG(strstr(text, "slide7: 4/4 regions in ") != NULL, "%s", text);
    CHECK_MSG(strstr(text, "quiet") == NULL, "quiet progress wrote: %s", text);
}

static float *read_heat(const char *path, int *rows, int *cols, size_t *n_cells)
{
    struct h5store *h = NULL;
    struct h5store_info info;
    float *heat = NULL;
    if (h5store_open_read(path, &h) || h5store_read_info(h, &info)) goto out;
    *rows = info.rows, *cols = info.cols, *n_cells = info.n_cells;
    heat = malloc((size_t)info.rows * info.cols * sizeof *heat);
    if (heat && h5store_read_heatmap(h, heat)) {
        free(heat);
        heat = NULL;
    }
out:
    h5store_close(h);
    return heat;
}

static void test_pipeline(const char *dir)
{
    char slide[1024], model[1024], out[1024];
    if (make_inputs(dir, slide, model, sizeof slide)) {
        CHECK_MSG(0, "inputs: %s", error_msg());
        return;
    }
    snprintf(out, sizeof out, "%s/out", dir);
    struct pipeline_options o;
    pipeline_options_default(&o);
    o.out_dir = out;
    o.device = "cpu";
    o.threads = 1;
    o.quiet = 1;
    o.check_streaming = 1;
    struct pipeline *p = NULL;
    const char *what = NULL;
    enum wv_status st = pipeline_open(model, &o, &p, &what);
    CHECK_MSG(st == WV_OK, "open: %s: %s", what ? what : "", error_msg());
    if (st) return;
    struct pipeline_slide_result r;
    st = pipeline_run_slide(p, slide, &r);
    CHECK_MSG(st == WV_OK, "run: %s", error_msg());
    printf("  %s: %d×%d cells, %zu tissue, %zu regions (region %lld px), p = %.6f, streaming "
           "diff %g\n",
           r.slide_id, r.cols, r.rows, r.n_tissue_cells, r.n_regions, (long long)r.region_px,
           r.slide_prob, r.streaming_max_diff);
    CHECK(!strcmp(r.slide_id, "disc"));
    CHECK(r.region_px == 128 && r.overlap_px == 32);
    CHECK(r.cols == 20 && r.rows == 15); /* 640×480 target px / 32 */
    CHECK(r.n_tissue_cells > 20 && r.n_tissue_cells < 300);
    CHECK(r.n_regions >= 2 && r.n_regions <= 20);
    CHECK(isfinite(r.slide_prob) && r.slide_prob > 0 && r.slide_prob < 1);
    /* the head is bit-identical for any chunking (src/head.h), so the streaming check sees 0 */
    CHECK_MSG(r.streaming_max_diff == 0, "streaming diff %g", r.streaming_max_diff);
    int rows = 0, cols = 0;
    size_t n_cells = 0;
    float *h1 = read_heat(r.h5_path, &rows, &cols, &n_cells);
    CHECK(h1 && rows == r.rows && cols == r.cols && n_cells == r.n_tissue_cells);
    size_t finite = 0;
    for (int k = 0; h1 && k < rows * cols; k++) finite += isfinite(h1[k]) != 0;
    CHECK(finite == r.n_tissue_cells);
    double p1 = r.slide_prob;
    pipeline_close(p, "done");

    /* other readers / queue / threads: the same bytes */
    o.readers = 3;
    o.queue = 1;
    o.threads = 2;
    o.check_streaming = 0;
    st = pipeline_open(model, &o, &p, &what);
    CHECK_MSG(st == WV_OK, "open: %s", error_msg());
    if (st) {
        free(h1);
        return;
    }
    st = pipeline_run_slide(p, slide, &r);
    CHECK_MSG(st == WV_OK, "run 2: %s", error_msg());
    float *h2 = read_heat(r.h5_path, &rows, &cols, &n_cells);
    CHECK(h1 && h2 && !memcmp(h1, h2, (size_t)rows * cols * sizeof *h1));
    CHECK(r.slide_prob == p1);
    free(h2);

    /* a stop request: WV_EINTR, "interrupted by SIGTERM", slide failed, the old result kept */
    struct stat sb0, sb1;
    CHECK(stat(r.h5_path, &sb0) == 0);
    pipeline_request_stop(SIGTERM);
    CHECK(pipeline_stop_signal() == SIGTERM);
    char h5path[4096];
    snprintf(h5path, sizeof h5path, "%s", r.h5_path);
    st = pipeline_run_slide(p, slide, &r);
    CHECK_MSG(st == WV_EINTR && !strcmp(error_msg(), "interrupted by SIGTERM"), "%s: %s",
              wv_status_name(st), error_msg());
    error_clear();
    CHECK(stat(h5path, &sb1) == 0 && sb1.st_mtime == sb0.st_mtime && sb1.st_ino == sb0.st_ino);
    pipeline_clear_stop();
    CHECK(pipeline_stop_signal() == 0);
    pipeline_close(p, "interrupted");
    char dbp[1200];
    snprintf(dbp, sizeof dbp, "%s/%s", out, RESULTSDB_FILE_NAME);
    struct resultsdb *db = NULL;
    struct resultsdb_row row;
    int found = 0;
    CHECK(resultsdb_open(dbp, &db) == WV_OK);
    CHECK(db && resultsdb_get_slide(db, "disc", &row, &found) == WV_OK && found);
    if (found) {
        CHECK(row.status && !strcmp(row.status, "failed"));
        CHECK(row.error && !strcmp(row.error, "interrupted by SIGTERM"));
        CHECK(!row.has_scores);
        resultsdb_row_free(&row);
    }
    resultsdb_close(db);
    free(h1);

    /* option errors come back as WV_EINVAL without touching anything */
    o.overlap_px = 48;
    st = pipeline_open(model, &o, &p, &what);
    CHECK_MSG(st == WV_EINVAL && !p && strstr(error_msg(), "multiple of 32"), "%s", error_msg());
    error_clear();
    o.overlap_px = 32;
    o.region_px = 20;
    st = pipeline_open(model, &o, &p, &what);
    CHECK_MSG(st == WV_EINVAL && !p && strstr(error_msg(), "at least 32"), "%s", error_msg());
    error_clear();
}

/* pipeline_rgb_to_input (the encoder's row conversion): every value equals the one-pixel-at-a-
 * time formula, for pixel counts around the 4-pixel step and the threading threshold, and for 1,
 * 2 and 5 threads. */
static void test_rgb_to_input(void)
{
    const float scale[3] = {1.0f / (255.0f * 0.229f), 1.0f / (255.0f * 0.224f), 1.0f / (255.0f * 0.225f)};
    const float bias[3] = {-0.485f / 0.229f, -0.456f / 0.224f, -0.406f / 0.225f};
    static const size_t sizes[] = {0, 1, 3, 4, 5, 7, 8, 13, 65536 * 4 + 3, 300001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        uint8_t *in = malloc(n * 3 + 1);
        float *want = malloc((n * 3 + 1) * sizeof *want), *got = malloc((n * 3 + 1) * sizeof *got);
        for (size_t i = 0; i < n * 3; i++) in[i] = (uint8_t)(i * 131 + (i >> 7));
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) want[i * 3 + c] = in[i * 3 + c] * scale[c] + bias[c];
        static const int threads[] = {1, 2, 5};
        for (int t = 0; t < 3; t++) {
            memset(got, 0xff, (n * 3 + 1) * sizeof *got);
            pipeline_rgb_to_input(in, got, n, scale, bias, threads[t]);
            CHECK_MSG(!memcmp(got, want, n * 3 * sizeof *got), "rgb_to_input %zu px, %d threads", n,
                      threads[t]);
            uint32_t tail;
            memcpy(&tail, got + n * 3, 4);
            CHECK_MSG(tail == 0xffffffffu, "rgb_to_input %zu px: wrote past the end", n);
        }
        free(in), free(want), free(got);
    }
}

/* The automatic reader count: 2 on the CPU whatever the threads; with a GPU half the compute
 * threads, clamped to [2, PIPELINE_MAX_AUTO_READERS]. */
static void test_auto_readers(void)
{
    static const int threads[] = {1, 2, 3, 4, 5, 10, 16, 17, 64, 256};
    static const int cuda[] = {2, 2, 2, 2, 2, 5, 8, 8, 8, 8};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        CHECK(pipeline_auto_readers(WV_DEVICE_CPU, threads[i]) == PIPELINE_DEFAULT_READERS);
        CHECK_MSG(pipeline_auto_readers(WV_DEVICE_CUDA, threads[i]) == cuda[i], "%d threads: %d",
                  threads[i], pipeline_auto_readers(WV_DEVICE_CUDA, threads[i]));
    }
    struct pipeline_options o;
    pipeline_options_default(&o);
    CHECK(o.readers <= 0); /* automatic unless set */
}

int main(void)
{
    test_rgb_to_input();
    test_auto_readers();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_pipeline", tu_tmp());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    if (util_mkdir_p(dir)) return 1;
    test_progress(dir);
    test_pipeline(dir);
    return tu_finish("test_pipeline");
}
