/*
 * resultsdb.c — the SQLite results database; contract and schema in resultsdb.h, user-facing
 * layout in docs/formats.md, concurrency rules in CAMELYON16_PROTOCOL.md §5.3.
 * Every write is one BEGIN IMMEDIATE transaction (taken with retries), values always bound.
 */
#include "resultsdb.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/util.h"

/* Extra attempts at BEGIN IMMEDIATE / COMMIT after SQLite itself gave up with BUSY (its busy
 * handler already waited RESULTSDB_BUSY_TIMEOUT_MS): with 8 writers SQLite's handler suffices
 * (§5.3), the retries cover a checkpoint or a slow disk holding the lock longer. */
#define BUSY_RETRIES 20
#define BUSY_SLEEP_MS 50

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

struct resultsdb {
    sqlite3 *c;
    char *path;
    int64_t run_id;
    enum wv_status err;
    char *errmsg;
};

/* ---- errors ----------------------------------------------------------------------------------- */

static enum wv_status code_for(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return WV_EFORMAT;
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return WV_EIO;
    case SQLITE_NOMEM:
        return WV_ENOMEM;
    default:
        return WV_EDB;
    }
}

/* Record a failure in the thread's message and, for database-level codes, the handle's sticky copy. */
__attribute__((format(printf, 3, 4))) static enum wv_status fail(struct resultsdb *db,
                                                                 enum wv_status code,
                                                                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (db && !db->err && code != WV_EINVAL && code != WV_ENOTFOUND) {
        db->err = code;
        db->errmsg = strdup(msg);
    }
    return error_set(code, "%s", msg);
}

/* A failed SQLite call: "<path>: <what>: <sqlite's message>". */
static enum wv_status sqlfail(struct resultsdb *db, int rc, const char *what)
{
    const char *m = db->c ? sqlite3_errmsg(db->c) : sqlite3_errstr(rc);
    return fail(db, code_for(rc), "%s: %s: %s", db->path, what, m ? m : sqlite3_errstr(rc));
}

static enum wv_status check(struct resultsdb *db, const char *what)
{
    if (!db) return error_set(WV_EINVAL, "%s: no database handle", what);
    if (db->err) return error_set(db->err, "%s", db->errmsg ? db->errmsg : "results database failed");
    return WV_OK;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

/* sqlite3_exec with retries while another connection holds the lock. */
static int exec_retry(sqlite3 *c, const char *sql)
{
    int rc = SQLITE_OK;
    for (int i = 0; i <= BUSY_RETRIES; i++) {
        rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
        if (!is_busy(rc)) break;
        sleep_ms(BUSY_SLEEP_MS + (int)(getpid() % 37));
    }
    return rc;
}

static enum wv_status begin(struct resultsdb *db)
{
    int rc = exec_retry(db->c, "BEGIN IMMEDIATE");
    return rc == SQLITE_OK ? WV_OK : sqlfail(db, rc, "BEGIN IMMEDIATE");
}

static enum wv_status commit(struct resultsdb *db)
{
    int rc = exec_retry(db->c, "COMMIT");
    if (rc == SQLITE_OK) return WV_OK;
    enum wv_status st = sqlfail(db, rc, "COMMIT");
    sqlite3_exec(db->c, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

static void rollback(struct resultsdb *db)
{
    if (db->c && !sqlite3_get_autocommit(db->c)) sqlite3_exec(db->c, "ROLLBACK", NULL, NULL, NULL);
}

static enum wv_status prepare(struct resultsdb *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db->c, sql, -1, st, NULL);
    return rc == SQLITE_OK ? WV_OK : sqlfail(db, rc, "prepare");
}

/* Bind helpers: NULL for absent strings, 0-as-unknown numbers where the header says so. */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}
static void bind_pos_double(sqlite3_stmt *s, int i, double v)
{
    if (v > 0) sqlite3_bind_double(s, i, v);
    else sqlite3_bind_null(s, i);
}
static void bind_id(sqlite3_stmt *s, int i, int64_t v)
{
    if (v > 0) sqlite3_bind_int64(s, i, v);
    else sqlite3_bind_null(s, i);
}

/* Step a statement expected to finish (no rows); finalizes it. */
static enum wv_status run_stmt(struct resultsdb *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    enum wv_status st = rc == SQLITE_DONE ? WV_OK : sqlfail(db, rc, what);
    sqlite3_finalize(s);
    return st;
}

/* ---- open and schema -------------------------------------------------------------------------- */

static const char *SCHEMA_V1 =
    "CREATE TABLE IF NOT EXISTS runs(run_id INTEGER PRIMARY KEY AUTOINCREMENT, tool_version TEXT,"
    " model_sha256 TEXT, params_json TEXT, host TEXT, started_at TEXT, ended_at TEXT, status TEXT);"
    "CREATE TABLE IF NOT EXISTS slides(slide_id TEXT PRIMARY KEY, path TEXT, size_bytes INTEGER,"
    " content_hash TEXT, vendor TEXT, width INTEGER, height INTEGER, mpp_x REAL, mpp_y REAL,"
    " status TEXT CHECK(status IN ('pending','running','done','failed')), error TEXT,"
    " run_id INTEGER, h5_path TEXT, updated_at TEXT, label TEXT);"
    "CREATE INDEX IF NOT EXISTS slides_content_hash ON slides(content_hash);"
    "CREATE TABLE IF NOT EXISTS scores(slide_id TEXT PRIMARY KEY REFERENCES slides(slide_id)"
    " ON DELETE CASCADE, run_id INTEGER, slide_prob REAL, tumor_area_mm2 REAL,"
    " n_tissue_cells INTEGER, seconds_read REAL, seconds_encode REAL, seconds_head REAL,"
    " seconds_write REAL, seconds_total REAL);"
    "CREATE TABLE IF NOT EXISTS lesions(slide_id TEXT REFERENCES slides(slide_id) ON DELETE CASCADE,"
    " idx INTEGER, run_id INTEGER, prob REAL, x INTEGER, y INTEGER, area_cells INTEGER,"
    " PRIMARY KEY(slide_id, idx));";

static enum wv_status user_version(struct resultsdb *db, sqlite3 *c, int *v)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? WV_OK : sqlfail(db, rc, "read schema version");
}

