/*
 * evaluate.c — `wsi-vmamba evaluate`: CAMELYON16 slide AUC and lesion FROC of the tool's results
 * database or of anyone's submission files, written as a report folder. Parses and checks
 * options, then calls src/report.h. User guide: docs/evaluation.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../report.h"
#include "../util.h"
#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba evaluate (--db results.sqlite | --slide-scores scores.csv\n"
            "                            [--detections DIR]) --reference reference.csv\n"
            "                           [--masks DIR | --annotations DIR] --out REPORTDIR [OPTIONS]\n\n"
            "Computes the CAMELYON16 metrics exactly as the challenge did (see docs/evaluation.md):\n"
            "slide-level AUC (ties count 1/2) with a 95%% DeLong interval, the ROC curve and its\n"
            "operating points; lesion-level FROC (mean sensitivity at 1/4, 1/2, 1, 2, 4, 8 false\n"
            "positives per slide) against level 5 of the mask TIFFs or rasterised annotations.\n\n"
            "Inputs:\n"
            "  --db FILE             results.sqlite of analyze/batch (scores and lesion candidates)\n"
            "  --slide-scores FILE   CSV name,probability (one row per slide; no header needed)\n"
            "  --detections DIR      one <slide>.csv per slide: confidence,X,Y (level-0 px)\n"
            "  --reference FILE      CSV name,class[,histotype,size] with class Tumor or Normal\n"
            "  --masks DIR           <slide>_mask.tif: tumour 255 (CAMELYON16), level 5 is read\n"
            "  --annotations DIR     <slide>.xml (ASAP), .geojson (QuPath) or .json (NCRF)\n"
            "  --slides DIR          slide files: level-0 size and pixel size (optional)\n"
            "  --heatmaps DIR        <slide>.h5 results for report thumbnails (default: --db's folder)\n"
            "Output:\n"
            "  --out DIR             metrics.json, per_slide.csv, roc.svg/png, froc.svg/png,\n"
            "                        report.html (created if needed)\n"
            "Options:\n"
            "  --exclude A,B,...     drop these slides from both tasks (e.g. Test_049)\n"
            "  --froc-exclude A,...  drop these slides from the lesion task only (e.g. Test_114)\n"
            "  --froc-mode M         interp (np.interp on the curve, as NCRF/MONAI) or step\n"
            "                        (best sensitivity at <= the rate) (default interp)\n"
            "  --official-quirks     reproduce the official script: 0.243 µm/px for every slide,\n"
            "                        float32 TP probabilities, tumour slides = names starting\n"
            "                        \"Tumor\", only mask value 255 is tumour (default: off)\n"
            "  --threshold T         slides with score >= T are called tumour (default 0.5)\n"
            "  --bootstrap N         also a stratified bootstrap 95%% CI with N replicates\n"
            "                        (default 0: DeLong only)\n"
            "  --seed S              bootstrap seed, a non-negative integer (default 0)\n"
            "  --quiet               no warnings on stderr (they stay in metrics.json)\n"
            "  --help                this text\n");
}

/* Split "A,B,C" into a NULL-free array of pointers into a copy (caller frees both). */
static int split_list(const char *s, char **copy, const char ***items, int *n)
{
    *copy = strdup(s);
    if (!*copy) return -1;
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *items = calloc((size_t)cap, sizeof **items);
    if (!*items) return -1;
    *n = 0;
    for (char *tok = strtok(*copy, ","); tok; tok = strtok(NULL, ","))
        if (*tok) (*items)[(*n)++] = tok;
    return 0;
}

