/*
 * demo.c — `wsi-vmamba demo [DIR]`: the built-in end-to-end demonstration on a small synthetic
 * CAMELYON-style cohort. Today: synth → info for every slide. Later issues extend it to
 * features → train → analyze → evaluate → report (issue 6).
 *
 * It drives the other subcommands through their own entry points, so the demo exercises exactly
 * what a user would type.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../util.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba demo [DIR] [--slides N] [--seed S]\n\n"
            "Makes a small synthetic CAMELYON-style cohort in DIR (default ./demo-out) and prints\n"
            "`info` for each slide.\n\n"
            "  --slides N   number of slides (default 4)\n"
            "  --seed S     random seed (default 1)\n"
            "  --help       this text\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"slides", required_argument, 0, 'n'},
                                         {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *slides = "4", *seed = "1";
    long tmp;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_long("demo", "--slides", optarg, 1, 100, &tmp)) return CLI_EXIT_USAGE;
            slides = optarg;
            break;
        case 's':
            if (cli_parse_long("demo", "--seed", optarg, 0, 2147483647L, &tmp)) return CLI_EXIT_USAGE;
            seed = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("demo", "unknown option");
        }
    }
    if (argc - optind > 1) return cli_usage_error("demo", "expected at most one DIR");
    const char *dir = optind < argc ? argv[optind] : "demo-out";
    char cohort[4096];
    snprintf(cohort, sizeof cohort, "%s/cohort", dir);

    printf("== wsi-vmamba demo: synthetic cohort in %s\n", cohort);
    fflush(stdout);
    double t0 = util_now();
    char *sargv[] = {"synth", cohort, "--slides", (char *)slides, "--seed", (char *)seed, NULL};
    optind = 0; /* glibc: 0 re-initialises getopt for the next command's parser */
    int rc = cli_synth.run(6, sargv);
    if (rc != CLI_EXIT_OK) return rc;
    printf("== synth took %.1f s\n", util_now() - t0);

    /* every slide of the cohort (masks and annotations excluded), in name order */
    DIR *d = opendir(cohort);
    if (!d) {
        fprintf(stderr, "wsi-vmamba: %s: cannot list the cohort\n", cohort);
        return CLI_EXIT_FAIL;
    }
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".tif")) continue;
        if (strstr(e->d_name, "_mask") || strstr(e->d_name, "_Mask")) continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    int failures = 0;
    for (int i = 0; i < n; i++) {
        char path[8192 + 256], thumb[8192 + 256];
        snprintf(path, sizeof path, "%s/%s", cohort, names[i]);
        snprintf(thumb, sizeof thumb, "%s/%.*s_thumbnail.png", dir, (int)(strlen(names[i]) - 4),
                 names[i]);
        printf("\n== info %s\n", path);
        fflush(stdout);
        char *iargv[] = {"info", path, "--thumbnail", thumb, NULL};
        optind = 0;
        if (cli_info.run(4, iargv) != CLI_EXIT_OK) failures++;
        free(names[i]);
    }
    printf("\n== demo done: %d slides in %s (thumbnails beside it), %d failed\n", n, cohort,
           failures);
    return failures ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_command cli_demo = {"demo", "run the built-in demo on a synthetic cohort", usage,
                                     run};