static enum wv_status migrate(struct resultsdb *db)
{
    int v = 0;
    enum wv_status st = begin(db);
    if (st) return st;
    if ((st = user_version(db, db->c, &v))) goto done;
    if (v > RESULTSDB_SCHEMA_VERSION) {
        st = fail(db, WV_EUNSUPPORTED, "%s: schema version %d is newer than this tool's (%d)",
                  db->path, v, RESULTSDB_SCHEMA_VERSION);
        goto done;
    }
    if (v < 1) {
        int rc = sqlite3_exec(db->c, SCHEMA_V1, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db->c, "PRAGMA user_version=1", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            st = sqlfail(db, rc, "create schema");
            goto done;
        }
    }
    /* Future versions: `if (v < 2) { ALTER TABLE ...; PRAGMA user_version=2; }` here. */
    st = commit(db);
done:
    if (st) rollback(db);
    return st;
}

enum wv_status resultsdb_open(const char *path, struct resultsdb **out)
{
    *out = NULL;
    if (!path || !path[0]) return error_set(WV_EINVAL, "results database: no path");
    struct resultsdb *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return error_set(WV_ENOMEM, "results database handle");
    }
    enum wv_status st = WV_OK;
    int rc = sqlite3_open_v2(path, &db->c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        st = sqlfail(db, rc, "open");
        goto done;
    }
    sqlite3_extended_result_codes(db->c, 0);
    sqlite3_busy_timeout(db->c, RESULTSDB_BUSY_TIMEOUT_MS);
    /* The first statement reads the header: a file that is not a database fails here. */
    rc = exec_retry(db->c, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK) rc = exec_retry(db->c, "PRAGMA synchronous=NORMAL");
    if (rc == SQLITE_OK) rc = exec_retry(db->c, "PRAGMA foreign_keys=ON");
    if (rc != SQLITE_OK) {
        st = sqlfail(db, rc, "open");
        goto done;
    }
    st = migrate(db);
done:
    if (st) {
        resultsdb_close(db);
        return st;
    }
    *out = db;
    return WV_OK;
}

