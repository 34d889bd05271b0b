/*
 * batch_scan.c — the slide list of a batch: archive scan with symlink-loop detection, or a
 * manifest (contract in batch_private.h; user guide docs/batch.md "Finding slides").
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "batch_private.h"
#include "manifest.h"
#include "util.h"

/* The extensions OpenSlide 3.4.1 opens (Aperio, Hamamatsu, Leica, MIRAX, Philips-less TIFF,
 * Sakura, Ventana, generic TIFF); .vmu/.vms are Hamamatsu's, .bif Ventana's. */
const char *const BATCH_EXTENSIONS[] = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn",
                                        ".vms", ".vmu", ".bif", ".svslide", NULL};

struct batch_item *batch_list_add(struct batch_list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct batch_item *p = realloc(l->items, cap * sizeof *p);
        if (!p) return NULL;
        l->items = p;
        l->cap = cap;
    }
    struct batch_item *it = &l->items[l->n];
    memset(it, 0, sizeof *it);
    it->dup_of = -1;
    if (path && !(it->path = strdup(path))) return NULL;
    l->n++;
    return it;
}

void batch_list_free(struct batch_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].path);
        free(l->items[i].want_id);
        free(l->items[i].label);
        free(l->items[i].error);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

void batch_item_error(struct batch_item *it, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(it->error);
    it->error = strdup(msg); /* NULL on OOM: printed as "(no message)" */
    it->action = ACT_ERROR;
}

static int has_slide_ext(const char *name, int include_masks)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    int ok = 0;
    for (int i = 0; BATCH_EXTENSIONS[i]; i++)
        if (!strcasecmp(dot, BATCH_EXTENSIONS[i])) ok = 1;
    if (!ok || include_masks) return ok;
    /* CAMELYON16 and most cohorts keep ground-truth masks beside the slides as <id>_mask.tif /
     * <id>_Mask.tif: they are TIFFs OpenSlide opens, so the scan must not take them for slides */
    size_t stem = (size_t)(dot - name);
    if (stem >= 5 && (!strncmp(dot - 5, "_mask", 5) || !strncmp(dot - 5, "_Mask", 5)) &&
        (!strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff")))
        return 0;
    return 1;
}

/* (dev, inode) of the folders on the current path from the root (loops) and of every folder
 * entered (aliases: two symlinks to one folder would list its slides twice). */
struct visited {
    dev_t *dev;
    ino_t *ino;
    size_t n, cap;
};

static int visited_has(const struct visited *v, dev_t d, ino_t i)
{
    for (size_t k = 0; k < v->n; k++)
        if (v->dev[k] == d && v->ino[k] == i) return 1;
    return 0;
}

static int visited_add(struct visited *v, dev_t d, ino_t i)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        dev_t *nd = realloc(v->dev, cap * sizeof *nd);
        if (!nd) return -1;
        v->dev = nd;
        ino_t *ni = realloc(v->ino, cap * sizeof *ni);
        if (!ni) return -1;
        v->ino = ni;
        v->cap = cap;
    }
    v->dev[v->n] = d;
    v->ino[v->n] = i;
    v->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct scan {
    struct batch_list *l;
    struct visited all, path;
    int include_masks;
    int has_skip;
    dev_t skip_dev;
    ino_t skip_ino;
};

