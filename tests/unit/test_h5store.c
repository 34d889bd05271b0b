/*
 * test_h5store.c — heatmaps/h5store: write/read round trip (float32 and float16 features), NaN
 * exactly off tissue, atomic commit (no temp or half file left on any failure), bad input,
 * non-HDF5 and incomplete files, and a full disk (tmpfs of 200 KiB in a private mount namespace,
 * else RLIMIT_FSIZE; exit 77 when neither is possible). h5py's view of the file is checked by
 * tests/integration/results_h5_check.py.
 */
#define _GNU_SOURCE
#include "heatmaps/h5store.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/util.h"
#include "testutil.h"

/* Number of entries in dir other than . and .. (temp files included). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void rm_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

static void fresh_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/h5store_%s", tu_tmp(), name);
    util_mkdir_p(out);
    rm_dir_files(out);
}

static void meta_for(struct h5store_meta *m, const char *id)
{
    memset(m, 0, sizeof *m);
    m->slide_id = id;
    m->slide_width = 7 * 64 - 5;
    m->slide_height = 5 * 64 - 3;
    m->mpp_x = 0.25;
    m->mpp_y = 0.26;
    m->target_mpp = 0.5;
    m->cell_size_level0 = 64.0;
    m->patch_level = 0;
    m->downsample_x = m->downsample_y = 1.0;
    m->level_width = m->slide_width;
    m->level_height = m->slide_height;
    m->patch_size = 64;
    m->model_sha256 = "ab12";
    m->tool_version = "0.1.0-test";
    m->save_path = "out";
}

/* A 5 × 7 grid with an irregular tissue pattern; heatmap values on tissue, garbage elsewhere
 * (the writer must store NaN there). coords/scores in raster order of tissue cells. */
enum { R = 5, C = 7, D = 3 };
static float hm[R * C];
static uint8_t ts[R * C];
static int32_t coords[R * C * 2];
static float scores[R * C];
static float feats[R * C * D];
static size_t make_grid(void)
{
    size_t n = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            int i = r * C + c;
            ts[i] = (uint8_t)(((r * 3 + c * 5) % 4) != 0 ? (r == 2 ? 7 : 1) : 0);
            hm[i] = ts[i] ? (float)i / (R * C) : 123.0f;
            if (ts[i]) {
                coords[2 * n] = c * 64;
                coords[2 * n + 1] = r * 64;
                scores[n] = hm[i];
                for (int d = 0; d < D; d++) feats[n * D + d] = (float)(n * 0.37 - d * 1.5 + 1e-3);
                n++;
            }
        }
    return n;
}

static void test_roundtrip(enum h5store_dtype dt)
{
    char dir[1024], path[2048];
    fresh_dir(dir, sizeof dir, dt == H5STORE_F32 ? "rt32" : "rt16");
    size_t n = make_grid();
    struct h5store_meta m;
    meta_for(&m, "slide_A");
    enum wv_status st = h5store_write_file(dir, &m, R, C, hm, ts, n, coords, scores, D, dt, feats,
                                           path, sizeof path);
    CHECK_MSG(st == WV_OK, "%s", error_msg());
    error_clear();
    CHECK(count_entries(dir) == 1); /* the result, no temp file */
    CHECK(strstr(path, "/slide_A.h5") != NULL);
    CHECK(h5store_check_complete(path) == WV_OK);

    struct h5store *h = NULL;
    CHECK((st = h5store_open_read(path, &h)) == WV_OK);
    if (st) return;
    struct h5store_info info;
    CHECK(h5store_read_info(h, &info) == WV_OK);
    CHECK(info.rows == R && info.cols == C && info.n_cells == n && info.feature_dim == D);
    CHECK(info.feature_dtype == dt && info.complete == 1);
    CHECK(info.slide_width == m.slide_width && info.slide_height == m.slide_height);
    CHECK(info.mpp_x == 0.25 && info.mpp_y == 0.26 && info.target_mpp == 0.5);
    CHECK(info.cell_size_level0 == 64.0 && info.patch_size_level0 == 64.0);
    CHECK(info.patch_size == 64 && info.patch_level == 0 && info.downsample_x == 1.0);
    CHECK(info.level_width == m.slide_width && info.level_height == m.slide_height);
    CHECK(strcmp(info.slide_id, "slide_A") == 0 && strcmp(info.model_sha256, "ab12") == 0);
    CHECK(strcmp(info.tool_version, "0.1.0-test") == 0);

    float hm2[R * C];
    uint8_t ts2[R * C];
    CHECK(h5store_read_heatmap(h, hm2) == WV_OK);
    CHECK(h5store_read_tissue(h, ts2) == WV_OK);
    int nan_ok = 1;
    for (int i = 0; i < R * C; i++) {
        if (ts2[i] != (ts[i] ? 1 : 0)) nan_ok = 0;
        if (ts[i] ? hm2[i] != hm[i] : !isnan(hm2[i])) nan_ok = 0;
    }
    CHECK_MSG(nan_ok, "heatmap NaN exactly off tissue, tissue 0/1");
    int32_t c2[R * C * 2];
    float s2[R * C], f2[R * C * D];
    CHECK(h5store_read_coords(h, 0, n, c2) == WV_OK);
    CHECK(memcmp(c2, coords, n * 2 * sizeof *c2) == 0);
    CHECK(h5store_read_scores(h, 1, n - 1, s2) == WV_OK);
    CHECK(memcmp(s2, scores + 1, (n - 1) * sizeof *s2) == 0);
    CHECK(h5store_read_features(h, 0, n, f2) == WV_OK);
    /* float16: 11 significant bits → relative error ≤ 2^-11 after round to nearest. */
    tu_check_tensor(dt == H5STORE_F32 ? "features f32" : "features f16", f2, feats, n * D,
                    dt == H5STORE_F32 ? 0 : 1e-4, dt == H5STORE_F32 ? 0 : 1.0 / 2048);
    CHECK(h5store_read_coords(h, n - 1, 2, c2) == WV_EINVAL); /* past the end */
    error_clear();
    h5store_close(h);
}