void resultsdb_close(struct resultsdb *db)
{
    if (!db) return;
    if (db->c) {
        rollback(db);
        sqlite3_wal_checkpoint_v2(db->c, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close_v2(db->c);
    }
    free(db->path);
    free(db->errmsg);
    free(db);
}

const char *resultsdb_error(const struct resultsdb *db)
{
    return db && db->err ? (db->errmsg ? db->errmsg : wv_status_name(db->err)) : NULL;
}

/* ---- runs --------------------------------------------------------------------------------------- */

enum wv_status resultsdb_run_begin(struct resultsdb *db, const char *tool_version,
                                   const char *model_sha256, const char *params_json,
                                   int64_t *run_id)
{
    enum wv_status st = check(db, "resultsdb_run_begin");
    sqlite3_stmt *s = NULL;
    if (st) return st;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    if ((st = begin(db))) return st;
    if ((st = prepare(db, "INSERT INTO runs(tool_version, model_sha256, params_json, host,"
                          " started_at, status) VALUES(?1, ?2, ?3, ?4, " NOW_SQL ", 'running')",
                      &s)))
        goto done;
    bind_text(s, 1, tool_version);
    bind_text(s, 2, model_sha256);
    bind_text(s, 3, params_json);
    bind_text(s, 4, host[0] ? host : NULL);
    if ((st = run_stmt(db, s, "insert run"))) goto done;
    int64_t id = sqlite3_last_insert_rowid(db->c);
    if ((st = commit(db))) goto done;
    db->run_id = id;
    if (run_id) *run_id = id;
done:
    if (st) rollback(db);
    return st;
}

void resultsdb_set_run(struct resultsdb *db, int64_t run_id)
{
    if (db) db->run_id = run_id;
}

enum wv_status resultsdb_run_end(struct resultsdb *db, int64_t run_id, const char *status)
{
    enum wv_status st = check(db, "resultsdb_run_end");
    sqlite3_stmt *s = NULL;
    if (st) return st;
    if ((st = begin(db))) return st;
    if ((st = prepare(db, "UPDATE runs SET ended_at = " NOW_SQL ", status = ?1 WHERE run_id = ?2",
                      &s)))
        goto done;
    bind_text(s, 1, status);
    sqlite3_bind_int64(s, 2, run_id);
    if ((st = run_stmt(db, s, "end run"))) goto done;
    if (sqlite3_changes(db->c) == 0) {
        st = fail(db, WV_ENOTFOUND, "%s: run %lld: no such run", db->path, (long long)run_id);
        goto done;
    }
    st = commit(db);
done:
    if (st) rollback(db);
    return st;
}

/* ---- slides ------------------------------------------------------------------------------------- */

enum wv_status resultsdb_slide_start(struct resultsdb *db, const struct resultsdb_slide *sl)
{
    enum wv_status st = check(db, "resultsdb_slide_start");
    sqlite3_stmt *s = NULL;
    if (st) return st;
    if (!sl || !sl->slide_id || !sl->slide_id[0])
        return error_set(WV_EINVAL, "resultsdb_slide_start: no slide id");
    if ((st = begin(db))) return st;
    if ((st = prepare(db,
                      "INSERT INTO slides(slide_id, path, size_bytes, content_hash, vendor, width,"
                      " height, mpp_x, mpp_y, status, error, run_id, updated_at, label)"
                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', NULL, ?10, " NOW_SQL
                      ", ?11)"
                      " ON CONFLICT(slide_id) DO UPDATE SET path = excluded.path,"
                      " size_bytes = excluded.size_bytes, content_hash = excluded.content_hash,"
                      " vendor = excluded.vendor, width = excluded.width, height = excluded.height,"
                      " mpp_x = excluded.mpp_x, mpp_y = excluded.mpp_y, status = 'running',"
                      " error = NULL, run_id = excluded.run_id, updated_at = excluded.updated_at,"
                      " label = COALESCE(excluded.label, slides.label)",
                      &s)))
        goto done;
    bind_text(s, 1, sl->slide_id);
    bind_text(s, 2, sl->path);
    sqlite3_bind_int64(s, 3, sl->size_bytes);
    bind_text(s, 4, sl->content_hash);
    bind_text(s, 5, sl->vendor);
    sqlite3_bind_int64(s, 6, sl->width);
    sqlite3_bind_int64(s, 7, sl->height);
    bind_pos_double(s, 8, sl->mpp_x);
    bind_pos_double(s, 9, sl->mpp_y);
    bind_id(s, 10, db->run_id);
    bind_text(s, 11, sl->label);
    if ((st = run_stmt(db, s, "upsert slide"))) goto done;
    st = commit(db);
done:
    if (st) rollback(db);
    return st;
}

/* Replace scores and lesions of slide_id (inside the caller's transaction). */
static enum wv_status put_results(struct resultsdb *db, const char *slide_id, int64_t run_id,
                                  const struct resultsdb_scores *sc,
                                  const struct resultsdb_lesion *les, size_t n)
{
    sqlite3_stmt *s = NULL;
    enum wv_status st;
    if ((st = prepare(db, "DELETE FROM lesions WHERE slide_id = ?1", &s))) return st;
    bind_text(s, 1, slide_id);
    if ((st = run_stmt(db, s, "delete lesions"))) return st;
    if ((st = prepare(db,
                      "INSERT INTO scores(slide_id, run_id, slide_prob, tumor_area_mm2,"
                      " n_tissue_cells, seconds_read, seconds_encode, seconds_head, seconds_write,"
                      " seconds_total) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                      " ON CONFLICT(slide_id) DO UPDATE SET run_id = excluded.run_id,"
                      " slide_prob = excluded.slide_prob, tumor_area_mm2 = excluded.tumor_area_mm2,"
                      " n_tissue_cells = excluded.n_tissue_cells,"
                      " seconds_read = excluded.seconds_read, seconds_encode = excluded.seconds_encode,"
                      " seconds_head = excluded.seconds_head, seconds_write = excluded.seconds_write,"
                      " seconds_total = excluded.seconds_total",
                      &s)))
        return st;
    bind_text(s, 1, slide_id);
    bind_id(s, 2, run_id);
    sqlite3_bind_double(s, 3, sc->slide_prob);
    sqlite3_bind_double(s, 4, sc->tumor_area_mm2);
    sqlite3_bind_int64(s, 5, sc->n_tissue_cells);
    sqlite3_bind_double(s, 6, sc->seconds_read);
    sqlite3_bind_double(s, 7, sc->seconds_encode);
    sqlite3_bind_double(s, 8, sc->seconds_head);
    sqlite3_bind_double(s, 9, sc->seconds_write);
    sqlite3_bind_double(s, 10, sc->seconds_total);
    if ((st = run_stmt(db, s, "upsert scores"))) return st;
    if (n == 0) return WV_OK;
    if ((st = prepare(db, "INSERT INTO lesions(slide_id, idx, run_id, prob, x, y, area_cells)"
                          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      &s)))
        return st;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(s);
        bind_text(s, 1, slide_id);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        bind_id(s, 3, run_id);
        sqlite3_bind_double(s, 4, les[i].prob);
        sqlite3_bind_int64(s, 5, les[i].x);
        sqlite3_bind_int64(s, 6, les[i].y);
        sqlite3_bind_int64(s, 7, les[i].area_cells);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            st = sqlfail(db, rc, "insert lesion");
            break;
        }
    }
    sqlite3_finalize(s);
    return st;
}