static enum wv_status scan_dir(struct scan *sc, const char *dir, int depth)
{
    struct batch_item *it;
    if (depth > 256) {
        if (!(it = batch_list_add(sc->l, dir))) return error_set(WV_ENOMEM, "scan");
        batch_item_error(it, "folder nesting deeper than 256 levels: not entered");
        return WV_OK;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (!(it = batch_list_add(sc->l, dir))) return error_set(WV_ENOMEM, "scan");
        batch_item_error(it, "cannot read folder: %s", strerror(errno));
        return WV_OK;
    }
    /* names sorted, so the scan order (and the order of errors) does not depend on readdir */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    enum wv_status st = WV_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files, our own .batch */
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                st = error_set(WV_ENOMEM, "scan");
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = error_set(WV_ENOMEM, "scan");
            break;
        }
        n++;
    }
    closedir(d);
    if (!st && n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t k = 0; k < n && !st; k++) {
        size_t pl = strlen(dir) + strlen(names[k]) + 2;
        char *p = malloc(pl);
        if (!p) {
            st = error_set(WV_ENOMEM, "scan");
            break;
        }
        snprintf(p, pl, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[k]);
        struct stat lsb, sb;
        int is_link = !lstat(p, &lsb) && S_ISLNK(lsb.st_mode);
        if (stat(p, &sb)) {
            int err = errno;
            if (is_link || has_slide_ext(names[k], sc->include_masks)) {
                if (!(it = batch_list_add(sc->l, p))) st = error_set(WV_ENOMEM, "scan");
                else if (err == ELOOP)
                    batch_item_error(it, "symlink loop (too many levels of symbolic links)");
                else if (is_link && err == ENOENT)
                    batch_item_error(it, "dangling symlink");
                else
                    batch_item_error(it, "cannot stat: %s", strerror(err));
            }
        } else if (S_ISDIR(sb.st_mode)) {
            if (sc->has_skip && sb.st_dev == sc->skip_dev && sb.st_ino == sc->skip_ino) {
                /* the output folder inside the archive: not slides */
            } else if (visited_has(&sc->path, sb.st_dev, sb.st_ino)) {
                if (!(it = batch_list_add(sc->l, p))) st = error_set(WV_ENOMEM, "scan");
                else batch_item_error(it, "symlink loop: leads back to a folder above it; not entered");
            } else if (visited_has(&sc->all, sb.st_dev, sb.st_ino)) {
                /* a second way into a folder already scanned (two symlinks to it): its slides
                 * are listed once; not an error */
            } else if (visited_add(&sc->all, sb.st_dev, sb.st_ino) ||
                       visited_add(&sc->path, sb.st_dev, sb.st_ino)) {
                st = error_set(WV_ENOMEM, "scan");
            } else {
                st = scan_dir(sc, p, depth + 1);
                sc->path.n--;
            }
        } else if (S_ISREG(sb.st_mode) && has_slide_ext(names[k], sc->include_masks)) {
            if (!(it = batch_list_add(sc->l, p))) st = error_set(WV_ENOMEM, "scan");
        }
        free(p);
    }
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    return st;
}

enum wv_status batch_scan_archive(const char *dir, int include_masks, const char *skip_dir,
                                  struct batch_list *l)
{
    struct scan sc = {.l = l, .include_masks = include_masks};
    struct stat sb;
    if (stat(dir, &sb)) return error_set(errno == ENOENT ? WV_ENOTFOUND : WV_EIO, "%s", strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return error_set(WV_EINVAL, "not a folder or a .csv manifest");
    struct stat ob;
    if (skip_dir && !stat(skip_dir, &ob)) {
        sc.has_skip = 1;
        sc.skip_dev = ob.st_dev;
        sc.skip_ino = ob.st_ino;
    }
    enum wv_status st = WV_OK;
    if (visited_add(&sc.all, sb.st_dev, sb.st_ino) || visited_add(&sc.path, sb.st_dev, sb.st_ino))
        st = error_set(WV_ENOMEM, "scan");
    else
        st = scan_dir(&sc, dir, 0);
    free(sc.all.dev);
    free(sc.all.ino);
    free(sc.path.dev);
    free(sc.path.ino);
    return st;
}

enum wv_status batch_scan_manifest(const char *csv, struct batch_list *l)
{
    struct manifest m;
    enum wv_status st = manifest_load(csv, &m);
    if (st) {
        manifest_free(&m);
        return st;
    }
    for (size_t i = 0; i < m.n_entries && !st; i++) {
        const struct manifest_entry *e = &m.entries[i];
        struct batch_item *it = batch_list_add(l, e->path);
        if (!it || (e->slide_id && !(it->want_id = strdup(e->slide_id))) ||
            (e->label && !(it->label = strdup(e->label))))
            st = error_set(WV_ENOMEM, "manifest");
        else
            it->line = e->line;
    }
    for (size_t i = 0; i < m.n_errors && !st; i++) {
        struct batch_item *it = batch_list_add(l, NULL);
        if (!it) {
            st = error_set(WV_ENOMEM, "manifest");
            break;
        }
        it->line = m.errors[i].line;
        batch_item_error(it, "%s", m.errors[i].msg);
    }
    manifest_free(&m);
    return st;
}
