/*
 * report.h — `wsi-vmamba evaluate` as a library call: read results (the tool's results.sqlite,
 * or CAMELYON16 submission files: a slide-score CSV and per-slide detection CSVs), the reference
 * table and the ground truth (mask TIFFs or annotations), compute the slide-level metrics
 * (metrics.h) and the lesion-level FROC (froc.h), and write the report folder:
 *   metrics.json, per_slide.csv, roc.svg, roc.png, froc.svg, froc.png, report.html
 * Rules, file formats and every choice beyond the official code: docs/evaluation.md.
 * Files: report.c (the evaluation), report_inputs.c (CSV, folders, database),
 * report_write.c (JSON, CSV, plots, HTML); shared declarations in report_private.h.
 */
#ifndef WV_REPORT_H
#define WV_REPORT_H

#include <stdint.h>

#include "error.h"
#include "froc.h"

struct report_opts {
    const char *db_path;         /* --db results.sqlite, or NULL */
    const char *scores_csv;      /* --slide-scores CSV (name,probability), or NULL */
    const char *detections_dir;  /* --detections: <slide>.csv files (p,X,Y), or NULL */
    const char *reference_csv;   /* --reference (name,class[,histotype,size]); required */
    const char *masks_dir;       /* --masks: <slide>_mask.tif (or <slide>.tif), or NULL */
    const char *annotations_dir; /* --annotations: <slide>.xml/.json/.geojson, or NULL */
    const char *slides_dir;      /* --slides: slide files for level-0 size and mpp, or NULL */
    const char *heatmaps_dir;    /* --heatmaps: <slide>.h5 for thumbnails (default: the db's folder) */
    const char *out_dir;         /* --out; created */
    const char *const *exclude;  /* --exclude: names dropped from both tasks */
    int n_exclude;
    const char *const *froc_exclude; /* --froc-exclude: dropped from the lesion task only */
    int n_froc_exclude;
    enum froc_mode froc_mode;    /* --froc-mode */
    int official_quirks;         /* --official-quirks */
    int bootstrap;               /* --bootstrap N replicates (0: DeLong only) */
    uint64_t seed;               /* --seed */
    double threshold;            /* --threshold: slides with score >= this are called tumour */
    const char *command_line;    /* for the provenance section */
    int quiet;                   /* no progress/warnings on stderr */
};

void report_opts_init(struct report_opts *o);

/* Headline numbers of a finished evaluation (NaN where undefined). */
struct report_summary {
    int n_slides, n_tumor, n_normal;
    double auc, auc_lo, auc_hi;
    double froc;
    int n_froc_slides, n_lesions;
    int n_warnings;
};

/* Run the evaluation and write the report folder. Inputs that cannot give a trustworthy number
 * fail with a message naming the file and line or the slides concerned (missing results, a
 * tumour slide without ground truth, malformed CSV lines); undefined metrics (one class, no
 * lesion) are reported as null with a note, not as an error. *sum may be NULL. */
enum wv_status report_evaluate(const struct report_opts *o, struct report_summary *sum);

#endif
