/*
 * fuzz_csv.c — libFuzzer entry for the CSV readers: the slide-labels CSV (labels_parse_csv,
 * src/labels.c), the batch manifest (manifest_parse, src/manifest.c) and the evaluation's
 * reference, slide-score and detection CSVs (ev_read_reference, ev_read_scores_csv,
 * ev_parse_detections in src/report_inputs.c). The first byte picks the reader (its value mod 5),
 * the rest is the file. The evaluation readers only take a path, so the bytes are written to a
 * memfd read back through /proc/self/fd/N. Built by tests/fuzz/build_and_run.sh; replayed by
 * replay.c in ctest. Seeds: tests/fuzz/corpus/fuzz_csv.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "src/error.h"
#include "src/labels.h"
#include "src/manifest.h"
#include "src/report_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference the score reader matches names against: both classes, one with an extension
 * (ev_name_eq ignores it). */
static const char k_reference[] = "image,type\nTumor_001,Tumor\nNormal_001.tif,Normal\n";

/* Replace the memfd's contents with (data, len); returns its /proc path or NULL. */
static const char *memfd_put(int *fd, char *path, size_t n, const void *data, size_t len)
{
    if (*fd < 0) {
        *fd = memfd_create("fuzz_csv", 0);
        if (*fd < 0) return NULL;
    }
    if (ftruncate(*fd, 0) || (len && pwrite(*fd, data, len, 0) != (ssize_t)len)) return NULL;
    snprintf(path, n, "/proc/self/fd/%d", *fd);
    return path;
}

static void ctx_clear(struct ev_ctx *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->slides[i].name);
        free(c->slides[i].ref_class);
    }
    free(c->slides);
    ev_warnings_free(&c->warn);
}

static void fuzz_eval(int mode, const uint8_t *data, size_t size)
{
    static int fd_ref = -1, fd_in = -1;
    char ref_path[64], in_path[64];
    struct report_opts o;
    memset(&o, 0, sizeof o);
    o.quiet = 1;
    struct ev_ctx c;
    memset(&c, 0, sizeof c);
    c.o = &o;
    const char *in = memfd_put(&fd_in, in_path, sizeof in_path, data, size);
    if (!in) return;
    if (mode == 2) { /* reference */
        o.reference_csv = in;
        (void)ev_read_reference(&c);
    } else if (mode == 3) { /* slide scores against a fixed reference */
        o.reference_csv = memfd_put(&fd_ref, ref_path, sizeof ref_path, k_reference,
                                    sizeof k_reference - 1);
        o.scores_csv = in;
        if (o.reference_csv && ev_read_reference(&c) == WV_OK) (void)ev_read_scores_csv(&c);
    } else { /* detections */
        struct froc_detection *det = NULL;
        size_t n = 0;
        if (ev_parse_detections(&c, in, &det, &n) == WV_OK) free(det);
    }
    ctx_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    int mode = data[0] % 5;
    data++;
    size--;
    if (mode == 0) {
        struct labels *l = NULL;
        if (labels_parse_csv((const char *)data, size, &l) == WV_OK) labels_free(l);
    } else if (mode == 1) {
        struct manifest m;
        (void)manifest_parse((const char *)data, size, "/base", &m);
        manifest_free(&m);
    } else {
        fuzz_eval(mode, data, size);
    }
    error_clear();
    return 0;
}
