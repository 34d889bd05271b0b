/*
 * report_private.h — shared between report.c, report_inputs.c and report_write.c (contract of
 * the module: report.h). Not for other modules.
 */
#ifndef WV_REPORT_PRIVATE_H
#define WV_REPORT_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "froc.h"
#include "metrics.h"
#include "report.h"

/* One slide of the evaluation set. */
struct ev_slide {
    char *name;         /* as in the reference */
    int label;          /* 1 tumour, 0 normal (reference) */
    char *ref_class;    /* the reference's class text */
    int has_score;
    double score;
    int has_det;        /* detections known (a CSV file, or a done database row) */
    struct froc_detection *det;
    size_t n_det;
    int64_t width_px, height_px; /* level-0 size when known (db, --slides, mask) */
    double mpp;         /* level-0 µm/px when known (db, --slides) */
    char *h5_path;      /* heatmap file when known */
    char *db_status, *db_error;
    /* lesion task */
    int in_froc;        /* evaluated for FROC */
    int froc_tumor;     /* evaluated as a tumour slide */
    double froc_mpp;    /* µm/px used for the thresholds */
    const char *gt_source; /* "mask", "annotations", "" */
    int n_lesions, n_itc;
    struct froc_slide fr;
    char note[256];
};

struct ev_warnings {
    char **msg;
    int n, cap;
};
/* printf-style; also printed on stderr unless quiet. */
void ev_warn(struct ev_warnings *w, int quiet, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ev_warnings_free(struct ev_warnings *w);

struct ev_ctx {
    const struct report_opts *o;
    struct ev_slide *slides;
    int n;
    struct ev_warnings warn;
    /* provenance */
    char reference_sha256[65], scores_sha256[65];
    char *db_tool_version, *db_model_sha256, *db_params;
    /* slide level */
    int have_auc;
    char auc_note[256];
    double auc, auc_var, auc_lo, auc_hi, boot_lo, boot_hi;
    struct metrics_roc roc;
    struct metrics_confusion youden, at_thr;
    /* lesion level */
    int have_froc;
    char froc_note[256];
    struct froc_curve curve;
    double froc_boot_lo, froc_boot_hi;
    int n_froc_slides, n_froc_tumor, n_lesions, n_itc;
    size_t n_outside, n_edge, n_fp_total;
};

/* Compare slide names: case-insensitive, ignoring a slide-file extension (.tif, .tiff, .svs,
 * .ndpi, .mrxs) on either side. */
int ev_name_eq(const char *a, const char *b);

/* report_inputs.c */
enum wv_status ev_read_reference(struct ev_ctx *c);
enum wv_status ev_read_scores_csv(struct ev_ctx *c);
enum wv_status ev_read_detections_dir(struct ev_ctx *c);
enum wv_status ev_read_db(struct ev_ctx *c);
enum wv_status ev_read_slide_info(struct ev_ctx *c); /* --slides */
/* Parse one detection CSV (p,X,Y rows); *det malloc'ed. Header/blank lines noted in warnings. */
enum wv_status ev_parse_detections(struct ev_ctx *c, const char *path, struct froc_detection **det,
                                   size_t *n);
/* Find "<dir>/<file>" whose name matches one of the stems+extensions, case-insensitively;
 * returns 0 and fills out, or -1. stems: NULL-terminated. */
int ev_find_file(const char *dir, const char *const *stems, const char *const *exts, char *out,
                 size_t n);

/* report_write.c */
enum wv_status ev_write_outputs(struct ev_ctx *c);

#endif
