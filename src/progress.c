/*
 * progress.c — terminal progress bar / plain log lines (contract in progress.h).
 */
#include "progress.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define BAR_WIDTH 24

void progress_init(struct progress *p, FILE *out, int quiet)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    if (quiet || !out)
        p->mode = PROGRESS_QUIET;
    else
        p->mode = isatty(fileno(out)) ? PROGRESS_TTY : PROGRESS_LOG;
}

void progress_begin(struct progress *p, const char *label, size_t total, double total_mpix)
{
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->total_mpix = total_mpix;
    p->done = 0;
    p->done_mpix = 0;
    p->t_start = p->t_last = util_now();
    p->drawn = 0;
    if (p->mode == PROGRESS_LOG) { /* a log shows when the long part began */
        fprintf(p->out, "%s: %zu regions, %.1f Mpix to encode\n", p->label, total, total_mpix);
        fflush(p->out);
    }
}

void progress_format_eta(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

static void draw(struct progress *p, double now, int final)
{
    double el = now - p->t_start;
    double rate = el > 0 ? p->done_mpix / el : 0;
    char eta[32];
    if (final)
        progress_format_eta(el, eta, sizeof eta);
    else if (p->done_mpix > 0 && rate > 0)
        progress_format_eta((p->total_mpix - p->done_mpix) / rate, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "?");
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (p->mode == PROGRESS_TTY) {
        char bar[BAR_WIDTH + 1];
        int fill = (int)(frac * BAR_WIDTH + 0.5);
        for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(p->out, "\r\033[K%s [%s] %zu/%zu regions %5.1f%%  %.2f Mpix/s  %s %s", p->label,
                bar, p->done, p->total, 100.0 * frac, rate, final ? "in" : "ETA", eta);
        p->drawn = 1;
    } else {
        fprintf(p->out, "%s: %zu/%zu regions (%.0f%%), %.2f Mpix/s, %s %s\n", p->label, p->done,
                p->total, 100.0 * frac, rate, final ? "in" : "ETA", eta);
    }
    fflush(p->out);
    p->t_last = now;
}

void progress_update(struct progress *p, size_t done, double done_mpix)
{
    p->done = done;
    p->done_mpix = done_mpix;
    if (p->mode == PROGRESS_QUIET) return;
    double now = util_now();
    double every = p->mode == PROGRESS_TTY ? PROGRESS_TTY_INTERVAL_S : PROGRESS_LOG_INTERVAL_S;
    if (now - p->t_last >= every || (p->mode == PROGRESS_TTY && !p->drawn)) draw(p, now, 0);
}

void progress_end(struct progress *p, const char *msg)
{
    if (p->mode == PROGRESS_QUIET) return;
    if (p->mode == PROGRESS_TTY) {
        draw(p, util_now(), 1);
        fprintf(p->out, "%s%s\n", msg ? "  " : "", msg ? msg : "");
    } else {
        double el = util_now() - p->t_start;
        char t[32];
        progress_format_eta(el, t, sizeof t);
        fprintf(p->out, "%s: %zu/%zu regions in %s%s%s\n", p->label, p->done, p->total, t,
                msg ? ", " : "", msg ? msg : "");
    }
    fflush(p->out);
    p->drawn = 0;
}
