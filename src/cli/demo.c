/*
 * demo.c — `wsi-vmamba demo [DIR]`: the whole loop on a built-in synthetic CAMELYON-style cohort,
 * on the CPU, in a few minutes (issue 6):
 *
 *   synth (a training cohort and a held-out test cohort) → model init (small random backbone)
 *   → features (training slides) → train (slide context head) → analyze (test slides)
 *   → evaluate (slide AUC, lesion FROC, plots, report.html)
 *
 * Each step runs through the same subcommand entry point a user would type, and the command
 * line of each is printed, so the demo doubles as a worked example. Sizes are chosen so the
 * whole loop stays well under 10 minutes on a 2-core machine (docs/benchmarks.md has timings).
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
            "Usage: wsi-vmamba demo [DIR] [--train-slides N] [--test-slides N] [--seed S]\n"
            "                       [--epochs N] [--threads N]\n\n"
            "Runs the whole loop on a synthetic CAMELYON-style cohort, on the CPU:\n"
            "synth → model init → features → train → analyze → evaluate. Everything is written\n"
            "under DIR (default ./demo-out); the last line says where the report is.\n\n"
            "  --train-slides N  training cohort size (default 12)\n"
            "  --test-slides N   held-out test cohort size (default 8)\n"
            "  --seed S          random seed of the cohorts and the model (default 1)\n"
            "  --epochs N        training epochs (default 12)\n"
            "  --threads N       compute threads (default: all cores)\n"
            "  --help            this text\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The slides (*.tif) directly inside dir, sorted; NULL-terminated, caller frees. */
static char **list_slides(const char *dir, int *n_out)
{
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 16, n = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".tif")) continue;
        if (n + 2 > cap) {
            cap *= 2;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        size_t need = strlen(dir) + len + 2;
        v[n] = malloc(need);
        if (!v[n]) break;
        snprintf(v[n], need, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (!v) return NULL;
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    v[n] = NULL;
    *n_out = n;
    return v;
}

static void free_list(char **v)
{
    if (!v) return;
    for (int i = 0; v[i]; i++) free(v[i]);
    free(v);
}

/* Run one step: print its command line, run it, time it. */
static int step(int idx, const char *title, const struct cli_command *cmd, int argc, char **argv)
{
    printf("\n== step %d: %s\n   wsi-vmamba", idx, title);
    for (int i = 0; i < argc; i++) {
        if (i > 12 && i < argc - 6 && argv[i][0] != '-') { /* long slide lists: abbreviate */
            if (i == 13) printf(" ...");
            continue;
        }
        printf(" %s", argv[i]);
    }
    printf("\n");
    fflush(stdout);
    double t0 = util_now();
    optind = 0; /* glibc: 0 re-initialises getopt for the next command's parser */
    int rc = cmd->run(argc, argv);
    fflush(stdout);
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "wsi-vmamba: demo: step %d (%s) failed with exit code %d\n", idx, title, rc);
    else
        printf("   (%.1f s)\n", util_now() - t0);
    return rc;
}