static enum wv_status slide_exists(struct resultsdb *db, const char *slide_id, int *found)
{
    sqlite3_stmt *s = NULL;
    enum wv_status st = prepare(db, "SELECT 1 FROM slides WHERE slide_id = ?1", &s);
    if (st) return st;
    bind_text(s, 1, slide_id);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = sqlfail(db, rc, "find slide");
    sqlite3_finalize(s);
    return st;
}

enum wv_status resultsdb_slide_done(struct resultsdb *db, const char *slide_id,
                                    const struct resultsdb_scores *scores,
                                    const struct resultsdb_lesion *lesions, size_t n_lesions,
                                    const char *h5_path)
{
    enum wv_status st = check(db, "resultsdb_slide_done");
    sqlite3_stmt *s = NULL;
    int found = 0;
    if (st) return st;
    if (!slide_id || !slide_id[0] || !scores || (n_lesions && !lesions))
        return error_set(WV_EINVAL, "resultsdb_slide_done: missing slide id, scores or lesions");
    if ((st = begin(db))) return st;
    if ((st = slide_exists(db, slide_id, &found))) goto done;
    if (!found) {
        st = fail(db, WV_ENOTFOUND, "%s: slide %s: no row (slide_start was not called)", db->path,
                  slide_id);
        goto done;
    }
    if ((st = put_results(db, slide_id, db->run_id, scores, lesions, n_lesions))) goto done;
    if ((st = prepare(db, "UPDATE slides SET status = 'done', error = NULL, h5_path = ?1,"
                          " run_id = ?2, updated_at = " NOW_SQL " WHERE slide_id = ?3",
                      &s)))
        goto done;
    bind_text(s, 1, h5_path);
    bind_id(s, 2, db->run_id);
    bind_text(s, 3, slide_id);
    if ((st = run_stmt(db, s, "mark slide done"))) goto done;
    st = commit(db);
done:
    if (st) rollback(db);
    return st;
}

