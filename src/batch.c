/*
 * batch.c — `wsi-vmamba batch`: plan (list, hash, dedupe, shard, ids, resume lookup) and the
 * parent's dispatch loop over forked workers (contract in batch.h; the worker is
 * batch_worker.c, the listing batch_scan.c; user guide docs/batch.md).
 */
#include "batch.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch_private.h"
#include "heatmaps/h5store.h"
#include "manifest.h"
#include "progress.h"
#include "sha256.h"
#include "util.h"
#include "version.h"

void batch_options_default(struct batch_options *o)
{
    memset(o, 0, sizeof *o);
    o->jobs = 0;
    o->shard_index = 0;
    o->shard_count = 1;
    pipeline_options_default(&o->pipe);
}

enum wv_status batch_parse_shard(const char *s, int *index, int *count)
{
    char *end;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (end == s || *end != '/' || errno) goto bad;
    const char *s2 = end + 1;
    long n = strtol(s2, &end, 10);
    if (end == s2 || *end || errno) goto bad;
    if (n < 1 || n > 100000 || i < 0 || i >= n)
        return error_set(WV_EINVAL, "--shard %s: need 0 <= I < N <= 100000", s);
    *index = (int)i;
    *count = (int)n;
    return WV_OK;
bad:
    return error_set(WV_EINVAL, "--shard %s: expected I/N, e.g. 0/4", s);
}

enum wv_status batch_parse_devices(const char *s, int *devices, int max, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1023 || (*end && *end != ','))
            return error_set(WV_EINVAL, "--devices %s: expected CUDA ordinals like 0,1,2", s);
        if (*n == max) return error_set(WV_EINVAL, "--devices %s: more than %d devices", s, max);
        for (int k = 0; k < *n; k++)
            if (devices[k] == v) return error_set(WV_EINVAL, "--devices %s: %ld listed twice", s, v);
        devices[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p) return error_set(WV_EINVAL, "--devices %s: trailing comma", s);
    }
    if (!*n) return error_set(WV_EINVAL, "--devices: empty list");
    return WV_OK;
}

/* ---- signals ---------------------------------------------------------------------------------- */

static atomic_int g_stop;

static void on_signal(int signo)
{
    atomic_store(&g_stop, signo);
}

/* ---- plan ------------------------------------------------------------------------------------- */

static int cmp_items(const void *a, const void *b)
{
    const struct batch_item *x = a, *y = b;
    if (!x->path || !y->path) {
        if (x->path) return -1;
        if (y->path) return 1;
        return x->line - y->line;
    }
    return strcmp(x->path, y->path);
}

