/*
 * batch_worker.c — one batch worker process: its own model, pipeline and database connection;
 * analyzes the slides the parent names over a pipe (contract in batch_private.h; the parent's
 * side is batch.c).
 *
 * Isolation is the reason for processes: a slide that crashes the decoder, exhausts memory or
 * hangs takes only its worker down, and the parent records it and starts a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_private.h"
#include "util.h"

/* The parent's ends of every live worker's pipes, closed in each new child. */
static int g_parent_fds[4 * BATCH_MAX_JOBS];
static int g_n_parent_fds;

static void close_parent_fd(int *fd)
{
    if (*fd < 0) return;
    for (int k = 0; k < g_n_parent_fds; k++)
        if (g_parent_fds[k] == *fd) {
            g_parent_fds[k] = g_parent_fds[--g_n_parent_fds];
            break;
        }
    close(*fd);
    *fd = -1;
}

void batch_worker_close_input(struct batch_worker *w)
{
    close_parent_fd(&w->to_fd);
}

void batch_worker_close(struct batch_worker *w)
{
    close_parent_fd(&w->to_fd);
    close_parent_fd(&w->from_fd);
}

void batch_lock_path(const char *out_dir, const char *hash, char *out, size_t n)
{
    const char *hex = strchr(hash, ':');
    snprintf(out, n, "%s/.batch/locks/%s.lock", out_dir, hex ? hex + 1 : hash);
}

