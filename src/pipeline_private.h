/*
 * pipeline_private.h — shared between pipeline.c (planning, encoder, head, results) and
 * pipeline_read.c (the bounded region ring and its reader threads). Not a public contract.
 */
#ifndef WV_PIPELINE_PRIVATE_H
#define WV_PIPELINE_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct slide;

/* One region to read and encode. Cells: the core [row0, row0+n_rows) × [col0, col0+n_cols) of
 * the slide's cell grid. Read: read_w × read_h target px = whole core cells + the halo on every
 * side, top-left at level-0 (x0_l0, y0_l0) (may be negative: white there). */
struct region_geom {
    int row0, col0, n_rows, n_cols;
    size_t n_tissue;
    int read_w, read_h;
    int64_t x0_l0, y0_l0;
};

/* WV_EINTR with "interrupted by SIGINT|SIGTERM" once pipeline_request_stop ran, else WV_OK. */
enum wv_status pipeline_check_stop(void);

/* ---- the region ring (pipeline_read.c) ----------------------------------------------------
 * `queue` buffers of the largest read size; region i goes to buffer i % queue, so buffers are
 * filled and consumed strictly in plan order whatever the number of readers (results do not
 * depend on --readers/--queue). Readers take region indices in order; a reader waits until its
 * buffer has been released by the consumer. Memory: queue · max(read_w·read_h)·3 bytes. */
struct region_ring;

struct ring_params {
    struct slide *s;
    const struct region_geom *geom; /* n regions, plan order; must outlive the ring */
    size_t n;
    double target_mpp;
    double ds_y; /* level-0 px per target px vertically (band offsets) */
    int readers, queue;
};

/* Region RGB (npix pixels, 3 bytes each) → the backbone's normalised fp32 input, v·scale[c] +
 * bias[c], on `threads` OpenMP threads; the same values for any thread count. */
void pipeline_rgb_to_input(const uint8_t *in, float *dst, size_t npix, const float scale[3],
                           const float bias[3], int threads);

/* Allocate the buffers and start the reader threads. */
enum wv_status ring_start(const struct ring_params *rp, struct region_ring **out);
/* Wait for region i (i = 0, 1, … in order): *rgb (read_h, read_w, 3) bytes, valid until
 * ring_release(i). A read error comes back with the reader's message; WV_EINTR on a stop. */
enum wv_status ring_wait(struct region_ring *r, size_t i, const uint8_t **rgb);
/* Give region i's buffer back to the readers. */
void ring_release(struct region_ring *r, size_t i);
/* Cancel, join the readers, free. Returns the readers' busy seconds, summed. */
double ring_stop(struct region_ring *r);

#endif