enum wv_status resultsdb_slide_failed(struct resultsdb *db, const char *slide_id, const char *path,
                                      const char *reason)
{
    enum wv_status st = check(db, "resultsdb_slide_failed");
    sqlite3_stmt *s = NULL;
    if (st) return st;
    if (!slide_id || !slide_id[0]) return error_set(WV_EINVAL, "resultsdb_slide_failed: no slide id");
    if ((st = begin(db))) return st;
    if ((st = prepare(db, "INSERT INTO slides(slide_id, path, status, error, run_id, updated_at)"
                          " VALUES(?1, ?2, 'failed', ?3, ?4, " NOW_SQL ")"
                          " ON CONFLICT(slide_id) DO UPDATE SET"
                          " path = COALESCE(excluded.path, slides.path), status = 'failed',"
                          " error = excluded.error, run_id = excluded.run_id, h5_path = NULL,"
                          " updated_at = excluded.updated_at",
                      &s)))
        goto done;
    bind_text(s, 1, slide_id);
    bind_text(s, 2, path);
    bind_text(s, 3, reason ? reason : "unknown error");
    bind_id(s, 4, db->run_id);
    if ((st = run_stmt(db, s, "mark slide failed"))) goto done;
    const char *dels[] = {"DELETE FROM scores WHERE slide_id = ?1",
                          "DELETE FROM lesions WHERE slide_id = ?1"};
    for (int i = 0; i < 2; i++) {
        if ((st = prepare(db, dels[i], &s))) goto done;
        bind_text(s, 1, slide_id);
        if ((st = run_stmt(db, s, "delete old results"))) goto done;
    }
    st = commit(db);
done:
    if (st) rollback(db);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------------ */

#define ROW_SELECT                                                                                 \
    "SELECT s.slide_id, s.path, s.content_hash, s.vendor, s.status, s.error, s.h5_path,"          \
    " s.updated_at, s.label, s.size_bytes, s.width, s.height, s.run_id, s.mpp_x, s.mpp_y,"         \
    " c.slide_id IS NOT NULL, c.slide_prob, c.tumor_area_mm2, c.n_tissue_cells, c.seconds_read,"   \
    " c.seconds_encode, c.seconds_head, c.seconds_write, c.seconds_total, c.run_id"                \
    " FROM slides s LEFT JOIN scores c ON c.slide_id = s.slide_id "

void resultsdb_row_free(struct resultsdb_row *r)
{
    if (!r) return;
    char **strs[] = {&r->slide_id, &r->path,    &r->content_hash, &r->vendor, &r->status,
                     &r->error,    &r->h5_path, &r->updated_at,   &r->label};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free(*strs[i]);
    memset(r, 0, sizeof *r);
}

static enum wv_status row_fill(struct resultsdb *db, sqlite3_stmt *s, struct resultsdb_row *r)
{
    memset(r, 0, sizeof *r);
    char **strs[] = {&r->slide_id, &r->path,    &r->content_hash, &r->vendor, &r->status,
                     &r->error,    &r->h5_path, &r->updated_at,   &r->label};
    for (int i = 0; i < 9; i++) {
        const unsigned char *t = sqlite3_column_text(s, i);
        if (t && !(*strs[i] = strdup((const char *)t))) {
            resultsdb_row_free(r);
            return fail(db, WV_ENOMEM, "results row");
        }
    }
    r->size_bytes = sqlite3_column_int64(s, 9);
    r->width = sqlite3_column_int64(s, 10);
    r->height = sqlite3_column_int64(s, 11);
    r->run_id = sqlite3_column_int64(s, 12);
    r->mpp_x = sqlite3_column_double(s, 13);
    r->mpp_y = sqlite3_column_double(s, 14);
    r->has_scores = sqlite3_column_int(s, 15);
    if (r->has_scores) {
        r->scores.slide_prob = sqlite3_column_double(s, 16);
        r->scores.tumor_area_mm2 = sqlite3_column_double(s, 17);
        r->scores.n_tissue_cells = sqlite3_column_int64(s, 18);
        r->scores.seconds_read = sqlite3_column_double(s, 19);
        r->scores.seconds_encode = sqlite3_column_double(s, 20);
        r->scores.seconds_head = sqlite3_column_double(s, 21);
        r->scores.seconds_write = sqlite3_column_double(s, 22);
        r->scores.seconds_total = sqlite3_column_double(s, 23);
        r->scores_run_id = sqlite3_column_int64(s, 24);
    }
    return WV_OK;
}

/* One row of ROW_SELECT + tail with ?1 = key. */
static enum wv_status get_one(struct resultsdb *db, const char *tail, const char *key,
                              struct resultsdb_row *row, int *found)
{
    enum wv_status st = check(db, "results lookup");
    sqlite3_stmt *s = NULL;
    memset(row, 0, sizeof *row);
    *found = 0;
    if (st) return st;
    if (!key) return error_set(WV_EINVAL, "results lookup: no key");
    char sql[1024];
    snprintf(sql, sizeof sql, "%s%s", ROW_SELECT, tail); /* constant SQL text only, never values */
    if ((st = prepare(db, sql, &s))) return st;
    bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (!(st = row_fill(db, s, row))) *found = 1;
    } else if (rc != SQLITE_DONE) {
        st = sqlfail(db, rc, "read slide");
    }
    sqlite3_finalize(s);
    return st;
}

enum wv_status resultsdb_get_slide(struct resultsdb *db, const char *slide_id,
                                   struct resultsdb_row *row, int *found)
{
    return get_one(db, "WHERE s.slide_id = ?1", slide_id, row, found);
}

enum wv_status resultsdb_find_by_hash(struct resultsdb *db, const char *content_hash,
                                      struct resultsdb_row *row, int *found)
{
    return get_one(db,
                   "WHERE s.content_hash = ?1 ORDER BY s.status = 'done' DESC,"
                   " s.updated_at DESC LIMIT 1",
                   content_hash, row, found);
}