int batch_lock_try(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -2;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return busy ? -1 : -2;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static void on_signal(int signo)
{
    pipeline_request_stop(signo);
}

/* Testing only (tests/integration/batch_check.py): WV_BATCH_TEST_FAULT="crash:ID,hang:ID,oom:ID"
 * makes the worker crash (SIGSEGV), hang, or allocate without bound on slide ID, so the
 * isolation paths (signal, --slide-timeout, memory limit) are exercised without a real bad
 * decoder. Unset in normal use. */
static int test_fault(const char *slide_id)
{
    const char *env = getenv("WV_BATCH_TEST_FAULT");
    if (!env) return 0;
    const char *kinds[] = {"crash:", "hang:", "oom:"};
    for (int k = 0; k < 3; k++) {
        const char *p = env;
        size_t kl = strlen(kinds[k]);
        while ((p = strstr(p, kinds[k]))) {
            p += kl;
            size_t n = strcspn(p, ",");
            if (n == strlen(slide_id) && !strncmp(p, slide_id, n)) {
                if (k == 0) raise(SIGSEGV);
                if (k == 1) /* hang until killed, or stopped as a slide would be */
                    while (!pipeline_stop_signal()) pause();
                if (k == 1) return error_set(WV_EINTR, "interrupted (test fault)");
                /* oom: touch memory until an allocation fails (RLIMIT_AS) or the kernel kills
                 * us; the blocks are chained through their first bytes and freed, as a real
                 * failing allocation path would */
                void *chain = NULL;
                /* at most 4 GiB, so a run without --worker-memory (or under ASan, which cannot
                 * take an RLIMIT_AS) does not call the kernel's OOM killer on the test machine */
                for (int i = 0; i < 64; i++) {
                    void **m = malloc((size_t)64 << 20);
                    if (!m) break; /* RLIMIT_AS counts address space: no need to touch it */
                    *m = chain;
                    chain = m;
                }
                while (chain) {
                    void *next = *(void **)chain;
                    free(chain);
                    chain = next;
                }
                return error_set(WV_ENOMEM, "out of memory (test fault)");
            }
        }
    }
    return 0;
}

/* A path whose stem is the slide id, for the pipeline (which names results after the stem):
 * the file itself when its stem already is the id, else a symlink <out>/.batch/links/<pid>/<id><ext>
 * (plus <id> → the MIRAX data folder beside a .mrxs). *made = 1 when links were made. */
static enum wv_status id_path(const struct batch_options *o, const struct batch_item *it,
                              char *out, size_t n, char *mrxs_link, size_t mn, int *made)
{
    char stem[4096];
    *made = 0;
    mrxs_link[0] = '\0';
    util_stem(it->path, stem, sizeof stem);
    if (!strcmp(stem, it->slide_id)) {
        snprintf(out, n, "%s", it->path);
        return WV_OK;
    }
    char dir[4200], real[4096];
    snprintf(dir, sizeof dir, "%s/.batch/links/%ld", o->out_dir, (long)getpid());
    enum wv_status st = util_mkdir_p(dir);
    if (st) return st;
    if (!realpath(it->path, real)) return error_set(WV_EIO, "realpath: %s", strerror(errno));
    const char *base = strrchr(it->path, '/');
    base = base ? base + 1 : it->path;
    const char *dot = strrchr(base, '.');
    if (snprintf(out, n, "%s/%s%s", dir, it->slide_id, dot && dot != base ? dot : "") >= (int)n)
        return error_set(WV_EINVAL, "output folder path too long");
    unlink(out);
    if (symlink(real, out)) return error_set(WV_EIO, "symlink %s: %s", out, strerror(errno));
    *made = 1;
    if (dot && !strcasecmp(dot, ".mrxs")) {
        /* MIRAX keeps its tiles in a folder named after the file's stem beside it */
        char data[4200];
        const char *rdot = strrchr(real, '.');
        if (snprintf(data, sizeof data, "%.*s", (int)(rdot ? rdot - real : 0), real) <
                (int)sizeof data &&
            snprintf(mrxs_link, mn, "%s/%s", dir, it->slide_id) < (int)mn) {
            unlink(mrxs_link);
            if (symlink(data, mrxs_link)) mrxs_link[0] = '\0';
        } else {
            mrxs_link[0] = '\0';
        }
    }
    return WV_OK;
}

static void analyze_one(const struct batch_options *o, struct pipeline *p, struct resultsdb *db,
                        const struct batch_item *it, struct batch_wmsg *m)
{
    char lock[4400];
    batch_lock_path(o->out_dir, it->hash, lock, sizeof lock);
    int lfd = batch_lock_try(lock);
    if (lfd == -1) {
        m->busy = 1;
        snprintf(m->msg, sizeof m->msg, "being analyzed by another batch process");
        return;
    }
    error_clear();
    char path[4400], mrxs[4400];
    int made = 0;
    struct pipeline_slide_result res;
    enum wv_status st = id_path(o, it, path, sizeof path, mrxs, sizeof mrxs, &made);
    if (!st) st = test_fault(it->slide_id);
    if (!st) {
        st = pipeline_run_slide(p, path, &res);
        /* the pipeline names the slide after the path's stem: it must be ours */
        if (strcmp(res.slide_id, it->slide_id) && !st)
            st = error_set(WV_EINVAL, "pipeline named the slide %s, expected %s", res.slide_id,
                           it->slide_id);
    } else {
        char why[1500];
        snprintf(why, sizeof why, "%s", error_msg());
        error_clear();
        if (resultsdb_slide_failed(db, it->slide_id, it->path, why)) error_clear();
        error_set(st, "%s", why);
    }
    m->status = (int32_t)st;
    snprintf(m->msg, sizeof m->msg, "%s", st ? (error_msg()[0] ? error_msg() : wv_status_name(st)) : "");
    if (!st) {
        m->slide_prob = res.slide_prob;
        m->seconds = res.seconds_total;
        m->n_cells = (int64_t)res.n_tissue_cells;
    }
    error_clear();
    /* our facts on the row: the real path, the fast content hash (resume finds the slide by it),
     * the manifest label */
    if (batch_db_set_facts(db, it->slide_id, it->path, it->hash, it->size_bytes, it->label, NULL) &&
        !st) {
        m->status = (int32_t)error_code();
        snprintf(m->msg, sizeof m->msg, "recording the slide: %s", error_msg());
    }
    error_clear();
    if (made) unlink(path);
    if (mrxs[0]) unlink(mrxs);
    if (lfd >= 0) close(lfd); /* releases the lock */
}

static void worker_main(const struct batch_options *o, const struct batch_list *l, int device,
                        int in_fd, int out_fd, pid_t parent)
{
    /* die with the parent: a kill -9 of the batch must not leave workers writing */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pipeline_clear_stop();
    if (o->worker_memory_bytes > 0) {
        struct rlimit rl = {(rlim_t)o->worker_memory_bytes, (rlim_t)o->worker_memory_bytes};
        setrlimit(RLIMIT_AS, &rl);
    }
    struct pipeline_options po = o->pipe;
    po.out_dir = o->out_dir;
    po.quiet = 1;
    po.png_path = NULL;
    char dev[32];
    if (device >= 0) {
        snprintf(dev, sizeof dev, "cuda:%d", device);
        po.device = dev;
    }
    struct batch_wmsg m;
    memset(&m, 0, sizeof m);
    m.kind = WMSG_READY;
    m.item = -1;
    struct pipeline *p = NULL;
    struct resultsdb *db = NULL;
    const char *what = NULL;
    error_clear();
    enum wv_status st = pipeline_open(o->model_path, &po, &p, &what);
    if (!st) {
        char dbp[4200];
        snprintf(dbp, sizeof dbp, "%s/%s", o->out_dir, RESULTSDB_FILE_NAME);
        st = resultsdb_open(dbp, &db);
        what = o->out_dir;
    }
    m.status = (int32_t)st;
    if (st)
        snprintf(m.msg, sizeof m.msg, "%s%s%s", what ? what : "", what ? ": " : "", error_msg());
    int ok = !write_all(out_fd, &m, sizeof m);
    while (ok && !st) {
        int32_t idx;
        if (read_all(in_fd, &idx, sizeof idx) || idx < 0 || (size_t)idx >= l->n) break;
        memset(&m, 0, sizeof m);
        m.kind = WMSG_RESULT;
        m.item = idx;
        analyze_one(o, p, db, &l->items[idx], &m);
        /* after running out of memory the heap may be fragmented and libraries (GLib, HDF5)
         * may hold on to what they got: a fresh worker is the safe way on */
        m.exiting = m.status == WV_ENOMEM;
        if (write_all(out_fd, &m, sizeof m) || m.exiting) break;
        if (pipeline_stop_signal()) break;
    }
    int sig = pipeline_stop_signal();
    resultsdb_close(db);
    pipeline_close(p, sig ? "interrupted" : "done");
    close(in_fd);
    close(out_fd);
}

enum wv_status batch_worker_spawn(const struct batch_options *o, const struct batch_list *l,
                                  int device, struct batch_worker *w)
{
    int down[2], up[2];
    if (pipe(down)) return error_set(WV_EIO, "pipe: %s", strerror(errno));
    if (pipe(up)) {
        close(down[0]);
        close(down[1]);
        return error_set(WV_EIO, "pipe: %s", strerror(errno));
    }
    /* close-on-exec: a slide decoder that runs a helper must not inherit the pipes */
    for (int k = 0; k < 2; k++) {
        fcntl(down[k], F_SETFD, FD_CLOEXEC);
        fcntl(up[k], F_SETFD, FD_CLOEXEC);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        return error_set(WV_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        /* the other workers' pipe ends the parent holds are not ours: an open write end here
         * would keep a dead sibling's pipe from reporting end-of-file to the parent */
        for (int k = 0; k < g_n_parent_fds; k++) close(g_parent_fds[k]);
        g_n_parent_fds = 0;
        worker_main(o, l, device, down[0], up[1], parent);
        exit(0);
    }
    close(down[0]);
    close(up[1]);
    if (g_n_parent_fds + 2 <= (int)(sizeof g_parent_fds / sizeof *g_parent_fds)) {
        g_parent_fds[g_n_parent_fds++] = down[1];
        g_parent_fds[g_n_parent_fds++] = up[0];
    }
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->to_fd = down[1];
    w->from_fd = up[0];
    w->item = -1;
    w->device = device;
    return WV_OK;
}
