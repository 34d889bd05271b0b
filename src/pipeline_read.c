/*
 * pipeline_read.c — the bounded region ring between the reader threads and the encoder
 * (pipeline_private.h; DESIGN.md "Data flow": back-pressure, memory independent of the slide).
 * libvips-style: every buffer is allocated at start, the steady state allocates nothing.
 *
 * The unit of work is a band of PIPELINE_READ_BAND rows of a region, not a region: readers take
 * the next unread band of the oldest region that has a buffer, so all of them work on the region
 * the encoder needs next. With one reader per region (the first version) a region took one
 * thread's decode time (~3 s for a 10,496² region on the H200 host, where the GPU encodes it in
 * 0.8 s), the encoder waited 48 % of the slide's time, and readers beyond the queue length idled.
 * Each band reads a fixed area, so the pixels do not depend on which thread read them.
 */
#include "pipeline_private.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline.h"
#include "util.h"
#include "wsi/slide.h"

/* The consumer re-checks the stop flag this often while it waits (a signal handler cannot
 * signal a condition variable). */
#define RING_POLL_MS 100

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READY };

struct slot {
    size_t expect;  /* the region this buffer takes next: k, k + queue, k + 2·queue, … */
    enum slot_state state;
    int bands, next_band, done_bands; /* while SLOT_READING */
    uint8_t *rgb;
    enum wv_status st; /* of the read: the first failing band's */
    char err[512];
};

struct region_ring {
    struct ring_params rp;
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_ready;
    struct slot *slots;
    pthread_t *threads;
    int n_threads;
    size_t next; /* next region index whose reading has not started */
    int cancel;
    double busy_s;
};

static void deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static int region_bands(const struct region_geom *g)
{
    return g->read_h > 0 ? (g->read_h + PIPELINE_READ_BAND - 1) / PIPELINE_READ_BAND : 0;
}

/* Band k of a region: rows [k·band, …) at level-0 y0 + round(k·band·ds_y) — deterministic,
 * whatever the thread that reads it. */
static enum wv_status read_band(const struct ring_params *rp, const struct region_geom *g, int k,
                                uint8_t *rgb)
{
    enum wv_status st = pipeline_check_stop();
    if (st) return st;
    int y = k * PIPELINE_READ_BAND;
    int h = g->read_h - y < PIPELINE_READ_BAND ? g->read_h - y : PIPELINE_READ_BAND;
    int64_t y_l0 = g->y0_l0 + (int64_t)llround(y * rp->ds_y);
    return slide_read_region_mpp(rp->s, g->x0_l0, y_l0, g->read_w, h, rp->target_mpp,
                                 rgb + (size_t)y * g->read_w * 3);
}

/* Under the lock: a band to read — the next band of the oldest region being read, else the first
 * band of the next region once its buffer is free. Returns 0 when there is none yet. */
