/*
 * synth.c — `wsi-vmamba synth OUTDIR --slides N --seed S [...]`: write a synthetic
 * CAMELYON16-style cohort (slides, ASAP XML, masks, reference.csv). Parses and checks options,
 * then calls datasets/synth.h. User guide: docs/synthetic-cohort.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "cli.h"
#include "datasets/synth.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba synth OUTDIR --slides N --seed S [OPTIONS]\n\n"
            "Writes a synthetic CAMELYON16-style cohort of H&E-like pyramidal TIFF slides that\n"
            "OpenSlide opens, with tumour polygons (ASAP XML), tumour masks and reference.csv.\n"
            "The same seed and options always give the same bytes.\n\n"
            "  --slides N            number of slides, 1..99999 (required)\n"
            "  --seed S              random seed, a non-negative integer (required)\n"
            "  --size W,H            level-0 size in px (default 8000,6000 = 2 x 1.5 mm at 0.25)\n"
            "  --mpp M               level-0 resolution, µm/px (default 0.25)\n"
            "  --format F            aperio (SVS-like, vendor \"aperio\") or generic (ASAP-like,\n"
            "                        vendor \"generic-tiff\") (default generic)\n"
            "  --tumor-fraction F    fraction of tumour slides, 0..1 (default 0.5)\n"
            "  --naming N            train (tumor_001, normal_001) or test (test_001, classes\n"
            "                        only in reference.csv) (default train)\n"
            "  --tile T              slide tile size, px: 256 or 512 (default 256)\n"
            "  --quality Q           JPEG quality 1..100 (default 80)\n"
            "  --threads T           tile-rendering threads (default: all cores)\n"
            "  --quiet               no progress lines on stderr\n"
            "  --help                this text\n\n"
            "Files in OUTDIR: <name>.tif (slides), annotations/<name>.xml and\n"
            "masks/<name>_mask.tif (tumour slides), reference.csv (name,class,histotype,size;\n"
            "no header), lesions.csv (one row per lesion).\n");
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"slides", required_argument, 0, 'n'},
                                         {"seed", required_argument, 0, 's'},
                                         {"size", required_argument, 0, 'z'},
                                         {"mpp", required_argument, 0, 'm'},
                                         {"format", required_argument, 0, 'f'},
                                         {"tumor-fraction", required_argument, 0, 't'},
                                         {"naming", required_argument, 0, 'N'},
                                         {"tile", required_argument, 0, 'T'},
                                         {"quality", required_argument, 0, 'q'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'Q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct synth_opts o;
    synth_opts_init(&o);
    o.verbose = 1;
    int have_slides = 0, have_seed = 0, c;
    long v, pair[2];
    optind = 0; /* glibc: re-initialise, this parser may run after another one */
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_long("synth", "--slides", optarg, 1, 99999, &v)) return CLI_EXIT_USAGE;
            o.n_slides = (int)v;
            have_slides = 1;
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return cli_usage_error("synth", "--seed: '%s' is not a non-negative integer",
                                       optarg);
            o.seed = s;
            have_seed = 1;
            break;
        }
        case 'z':
            if (cli_parse_pair("synth", "--size", optarg, 512, 2147483647L, pair))
                return CLI_EXIT_USAGE;
            o.width_px = pair[0];
            o.height_px = pair[1];
            break;
        case 'm':
            if (cli_parse_double("synth", "--mpp", optarg, 0.01, 100, &o.mpp))
                return CLI_EXIT_USAGE;
            break;
        case 'f':
            if (!strcmp(optarg, "aperio"))
                o.vendor = SLIDE_WRITER_APERIO;
            else if (!strcmp(optarg, "generic") || !strcmp(optarg, "generic-tiff"))
                o.vendor = SLIDE_WRITER_GENERIC;
            else
                return cli_usage_error("synth", "--format: '%s' is not aperio or generic",
                                       optarg);
            break;
        case 't':
            if (cli_parse_double("synth", "--tumor-fraction", optarg, 0, 1, &o.tumor_fraction))
                return CLI_EXIT_USAGE;
            break;
        case 'N':
            if (!strcmp(optarg, "train"))
                o.naming = SYNTH_NAMES_TRAIN;
            else if (!strcmp(optarg, "test"))
                o.naming = SYNTH_NAMES_TEST;
            else
                return cli_usage_error("synth", "--naming: '%s' is not train or test", optarg);
            break;
        case 'T':
            if (cli_parse_long("synth", "--tile", optarg, 16, 4096, &v)) return CLI_EXIT_USAGE;
            if (v != 256 && v != 512)
                return cli_usage_error("synth", "--tile: %ld is not 256 or 512", v);
            o.tile_px = (int)v;
            break;
        case 'q':
            if (cli_parse_long("synth", "--quality", optarg, 1, 100, &v)) return CLI_EXIT_USAGE;
            o.jpeg_quality = (int)v;
            break;
        case 'j':
            if (cli_parse_long("synth", "--threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
            o.n_threads = (int)v;
            break;
        case 'Q':
            o.verbose = 0;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case ':':
            return cli_usage_error("synth", "option %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("synth", "unknown option %s", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("synth", "expected exactly one OUTDIR, got %d", argc - optind);
    if (!have_slides) return cli_usage_error("synth", "--slides N is required");
    if (!have_seed) return cli_usage_error("synth", "--seed S is required");
    const char *outdir = argv[optind];
    if (!outdir[0]) return cli_usage_error("synth", "OUTDIR is empty");

    double t0 = util_now();
    if (synth_cohort_write(outdir, &o) != WV_OK) return cli_fail(outdir);
    if (o.verbose)
        fprintf(stderr, "synth: %d slides in %s (%.1f s)\n", o.n_slides, outdir,
                util_now() - t0);
    return CLI_EXIT_OK;
}

const struct cli_command cli_synth = {
    "synth", "write a synthetic CAMELYON16-style cohort (slides, XML, masks, reference.csv)",
    usage, run};