/* the shard of a content hash: its first 64 bits mod N — stable when the archive grows */
static int shard_of(const char *hash, int n)
{
    const char *hex = strchr(hash, ':');
    hex = hex ? hex + 1 : hash;
    uint64_t v = 0;
    for (int i = 0; i < 16 && hex[i]; i++) {
        char c = hex[i];
        v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return (int)(v % (uint64_t)n);
}

static const char *item_name(const struct batch_item *it, char *buf, size_t n)
{
    if (it->path) {
        manifest_escape(it->path, buf, n);
        size_t k = strlen(buf);
        if (it->line > 0 && k + 32 < n) snprintf(buf + k, n - k, " (manifest line %d)", it->line);
    } else {
        snprintf(buf, n, "manifest line %d", it->line);
    }
    return buf;
}

struct hidx {
    const char *hash;
    size_t item;
};

static int cmp_hidx(const void *a, const void *b)
{
    const struct hidx *x = a, *y = b;
    int c = strcmp(x->hash, y->hash);
    if (c) return c;
    return x->item < y->item ? -1 : x->item > y->item;
}

static int cmp_idx_by_id(const void *a, const void *b, void *ctx);

struct plan_ctx {
    const struct batch_options *o;
    struct batch_list *l;
    struct resultsdb *db; /* NULL in a dry run without a database */
    struct hidx *byhash;  /* primaries sorted by hash */
    size_t n_byhash;
};

static int hash_in_list(const struct plan_ctx *pc, const char *hash, size_t except)
{
    struct hidx key = {hash, 0};
    size_t lo = 0, hi = pc->n_byhash;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(pc->byhash[mid].hash, key.hash) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < pc->n_byhash && !strcmp(pc->byhash[lo].hash, hash) && pc->byhash[lo].item != except;
}

static void suffix_id(struct batch_item *it)
{
    const char *hex = strchr(it->hash, ':');
    hex = hex ? hex + 1 : it->hash;
    char base[SLIDE_ID_MAX_LEN + 1];
    snprintf(base, sizeof base, "%s", it->slide_id);
    size_t keep = SLIDE_ID_MAX_LEN - 9;
    if (strlen(base) > keep) {
        while (keep > 0 && ((unsigned char)base[keep] & 0xC0) == 0x80) keep--;
        base[keep] = '\0';
    }
    /* base + '-' + 8 hex digits: at most SLIDE_ID_MAX_LEN bytes by the cut above (built by
     * hand: snprintf's truncation warning cannot see that bound at -O0) */
    size_t nb = strlen(base), nh = strnlen(hex, 8);
    memcpy(it->slide_id, base, nb);
    it->slide_id[nb] = '-';
    memcpy(it->slide_id + nb + 1, hex, nh);
    it->slide_id[nb + 1 + nh] = '\0';
}

static struct batch_list *g_sort_list; /* qsort has no context argument */

static int cmp_idx_by_id(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    const struct batch_item *x = &g_sort_list->items[*(const size_t *)a];
    const struct batch_item *y = &g_sort_list->items[*(const size_t *)b];
    int c = strcmp(x->slide_id, y->slide_id);
    if (c) return c;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int cmp_idx_qsort(const void *a, const void *b)
{
    return cmp_idx_by_id(a, b, NULL);
}

/* Give every primary item a slide id (deterministic over the whole list, so every shard agrees)
 * and then, for this shard, prefer the id the database already has for the content. */
static enum wv_status assign_ids(struct plan_ctx *pc, size_t *prim, size_t n_prim)
{
    struct batch_list *l = pc->l;
    for (size_t k = 0; k < n_prim; k++) {
        struct batch_item *it = &l->items[prim[k]];
        if (it->want_id)
            snprintf(it->slide_id, sizeof it->slide_id, "%s", it->want_id);
        else
            slide_id_from_path(it->path, it->slide_id, sizeof it->slide_id);
    }
    /* same id for different content: ids derived from file names get "-<8 hex of the hash>";
     * repeat until unique (a suffixed id could meet another file's name) */
    for (int round = 0; round < 3; round++) {
        g_sort_list = l;
        qsort(prim, n_prim, sizeof *prim, cmp_idx_qsort);
        int changed = 0;
        for (size_t a = 0; a < n_prim;) {
            size_t b = a + 1;
            while (b < n_prim && !strcmp(l->items[prim[a]].slide_id, l->items[prim[b]].slide_id)) b++;
            if (b - a > 1)
                for (size_t k = a; k < b; k++) {
                    struct batch_item *it = &l->items[prim[k]];
                    if (!it->want_id || round > 0) {
                        suffix_id(it);
                        changed = 1;
                    }
                }
            a = b;
        }
        if (!changed) break;
    }
    for (size_t k = 0; k < n_prim; k++) {
        struct batch_item *it = &l->items[prim[k]];
        const char *why;
        if (!slide_id_valid(it->slide_id, &why))
            batch_item_error(it, "slide id %s: %s (give it a slide_id in a manifest)",
                             it->slide_id, why);
    }
    return WV_OK;
}

static enum wv_status lookup_db(struct plan_ctx *pc, size_t *prim, size_t n_prim)
{
    const struct batch_options *o = pc->o;
    struct batch_list *l = pc->l;
    enum wv_status st = WV_OK;
    for (size_t k = 0; k < n_prim && !st; k++) {
        struct batch_item *it = &l->items[prim[k]];
        if (it->action != ACT_ANALYZE) continue;
        struct resultsdb_row row;
        int found = 0;
        if ((st = resultsdb_find_by_hash(pc->db, it->hash, &row, &found))) break;
        if (!found) {
            /* the id is free, or holds an older version of this file (a changed file: redone
             * under the same id), or another listed file's results (that one keeps them) */
            if ((st = resultsdb_get_slide(pc->db, it->slide_id, &row, &found))) break;
            if (found && row.content_hash && strcmp(row.content_hash, it->hash) &&
                hash_in_list(pc, row.content_hash, prim[k]))
                suffix_id(it);
            else if (found)
                it->retry = 1;
            resultsdb_row_free(&row);
            continue;
        }
        snprintf(it->slide_id, sizeof it->slide_id, "%s", row.slide_id);
        it->id_from_db = 1;
        const char *s = row.status ? row.status : "";
        if (!strcmp(s, "done")) {
            char h5[4400];
            if (!h5store_path(o->out_dir, it->slide_id, h5, sizeof h5) &&
                h5store_check_complete(h5) == WV_OK) {
                it->action = ACT_SKIP_DONE;
                /* a renamed or moved file: keep the row's path current */
                if (!o->dry_run && row.path && strcmp(row.path, it->path) &&
                    batch_db_set_facts(pc->db, it->slide_id, it->path, it->hash, it->size_bytes,
                                       it->label, NULL))
                    error_clear(); /* cosmetic: the results stand either way */
            } else {
                error_clear();
                it->retry = 1; /* row done but its file is missing or incomplete */
            }
        } else if (!strcmp(s, "failed")) {
            int interrupted = row.error && !strncmp(row.error, "interrupted", 11);
            if (interrupted || o->retry_failed) {
                it->retry = 1;
            } else {
                it->action = ACT_SKIP_FAILED;
                free(it->error);
                it->error = strdup(row.error ? row.error : "failed");
            }
        } else {
            /* running or pending: a live batch process holds its lock, or its run died */
            char lp[4400];
            batch_lock_path(o->out_dir, it->hash, lp, sizeof lp);
            int fd = batch_lock_try(lp);
            if (fd == -1)
                it->action = ACT_BUSY;
            else
                it->retry = 1;
            if (fd >= 0) close(fd);
        }
        resultsdb_row_free(&row);
    }
    /* two slides of this shard on one id (a database id met a listed file's name): the one
     * without database results moves aside */
    g_sort_list = l;
    qsort(prim, n_prim, sizeof *prim, cmp_idx_qsort);
    for (size_t k = 1; k < n_prim; k++) {
        struct batch_item *a = &l->items[prim[k - 1]], *b = &l->items[prim[k]];
        if (!strcmp(a->slide_id, b->slide_id)) suffix_id(a->id_from_db ? b : a);
    }
    return st;
}

/* ---- temp files of dead processes ---------------------------------------------------------------- */

/* A process that has exited: no such pid, or a zombie (exited, not yet reaped). A worker killed
 * with its batch is reparented to PID 1, and a container's PID 1 may reap late or never (docker
 * without --init): kill(pid, 0) succeeds on a zombie, and its temp files would stay forever. */
static int pid_dead(long pid)
{
    if (pid <= 0) return 0;
    if (kill((pid_t)pid, 0)) return errno == ESRCH;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parentheses) */
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* trailing ".tmp.<pid>" or ".wsi-vmamba-probe.<pid>": the pid, else 0 */
static long tmp_pid(const char *name)
{
    const char *p = strrchr(name, '.');
    if (!p || !p[1]) return 0;
    for (const char *c = p + 1; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    size_t pre = (size_t)(p - name);
    if ((pre >= 4 && !strncmp(p - 4, ".tmp", 4)) ||
        (pre >= 17 && !strncmp(p - 17, ".wsi-vmamba-probe", 17)))
        return strtol(p + 1, NULL, 10);
    return 0;
}

static void rm_tree_shallow(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4600];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Remove temp files (h5store's .<id>.h5.tmp.<pid>, exports' <file>.tmp.<pid>, the probe file)
 * and symlink folders left by processes that no longer exist — or, with only_pid > 0, by that
 * one (a worker the parent just reaped). Returns how many were removed. */
static size_t clean_stale(const char *out_dir, long only_pid)
{
    size_t n = 0;
    DIR *d = opendir(out_dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = tmp_pid(e->d_name);
        if (!pid || (only_pid > 0 ? pid != only_pid : !pid_dead(pid))) continue;
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", out_dir, e->d_name);
        if (!unlink(p)) n++;
    }
    closedir(d);
    char links[4300];
    snprintf(links, sizeof links, "%s/.batch/links", out_dir);
    if ((d = opendir(links))) {
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (end == e->d_name || *end || (only_pid > 0 ? pid != only_pid : !pid_dead(pid)))
                continue;
            char p[4600];
            snprintf(p, sizeof p, "%s/%s", links, e->d_name);
            rm_tree_shallow(p);
        }
        closedir(d);
    }
    return n;
}

/* ---- progress --------------------------------------------------------------------------------- */

struct prog {
    int quiet;
    double t0, t_last;
    size_t total, done, failed;
};

static void prog_line(struct prog *pg, const char *what)
{
    if (pg->quiet) return;
    double el = util_now() - pg->t0;
    size_t fin = pg->done + pg->failed;
    size_t rem = pg->total > fin ? pg->total - fin : 0;
    double rate = el > 0 ? fin / el * 3600.0 : 0;
    char eta[32] = "?";
    if (fin && rem) progress_format_eta(rem / (fin / el), eta, sizeof eta);
    else if (!rem) snprintf(eta, sizeof eta, "0s");
    fprintf(stderr, "batch: [%zu/%zu] done %zu, failed %zu, remaining %zu | %.1f slides/h | ETA %s%s%s\n",
            fin, pg->total, pg->done, pg->failed, rem, rate, eta, what ? " | " : "",
            what ? what : "");
    fflush(stderr);
    pg->t_last = util_now();
}

/* ---- the run ---------------------------------------------------------------------------------- */

static void print_item_error(const struct batch_item *it, const char *reason)
{
    char name[1200];
    fprintf(stderr, "wsi-vmamba: %s: %s\n", item_name(it, name, sizeof name),
            reason ? reason : "(no message)");
}

static const char *reason_of_death(int status, int timed_out, double timeout, char *buf, size_t n)
{
    if (timed_out)
        snprintf(buf, n, "timed out after %g s (worker killed)", timeout);
    else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        snprintf(buf, n, "worker killed by SIGKILL (out of memory? see the kernel log)");
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "worker crashed: %s (signal %d)", strsignal(WTERMSIG(status)),
                 WTERMSIG(status));
    else if (WIFEXITED(status))
        snprintf(buf, n, "worker exited with status %d",
                 WEXITSTATUS(status));
    else
        snprintf(buf, n, "worker ended");
    return buf;
}

struct runner {
    const struct batch_options *o;
    struct batch_list *l;
    struct resultsdb *db;
    struct batch_worker *w;
    int n_workers;
    size_t *queue, n_queue, next;
    struct prog pg;
    int stopping;
    double stop_deadline;
    int startup_deaths;
    enum wv_status fatal;
    char fatal_msg[2048];
};

static int worker_device(const struct runner *r, int k)
{
    return r->o->n_devices ? r->o->devices[k] : -1;
}

static void finish_item(struct runner *r, struct batch_item *it, int ok, const char *reason,
                        double prob, double secs)
{
    char what[1400];
    if (ok) {
        it->state = ST_DONE;
        it->slide_prob = prob;
        it->seconds = secs;
        r->pg.done++;
        snprintf(what, sizeof what, "%s: done (p=%.4g, %.1f s)", it->slide_id, prob, secs);
    } else {
        it->state = ST_FAILED;
        free(it->error);
        it->error = strdup(reason ? reason : "failed");
        r->pg.failed++;
        print_item_error(it, reason);
        snprintf(what, sizeof what, "%s: failed", it->slide_id);
    }
    prog_line(&r->pg, what);
}

/* A worker's pipe ended: reap it, record its slide, start another if there is work. */
static void worker_ended(struct runner *r, int k)
{
    struct batch_worker *w = &r->w[k];
    int status = 0;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {
    }
    batch_worker_close(w);
    clean_stale(r->o->out_dir, w->pid);
    int had = w->item;
    if (had >= 0) {
        struct batch_item *it = &r->l->items[had];
        char why[512];
        reason_of_death(status, w->timed_out, r->o->slide_timeout_s, why, sizeof why);
        if (r->stopping && !w->timed_out) {
            it->state = ST_TODO; /* interrupted: redone by the next run */
            if (batch_db_fail(r->db, it, "interrupted (batch stopped)")) error_clear();
        } else {
            if (batch_db_fail(r->db, it, why)) {
                char dbw[512];
                if (snprintf(dbw, sizeof dbw, "%s (and recording it failed: %s)", why,
                             error_msg()) >= (int)sizeof dbw)
                    dbw[sizeof dbw - 2] = '~';
                error_clear();
                memcpy(why, dbw, sizeof why);
            }
            finish_item(r, it, 0, why, 0, 0);
        }
    } else if (!w->ready) {
        r->startup_deaths++;
        if (r->startup_deaths >= 3 && r->fatal == WV_OK) {
            char why[512];
            r->fatal = WV_EIO;
            snprintf(r->fatal_msg, sizeof r->fatal_msg, "workers die while starting: %s",
                     reason_of_death(status, 0, 0, why, sizeof why));
        }
    }
    w->pid = 0;
    w->item = -1;
    w->ready = 0;
    w->timed_out = 0;
    w->retiring = 0;
    if (!r->stopping && r->fatal == WV_OK && r->next < r->n_queue) {
        if (batch_worker_spawn(r->o, r->l, worker_device(r, k), w)) {
            r->fatal = error_code();
            snprintf(r->fatal_msg, sizeof r->fatal_msg, "%s", error_msg());
            error_clear();
            w->pid = 0;
        }
    }
}

static void worker_message(struct runner *r, int k, const struct batch_wmsg *m)
{
    struct batch_worker *w = &r->w[k];
    if (m->kind == WMSG_READY) {
        if (m->status != WV_OK) {
            if (r->fatal == WV_OK) {
                r->fatal = (enum wv_status)m->status;
                snprintf(r->fatal_msg, sizeof r->fatal_msg, "%s", m->msg);
            }
            return;
        }
        w->ready = 1;
        r->startup_deaths = 0;
        return;
    }
    if (m->item != w->item || m->item < 0) return;
    struct batch_item *it = &r->l->items[m->item];
    w->item = -1;
    if (m->exiting) {
        w->retiring = 1;
        batch_worker_close_input(w);
    }
    if (m->busy) {
        it->action = ACT_BUSY;
        it->state = ST_TODO;
        if (r->pg.total) r->pg.total--;
        return;
    }
    if (m->status != WV_OK && (r->stopping || !strncmp(m->msg, "interrupted", 11))) {
        it->state = ST_TODO; /* recorded "interrupted": the next run redoes it */
        return;
    }
    finish_item(r, it, m->status == WV_OK, m->msg, m->slide_prob, m->seconds);
}

static void dispatch(struct runner *r)
{
    double last_beat = util_now();
    for (;;) {
        int sig = atomic_load(&g_stop);
        if ((sig || r->fatal) && !r->stopping) {
            r->stopping = 1;
            r->stop_deadline = util_now() + BATCH_STOP_GRACE_S;
            for (int k = 0; k < r->n_workers; k++)
                if (r->w[k].pid > 0) kill(r->w[k].pid, SIGTERM);
            if (sig && !r->pg.quiet)
                fprintf(stderr, "batch: %s: stopping (the slides in progress are redone next run)\n",
                        sig == SIGINT ? "SIGINT" : "SIGTERM");
        }
        if (r->stopping && util_now() > r->stop_deadline)
            for (int k = 0; k < r->n_workers; k++)
                if (r->w[k].pid > 0) kill(r->w[k].pid, SIGKILL);
        /* hand out work; idle workers with nothing left get end-of-work */
        int alive = 0;
        for (int k = 0; k < r->n_workers; k++) {
            struct batch_worker *w = &r->w[k];
            if (w->pid <= 0) continue;
            alive++;
            if (!w->ready || w->retiring || w->item >= 0 || w->to_fd < 0) continue;
            if (!r->stopping && r->next < r->n_queue) {
                int32_t idx = (int32_t)r->queue[r->next++];
                if (write(w->to_fd, &idx, sizeof idx) == (ssize_t)sizeof idx) {
                    w->item = idx;
                    w->started = util_now();
                    r->l->items[idx].state = ST_RUNNING;
                } else {
                    r->next--; /* the worker is gone; its end-of-file comes through poll */
                }
            } else {
                batch_worker_close_input(w); /* no more work: the worker ends */
            }
        }
        if (!alive) break;
        /* timeouts */
        if (r->o->slide_timeout_s > 0)
            for (int k = 0; k < r->n_workers; k++) {
                struct batch_worker *w = &r->w[k];
                if (w->pid > 0 && w->item >= 0 && !w->timed_out &&
                    util_now() - w->started > r->o->slide_timeout_s) {
                    w->timed_out = 1;
                    kill(w->pid, SIGKILL);
                }
            }
        struct pollfd pf[BATCH_MAX_JOBS];
        int map[BATCH_MAX_JOBS], np = 0;
        for (int k = 0; k < r->n_workers; k++)
            if (r->w[k].pid > 0 && r->w[k].from_fd >= 0) {
                pf[np].fd = r->w[k].from_fd;
                pf[np].events = POLLIN;
                pf[np].revents = 0;
                map[np++] = k;
            }
        int pr = poll(pf, (nfds_t)np, 250);
        if (pr < 0 && errno != EINTR) break;
        for (int i = 0; i < np && pr > 0; i++) {
            if (!pf[i].revents) continue;
            int k = map[i];
            struct batch_wmsg m;
            ssize_t got = read(pf[i].fd, &m, sizeof m);
            if (got == (ssize_t)sizeof m)
                worker_message(r, k, &m);
            else if (got < 0 && errno == EINTR)
                continue;
            else
                worker_ended(r, k); /* end of file (or a torn message: treat as death) */
        }
        if (!r->pg.quiet && util_now() - last_beat > BATCH_LOG_INTERVAL_S &&
            util_now() - r->pg.t_last > BATCH_LOG_INTERVAL_S) {
            prog_line(&r->pg, NULL);
            last_beat = util_now();
        }
    }
}

static void print_summary(const struct batch_options *o, const struct batch_list *l,
                          const struct batch_summary *s, double seconds)
{
    if (o->quiet) return;
    char el[32];
    progress_format_eta(seconds, el, sizeof el);
    printf("batch summary%s: %zu listed; analyzed %zu (done %zu, failed %zu); already done %zu; "
           "failed earlier, not retried %zu; duplicates %zu; other shards %zu; busy elsewhere %zu; "
           "input errors %zu; remaining %zu; %s\n",
           o->dry_run ? " (dry run)" : "", s->n_listed,
           s->n_done + s->n_failed - s->n_failed_earlier, s->n_done,
           s->n_failed - s->n_failed_earlier, s->n_skipped_done, s->n_failed_earlier,
           s->n_duplicates, s->n_other_shard, s->n_busy, s->n_input_errors,
           s->n_remaining, el);
    int head = 0;
    char name[1200];
    for (size_t i = 0; i < l->n; i++) {
        const struct batch_item *it = &l->items[i];
        if (!(it->state == ST_FAILED || it->action == ACT_SKIP_FAILED)) continue;
        if (!head++) printf("failed slides:\n");
        printf("  %s (%s): %s%s\n", it->slide_id, item_name(it, name, sizeof name),
               it->error ? it->error : "failed",
               it->action == ACT_SKIP_FAILED ? " [earlier run; --retry-failed retries]" : "");
    }
    head = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct batch_item *it = &l->items[i];
        if (it->action != ACT_ERROR) continue;
        if (!head++) printf("input errors:\n");
        printf("  %s: %s\n", item_name(it, name, sizeof name), it->error ? it->error : "error");
    }
    fflush(stdout);
}

