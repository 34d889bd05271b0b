/*
 * batch_private.h — shared between the batch_*.c files (contract of the module in batch.h).
 */
#ifndef WV_BATCH_PRIVATE_H
#define WV_BATCH_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "heatmaps/resultsdb.h"
#include "slide_id.h"

/* Slide file extensions of an archive scan (case-insensitive), as OpenSlide names its formats. */
extern const char *const BATCH_EXTENSIONS[];

enum batch_action {
    ACT_ANALYZE,      /* to do in this run */
    ACT_SKIP_DONE,    /* complete from an earlier run */
    ACT_SKIP_FAILED,  /* failed earlier, not retried */
    ACT_DUPLICATE,    /* same content as item dup_of */
    ACT_OTHER_SHARD,  /* another shard's */
    ACT_BUSY,         /* locked by another live batch process */
    ACT_ERROR,        /* input error: error says why */
};

enum batch_state { ST_TODO, ST_RUNNING, ST_DONE, ST_FAILED };

struct batch_item {
    char *path;       /* NULL for a manifest row with no usable path */
    char *want_id;    /* manifest's slide id or NULL */
    char *label;      /* manifest's label or NULL */
    int line;         /* manifest line, 0 for an archive scan */
    char hash[SLIDE_ID_HASH_LEN + 1];
    int64_t size_bytes;
    char slide_id[SLIDE_ID_MAX_LEN + 1];
    int id_from_db;   /* slide_id is that of the row found by content hash */
    enum batch_action action;
    enum batch_state state;
    int dup_of;       /* ACT_DUPLICATE: index of the item analyzed instead */
    int retry;        /* earlier failure being retried / stale 'running' row being redone */
    char *error;      /* input error or failure reason (malloc'ed) */
    double slide_prob, seconds;
};

struct batch_list {
    struct batch_item *items;
    size_t n, cap;
};

/* ---- batch_scan.c ---- */
/* Append a new zeroed item (path copied, may be NULL); NULL when memory ran out. */
struct batch_item *batch_list_add(struct batch_list *l, const char *path);
void batch_list_free(struct batch_list *l);
/* Set item->error (printf-style) and action ACT_ERROR. */
void batch_item_error(struct batch_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Recursive archive scan: every regular file with a slide extension (masks skipped unless
 * include_masks), following symlinks; a directory reached again (same dev, inode) through a
 * symlink is a loop or an alias: an item with an error, not descended. Hidden entries (name
 * starting with '.') and the folder skip_dir (the output folder, when inside) are not entered. */
enum wv_status batch_scan_archive(const char *dir, int include_masks, const char *skip_dir,
                                  struct batch_list *l);
/* Items from a manifest (manifest.h): entries and per-row errors. */
enum wv_status batch_scan_manifest(const char *csv, struct batch_list *l);

/* ---- batch_db.c ---- */
/* Rewrite the facts of a slide row the pipeline wrote (path, content hash, label) keeping its
 * status, scores, lesions, run and error; h5_path replaced when non-NULL. Two transactions
 * (slide_start, then slide_done/slide_failed): a crash between them leaves the row 'running',
 * which batch treats as stale and redoes. */
enum wv_status batch_db_set_facts(struct resultsdb *db, const char *slide_id, const char *path,
                                  const char *content_hash, int64_t size_bytes, const char *label,
                                  const char *h5_path);
/* Record a slide failed that the pipeline never recorded (worker died, timed out, no start). */
enum wv_status batch_db_fail(struct resultsdb *db, const struct batch_item *it, const char *reason);

/* ---- batch_worker.c ---- */
struct batch_worker {
    int pid;
    int to_fd, from_fd;   /* parent's ends of the two pipes */
    int item;             /* index being analyzed, -1 idle */
    int ready;            /* sent its READY message */
    double started;       /* util_now() when item was given */
    int device;           /* CUDA ordinal, -1 = options' device */
    int timed_out;
    int retiring;         /* said it ends after its last result: give it no more work */
};

enum { WMSG_READY = 1, WMSG_RESULT = 2 };
/* One message worker → parent; fixed size below PIPE_BUF so a write is atomic. */
struct batch_wmsg {
    int32_t kind, item, status, busy;
    int32_t exiting; /* the worker ends after this message (the parent starts a fresh one) */
    int32_t pad;
    double slide_prob, seconds;
    int64_t n_cells;
    char msg[2000];
};

/* Fork a worker for the items of l (it inherits them); it loads the model, opens the pipeline
 * and its own database connection, sends READY and then analyzes the item indices it reads.
 * Returns WV_OK with w filled (parent side) or a status when fork/pipe failed. */
enum wv_status batch_worker_spawn(const struct batch_options *o, const struct batch_list *l,
                                  int device, struct batch_worker *w);

/* Close the pipe to a worker: it reads end-of-file, finishes and exits. */
void batch_worker_close_input(struct batch_worker *w);
/* Close the parent's pipe ends of a worker (after it ended). */
void batch_worker_close(struct batch_worker *w);

/* Lock file of a content hash: <out>/.batch/locks/<hex>.lock. */
void batch_lock_path(const char *out_dir, const char *hash, char *out, size_t n);
/* Try to take the lock (LOCK_EX|LOCK_NB): fd ≥ 0 on success, -1 when another process holds it,
 * -2 on another error (treated as "not locked"). */
int batch_lock_try(const char *path);

#endif