static void test_streaming_and_bad_input(void)
{
    char dir[1024], path[2048];
    fresh_dir(dir, sizeof dir, "bad");
    size_t n = make_grid();
    struct h5store_meta m;
    meta_for(&m, "s2");
    struct h5store *h = NULL;

    /* appended in three pieces, no features */
    CHECK(h5store_create(dir, &m, R, C, 0, H5STORE_F32, &h) == WV_OK);
    CHECK(count_entries(dir) == 1);
    CHECK(h5store_write_heatmap(h, hm, ts) == WV_OK);
    CHECK(h5store_append_cells(h, 3, coords, NULL) == WV_OK);
    CHECK(h5store_append_cells(h, 0, NULL, NULL) == WV_OK);
    CHECK(h5store_append_cells(h, n - 3, coords + 6, NULL) == WV_OK);
    CHECK(h5store_write_scores(h, n - 1, scores) == WV_EINVAL); /* wrong count, not sticky */
    error_clear();
    CHECK(h5store_write_scores(h, n, scores) == WV_OK);
    CHECK(h5store_append_cells(h, 1, coords, NULL) == WV_EINVAL);
    error_clear();
    CHECK(h5store_commit(h, path, sizeof path) == WV_OK);
    h5store_close(h);
    h = NULL;
    CHECK(h5store_check_complete(path) == WV_OK);
    struct h5store *r = NULL;
    struct h5store_info info;
    float f;
    CHECK(h5store_open_read(path, &r) == WV_OK);
    CHECK(r && h5store_read_info(r, &info) == WV_OK && info.n_cells == n && info.feature_dim == 0);
    CHECK(r && h5store_read_features(r, 0, 1, &f) == WV_ENOTFOUND);
    error_clear();
    h5store_close(r);

    /* tissue cell without a value: refused, and close leaves nothing new behind */
    meta_for(&m, "nan_on_tissue");
    float bad[R * C];
    memcpy(bad, hm, sizeof bad);
    for (int i = 0; i < R * C; i++)
        if (ts[i]) {
            bad[i] = NAN;
            break;
        }
    CHECK(h5store_create(dir, &m, R, C, 0, H5STORE_F32, &h) == WV_OK);
    CHECK(h5store_write_heatmap(h, bad, ts) == WV_EINVAL);
    printf("  nan on tissue: %s\n", error_msg());
    error_clear();
    /* commit before heatmap/scores: error, sticky, temp removed */
    CHECK(h5store_commit(h, NULL, 0) == WV_EINVAL);
    CHECK(h5store_error(h) != NULL);
    CHECK(h5store_write_heatmap(h, hm, ts) == WV_EINVAL); /* sticky */
    error_clear();
    h5store_close(h);
    CHECK(count_entries(dir) == 1);

    /* abandoned writer: close removes the temp file */
    meta_for(&m, "abandoned");
    CHECK(h5store_create(dir, &m, R, C, 2, H5STORE_F16, &h) == WV_OK);
    CHECK(h5store_write_heatmap(h, hm, ts) == WV_OK);
    h5store_close(h);
    CHECK(count_entries(dir) == 1);

    /* bad arguments */
    const char *bad_ids[] = {"", "a/b", "..", "."};
    for (int i = 0; i < 4; i++) {
        meta_for(&m, bad_ids[i]);
        h = (struct h5store *)1;
        CHECK(h5store_create(dir, &m, R, C, 0, H5STORE_F32, &h) == WV_EINVAL && h == NULL);
        error_clear();
    }
    meta_for(&m, "zero");
    CHECK(h5store_create(dir, &m, 0, C, 0, H5STORE_F32, &h) == WV_EINVAL);
    error_clear();
    m.cell_size_level0 = 0;
    CHECK(h5store_create(dir, &m, R, C, 0, H5STORE_F32, &h) == WV_EINVAL);
    error_clear();
    meta_for(&m, "nodir");
    char nodir[1100];
    snprintf(nodir, sizeof nodir, "%s/does/not/exist", dir);
    CHECK(h5store_create(nodir, &m, R, C, 0, H5STORE_F32, &h) == WV_EIO);
    printf("  missing folder: %s\n", error_msg());
    error_clear();
    CHECK(count_entries(dir) == 1);
}

