/*
 * resultsdb.h — the results database `<out>/results.sqlite` (DESIGN.md "Results"; SQLite advice
 * for concurrent batch writers in CAMELYON16_PROTOCOL.md §5.3; layout in docs/formats.md).
 *
 * Schema (PRAGMA user_version = RESULTSDB_SCHEMA_VERSION; other modules rely on these names):
 *   runs(run_id INTEGER PRIMARY KEY AUTOINCREMENT, tool_version, model_sha256, params_json, host,
 *        started_at, ended_at, status)
 *   slides(slide_id TEXT PRIMARY KEY, path, size_bytes, content_hash, vendor, width, height,
 *          mpp_x, mpp_y, status CHECK(status IN ('pending','running','done','failed')), error,
 *          run_id, h5_path, updated_at, label)           + index slides_content_hash
 *   scores(slide_id PRIMARY KEY → slides ON DELETE CASCADE, run_id, slide_prob, tumor_area_mm2,
 *          n_tissue_cells, seconds_read, seconds_encode, seconds_head, seconds_write,
 *          seconds_total)
 *   lesions(slide_id → slides ON DELETE CASCADE, idx, run_id, prob, x, y, area_cells,
 *           PRIMARY KEY(slide_id, idx))
 * Times are UTC ISO-8601 text ("2025-01-31T12:00:00.123Z"). Coordinates are level-0 px.
 *
 * Concurrency: WAL journal, synchronous=NORMAL, busy_timeout RESULTSDB_BUSY_TIMEOUT_MS, foreign
 * keys on; every write transaction is BEGIN IMMEDIATE and is retried when SQLite still answers
 * BUSY; values are always bound parameters. Use one handle per thread or process (never share
 * one across fork()); any number of processes may write one database at once. WAL needs a local
 * file system (not NFS).
 *
 * Errors (STYLE.md 2.3): calls return enum wv_status and set error_set()'s message ("results.sqlite:
 * slides: database disk image is malformed"). Database and I/O failures (WV_EDB, WV_EIO,
 * WV_ENOMEM) are sticky: later calls on the handle return the same status without doing work
 * and resultsdb_error() returns the text; reopen to go on. Argument errors (WV_EINVAL) and
 * missing rows (WV_ENOTFOUND) are not sticky.
 */
#ifndef WV_RESULTSDB_H
#define WV_RESULTSDB_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

struct resultsdb; /* opaque: one SQLite connection */

/* PRAGMA user_version of the schema this code writes; resultsdb_open migrates older ones and
 * refuses newer ones (WV_EUNSUPPORTED). */
#define RESULTSDB_SCHEMA_VERSION 1
/* How long one statement waits for another writer's lock, ms. A slide's transaction takes
 * milliseconds; 30 s covers a WAL checkpoint of a large database on a slow disk. */
#define RESULTSDB_BUSY_TIMEOUT_MS 30000
/* The name analyze and batch give the database inside the output folder. */
#define RESULTSDB_FILE_NAME "results.sqlite"

/* Open (creating if needed) the database at `path` and bring its schema to the current version.
 * A file that is not an SQLite database, or is damaged, gives WV_EFORMAT with a message that
 * names the file ("...: file is not a database"). On success *out is a new handle; on failure
 * *out is NULL. */
enum wv_status resultsdb_open(const char *path, struct resultsdb **out);
/* Close and free; NULL is fine. Runs a passive WAL checkpoint. */
void resultsdb_close(struct resultsdb *db);
/* The handle's sticky error, NULL while there is none. Valid until resultsdb_close. */
const char *resultsdb_error(const struct resultsdb *db);

/* ---- runs ----------------------------------------------------------------------------------- */

/* Insert a runs row (status 'running', started_at now, host = gethostname) and make it the
 * handle's current run (used by the slide calls below). Strings may be NULL (stored NULL).
 * *run_id receives the new id. */
enum wv_status resultsdb_run_begin(struct resultsdb *db, const char *tool_version,
                                   const char *model_sha256, const char *params_json,
                                   int64_t *run_id);
/* Make an existing run the handle's current run (a batch worker with its own connection). */
void resultsdb_set_run(struct resultsdb *db, int64_t run_id);
/* Set ended_at = now and status (e.g. "done", "failed", "interrupted") of run_id.
 * WV_ENOTFOUND when there is no such run. */
enum wv_status resultsdb_run_end(struct resultsdb *db, int64_t run_id, const char *status);

/* ---- slides --------------------------------------------------------------------------------- */

/* What analyze knows about a slide before it starts. Strings may be NULL (stored NULL), except
 * slide_id. Sizes in level-0 px, mpp in µm/px (0 = unknown, stored NULL). */
struct resultsdb_slide {
    const char *slide_id;
    const char *path;
    int64_t size_bytes;
    const char *content_hash;
    const char *vendor;
    int64_t width, height;
    double mpp_x, mpp_y;
    const char *label; /* e.g. "tumor"/"normal" from a manifest; NULL when unknown */
};

/* Slide-level results and timings of one analysis. Seconds are wall-clock per stage. */
struct resultsdb_scores {
    double slide_prob;      /* P(slide contains metastasis) */
    double tumor_area_mm2;  /* area of cells above the tumour threshold */
    int64_t n_tissue_cells;
    double seconds_read, seconds_encode, seconds_head, seconds_write, seconds_total;
};