enum wv_status resultsdb_list(struct resultsdb *db, const char *status, resultsdb_list_fn fn,
                              void *ctx)
{
    enum wv_status st = check(db, "resultsdb_list");
    sqlite3_stmt *s = NULL;
    if (st) return st;
    if (!fn) return error_set(WV_EINVAL, "resultsdb_list: no callback");
    /* One read transaction = one snapshot, whatever other writers commit meanwhile (unless the
     * caller already holds a transaction, as resultsdb_merge does on its source). */
    int own = sqlite3_get_autocommit(db->c), rc;
    if (own && (rc = exec_retry(db->c, "BEGIN")) != SQLITE_OK) return sqlfail(db, rc, "BEGIN");
    if ((st = prepare(db, ROW_SELECT "WHERE ?1 IS NULL OR s.status = ?1 ORDER BY s.slide_id", &s)))
        goto done;
    bind_text(s, 1, status);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct resultsdb_row row;
        if ((st = row_fill(db, s, &row))) break;
        int stop = fn(ctx, &row);
        resultsdb_row_free(&row);
        if (stop) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (!st && rc != SQLITE_DONE) st = sqlfail(db, rc, "list slides");
    sqlite3_finalize(s);
done:
    if (own) rollback(db);
    return st;
}

enum wv_status resultsdb_lesions(struct resultsdb *db, const char *slide_id,
                                 struct resultsdb_lesion **out, size_t *n)
{
    enum wv_status st = check(db, "resultsdb_lesions");
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    if (st) return st;
    if (!slide_id) return error_set(WV_EINVAL, "resultsdb_lesions: no slide id");
    if ((st = prepare(db, "SELECT prob, x, y, area_cells FROM lesions WHERE slide_id = ?1"
                          " ORDER BY idx",
                      &s)))
        return st;
    bind_text(s, 1, slide_id);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            struct resultsdb_lesion *g = realloc(*out, cap * sizeof *g);
            if (!g) {
                st = fail(db, WV_ENOMEM, "lesions of %s", slide_id);
                break;
            }
            *out = g;
        }
        struct resultsdb_lesion *l = &(*out)[(*n)++];
        l->prob = sqlite3_column_double(s, 0);
        l->x = sqlite3_column_int64(s, 1);
        l->y = sqlite3_column_int64(s, 2);
        l->area_cells = sqlite3_column_int64(s, 3);
    }
    if (!st && rc != SQLITE_DONE) st = sqlfail(db, rc, "read lesions");
    sqlite3_finalize(s);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

enum wv_status resultsdb_count(struct resultsdb *db, struct resultsdb_counts *c)
{
    enum wv_status st = check(db, "resultsdb_count");
    sqlite3_stmt *s = NULL;
    memset(c, 0, sizeof *c);
    if (st) return st;
    if ((st = prepare(db, "SELECT status, COUNT(*) FROM slides GROUP BY status", &s))) return st;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        int64_t v = sqlite3_column_int64(s, 1);
        c->total += v;
        if (!k) continue;
        if (!strcmp(k, "pending")) c->pending = v;
        else if (!strcmp(k, "running")) c->running = v;
        else if (!strcmp(k, "done")) c->done = v;
        else if (!strcmp(k, "failed")) c->failed = v;
    }
    if (rc != SQLITE_DONE) st = sqlfail(db, rc, "count slides");
    sqlite3_finalize(s);
    return st;
}

/* ---- merging ------------------------------------------------------------------------------------ */

void resultsdb_merge_report_free(struct resultsdb_merge_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_conflicts; i++) free(r->conflicts[i]);
    free(r->conflicts);
    memset(r, 0, sizeof *r);
}

__attribute__((format(printf, 2, 3))) static int add_conflict(struct resultsdb_merge_report *r,
                                                              const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **g = realloc(r->conflicts, (r->n_conflicts + 1) * sizeof *g);
    if (!g) return -1;
    r->conflicts = g;
    if (!(g[r->n_conflicts] = strdup(buf))) return -1;
    r->n_conflicts++;
    return 0;
}

struct run_map {
    int64_t src, dst;
};

static int64_t map_run(const struct run_map *m, size_t n, int64_t src)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].src == src) return m[i].dst;
    return 0;
}

