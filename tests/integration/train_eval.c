/*
 * train_eval.c — held-out check of a trained model on cached features (issue 5): for every
 * <id>.h5 in FEATURES with a label in LABELS, the model's head (head_forward, the analyze
 * numerics) gives the slide probability and the per-cell heatmap; prints one JSON object with
 * the slide AUC and the cell AUC against the annotations rasterised on the cell grid (a cell is
 * tumour when its fraction ≥ 0.5; normal slides: every cell negative).
 * Usage: train_eval MODEL FEATURES_DIR LABELS_CSV ANNOTATIONS_DIR
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/features.h"
#include "src/head.h"
#include "src/labels.h"
#include "src/metrics.h"
#include "src/model_file.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: train_eval MODEL FEATURES_DIR LABELS_CSV ANNOTATIONS_DIR\n");
        return 2;
    }
    struct model *m;
    struct labels *lab;
    if (model_file_load(argv[1], &m) || labels_read_csv(argv[3], &lab)) {
        fprintf(stderr, "train_eval: %s\n", error_msg());
        return 1;
    }
    DIR *d = opendir(argv[2]);
    if (!d) return 1;
    struct dirent *e;
    size_t ns = 0, nc = 0, capc = 0;
    int ys[4096];
    double ss[4096];
    int *yc = NULL;
    double *sc = NULL;
    while ((e = readdir(d)) && ns < 4096) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 4 || strcmp(e->d_name + l - 3, ".h5")) continue;
        char id[256], path[4096];
        snprintf(id, sizeof id, "%.*s", (int)(l - 3), e->d_name);
        long k = labels_find(lab, id);
        if (k < 0) continue;
        snprintf(path, sizeof path, "%s/%s", argv[2], e->d_name);
        struct features_file ff;
        if (features_read(path, &ff)) {
            fprintf(stderr, "train_eval: %s: %s\n", path, error_msg());
            return 1;
        }
        const int R = ff.info.rows, C = ff.info.cols;
        float *prob = malloc((size_t)R * C * sizeof *prob), *fr = calloc((size_t)R * C, sizeof *fr);
        struct head_outputs o = {.cell_prob = prob};
        struct head_grid g = {R, C, ff.tissue, ff.feat, ff.info.feature_dim};
        if (head_forward(m->head, &g, 0, 0, &o)) {
            fprintf(stderr, "train_eval: %s: %s\n", id, error_msg());
            return 1;
        }
        char ap[4096];
        snprintf(ap, sizeof ap, "%s/%s.xml", argv[4], id);
        FILE *f = fopen(ap, "r");
        if (f) {
            fclose(f);
            if (labels_cell_fractions(ap, R, C, ff.info.cell_size_level0, 0, 0, 4, fr, NULL)) {
                fprintf(stderr, "train_eval: %s: %s\n", ap, error_msg());
                return 1;
            }
        }
        ys[ns] = lab->v[k].label;
        ss[ns++] = o.slide_prob;
        for (int q = 0; q < R * C; q++) {
            if (!ff.tissue[q]) continue;
            if (nc == capc) {
                capc = capc ? 2 * capc : 65536;
                yc = realloc(yc, capc * sizeof *yc);
                sc = realloc(sc, capc * sizeof *sc);
            }
            yc[nc] = fr[q] >= 0.5f;
            sc[nc++] = prob[q];
        }
        fprintf(stderr, "  %s: label %d, slide prob %.4f\n", id, lab->v[k].label, o.slide_prob);
        free(prob);
        free(fr);
        features_file_free(&ff);
    }
    closedir(d);
    double sa = NAN, ca = NAN;
    if (metrics_auc(ys, ss, ns, &sa)) fprintf(stderr, "train_eval: slide AUC: %s\n", error_msg());
    error_clear();
    size_t npos = 0;
    for (size_t i = 0; i < nc; i++) npos += (size_t)yc[i];
    if (metrics_auc(yc, sc, nc, &ca)) fprintf(stderr, "train_eval: cell AUC: %s\n", error_msg());
    printf("{\"slides\": %zu, \"slide_auc\": %.6f, \"cells\": %zu, \"tumour_cells\": %zu, "
           "\"cell_auc\": %.6f}\n",
           ns, sa, nc, npos, ca);
    free(yc);
    free(sc);
    labels_free(lab);
    model_free(m);
    return 0;
}
