/*
 * batch_merge.c — `wsi-vmamba merge`: result folders of shards (or of separate runs) into one
 * (contract in batch.h; user guide docs/batch.md "Merging").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_private.h"
#include "heatmaps/h5store.h"
#include "util.h"

/* Copy src to dst atomically (dst.tmp.<pid>, fsync, rename). */
static enum wv_status copy_file(const char *src, const char *dst)
{
    char tmp[4600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return error_set(WV_EIO, "%s: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return error_set(WV_EIO, "%s: %s", tmp, strerror(errno));
    }
    enum wv_status st = WV_OK;
    char buf[1 << 16];
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = error_set(WV_EIO, "%s: read: %s", src, strerror(errno));
            break;
        }
        if (r == 0) break;
        for (ssize_t o = 0; o < r;) {
            ssize_t w = write(out, buf + o, (size_t)(r - o));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                st = error_set(WV_EIO, "%s: write: %s", tmp, strerror(errno));
                break;
            }
            o += w;
        }
        if (st) break;
    }
    close(in);
    if (!st && fsync(out)) st = error_set(WV_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(out) && !st) st = error_set(WV_EIO, "%s: close: %s", tmp, strerror(errno));
    if (!st && rename(tmp, dst)) st = error_set(WV_EIO, "%s: rename: %s", dst, strerror(errno));
    if (st) unlink(tmp);
    return st;
}

/* Put src at dst: a hard link (same file system; results are never modified in place, so
 * sharing the inode is safe), else a copy. An existing dst is replaced atomically. */
static enum wv_status place_file(const char *src, const char *dst)
{
    struct stat a, b;
    if (!stat(src, &a) && !stat(dst, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return WV_OK;
    char tmp[4600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    unlink(tmp);
    if (!link(src, tmp)) {
        if (!rename(tmp, dst)) return WV_OK;
        unlink(tmp);
    }
    return copy_file(src, dst);
}

struct collect {
    char **ids;
    size_t n, cap;
    int oom;
};

static int collect_done(void *ctx, const struct resultsdb_row *row)
{
    struct collect *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        char **p = realloc(c->ids, cap * sizeof *p);
        if (!p) {
            c->oom = 1;
            return 1;
        }
        c->ids = p;
        c->cap = cap;
    }
    if (!(c->ids[c->n] = strdup(row->slide_id))) {
        c->oom = 1;
        return 1;
    }
    c->n++;
    return 0;
}

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->ids[i]);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static int same_dir(const char *a, const char *b)
{
    struct stat x, y;
    return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

enum wv_status batch_merge(const char *const *srcs, int n_srcs, const char *out_dir, int quiet,
                           size_t *n_conflicts, const char **what)
{
    *n_conflicts = 0;
    *what = out_dir;
    struct resultsdb *dst = NULL;
    enum wv_status st;
    char dbp[4400];
    for (int i = 0; i < n_srcs; i++) {
        char sp[4400];
        struct stat sb;
        snprintf(sp, sizeof sp, "%s/%s", srcs[i], RESULTSDB_FILE_NAME);
        if (stat(sp, &sb)) {
            *what = srcs[i];
            return error_set(WV_ENOTFOUND, "no %s here (not a results folder)", RESULTSDB_FILE_NAME);
        }
    }
    if ((st = util_mkdir_p(out_dir))) return st;
    snprintf(dbp, sizeof dbp, "%s/%s", out_dir, RESULTSDB_FILE_NAME);
    if ((st = resultsdb_open(dbp, &dst))) return st;
    for (int i = 0; i < n_srcs && !st; i++) {
        if (same_dir(srcs[i], out_dir)) {
            if (!quiet) printf("merge: %s is the destination: skipped\n", srcs[i]);
            continue;
        }
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", srcs[i], RESULTSDB_FILE_NAME);
        struct resultsdb_merge_report rep;
        if ((st = resultsdb_merge(dst, sp, &rep))) {
            *what = srcs[i];
            break;
        }
        if (!quiet)
            printf("merge: %s: %zu added, %zu replaced, %zu same, %zu kept, %zu conflicts, %zu runs\n",
                   srcs[i], rep.n_added, rep.n_replaced, rep.n_same, rep.n_kept, rep.n_conflicts,
                   rep.n_runs);
        for (size_t k = 0; k < rep.n_conflicts; k++)
            fprintf(stderr, "wsi-vmamba: %s: conflict: %s\n", srcs[i], rep.conflicts[k]);
        *n_conflicts += rep.n_conflicts;
        resultsdb_merge_report_free(&rep);
        /* files of the slides whose merged row is this source's: the row's content hash and
         * score equal the source's */
        struct resultsdb *src = NULL;
        if ((st = resultsdb_open(sp, &src))) {
            *what = srcs[i];
            break;
        }
        struct collect c = {0};
        if ((st = resultsdb_list(src, "done", collect_done, &c)) || c.oom) {
            if (!st) st = error_set(WV_ENOMEM, "merge: out of memory");
            *what = srcs[i];
        }
        size_t n_files = 0;
        for (size_t k = 0; k < c.n && !st; k++) {
            struct resultsdb_row a, b;
            int fa = 0, fb = 0;
            if ((st = resultsdb_get_slide(src, c.ids[k], &a, &fa))) break;
            if ((st = resultsdb_get_slide(dst, c.ids[k], &b, &fb))) {
                resultsdb_row_free(&a);
                break;
            }
            int ours = fa && fb && b.status && !strcmp(b.status, "done") && a.content_hash &&
                       b.content_hash && !strcmp(a.content_hash, b.content_hash) &&
                       a.has_scores && b.has_scores && a.scores.slide_prob == b.scores.slide_prob;
            if (ours) {
                char from[4400], to[4400];
                static const char *exts[] = {".h5", ".csv", ".png"};
                for (int e = 0; e < 3 && !st; e++) {
                    snprintf(from, sizeof from, "%s/%s%s", srcs[i], c.ids[k], exts[e]);
                    snprintf(to, sizeof to, "%s/%s%s", out_dir, c.ids[k], exts[e]);
                    struct stat fsb;
                    if (stat(from, &fsb)) {
                        if (e == 0)
                            st = error_set(WV_ENOTFOUND, "slide %s: %s missing", c.ids[k], from);
                        continue;
                    }
                    if (e == 0 && h5store_check_complete(from)) {
                        error_prefix("slide %s: %s", c.ids[k], from);
                        st = error_code();
                        continue;
                    }
                    st = place_file(from, to);
                }
                /* the row now points at the merged folder's file */
                snprintf(to, sizeof to, "%s/%s.h5", out_dir, c.ids[k]);
                if (!st && (!b.h5_path || strcmp(b.h5_path, to) != 0))
                    st = batch_db_set_facts(dst, c.ids[k], NULL, NULL, 0, NULL, to);
                if (!st) n_files++;
            }
            resultsdb_row_free(&a);
            resultsdb_row_free(&b);
        }
        if (st) *what = srcs[i];
        if (!st && !quiet) printf("merge: %s: %zu result files placed\n", srcs[i], n_files);
        collect_free(&c);
        resultsdb_close(src);
    }
    if (!st) {
        struct resultsdb_counts cnt;
        if (!resultsdb_count(dst, &cnt) && !quiet)
            printf("merge: %s: %lld slides (%lld done, %lld failed, %lld running/pending)\n",
                   out_dir, (long long)cnt.total, (long long)cnt.done, (long long)cnt.failed,
                   (long long)(cnt.running + cnt.pending));
        error_clear();
        *what = NULL;
    }
    resultsdb_close(dst);
    return st;
}