/* Copy src's runs into dst (reusing an identical dst row), filling the id map. */
static enum wv_status merge_runs(struct resultsdb *dst, struct resultsdb *src,
                                 struct run_map **map, size_t *n_map, size_t *n_copied)
{
    sqlite3_stmt *rs = NULL, *find = NULL, *ins = NULL;
    enum wv_status st;
    size_t cap = 0;
    if ((st = prepare(src, "SELECT run_id, tool_version, model_sha256, params_json, host,"
                           " started_at, ended_at, status FROM runs ORDER BY run_id",
                      &rs)))
        return st;
    if ((st = prepare(dst, "SELECT run_id FROM runs WHERE tool_version IS ?1 AND"
                           " model_sha256 IS ?2 AND params_json IS ?3 AND host IS ?4 AND"
                           " started_at IS ?5",
                      &find)) ||
        (st = prepare(dst, "INSERT INTO runs(tool_version, model_sha256, params_json, host,"
                           " started_at, ended_at, status) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                      &ins)))
        goto done;
    int rc;
    while ((rc = sqlite3_step(rs)) == SQLITE_ROW) {
        sqlite3_reset(find);
        for (int i = 1; i <= 5; i++) sqlite3_bind_value(find, i, sqlite3_column_value(rs, i));
        int64_t id = 0;
        int frc = sqlite3_step(find);
        if (frc == SQLITE_ROW) {
            id = sqlite3_column_int64(find, 0);
        } else if (frc == SQLITE_DONE) {
            sqlite3_reset(ins);
            for (int i = 1; i <= 7; i++) sqlite3_bind_value(ins, i, sqlite3_column_value(rs, i));
            if ((frc = sqlite3_step(ins)) != SQLITE_DONE) {
                st = sqlfail(dst, frc, "copy run");
                goto done;
            }
            id = sqlite3_last_insert_rowid(dst->c);
            (*n_copied)++;
        } else {
            st = sqlfail(dst, frc, "find run");
            goto done;
        }
        if (*n_map == cap) {
            cap = cap ? 2 * cap : 16;
            struct run_map *g = realloc(*map, cap * sizeof *g);
            if (!g) {
                st = fail(dst, WV_ENOMEM, "merge run map");
                goto done;
            }
            *map = g;
        }
        (*map)[(*n_map)++] = (struct run_map){sqlite3_column_int64(rs, 0), id};
    }
    if (rc != SQLITE_DONE) st = error_set(code_for(rc), "%s: read runs: %s", src->path,
                                          sqlite3_errmsg(src->c));
done:
    sqlite3_finalize(rs);
    sqlite3_finalize(find);
    sqlite3_finalize(ins);
    return st;
}

/* Copy one src slide (row + scores + lesions) over dst's, run ids mapped. */
static enum wv_status copy_slide(struct resultsdb *dst, struct resultsdb *src,
                                 const char *slide_id, const struct run_map *map, size_t n_map)
{
    sqlite3_stmt *s = NULL, *d = NULL;
    enum wv_status st;
    /* the slides row: delete dst's (cascades to scores/lesions) and insert src's */
    if ((st = prepare(dst, "DELETE FROM slides WHERE slide_id = ?1", &d))) return st;
    bind_text(d, 1, slide_id);
    if ((st = run_stmt(dst, d, "replace slide"))) return st;
    const char *tables[3][2] = {
        {"SELECT slide_id, path, size_bytes, content_hash, vendor, width, height, mpp_x, mpp_y,"
         " status, error, run_id, h5_path, updated_at, label FROM slides WHERE slide_id = ?1",
         "INSERT INTO slides(slide_id, path, size_bytes, content_hash, vendor, width, height,"
         " mpp_x, mpp_y, status, error, run_id, h5_path, updated_at, label)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"},
        {"SELECT slide_id, run_id, slide_prob, tumor_area_mm2, n_tissue_cells, seconds_read,"
         " seconds_encode, seconds_head, seconds_write, seconds_total FROM scores"
         " WHERE slide_id = ?1",
         "INSERT INTO scores(slide_id, run_id, slide_prob, tumor_area_mm2, n_tissue_cells,"
         " seconds_read, seconds_encode, seconds_head, seconds_write, seconds_total)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
        {"SELECT slide_id, idx, run_id, prob, x, y, area_cells FROM lesions WHERE slide_id = ?1",
         "INSERT INTO lesions(slide_id, idx, run_id, prob, x, y, area_cells)"
         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"}};
    const int run_col[3] = {11, 1, 2}; /* 0-based column of run_id in each SELECT */
    for (int t = 0; t < 3; t++) {
        if ((st = prepare(src, tables[t][0], &s))) return st;
        if ((st = prepare(dst, tables[t][1], &d))) {
            sqlite3_finalize(s);
            return st;
        }
        bind_text(s, 1, slide_id);
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            sqlite3_reset(d);
            int nc = sqlite3_column_count(s);
            for (int i = 0; i < nc; i++) {
                if (i == run_col[t] && sqlite3_column_type(s, i) != SQLITE_NULL)
                    bind_id(d, i + 1, map_run(map, n_map, sqlite3_column_int64(s, i)));
                else
                    sqlite3_bind_value(d, i + 1, sqlite3_column_value(s, i));
            }
            int drc = sqlite3_step(d);
            if (drc != SQLITE_DONE) {
                st = sqlfail(dst, drc, "copy slide");
                break;
            }
        }
        if (!st && rc != SQLITE_DONE)
            st = error_set(code_for(rc), "%s: read slide %s: %s", src->path, slide_id,
                           sqlite3_errmsg(src->c));
        sqlite3_finalize(s);
        sqlite3_finalize(d);
        if (st) return st;
    }
    return WV_OK;
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

struct merge_ctx {
    struct resultsdb *dst, *src;
    struct resultsdb_merge_report *rep;
    const struct run_map *map;
    size_t n_map;
    enum wv_status st;
};

static int merge_one(void *p, const struct resultsdb_row *s)
{
    struct merge_ctx *m = p;
    struct resultsdb_row d;
    int found = 0, copy = 0;
    if ((m->st = resultsdb_get_slide(m->dst, s->slide_id, &d, &found))) return 1;
    int s_done = s->status && !strcmp(s->status, "done");
    int d_done = found && d.status && !strcmp(d.status, "done");
    if (!found) {
        copy = 1;
        m->rep->n_added++;
    } else if (s_done && !d_done) {
        copy = 1;
        m->rep->n_replaced++;
    } else if (s_done && d_done) {
        int same_hash = str_eq(s->content_hash, d.content_hash);
        int same_prob = s->has_scores == d.has_scores &&
                        (!s->has_scores || s->scores.slide_prob == d.scores.slide_prob);
        if (same_hash && same_prob) {
            m->rep->n_same++;
        } else if (add_conflict(m->rep, "%s: done in both with different %s (kept %s)",
                                s->slide_id, same_hash ? "slide_prob" : "content_hash",
                                same_hash ? "destination's score" : "destination's row") < 0) {
            m->st = fail(m->dst, WV_ENOMEM, "merge report");
        }
    } else if (str_eq(s->status, d.status)) {
        m->rep->n_same++;
    } else {
        m->rep->n_kept++;
    }
    resultsdb_row_free(&d);
    if (!m->st && copy) m->st = copy_slide(m->dst, m->src, s->slide_id, m->map, m->n_map);
    return m->st != WV_OK;
}

enum wv_status resultsdb_merge(struct resultsdb *dst, const char *src_path,
                               struct resultsdb_merge_report *report)
{
    memset(report, 0, sizeof *report);
    enum wv_status st = check(dst, "resultsdb_merge");
    if (st) return st;
    if (!src_path) return error_set(WV_EINVAL, "resultsdb_merge: no source");
    /* The source is opened read-only with its own handle: its failures are its own, they do not
     * make dst's handle sticky. */
    struct resultsdb src = {0};
    struct run_map *map = NULL;
    size_t n_map = 0;
    if (!(src.path = strdup(src_path))) return error_set(WV_ENOMEM, "merge");
    int rc = sqlite3_open_v2(src_path, &src.c, SQLITE_OPEN_READONLY, NULL);
    int v = 0;
    if (rc != SQLITE_OK) {
        st = error_set(code_for(rc) == WV_EIO ? WV_ENOTFOUND : code_for(rc), "%s: open: %s",
                       src_path, src.c ? sqlite3_errmsg(src.c) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_busy_timeout(src.c, RESULTSDB_BUSY_TIMEOUT_MS);
    if ((st = user_version(&src, src.c, &v))) goto out;
    if (v != RESULTSDB_SCHEMA_VERSION) {
        st = error_set(v > RESULTSDB_SCHEMA_VERSION ? WV_EUNSUPPORTED : WV_EFORMAT,
                       "%s: schema version %d, expected %d (not a results database?)", src_path,
                       v, RESULTSDB_SCHEMA_VERSION);
        goto out;
    }
    /* Snapshot of src for the whole merge. */
    if ((rc = sqlite3_exec(src.c, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) {
        st = error_set(code_for(rc), "%s: %s", src_path, sqlite3_errmsg(src.c));
        goto out;
    }
    if ((st = begin(dst))) goto out;
    if ((st = merge_runs(dst, &src, &map, &n_map, &report->n_runs))) goto out;
    struct merge_ctx m = {dst, &src, report, map, n_map, WV_OK};
    if ((st = resultsdb_list(&src, NULL, merge_one, &m))) goto out;
    if ((st = m.st)) goto out;
    st = commit(dst);
out:
    if (st) {
        rollback(dst);
        resultsdb_merge_report_free(report);
    }
    if (src.c) {
        sqlite3_exec(src.c, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(src.c);
    }
    free(src.path);
    free(src.errmsg);
    free(map);
    return st;
}