/* One lesion candidate (CAMELYON16 lesion task): probability and level-0 position. */
struct resultsdb_lesion {
    double prob;
    int64_t x, y;        /* level-0 px */
    int64_t area_cells;  /* cells in the connected region it stands for (1 for a local maximum) */
};

/* Upsert the slide row with status 'running', error NULL, the current run id and the given
 * facts (a re-run overwrites path, size, hash, vendor, dimensions, mpp; label only when non-NULL).
 * Scores and lesions of an earlier run stay until resultsdb_slide_done/failed replaces them. */
enum wv_status resultsdb_slide_start(struct resultsdb *db, const struct resultsdb_slide *s);

/* In one transaction: replace the slide's scores row and all its lesions rows (idx 0..n-1 in
 * array order) with these, tagged with the current run id, and set status 'done', error NULL,
 * h5_path, updated_at. Re-running a slide therefore replaces its rows, never duplicates them.
 * WV_ENOTFOUND when the slide has no row (call resultsdb_slide_start first). lesions may be NULL
 * when n_lesions is 0. Call only after the .h5 file was committed (DESIGN: "done" means both). */
enum wv_status resultsdb_slide_done(struct resultsdb *db, const char *slide_id,
                                    const struct resultsdb_scores *scores,
                                    const struct resultsdb_lesion *lesions, size_t n_lesions,
                                    const char *h5_path);

/* Mark a slide failed with `reason` (the error message), in one transaction: upserts the row
 * (creating it with `path` when the slide never started, e.g. it could not be opened), sets
 * status 'failed', error, the current run id, h5_path NULL, and deletes its scores and lesions
 * (results of an older run must not stand beside a failure). path may be NULL for an existing row. */
enum wv_status resultsdb_slide_failed(struct resultsdb *db, const char *slide_id, const char *path,
                                      const char *reason);

/* ---- reading -------------------------------------------------------------------------------- */

/* One slide as stored, with its scores when it has a scores row. Every string is malloc'ed (NULL
 * for SQL NULL); free with resultsdb_row_free. */
struct resultsdb_row {
    char *slide_id, *path, *content_hash, *vendor, *status, *error, *h5_path, *updated_at, *label;
    int64_t size_bytes, width, height, run_id; /* 0 when NULL */
    double mpp_x, mpp_y;                       /* 0 when NULL */
    int has_scores;                            /* 1 when the fields below are filled */
    struct resultsdb_scores scores;
    int64_t scores_run_id;
};
void resultsdb_row_free(struct resultsdb_row *row);

/* The slide row by id. *found = 1 and *row filled, or *found = 0 and *row zeroed. */
enum wv_status resultsdb_get_slide(struct resultsdb *db, const char *slide_id,
                                   struct resultsdb_row *row, int *found);

/* Resume helper: the slide whose content_hash equals `content_hash`, preferring status 'done',
 * then the most recently updated. *found = 1 and *row filled, or *found = 0 and *row zeroed. */
enum wv_status resultsdb_find_by_hash(struct resultsdb *db, const char *content_hash,
                                      struct resultsdb_row *row, int *found);

/* Callback of resultsdb_list: row is valid only during the call (do not free it). Return 0 to go
 * on, non-zero to stop (resultsdb_list then returns WV_OK). The callback must not use `db`. */
typedef int (*resultsdb_list_fn)(void *ctx, const struct resultsdb_row *row);

/* Visit slides ordered by slide_id, within one read snapshot. status: only slides with this
 * status ("done", "failed", …), NULL for all. */
enum wv_status resultsdb_list(struct resultsdb *db, const char *status, resultsdb_list_fn fn,
                              void *ctx);

/* A slide's lesions ordered by idx into a malloc'ed array (*out, free()); *n = 0 and *out = NULL
 * when there are none. */
enum wv_status resultsdb_lesions(struct resultsdb *db, const char *slide_id,
                                 struct resultsdb_lesion **out, size_t *n);

/* Number of slides per status (progress, summaries). */
struct resultsdb_counts {
    int64_t pending, running, done, failed, total;
};
enum wv_status resultsdb_count(struct resultsdb *db, struct resultsdb_counts *c);

/* ---- merging (issue 7: `wsi-vmamba merge`) --------------------------------------------------- */

/* What resultsdb_merge did. conflicts: n_conflicts malloc'ed lines "<slide_id>: <why>"; free the
 * report with resultsdb_merge_report_free. */
struct resultsdb_merge_report {
    size_t n_added;     /* slides new to dst, copied with scores and lesions */
    size_t n_replaced;  /* dst had the slide not done (failed/running/pending); src's done row won */
    size_t n_same;      /* both had it with the same status, hash and slide_prob: nothing to do */
    size_t n_kept;      /* dst's row kept because src's was not better (src failed/running) */
    size_t n_conflicts; /* both done with different content_hash or slide_prob: dst kept, reported */
    size_t n_runs;      /* runs rows copied (src run ids are renumbered in dst) */
    char **conflicts;
};
void resultsdb_merge_report_free(struct resultsdb_merge_report *r);

/* Merge the database at src_path (opened read-only; not modified) into dst in one transaction.
 * Rules per slide_id: absent in dst → copy; dst not done and src done → replace; both done and
 * equal hash and slide_prob → same; both done but different → conflict (dst kept, reported);
 * src not done → dst kept (a src failure is copied only when dst lacks the slide). Copied rows
 * keep their values, their run_id mapped to the copied run. *report is filled (zeroed first). */
enum wv_status resultsdb_merge(struct resultsdb *dst, const char *src_path,
                               struct resultsdb_merge_report *report);

#endif
