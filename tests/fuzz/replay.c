/*
 * replay.c — plain driver for the fuzz targets (SQLite's fuzzcheck idea): links one
 * LLVMFuzzerTestOneInput with a normal compiler and runs it over every file of the given corpus
 * folders. It looks only for crashes, leaks (under the ASan build) and hangs (an alarm per file);
 * parse errors are the expected outcome for most of the corpus.
 *     replay DIR_OR_FILE...
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a file that takes longer than this is a hang: the largest seed parses in milliseconds */
#define REPLAY_TIMEOUT_S 20

static const char *current = "";

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "replay: timeout on ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, current, strlen(current));
    (void)!write(2, "\n", 1);
    _exit(3);
}

static int run_file(const char *path)
{
    uint8_t *data;
    size_t len;
    if (util_read_file(path, (size_t)1 << 30, &data, &len)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    current = path;
    alarm(REPLAY_TIMEOUT_S);
    LLVMFuzzerTestOneInput(data, len);
    alarm(0);
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    signal(SIGALRM, on_alarm);
    int n_files = 0, bad = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st)) {
            fprintf(stderr, "replay: %s: not found\n", argv[a]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[a]);
            n_files++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        if (!d) return 1;
        char **names = NULL;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, (n + 1) * sizeof *nn);
            if (!nn) return 1;
            names = nn;
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
            bad += run_file(path);
            n_files++;
            free(names[i]);
        }
        free(names);
    }
    printf("replay: %d files, %d unreadable\n", n_files, bad);
    return bad ? 1 : 0;
}