#define PATHLEN 4200
#define MAXARGS 256

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"train-slides", required_argument, 0, 'n'},
                                         {"test-slides", required_argument, 0, 'm'},
                                         {"seed", required_argument, 0, 's'},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"threads", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long n_train = 12, n_test = 8, seed = 1, epochs = 12, threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_long("demo", "--train-slides", optarg, 4, 200, &n_train)) return CLI_EXIT_USAGE;
            break;
        case 'm':
            if (cli_parse_long("demo", "--test-slides", optarg, 2, 200, &n_test)) return CLI_EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_long("demo", "--seed", optarg, 0, 1000000000L, &seed)) return CLI_EXIT_USAGE;
            break;
        case 'e':
            if (cli_parse_long("demo", "--epochs", optarg, 1, 1000, &epochs)) return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_long("demo", "--threads", optarg, 1, 1024, &threads)) return CLI_EXIT_USAGE;
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
    if (strlen(dir) > 3500) return cli_usage_error("demo", "DIR path too long");

    char train_dir[PATHLEN], test_dir[PATHLEN], backbone[PATHLEN], feats[PATHLEN], model[PATHLEN],
        results[PATHLEN], report[PATHLEN], ann[PATHLEN], labels[PATHLEN], test_ref[PATHLEN],
        masks[PATHLEN], db[PATHLEN];
    snprintf(train_dir, sizeof train_dir, "%s/train", dir);
    snprintf(test_dir, sizeof test_dir, "%s/test", dir);
    snprintf(backbone, sizeof backbone, "%s/backbone.safetensors", dir);
    snprintf(feats, sizeof feats, "%s/features", dir);
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(results, sizeof results, "%s/results", dir);
    snprintf(report, sizeof report, "%s/report", dir);
    snprintf(ann, sizeof ann, "%s/train/annotations", dir);
    snprintf(labels, sizeof labels, "%s/train/reference.csv", dir);
    snprintf(test_ref, sizeof test_ref, "%s/test/reference.csv", dir);
    snprintf(masks, sizeof masks, "%s/test/masks", dir);
    snprintf(db, sizeof db, "%s/results/results.sqlite", dir);
    if (util_mkdir_p(dir)) return cli_fail(dir);

    char s_ntrain[32], s_ntest[32], s_seed[32], s_seed2[32], s_epochs[32], s_threads[32];
    snprintf(s_ntrain, sizeof s_ntrain, "%ld", n_train);
    snprintf(s_ntest, sizeof s_ntest, "%ld", n_test);
    snprintf(s_seed, sizeof s_seed, "%ld", seed);
    snprintf(s_seed2, sizeof s_seed2, "%ld", seed + 1000);
    snprintf(s_epochs, sizeof s_epochs, "%ld", epochs);
    snprintf(s_threads, sizeof s_threads, "%ld", threads > 0 ? threads : 0);

    printf("wsi-vmamba demo: the whole loop on a synthetic CAMELYON-style cohort, in %s\n", dir);
    double t_all = util_now();
    int rc;

    /* 1-2. cohorts: small slides (4000×3000 px at 0.25 µm/px) keep the demo quick */
    {
        char *a[] = {"synth", train_dir, "--slides", s_ntrain, "--seed", s_seed, "--size",
                     "4000,3000", "--quiet", NULL};
        if ((rc = step(1, "synthetic training cohort", &cli_synth, 9, a))) return rc;
    }
    {
        char *a[] = {"synth", test_dir, "--slides", s_ntest, "--seed", s_seed2, "--size",
                     "4000,3000", "--naming", "test", "--quiet", NULL};
        if ((rc = step(2, "synthetic held-out test cohort", &cli_synth, 11, a))) return rc;
    }
    /* 3. a small random backbone (no download: a real run uses an official checkpoint) */
    {
        char *a[] = {"model", "init", "--random-backbone", "tiny", "--out", backbone, "--seed",
                     s_seed, NULL};
        if ((rc = step(3, "model with a small random backbone", &cli_model, 8, a))) return rc;
    }
    /* 4. features of the training slides */
    int n_tr = 0, n_te = 0;
    char **tr = list_slides(train_dir, &n_tr), **te = list_slides(test_dir, &n_te);
    if (!tr || !te || n_tr == 0 || n_te == 0) {
        free_list(tr);
        free_list(te);
        fprintf(stderr, "wsi-vmamba: demo: no slides in %s or %s\n", train_dir, test_dir);
        return CLI_EXIT_FAIL;
    }
    {
        char *a[MAXARGS];
        int k = 0;
        a[k++] = "features";
        for (int i = 0; i < n_tr && k < MAXARGS - 12; i++) a[k++] = tr[i];
        a[k++] = "--backbone";
        a[k++] = backbone;
        a[k++] = "--out";
        a[k++] = feats;
        a[k++] = "--quiet";
        if (threads > 0) {
            a[k++] = "--threads";
            a[k++] = s_threads;
        }
        a[k] = NULL;
        rc = step(4, "backbone features of the training slides", &cli_features, k, a);
    }
    /* 5. train the slide context head */
    if (!rc) {
        char *a[] = {"train", "--features", feats, "--annotations", ann, "--labels", labels,
                     "--backbone-model", backbone, "--out", model, "--epochs", s_epochs,
                     "--d-h", "32", "--seed", s_seed, "--quiet",
                     threads > 0 ? "--threads" : NULL, s_threads, NULL};
        rc = step(5, "train the slide context head", &cli_train, threads > 0 ? 19 : 17, a);
    }
    /* 6. analyze the held-out slides */
    if (!rc) {
        char *a[MAXARGS];
        int k = 0;
        a[k++] = "analyze";
        for (int i = 0; i < n_te && k < MAXARGS - 14; i++) a[k++] = te[i];
        a[k++] = "--model";
        a[k++] = model;
        a[k++] = "--out";
        a[k++] = results;
        a[k++] = "--device";
        a[k++] = "cpu";
        a[k++] = "--png-dir";
        a[k++] = "--quiet";
        if (threads > 0) {
            a[k++] = "--threads";
            a[k++] = s_threads;
        }
        a[k] = NULL;
        rc = step(6, "analyze the held-out slides", &cli_analyze, k, a);
    }
    /* 7. evaluate the CAMELYON16 way */
    if (!rc) {
        char *a[] = {"evaluate", "--db", db, "--reference", test_ref, "--masks", masks,
                     "--slides", test_dir, "--out", report, NULL};
        rc = step(7, "evaluate: slide AUC, lesion FROC, report", &cli_evaluate, 11, a);
    }
    free_list(tr);
    free_list(te);
    if (rc) return rc;
    printf("\n== demo done in %.1f s\n", util_now() - t_all);
    printf("   metrics: %s/metrics.json\n", report);
    printf("   report:  %s/report.html\n", report);
    return CLI_EXIT_OK;
}

const struct cli_command cli_demo = {
    "demo", "the whole loop on a built-in synthetic cohort: synth → train → analyze → evaluate",
    usage, run};
