/*
 * progress.h — progress of a long job on stderr: on a terminal one redrawn line with a bar,
 * items done/total, Mpix/s and ETA; when the stream is not a terminal (a log file, a Slurm
 * job) plain lines, at most one per PROGRESS_LOG_INTERVAL_S plus one at the end; nothing when
 * quiet. Used by the analyze pipeline (regions of a slide).
 *
 * Not thread-safe: one thread updates a progress.
 */
#ifndef WV_PROGRESS_H
#define WV_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

/* A log line every 10 s keeps a 1-hour slide at ~360 lines; a terminal is redrawn at most
 * every 0.2 s (five frames a second is smooth enough and costs nothing). */
#define PROGRESS_LOG_INTERVAL_S 10.0
#define PROGRESS_TTY_INTERVAL_S 0.2

enum progress_mode { PROGRESS_QUIET, PROGRESS_TTY, PROGRESS_LOG };

struct progress {
    FILE *out;
    enum progress_mode mode;
    char label[128];
    size_t total, done;
    double total_mpix, done_mpix;
    double t_start, t_last;
    int drawn; /* a TTY line is on screen (needs a newline before other output) */
};

/* Set up for stream `out` (stderr): PROGRESS_TTY when isatty(out), else PROGRESS_LOG;
 * PROGRESS_QUIET when quiet is non-zero. */
void progress_init(struct progress *p, FILE *out, int quiet);
/* Start a job of `total` items covering `total_mpix` megapixels; label e.g. the slide id.
 * PROGRESS_LOG prints "<label>: <total> regions, <mpix> Mpix to encode" at once. */
void progress_begin(struct progress *p, const char *label, size_t total, double total_mpix);
/* `done` items (and `done_mpix` megapixels) are finished. Draws when due. */
void progress_update(struct progress *p, size_t done, double done_mpix);
/* Finish the line (TTY) or print the last log line, with `msg` appended (may be NULL). */
void progress_end(struct progress *p, const char *msg);
/* Format "1h02m", "3m05s", "42s" (seconds ≥ 0) into buf. */
void progress_format_eta(double seconds, char *buf, size_t n);

#endif
