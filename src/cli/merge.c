/*
 * merge.c — `wsi-vmamba merge OUT_A OUT_B ... --out DIR`: merge batch result folders (shards of
 * a Slurm array, separate runs) into one (issue 7; docs/batch.md "Merging"; src/batch.h).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "src/batch.h"
#include "src/error.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba merge RESULTS_DIR... --out DIR [--quiet]\n\n"
            "Merge result folders of `batch`/`analyze` (each with results.sqlite) into DIR:\n"
            "database rows without duplicates (a slide done in one folder replaces a failed or\n"
            "unfinished one; done in two with different content hash or score is a conflict:\n"
            "the first kept, reported), and each merged slide's <slide_id>.h5 (+ .csv, .png)\n"
            "hard-linked into DIR, or copied when DIR is on another file system. Merging again\n"
            "is harmless. A folder equal to DIR is skipped.\n\n"
            "Options:\n"
            "  -o, --out DIR   merged folder, created if missing (required)\n"
            "  --quiet         no report on stdout (conflicts still go to stderr)\n"
            "  -h, --help      this text\n\n"
            "Exit status: 0 merged, 1 a folder could not be merged or there were conflicts,\n"
            "2 usage.\n");
}

static int run(int argc, char **argv)
{
    enum { O_QUIET = 256 };
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_QUIET: quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("merge", "unknown option");
        }
    }
    if (!out) return cli_usage_error("merge", "--out is required");
    if (argc - optind < 1) return cli_usage_error("merge", "no results folder given");
    size_t conflicts = 0;
    const char *what = NULL;
    if (batch_merge((const char *const *)(argv + optind), argc - optind, out, quiet, &conflicts,
                    &what))
        return cli_fail(what);
    if (conflicts) {
        fprintf(stderr, "wsi-vmamba: %s: merged with %zu conflict%s (the first folder's rows kept)\n",
                out, conflicts, conflicts == 1 ? "" : "s");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

const struct cli_command cli_merge = {"merge", "merge batch result folders (shards) into one",
                                      usage, run};