static void print_plan(const struct batch_list *l)
{
    static const char *names[] = {"analyze", "skip (done)", "skip (failed earlier)", "duplicate",
                                  "other shard", "busy", "error"};
    char name[1200];
    for (size_t i = 0; i < l->n; i++) {
        const struct batch_item *it = &l->items[i];
        printf("%-22s %-30s %s", names[it->action], it->slide_id[0] ? it->slide_id : "-",
               item_name(it, name, sizeof name));
        if (it->action == ACT_ANALYZE && it->retry) printf("  [redo]");
        if (it->action == ACT_DUPLICATE) printf("  [same content as %s]", l->items[it->dup_of].path);
        if (it->action == ACT_ERROR || it->action == ACT_SKIP_FAILED)
            printf("  [%s]", it->error ? it->error : "");
        printf("\n");
    }
}

/* "dir/x" → "<cwd>/dir/x": paths in the database and in h5_path must not depend on where the
 * next run (or the merge job) is started */
static void absolute(const char *p, char *out, size_t n)
{
    char cwd[4096];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd) ||
        snprintf(out, n, "%s/%s", cwd, p) >= (int)n)
        snprintf(out, n, "%s", p);
    size_t k = strlen(out);
    while (k > 1 && out[k - 1] == '/') out[--k] = '\0';
}

