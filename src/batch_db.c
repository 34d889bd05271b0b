/*
 * batch_db.c — the two results-database steps batch needs beyond what the pipeline writes
 * (contract in batch_private.h).
 *
 * TODO(issue 7): resultsdb.h has no call to change a row's path/content_hash/label/h5_path in
 * place, so batch_db_set_facts rewrites the row with slide_start + slide_done/slide_failed (two
 * transactions); a `resultsdb_slide_set_facts` in heatmaps/ would make it one.
 */
#include <stdlib.h>
#include <string.h>

#include "batch_private.h"

enum wv_status batch_db_set_facts(struct resultsdb *db, const char *slide_id, const char *path,
                                  const char *content_hash, int64_t size_bytes, const char *label,
                                  const char *h5_path)
{
    struct resultsdb_row row;
    int found = 0;
    enum wv_status st = resultsdb_get_slide(db, slide_id, &row, &found);
    if (st) return st;
    if (!found) return error_set(WV_ENOTFOUND, "slide %s: no row to update", slide_id);
    struct resultsdb_lesion *les = NULL;
    size_t n_les = 0;
    int done = row.status && !strcmp(row.status, "done");
    int failed = row.status && !strcmp(row.status, "failed");
    if (!done && !failed) goto out; /* running/pending: nothing final to keep */
    if (done && (st = resultsdb_lesions(db, slide_id, &les, &n_les))) goto out;
    struct resultsdb_slide s = {
        .slide_id = slide_id,
        .path = path ? path : row.path,
        .size_bytes = size_bytes > 0 ? size_bytes : row.size_bytes,
        .content_hash = content_hash ? content_hash : row.content_hash,
        .vendor = row.vendor,
        .width = row.width,
        .height = row.height,
        .mpp_x = row.mpp_x,
        .mpp_y = row.mpp_y,
        .label = label};
    resultsdb_set_run(db, done && row.has_scores && row.scores_run_id ? row.scores_run_id : row.run_id);
    if ((st = resultsdb_slide_start(db, &s))) goto out;
    if (done)
        st = resultsdb_slide_done(db, slide_id, &row.scores, les, n_les,
                                  h5_path ? h5_path : row.h5_path);
    else
        st = resultsdb_slide_failed(db, slide_id, NULL, row.error ? row.error : "failed");
out:
    free(les);
    resultsdb_row_free(&row);
    return st;
}

enum wv_status batch_db_fail(struct resultsdb *db, const struct batch_item *it, const char *reason)
{
    /* the facts first (slide_start), so the row carries the content hash that resume looks up */
    struct resultsdb_row row;
    int found = 0;
    enum wv_status st = resultsdb_get_slide(db, it->slide_id, &row, &found);
    if (st) return st;
    struct resultsdb_slide s = {.slide_id = it->slide_id, .path = it->path,
                                .size_bytes = it->size_bytes, .content_hash = it->hash,
                                .label = it->label};
    if (found) {
        s.vendor = row.vendor;
        s.width = row.width;
        s.height = row.height;
        s.mpp_x = row.mpp_x;
        s.mpp_y = row.mpp_y;
    }
    if (!(st = resultsdb_slide_start(db, &s))) st = resultsdb_slide_failed(db, it->slide_id, it->path, reason);
    resultsdb_row_free(&row);
    return st;
}