static void test_bad_files(void)
{
    char dir[1024], p[2048];
    fresh_dir(dir, sizeof dir, "files");
    struct h5store *h = NULL;
    snprintf(p, sizeof p, "%s/missing.h5", dir);
    CHECK(h5store_open_read(p, &h) == WV_ENOTFOUND && h == NULL);
    CHECK(h5store_check_complete(p) == WV_ENOTFOUND);
    error_clear();
    snprintf(p, sizeof p, "%s/garbage.h5", dir);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("this is not an HDF5 file\n", f);
        fclose(f);
    }
    CHECK(h5store_open_read(p, &h) == WV_EFORMAT);
    printf("  garbage: %s\n", error_msg());
    CHECK(strstr(error_msg(), "not an HDF5 file") != NULL);
    error_clear();
    CHECK(h5store_check_complete(p) == WV_EFORMAT);
    error_clear();
    /* an HDF5 file truncated in the middle: open or check must fail cleanly */
    struct h5store_meta m;
    size_t n = make_grid();
    meta_for(&m, "trunc");
    char path[2048];
    CHECK(h5store_write_file(dir, &m, R, C, hm, ts, n, coords, scores, 0, H5STORE_F32, NULL, path,
                             sizeof path) == WV_OK);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        CHECK(truncate(path, sb.st_size / 2) == 0);
        enum wv_status st = h5store_check_complete(path);
        CHECK(st != WV_OK);
        printf("  truncated: %s (%s)\n", error_msg(), wv_status_name(st));
        error_clear();
    }
}

/* Child: make `dir` a full-able file system, write a file too big for it, check the outcome.
 * Exit 0 ok, 1 failed, 77 no way to limit the disk. */
static int disk_full_child(const char *dir)
{
    const char *how = NULL;
    if (unshare(CLONE_NEWNS) == 0 && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
        mount("tmpfs", dir, "tmpfs", 0, "size=200k") == 0) {
        how = "tmpfs size=200k";
    } else {
        struct rlimit rl = {200 * 1024, 200 * 1024};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) == 0) how = "RLIMIT_FSIZE 200 KiB";
    }
    if (!how) return 77;
    printf("  disk full via %s\n", how);
    /* 400 × 400 cells of noise: 640 KB of float32 that deflate cannot shrink below the limit. */
    enum { N = 400 };
    float *big = malloc(sizeof(float) * N * N);
    uint8_t *tis = malloc(N * N);
    if (!big || !tis) return 1;
    uint32_t s = 12345;
    for (int i = 0; i < N * N; i++) {
        s = s * 1664525u + 1013904223u;
        big[i] = (float)(s >> 8) / 16777216.0f;
        tis[i] = 1;
    }
    struct h5store_meta m;
    meta_for(&m, "full");
    m.slide_width = m.slide_height = N * 64;
    char path[2048];
    enum wv_status st = h5store_write_file(dir, &m, N, N, big, tis, 0, NULL, NULL, 0,
                                           H5STORE_F32, NULL, path, sizeof path);
    int ok = 1;
    printf("  disk full: %s: %s\n", wv_status_name(st), error_msg());
    if (st != WV_EIO) ok = 0;
    int left = count_entries(dir);
    if (left != 0) {
        printf("  disk full: %d files left in %s\n", left, dir);
        ok = 0;
    }
    free(big);
    free(tis);
    return ok ? 0 : 1;
}

static void test_disk_full(void)
{
    char dir[1024];
    fresh_dir(dir, sizeof dir, "full");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = disk_full_child(dir);
        fflush(stdout);
        _exit(rc);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (code == 77) {
        printf("test_h5store: SKIP disk-full case (neither tmpfs nor RLIMIT_FSIZE available)\n");
        return;
    }
    CHECK_MSG(code == 0, "disk-full child exited %d", code);
    CHECK(count_entries(dir) == 0);
}

int main(void)
{
    test_roundtrip(H5STORE_F32);
    test_roundtrip(H5STORE_F16);
    test_streaming_and_bad_input();
    test_bad_files();
    test_disk_full();
    return tu_finish("test_h5store");
}