static enum wv_status run_abs(const struct batch_options *o, struct batch_summary *sum,
                              const char **what);

enum wv_status batch_run(const struct batch_options *o_in, struct batch_summary *sum,
                         const char **what)
{
    memset(sum, 0, sizeof *sum);
    *what = NULL;
    if (!o_in->input || !o_in->model_path || !o_in->out_dir)
        return error_set(WV_EINVAL, "input, --model and --out are required");
    static char input[4096], out_dir[4096];
    struct batch_options o = *o_in;
    absolute(o_in->input, input, sizeof input);
    absolute(o_in->out_dir, out_dir, sizeof out_dir);
    o.input = input;
    o.out_dir = out_dir;
    enum wv_status st = run_abs(&o, sum, what);
    if (*what == input) *what = o_in->input;
    if (*what == out_dir) *what = o_in->out_dir;
    return st;
}

static enum wv_status run_abs(const struct batch_options *o, struct batch_summary *sum,
                              const char **what)
{
    if (o->n_devices && o->jobs && o->jobs != o->n_devices)
        return error_set(WV_EINVAL, "--jobs %d with %d --devices: one worker per device", o->jobs,
                         o->n_devices);
    int n_workers = o->n_devices ? o->n_devices : o->jobs > 0 ? o->jobs : 1;
    if (n_workers > BATCH_MAX_JOBS) return error_set(WV_EINVAL, "--jobs: at most %d", BATCH_MAX_JOBS);
    if (o->shard_count < 1 || o->shard_index < 0 || o->shard_index >= o->shard_count)
        return error_set(WV_EINVAL, "--shard %d/%d: out of range", o->shard_index, o->shard_count);
    double t0 = util_now();
    struct batch_list l = {0};
    struct resultsdb *db = NULL;
    struct batch_worker *workers = NULL;
    size_t *prim = NULL, *queue = NULL;
    struct hidx *byhash = NULL;
    enum wv_status st;
    int64_t run_id = 0;
    static char dbp[4400]; /* may be returned in *what */
    snprintf(dbp, sizeof dbp, "%s/%s", o->out_dir, RESULTSDB_FILE_NAME);

    /* 1. list */
    *what = o->input;
    struct stat isb;
    int is_manifest = manifest_is_manifest_path(o->input) && !stat(o->input, &isb) && S_ISREG(isb.st_mode);
    st = is_manifest ? batch_scan_manifest(o->input, &l)
                     : batch_scan_archive(o->input, o->include_masks, o->out_dir, &l);
    if (st) goto out;
    *what = NULL;
    qsort(l.items, l.n, sizeof *l.items, cmp_items);
    sum->n_listed = l.n;

    /* 2. content hashes; 3. duplicates */
    size_t n_prim = 0;
    if (l.n && (!(prim = wv_malloc(l.n * sizeof *prim, "batch")) ||
                !(byhash = wv_malloc(l.n * sizeof *byhash, "batch")) ||
                !(queue = wv_malloc(l.n * sizeof *queue, "batch")))) {
        st = WV_ENOMEM;
        goto out;
    }
    size_t n_hash = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct batch_item *it = &l.items[i];
        if (it->action == ACT_ERROR) continue;
        error_clear();
        if (slide_id_content_hash(it->path, it->hash, &it->size_bytes)) {
            batch_item_error(it, "%s", error_code() == WV_ENOTFOUND ? "file not found" : error_msg());
            error_clear();
            continue;
        }
        if (!it->size_bytes) {
            batch_item_error(it, "empty file");
            continue;
        }
        byhash[n_hash].hash = it->hash;
        byhash[n_hash].item = i;
        n_hash++;
    }
    qsort(byhash, n_hash, sizeof *byhash, cmp_hidx);
    for (size_t k = 0; k < n_hash;) {
        size_t e = k + 1;
        while (e < n_hash && !strcmp(byhash[e].hash, byhash[k].hash)) {
            struct batch_item *it = &l.items[byhash[e].item];
            it->action = ACT_DUPLICATE;
            it->dup_of = (int)byhash[k].item;
            e++;
        }
        prim[n_prim++] = byhash[k].item;
        k = e;
    }
    /* byhash keeps only the primaries, for hash_in_list */
    size_t nb = 0;
    for (size_t k = 0; k < n_hash; k++)
        if (l.items[byhash[k].item].action != ACT_DUPLICATE) byhash[nb++] = byhash[k];
    struct plan_ctx pc = {o, &l, NULL, byhash, nb};

    /* 4. ids over the whole list (all shards agree), 5. this shard */
    if ((st = assign_ids(&pc, prim, n_prim))) goto out;
    size_t n_mine = 0;
    for (size_t k = 0; k < n_prim; k++) {
        struct batch_item *it = &l.items[prim[k]];
        if (it->action == ACT_ERROR) continue;
        if (shard_of(it->hash, o->shard_count) != o->shard_index) it->action = ACT_OTHER_SHARD;
        else prim[n_mine++] = prim[k];
    }
    for (size_t i = 0; i < l.n; i++) {
        struct batch_item *it = &l.items[i];
        if (it->action == ACT_DUPLICATE && l.items[it->dup_of].action == ACT_OTHER_SHARD)
            it->action = ACT_OTHER_SHARD;
        /* input errors are reported by shard 0 alone, so a sharded run lists each once */
        if (it->action == ACT_ERROR && o->shard_index != 0) it->action = ACT_OTHER_SHARD;
    }

    /* 6. the database: what is done, failed, running elsewhere */
    struct stat dsb;
    if (!o->dry_run) {
        *what = o->out_dir;
        if ((st = util_mkdir_p(o->out_dir))) goto out;
        char locks[4400];
        snprintf(locks, sizeof locks, "%s/.batch/locks", o->out_dir);
        if ((st = util_mkdir_p(locks))) goto out;
        if ((st = resultsdb_open(dbp, &db))) goto out;
        *what = NULL;
    } else if (!stat(dbp, &dsb)) {
        *what = dbp;
        if ((st = resultsdb_open(dbp, &db))) goto out;
        *what = NULL;
    }
    pc.db = db;
    if (db && (st = lookup_db(&pc, prim, n_mine))) {
        *what = dbp;
        goto out;
    }

    /* 7. the queue, in path order */
    size_t nq = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct batch_item *it = &l.items[i];
        switch (it->action) {
        case ACT_ANALYZE: queue[nq++] = i; break;
        case ACT_SKIP_DONE: sum->n_skipped_done++; break;
        case ACT_SKIP_FAILED:
            sum->n_failed++;
            sum->n_failed_earlier++;
            break;
        case ACT_DUPLICATE: sum->n_duplicates++; break;
        case ACT_OTHER_SHARD: sum->n_other_shard++; break;
        case ACT_BUSY: sum->n_busy++; break;
        case ACT_ERROR: sum->n_input_errors++; break;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        if (l.items[i].action == ACT_ERROR) print_item_error(&l.items[i], l.items[i].error);
    if (o->dry_run) {
        if (!o->quiet) print_plan(&l);
        sum->n_remaining = nq;
        print_summary(o, &l, sum, util_now() - t0);
        goto out;
    }
    if (n_workers > (int)nq) n_workers = nq ? (int)nq : 0; /* no idle workers */
    size_t n_clean = clean_stale(o->out_dir, 0);
    if (!o->quiet) {
        fprintf(stderr,
                "batch: %zu listed, %zu to analyze, %zu already done, %zu failed earlier, "
                "%zu duplicates, %zu other shards, %zu input errors; %d worker%s%s\n",
                l.n, nq, sum->n_skipped_done, sum->n_failed, sum->n_duplicates,
                sum->n_other_shard, sum->n_input_errors, n_workers, n_workers == 1 ? "" : "s",
                n_clean ? " (removed stale temp files)" : "");
    }
    {
        char msha[65] = "", params[1024];
        if (sha256_file_hex(o->model_path, msha)) {
            error_clear();
            msha[0] = '\0';
        }
        snprintf(params, sizeof params,
                 "{\"command\":\"batch\",\"workers\":%d,\"shard\":\"%d/%d\",\"retry_failed\":%s,"
                 "\"slide_timeout_s\":%g,\"to_analyze\":%zu}",
                 n_workers, o->shard_index, o->shard_count, o->retry_failed ? "true" : "false",
                 o->slide_timeout_s, nq);
        if ((st = resultsdb_run_begin(db, WV_VERSION_STRING, msha[0] ? msha : NULL, params, &run_id))) {
            *what = dbp;
            goto out;
        }
    }
    if (nq) {
        struct batch_options wo = *o;
        if (wo.pipe.threads <= 0) {
            long nc = sysconf(_SC_NPROCESSORS_ONLN);
            wo.pipe.threads = nc > n_workers ? (int)(nc / n_workers) : 1;
        }
        if (!(workers = wv_calloc((size_t)n_workers, sizeof *workers, "workers"))) {
            st = WV_ENOMEM;
            goto out;
        }
        struct sigaction sa, old_int, old_term, old_pipe;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        atomic_store(&g_stop, 0);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, &old_pipe);
        struct runner r = {.o = &wo, .l = &l, .db = db, .w = workers, .n_workers = n_workers,
                           .queue = queue, .n_queue = nq};
        r.pg.quiet = o->quiet;
        r.pg.t0 = r.pg.t_last = util_now();
        r.pg.total = nq;
        for (int k = 0; k < n_workers; k++) {
            workers[k].to_fd = workers[k].from_fd = -1;
            if ((st = batch_worker_spawn(&wo, &l, worker_device(&r, k), &workers[k]))) {
                r.fatal = st;
                snprintf(r.fatal_msg, sizeof r.fatal_msg, "%s", error_msg());
                error_clear();
                break;
            }
        }
        dispatch(&r);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
        sum->stop_signal = atomic_load(&g_stop);
        clean_stale(o->out_dir, 0);
        if (r.fatal) {
            st = error_set(r.fatal, "%s", r.fatal_msg);
            *what = NULL;
        }
    }
    for (size_t i = 0; i < nq; i++) {
        struct batch_item *it = &l.items[queue[i]];
        if (it->action == ACT_BUSY) {
            sum->n_busy++;
            continue;
        }
        switch (it->state) {
        case ST_DONE: sum->n_done++; break;
        case ST_FAILED: sum->n_failed++; break;
        default: sum->n_remaining++; break;
        }
    }
    if (db) {
        const char *rs = sum->stop_signal ? "interrupted" : st || sum->n_failed ? "failed" : "done";
        if (resultsdb_run_end(db, run_id, rs) && !st) {
            st = error_code();
            *what = dbp;
        }
    }
    if (!st || nq) print_summary(o, &l, sum, util_now() - t0);
out:
    resultsdb_close(db);
    free(workers);
    free(prim);
    free(queue);
    free(byhash);
    batch_list_free(&l);
    return st;
}
