/*
 * test_resultsdb.c — heatmaps/resultsdb: schema creation, upserts, replace-on-rerun (no duplicate
 * scores or lesions), failed slides with reasons, lookups, 4 forked writers on one database (no
 * "database is locked", no lost rows), a garbage results.sqlite, and merging with conflicts.
 * Python's sqlite3 view of the file is checked by tests/integration/results_check.py.
 */
#include "heatmaps/resultsdb.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/util.h"
#include "testutil.h"

static void db_path(char *out, size_t n, const char *name)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/resultsdb_%s", tu_tmp(), name);
    util_mkdir_p(dir);
    snprintf(out, n, "%s/results.sqlite", dir);
    char p[1100];
    unlink(out);
    snprintf(p, sizeof p, "%s-wal", out);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", out);
    unlink(p);
}

/* SELECT COUNT(*) ... through a separate plain connection (what another process would see). */
static long long count_sql(const char *path, const char *sql)
{
    sqlite3 *c = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(c, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else
        fprintf(stderr, "  count_sql(%s): %s\n", sql, sqlite3_errmsg(c));
    sqlite3_finalize(s);
    sqlite3_close(c);
    return v;
}

static struct resultsdb_slide slide_info(const char *id, const char *hash)
{
    struct resultsdb_slide s = {0};
    s.slide_id = id;
    s.path = "/data/slides/x.svs";
    s.size_bytes = 123456;
    s.content_hash = hash;
    s.vendor = "aperio";
    s.width = 46000;
    s.height = 32914;
    s.mpp_x = 0.2499;
    s.mpp_y = 0.2499;
    return s;
}

static void test_basic(void)
{
    char path[1200];
    db_path(path, sizeof path, "basic");
    struct resultsdb *db = NULL;
    CHECK(resultsdb_open(path, &db) == WV_OK);
    if (!db) return;
    CHECK(count_sql(path, "PRAGMA user_version") == RESULTSDB_SCHEMA_VERSION);
    int64_t run = 0;
    CHECK(resultsdb_run_begin(db, "0.1.0", "abc", "{\"mpp\":0.5}", &run) == WV_OK && run == 1);

    struct resultsdb_slide sl = slide_info("tumor_001", "h1");
    sl.label = "tumor";
    CHECK(resultsdb_slide_start(db, &sl) == WV_OK);
    struct resultsdb_row row;
    int found = 0;
    CHECK(resultsdb_get_slide(db, "tumor_001", &row, &found) == WV_OK && found);
    CHECK(row.status && !strcmp(row.status, "running") && !row.has_scores && row.run_id == 1);
    CHECK(row.label && !strcmp(row.label, "tumor") && row.width == 46000);
    resultsdb_row_free(&row);

    struct resultsdb_scores sc = {0.87, 1.25, 5000, 1, 2, 3, 4, 10};
    struct resultsdb_lesion les[3] = {{0.9, 100, 200, 5}, {0.8, 300, 400, 1}, {0.7, 5, 6, 2}};
    CHECK(resultsdb_slide_done(db, "tumor_001", &sc, les, 3, "/out/tumor_001.h5") == WV_OK);
    CHECK(resultsdb_get_slide(db, "tumor_001", &row, &found) == WV_OK && found);
    CHECK(row.status && !strcmp(row.status, "done") && row.has_scores &&
          row.scores.slide_prob == 0.87 && row.scores.n_tissue_cells == 5000 &&
          row.scores.seconds_total == 10 && row.h5_path && !strcmp(row.h5_path, "/out/tumor_001.h5"));
    resultsdb_row_free(&row);

    /* re-run: start (label kept when not given) + done with 2 lesions replaces, never adds */
    int64_t run2 = 0;
    CHECK(resultsdb_run_begin(db, "0.1.0", "abc", NULL, &run2) == WV_OK && run2 == 2);
    sl.label = NULL;
    CHECK(resultsdb_slide_start(db, &sl) == WV_OK);
    sc.slide_prob = 0.5;
    CHECK(resultsdb_slide_done(db, "tumor_001", &sc, les + 1, 2, "/out/tumor_001.h5") == WV_OK);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM slides") == 1);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM scores") == 1);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM lesions") == 2);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM lesions WHERE run_id = 2") == 2);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM slides WHERE label = 'tumor'") == 1);
    struct resultsdb_lesion *got = NULL;
    size_t n = 0;
    CHECK(resultsdb_lesions(db, "tumor_001", &got, &n) == WV_OK && n == 2);
    CHECK(got && got[0].prob == 0.8 && got[0].x == 300 && got[1].area_cells == 2);
    free(got);
    CHECK(resultsdb_find_by_hash(db, "h1", &row, &found) == WV_OK && found &&
          !strcmp(row.slide_id, "tumor_001") && row.scores.slide_prob == 0.5);
    resultsdb_row_free(&row);
    CHECK(resultsdb_find_by_hash(db, "nope", &row, &found) == WV_OK && !found);

    /* failures: a slide that never started, then a done slide that fails on a re-run */
    CHECK(resultsdb_slide_failed(db, "broken", "/data/broken.svs", "not a supported slide format") == WV_OK);
    CHECK(resultsdb_get_slide(db, "broken", &row, &found) == WV_OK && found);
    CHECK(!strcmp(row.status, "failed") && row.error &&
          !strcmp(row.error, "not a supported slide format") && !strcmp(row.path, "/data/broken.svs"));
    resultsdb_row_free(&row);
    struct resultsdb_slide s2 = slide_info("normal_002", "h2");
    CHECK(resultsdb_slide_start(db, &s2) == WV_OK);
    CHECK(resultsdb_slide_done(db, "normal_002", &sc, les, 3, "/out/normal_002.h5") == WV_OK);
    CHECK(resultsdb_slide_start(db, &s2) == WV_OK);
    CHECK(resultsdb_slide_failed(db, "normal_002", NULL, "disk full") == WV_OK);
    CHECK(resultsdb_get_slide(db, "normal_002", &row, &found) == WV_OK && found);
    CHECK(!strcmp(row.status, "failed") && !strcmp(row.error, "disk full") && !row.has_scores &&
          row.path && !row.h5_path);
    resultsdb_row_free(&row);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM lesions WHERE slide_id = 'normal_002'") == 0);

    /* argument errors and missing rows are not sticky */
    CHECK(resultsdb_slide_done(db, "never_started", &sc, NULL, 0, NULL) == WV_ENOTFOUND);
    printf("  not started: %s\n", error_msg());
    error_clear();
    CHECK(resultsdb_run_end(db, 999, "done") == WV_ENOTFOUND);
    error_clear();
    CHECK(resultsdb_error(db) == NULL);
    CHECK(resultsdb_run_end(db, run2, "done") == WV_OK);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM runs WHERE ended_at IS NOT NULL AND status = 'done'") == 1);

    /* a slide id with quotes and SQL in it is just a value */
    struct resultsdb_slide evil = slide_info("x'); DROP TABLE slides; --", "h3");
    CHECK(resultsdb_slide_start(db, &evil) == WV_OK);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM slides") == 4);

    struct resultsdb_counts c;
    CHECK(resultsdb_count(db, &c) == WV_OK);
    CHECK(c.total == 4 && c.done == 1 && c.failed == 2 && c.running == 1 && c.pending == 0);
    resultsdb_close(db);
}