static int take_band(struct region_ring *r, size_t *region, int *band)
{
    const size_t Q = (size_t)r->rp.queue;
    size_t first = r->next > Q ? r->next - Q : 0;
    for (size_t i = first; i < r->next; i++) {
        struct slot *sl = &r->slots[i % Q];
        if (sl->expect == i && sl->state == SLOT_READING && sl->next_band < sl->bands) {
            *region = i;
            *band = sl->next_band++;
            return 1;
        }
    }
    if (r->next < r->rp.n) {
        size_t i = r->next;
        struct slot *sl = &r->slots[i % Q];
        if (sl->state == SLOT_FREE && sl->expect == i) {
            r->next++;
            sl->state = SLOT_READING;
            sl->bands = region_bands(&r->rp.geom[i]);
            sl->next_band = sl->done_bands = 0;
            sl->st = WV_OK;
            sl->err[0] = 0;
            if (sl->bands == 0) { /* nothing to read: ready at once */
                sl->state = SLOT_READY;
                pthread_cond_broadcast(&r->cv_ready);
                return take_band(r, region, band);
            }
            *region = i;
            *band = sl->next_band++;
            return 1;
        }
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct region_ring *r = arg;
    const size_t Q = (size_t)r->rp.queue;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        size_t i = 0;
        int k = 0;
        while (!r->cancel && !take_band(r, &i, &k)) {
            if (r->next >= r->rp.n) { /* every region started: nothing left to take */
                int busy = 0;
                for (size_t q = 0; q < Q; q++)
                    busy |= r->slots[q].state == SLOT_READING && r->slots[q].next_band < r->slots[q].bands;
                if (!busy) goto out;
            }
            pthread_cond_wait(&r->cv_free, &r->mu);
        }
        if (r->cancel) break;
        struct slot *sl = &r->slots[i % Q];
        pthread_mutex_unlock(&r->mu);

        double t0 = util_now();
        error_clear();
        enum wv_status st = read_band(&r->rp, &r->rp.geom[i], k, sl->rgb);
        char err[512] = "";
        if (st) snprintf(err, sizeof err, "%s", error_msg());
        error_clear();
        double dt = util_now() - t0;

        pthread_mutex_lock(&r->mu);
        r->busy_s += dt;
        if (st && !sl->st) {
            sl->st = st;
            memcpy(sl->err, err, sizeof sl->err);
        }
        if (st) sl->bands = sl->next_band; /* the region failed: no more of its bands are taken;
                                              it is over when the ones taken are done */
        if (++sl->done_bands == sl->bands && sl->next_band == sl->bands) {
            sl->state = SLOT_READY;
            pthread_cond_broadcast(&r->cv_ready);
        }
        /* others may be waiting for work this thread could not take */
        pthread_cond_broadcast(&r->cv_free);
    }
out:
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void ring_free(struct region_ring *r)
{
    if (!r) return;
    if (r->slots)
        for (int k = 0; k < r->rp.queue; k++) free(r->slots[k].rgb);
    free(r->slots);
    free(r->threads);
    pthread_cond_destroy(&r->cv_ready);
    pthread_cond_destroy(&r->cv_free);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

enum wv_status ring_start(const struct ring_params *rp, struct region_ring **out)
{
    *out = NULL;
    struct region_ring *r = wv_calloc(1, sizeof *r, "region ring");
    if (!r) return WV_ENOMEM;
    r->rp = *rp;
    /* no more buffers than regions (readers share a region's bands, so any number of them has
     * work while a buffer is being read) */
    if ((size_t)r->rp.queue > rp->n) r->rp.queue = (int)rp->n;
    if (r->rp.queue < 1) r->rp.queue = 1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv_free, NULL);
    pthread_cond_init(&r->cv_ready, NULL);
    size_t max_bytes = 0;
    for (size_t i = 0; i < rp->n; i++) {
        size_t b = (size_t)rp->geom[i].read_w * rp->geom[i].read_h * 3;
        if (b > max_bytes) max_bytes = b;
    }
    if (!(r->slots = wv_calloc((size_t)r->rp.queue, sizeof *r->slots, "region ring")) ||
        !(r->threads = wv_calloc((size_t)r->rp.readers, sizeof *r->threads, "readers"))) {
        ring_free(r);
        return WV_ENOMEM;
    }
    for (int k = 0; k < r->rp.queue; k++) {
        r->slots[k].expect = (size_t)k;
        if (!(r->slots[k].rgb = wv_malloc(max_bytes, "region buffer"))) {
            error_prefix("%d buffers of %.1f MiB (lower --queue or --region)", r->rp.queue,
                         max_bytes / 1048576.0);
            ring_free(r);
            return WV_ENOMEM;
        }
    }
    for (int t = 0; t < r->rp.readers; t++) {
        int e = pthread_create(&r->threads[t], NULL, reader_main, r);
        if (e) {
            error_set(WV_ENOMEM, "cannot start reader thread: %s", strerror(e));
            r->n_threads = t;
            ring_stop(r);
            return WV_ENOMEM;
        }
        r->n_threads = t + 1;
    }
    *out = r;
    return WV_OK;
}

enum wv_status ring_wait(struct region_ring *r, size_t i, const uint8_t **rgb)
{
    struct slot *sl = &r->slots[i % (size_t)r->rp.queue];
    enum wv_status st = WV_OK;
    pthread_mutex_lock(&r->mu);
    while (!(sl->state == SLOT_READY && sl->expect == i)) {
        if ((st = pipeline_check_stop())) break;
        struct timespec ts;
        deadline(&ts, RING_POLL_MS);
        pthread_cond_timedwait(&r->cv_ready, &r->mu, &ts);
    }
    if (!st && sl->st) st = error_set(sl->st, "%s", sl->err);
    pthread_mutex_unlock(&r->mu);
    *rgb = st ? NULL : sl->rgb;
    return st;
}

void ring_release(struct region_ring *r, size_t i)
{
    struct slot *sl = &r->slots[i % (size_t)r->rp.queue];
    pthread_mutex_lock(&r->mu);
    sl->state = SLOT_FREE;
    sl->expect = i + (size_t)r->rp.queue;
    pthread_cond_broadcast(&r->cv_free);
    pthread_mutex_unlock(&r->mu);
}

double ring_stop(struct region_ring *r)
{
    if (!r) return 0;
    pthread_mutex_lock(&r->mu);
    r->cancel = 1;
    pthread_cond_broadcast(&r->cv_free);
    pthread_mutex_unlock(&r->mu);
    for (int t = 0; t < r->n_threads; t++) pthread_join(r->threads[t], NULL);
    double busy = r->busy_s;
    ring_free(r);
    return busy;
}