static int run(int argc, char **argv)
{
    enum { O_DB = 256, O_SCORES, O_DET, O_REF, O_MASKS, O_ANN, O_SLIDES, O_HEAT, O_OUT, O_EXCL,
           O_FEXCL, O_MODE, O_QUIRKS, O_THR, O_BOOT, O_SEED, O_QUIET };
    static const struct option opts[] = {{"db", required_argument, 0, O_DB},
                                         {"slide-scores", required_argument, 0, O_SCORES},
                                         {"detections", required_argument, 0, O_DET},
                                         {"reference", required_argument, 0, O_REF},
                                         {"masks", required_argument, 0, O_MASKS},
                                         {"annotations", required_argument, 0, O_ANN},
                                         {"slides", required_argument, 0, O_SLIDES},
                                         {"heatmaps", required_argument, 0, O_HEAT},
                                         {"out", required_argument, 0, O_OUT},
                                         {"exclude", required_argument, 0, O_EXCL},
                                         {"froc-exclude", required_argument, 0, O_FEXCL},
                                         {"froc-mode", required_argument, 0, O_MODE},
                                         {"official-quirks", no_argument, 0, O_QUIRKS},
                                         {"threshold", required_argument, 0, O_THR},
                                         {"bootstrap", required_argument, 0, O_BOOT},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"quiet", no_argument, 0, O_QUIET},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct report_opts o;
    report_opts_init(&o);
    char *excl_copy = NULL, *fexcl_copy = NULL;
    const char **excl = NULL, **fexcl = NULL;
    int rc = CLI_EXIT_USAGE, c;
    long v;
    optind = 0; /* glibc: re-initialise, this parser may run after another one */
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: o.db_path = optarg; break;
        case O_SCORES: o.scores_csv = optarg; break;
        case O_DET: o.detections_dir = optarg; break;
        case O_REF: o.reference_csv = optarg; break;
        case O_MASKS: o.masks_dir = optarg; break;
        case O_ANN: o.annotations_dir = optarg; break;
        case O_SLIDES: o.slides_dir = optarg; break;
        case O_HEAT: o.heatmaps_dir = optarg; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_EXCL:
            free(excl_copy);
            free(excl);
            if (split_list(optarg, &excl_copy, &excl, &o.n_exclude)) goto oom;
            o.exclude = excl;
            break;
        case O_FEXCL:
            free(fexcl_copy);
            free(fexcl);
            if (split_list(optarg, &fexcl_copy, &fexcl, &o.n_froc_exclude)) goto oom;
            o.froc_exclude = fexcl;
            break;
        case O_MODE:
            if (!strcmp(optarg, "interp"))
                o.froc_mode = FROC_INTERP;
            else if (!strcmp(optarg, "step"))
                o.froc_mode = FROC_STEP;
            else {
                cli_usage_error("evaluate", "--froc-mode: '%s' is not interp or step", optarg);
                goto out;
            }
            break;
        case O_QUIRKS: o.official_quirks = 1; break;
        case O_THR:
            if (cli_parse_double("evaluate", "--threshold", optarg, -1e300, 1e300, &o.threshold))
                goto out;
            break;
        case O_BOOT:
            if (cli_parse_long("evaluate", "--bootstrap", optarg, 0, 10000000, &v)) goto out;
            o.bootstrap = (int)v;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                cli_usage_error("evaluate", "--seed: '%s' is not a non-negative integer", optarg);
                goto out;
            }
            o.seed = s;
            break;
        }
        case O_QUIET: o.quiet = 1; break;
        case 'h':
            usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        case ':':
            cli_usage_error("evaluate", "option %s needs a value", argv[optind - 1]);
            goto out;
        default:
            cli_usage_error("evaluate", "unknown option %s", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        cli_usage_error("evaluate", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!o.db_path == !o.scores_csv) {
        cli_usage_error("evaluate", "give exactly one of --db or --slide-scores");
        goto out;
    }
    if (!o.reference_csv || !o.out_dir) {
        cli_usage_error("evaluate", "--reference and --out are required");
        goto out;
    }
    if (o.masks_dir && o.annotations_dir) {
        /* both is fine: masks first, annotations for slides without a mask */
    }
    /* the command line, for the report's provenance */
    size_t len = 32;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *cmd = malloc(len);
    if (!cmd) goto oom;
    strcpy(cmd, "wsi-vmamba");
    for (int i = 0; i < argc; i++) {
        strcat(cmd, " ");
        strcat(cmd, argv[i]);
    }
    o.command_line = cmd;
    struct report_summary sum;
    enum wv_status st = report_evaluate(&o, &sum);
    free(cmd);
    if (st) {
        rc = cli_fail(NULL);
        goto out;
    }
    printf("slides: %d (%d tumour, %d normal)\n", sum.n_slides, sum.n_tumor, sum.n_normal);
    if (sum.auc == sum.auc)
        printf("slide AUC: %.4f (95%% CI %.4f-%.4f, DeLong)\n", sum.auc, sum.auc_lo, sum.auc_hi);
    else
        printf("slide AUC: undefined (see metrics.json)\n");
    if (sum.froc == sum.froc)
        printf("FROC: %.6f (%d slides, %d lesions)\n", sum.froc, sum.n_froc_slides, sum.n_lesions);
    else
        printf("FROC: not computed (see metrics.json)\n");
    printf("report: %s/report.html\n", o.out_dir);
    rc = CLI_EXIT_OK;
    goto out;
oom:
    fprintf(stderr, "wsi-vmamba evaluate: out of memory\n");
    rc = CLI_EXIT_FAIL;
out:
    free(excl_copy);
    free(excl);
    free(fexcl_copy);
    free(fexcl);
    return rc;
}

const struct cli_command cli_evaluate = {
    "evaluate",
    "CAMELYON16 slide AUC and lesion FROC of results, with plots and an HTML report",
    usage,
    run,
};
