/*
 * batch.h — `wsi-vmamba batch`: analyze a whole slide archive (or a CSV manifest) into one
 * results folder, surviving crashes and bad slides, never doing work twice, spread over worker
 * processes, GPUs and Slurm array tasks (issue 7; user guide docs/batch.md). Built on the
 * one-slide pipeline (pipeline.h); results layout as `analyze` (<out>/<slide_id>.h5,
 * <slide_id>.csv, results.sqlite).
 *
 * A run: list the slides (archive scan by extension, or manifest) → content hash of each
 * (slide_id.h) → drop duplicates (same content) → keep this shard's → choose slide ids →
 * look each up in results.sqlite by content hash → skip those complete (row 'done' and
 * h5store_check_complete) and, without retry_failed, those failed → remove stale temp files of
 * dead processes → N forked workers (each its own model, pipeline and database connection)
 * take slides one at a time → summary. A worker that crashes, is killed (OOM) or runs past the
 * slide timeout costs only its slide (recorded 'failed' with the reason) and is replaced.
 *
 * Crash safety: results are atomic per slide (h5store's temp-and-rename, one transaction per
 * row change), and a worker holds an flock on <out>/.batch/locks/<hash>.lock while it works on
 * a slide, so a 'running' row whose lock is free belongs to a dead run and is redone, while one
 * whose lock is held (another batch process on the same folder) is left alone.
 *
 * Not thread-safe: one batch_run per process (it forks and installs signal handlers).
 */
#ifndef WV_BATCH_H
#define WV_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pipeline.h"

#define BATCH_MAX_JOBS 256
#define BATCH_MAX_DEVICES 64
/* After SIGINT/SIGTERM the workers get this long to record their slide before SIGKILL. */
#define BATCH_STOP_GRACE_S 30.0
/* Log-line progress: at most one status line per interval besides one per finished slide. */
#define BATCH_LOG_INTERVAL_S 30.0

struct batch_options {
    const char *input;        /* archive folder, or a manifest (*.csv) — required */
    const char *model_path;   /* required */
    const char *out_dir;      /* required */
    int jobs;                 /* worker processes (≥ 1); with devices: must be 0 or n_devices */
    int devices[BATCH_MAX_DEVICES]; /* CUDA ordinals: one worker per entry, device cuda:N */
    int n_devices;
    int shard_index, shard_count; /* this process does shard shard_index of shard_count (0/1 = all) */
    int retry_failed;         /* redo slides recorded failed */
    int dry_run;              /* plan and print, write nothing */
    int include_masks;        /* archive scan: do not skip *_mask.tif / *_Mask.tif */
    double slide_timeout_s;   /* > 0: a slide running longer is killed and recorded failed */
    int64_t worker_memory_bytes; /* > 0: RLIMIT_AS of each worker (allocation fails beyond) */
    int quiet;                /* no progress lines, no summary on stdout */
    struct pipeline_options pipe; /* per-slide options; out_dir/quiet/png_path are set by batch;
                                     device is the default for workers without devices */
};

void batch_options_default(struct batch_options *o);

/* Counts over this run's slides (this shard). */
struct batch_summary {
    size_t n_listed;        /* slides listed (archive or manifest), errors included */
    size_t n_input_errors;  /* entries that could not be taken (missing, unreadable, loops, …) */
    size_t n_duplicates;    /* same content as another listed slide (done once) */
    size_t n_other_shard;   /* left to other shards */
    size_t n_skipped_done;  /* complete from an earlier run */
    size_t n_done;          /* analyzed now */
    size_t n_failed;        /* failed now, or failed earlier and not retried */
    size_t n_failed_earlier; /* of n_failed: recorded failed by an earlier run, not retried */
    size_t n_busy;          /* being analyzed by another batch process on the same folder */
    size_t n_remaining;     /* not finished (interrupted) */
    int stop_signal;        /* SIGINT/SIGTERM that stopped the run, else 0 */
};

/* Run a batch (see above). Progress on stderr unless quiet; the summary on stdout unless quiet;
 * every failure and input error is printed "wsi-vmamba: <path>: <reason>" on stderr.
 * Returns WV_OK when the run itself worked (slides may have failed: see *sum) or a status when it
 * could not run at all (options, model, output folder, database); *what then names the file the
 * message is about (or NULL). */
enum wv_status batch_run(const struct batch_options *o, struct batch_summary *sum,
                         const char **what);

/* Parse "I/N" (0 ≤ I < N ≤ 100000). WV_EINVAL with a message otherwise. */
enum wv_status batch_parse_shard(const char *s, int *index, int *count);
/* Parse "0,1,3" into devices (at most max). WV_EINVAL with a message otherwise. */
enum wv_status batch_parse_devices(const char *s, int *devices, int max, int *n);

/* Merge result folders (`wsi-vmamba merge`): each src's results.sqlite into <out_dir>/results.sqlite
 * (resultsdb_merge: no duplicates, conflicts reported) and each merged 'done' slide's
 * <slide_id>.h5 (+ .csv, .png when present) hard-linked into out_dir, or copied atomically when a
 * link is impossible; the merged rows' h5_path then points into out_dir. A source equal to
 * out_dir is skipped. Prints what it did on stdout unless quiet, each conflict on stderr.
 * *n_conflicts receives the number of conflicts. Errors name the source in *what. */
enum wv_status batch_merge(const char *const *srcs, int n_srcs, const char *out_dir, int quiet,
                           size_t *n_conflicts, const char **what);

#endif