struct list_acc {
    int n;
    char ids[8][64];
};
static int list_cb(void *ctx, const struct resultsdb_row *r)
{
    struct list_acc *a = ctx;
    if (a->n < 8) snprintf(a->ids[a->n], 64, "%s", r->slide_id);
    a->n++;
    return 0;
}

static void test_list(void)
{
    char p[1200];
    db_path(p, sizeof p, "list");
    struct resultsdb *db = NULL;
    CHECK(resultsdb_open(p, &db) == WV_OK);
    if (!db) return;
    const char *ids[] = {"c", "a", "b"};
    struct resultsdb_scores sc = {0.1, 0, 1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 3; i++) {
        struct resultsdb_slide s = slide_info(ids[i], ids[i]);
        CHECK(resultsdb_slide_start(db, &s) == WV_OK);
        if (i != 2) CHECK(resultsdb_slide_done(db, ids[i], &sc, NULL, 0, "x.h5") == WV_OK);
    }
    struct list_acc all = {0}, done = {0};
    CHECK(resultsdb_list(db, NULL, list_cb, &all) == WV_OK && all.n == 3);
    CHECK(!strcmp(all.ids[0], "a") && !strcmp(all.ids[1], "b") && !strcmp(all.ids[2], "c"));
    CHECK(resultsdb_list(db, "done", list_cb, &done) == WV_OK && done.n == 2);
    resultsdb_close(db);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

enum { N_PROC = 4, N_OWN = 40, N_SHARED = 10, N_LES = 5 };

static int writer_child(const char *path, int k)
{
    struct resultsdb *db = NULL;
    if (resultsdb_open(path, &db) != WV_OK) {
        fprintf(stderr, "  writer %d: open: %s\n", k, error_msg());
        return 1;
    }
    int64_t run = 0;
    int bad = 0;
    if (resultsdb_run_begin(db, "0.1.0", "m", NULL, &run) != WV_OK) bad++;
    struct resultsdb_lesion les[N_LES];
    for (int i = 0; i < N_LES; i++) les[i] = (struct resultsdb_lesion){0.5 + i * 0.01, i, k, 1};
    char id[64];
    for (int i = 0; i < N_OWN + N_SHARED && !bad; i++) {
        /* own slides, plus shared ones every writer redoes (upsert contention on one key) */
        if (i < N_OWN) snprintf(id, sizeof id, "w%d_s%03d", k, i);
        else snprintf(id, sizeof id, "shared_%03d", i - N_OWN);
        struct resultsdb_slide s = slide_info(id, id);
        struct resultsdb_scores sc = {(double)k / 10, 0, i, 0, 0, 0, 0, 0};
        if (resultsdb_slide_start(db, &s) != WV_OK) bad++;
        else if (i % 7 == 3) {
            if (resultsdb_slide_failed(db, id, NULL, "synthetic failure") != WV_OK) bad++;
        } else if (resultsdb_slide_done(db, id, &sc, les, N_LES, "x.h5") != WV_OK) {
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  writer %d: %s\n", k, error_msg());
    if (resultsdb_run_end(db, run, "done") != WV_OK) bad++;
    resultsdb_close(db);
    return bad ? 1 : 0;
}

static void test_concurrency(void)
{
    char path[1200];
    db_path(path, sizeof path, "conc");
    pid_t pids[N_PROC];
    double t0 = util_now();
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < N_PROC; k++) {
        pids[k] = fork();
        if (pids[k] == 0) _exit(writer_child(path, k)); /* each child opens its own connection */
    }
    int ok = 1;
    for (int k = 0; k < N_PROC; k++) {
        int ws = 0;
        waitpid(pids[k], &ws, 0);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) ok = 0;
    }
    CHECK_MSG(ok, "every writer finished without a database error");
    long long slides = count_sql(path, "SELECT COUNT(*) FROM slides");
    long long own_done = count_sql(path, "SELECT COUNT(*) FROM slides WHERE status='done' AND slide_id LIKE 'w%'");
    long long les = count_sql(path, "SELECT COUNT(*) FROM lesions");
    long long runs = count_sql(path, "SELECT COUNT(*) FROM runs WHERE status='done'");
    long long dup = count_sql(path, "SELECT COUNT(*) FROM (SELECT slide_id, idx FROM lesions GROUP BY 1, 2 HAVING COUNT(*) > 1)");
    int n_fail_own = 0;
    for (int i = 0; i < N_OWN; i++) n_fail_own += i % 7 == 3;
    long long want_slides = N_PROC * N_OWN + N_SHARED;
    long long want_own_done = (long long)N_PROC * (N_OWN - n_fail_own);
    long long done_shared = count_sql(path, "SELECT COUNT(*) FROM slides WHERE status='done' AND slide_id LIKE 'shared%'");
    printf("  4 writers: %lld slides (want %lld), %lld own done (want %lld), %lld lesions, %.2f s\n",
           slides, want_slides, own_done, want_own_done, les, util_now() - t0);
    CHECK(slides == want_slides);
    CHECK(own_done == want_own_done);
    CHECK(les == (own_done + done_shared) * N_LES);
    CHECK(runs == N_PROC && dup == 0);
    CHECK(count_sql(path, "SELECT COUNT(*) FROM scores") == own_done + done_shared);
}

/* ---- bad files ------------------------------------------------------------------------------ */

static void test_corrupt(void)
{
    char path[1200];
    db_path(path, sizeof path, "corrupt");
    FILE *f = fopen(path, "wb");
    if (f) {
        for (int i = 0; i < 200; i++) fputs("this is not an SQLite database at all. ", f);
        fclose(f);
    }
    struct resultsdb *db = (struct resultsdb *)1;
    enum wv_status st = resultsdb_open(path, &db);
    printf("  garbage db: %s: %s\n", wv_status_name(st), error_msg());
    CHECK(st == WV_EFORMAT && db == NULL);
    CHECK(strstr(error_msg(), "results.sqlite") && strstr(error_msg(), "not a database"));
    error_clear();
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/resultsdb_corrupt", tu_tmp());
    CHECK(resultsdb_open(dir, &db) != WV_OK); /* a directory */
    printf("  directory: %s\n", error_msg());
    error_clear();
}

/* ---- merge ---------------------------------------------------------------------------------- */

static void put_done(struct resultsdb *db, const char *id, const char *hash, double prob, int n_les)
{
    struct resultsdb_slide s = slide_info(id, hash);
    struct resultsdb_scores sc = {prob, 0, 1, 0, 0, 0, 0, 0};
    struct resultsdb_lesion les[4] = {{0.9, 1, 2, 1}, {0.8, 3, 4, 1}, {0.7, 5, 6, 1}, {0.6, 7, 8, 1}};
    CHECK(resultsdb_slide_start(db, &s) == WV_OK);
    CHECK(resultsdb_slide_done(db, id, &sc, les, (size_t)n_les, "x.h5") == WV_OK);
}

static void test_merge(void)
{
    char a[1200], b[1200];
    db_path(a, sizeof a, "merge_a");
    db_path(b, sizeof b, "merge_b");
    struct resultsdb *da = NULL, *db = NULL;
    CHECK(resultsdb_open(a, &da) == WV_OK);
    CHECK(resultsdb_open(b, &db) == WV_OK);
    if (!da || !db) return;
    int64_t r;
    CHECK(resultsdb_run_begin(da, "0.1.0", "m", NULL, &r) == WV_OK);
    CHECK(resultsdb_run_begin(db, "0.1.0", "m", "{\"shard\":2}", &r) == WV_OK);
    put_done(da, "only_a", "ha", 0.1, 2);
    put_done(da, "same", "hs", 0.5, 1);
    put_done(da, "differs", "hd", 0.2, 1);
    CHECK(resultsdb_slide_failed(da, "fixed_in_b", "/p", "out of memory") == WV_OK);
    put_done(da, "failed_in_b", "hf", 0.3, 1);
    put_done(db, "only_b", "hb", 0.9, 3);
    put_done(db, "same", "hs", 0.5, 1);
    put_done(db, "differs", "hd", 0.25, 1);
    put_done(db, "fixed_in_b", "hx", 0.7, 4);
    CHECK(resultsdb_slide_failed(db, "failed_in_b", NULL, "timeout") == WV_OK);
    resultsdb_close(db);

    struct resultsdb_merge_report rep;
    CHECK(resultsdb_merge(da, b, &rep) == WV_OK);
    printf("  merge: added %zu replaced %zu same %zu kept %zu conflicts %zu runs %zu\n",
           rep.n_added, rep.n_replaced, rep.n_same, rep.n_kept, rep.n_conflicts, rep.n_runs);
    CHECK(rep.n_added == 1 && rep.n_replaced == 1 && rep.n_same == 1 && rep.n_kept == 1 &&
          rep.n_conflicts == 1 && rep.n_runs == 1);
    for (size_t i = 0; i < rep.n_conflicts; i++) printf("  conflict: %s\n", rep.conflicts[i]);
    CHECK(rep.n_conflicts == 1 && strstr(rep.conflicts[0], "differs"));
    resultsdb_merge_report_free(&rep);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM slides") == 6);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM lesions WHERE slide_id = 'only_b'") == 3);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM lesions WHERE slide_id = 'fixed_in_b'") == 4);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM slides WHERE slide_id = 'fixed_in_b' AND status = 'done'") == 1);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM slides s JOIN runs r ON r.run_id = s.run_id WHERE s.slide_id = 'only_b' AND r.params_json = '{\"shard\":2}'") == 1);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM scores WHERE slide_id = 'differs' AND slide_prob = 0.2") == 1);

    /* merging again changes nothing: no duplicate rows, no new runs */
    CHECK(resultsdb_merge(da, b, &rep) == WV_OK);
    CHECK(rep.n_added == 0 && rep.n_replaced == 0 && rep.n_runs == 0 && rep.n_conflicts == 1);
    resultsdb_merge_report_free(&rep);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM runs") == 2);
    CHECK(count_sql(a, "SELECT COUNT(*) FROM lesions") == 2 + 1 + 1 + 1 + 3 + 4);

    /* a bad source: an error for the merge, dst's handle stays usable */
    char bad[1200];
    db_path(bad, sizeof bad, "merge_bad");
    FILE *f = fopen(bad, "wb");
    if (f) {
        fputs("garbage garbage garbage garbage garbage garbage garbage garbage garbage", f);
        fclose(f);
    }
    CHECK(resultsdb_merge(da, bad, &rep) != WV_OK);
    printf("  bad merge source: %s\n", error_msg());
    error_clear();
    CHECK(resultsdb_merge(da, "/nonexistent/results.sqlite", &rep) != WV_OK);
    error_clear();
    CHECK(resultsdb_error(da) == NULL);
    put_done(da, "after", "h9", 0.4, 0);
    resultsdb_close(da);
}

int main(void)
{
    test_basic();
    test_list();
    test_concurrency();
    test_corrupt();
    test_merge();
    return tu_finish("test_resultsdb");
}
