/*
 * model.c — `wsi-vmamba model init|inspect`: make a model file (backbone + randomly initialised
 * slide head + metadata, src/model_file.h) from a checkpoint or a random backbone preset, and
 * print what a model file holds. The work is done by src/model_file.h and src/head.h.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../error.h"
#include "../head.h"
#include "../model_file.h"
#include "../vmamba.h"
#include "../vmamba_config.h"
#include "../weights.h"
#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba model init (--backbone FILE | --random-backbone tiny|t-s1l8)\n"
            "                             --out MODEL.safetensors [options]\n"
            "       wsi-vmamba model inspect MODEL.safetensors [--json]\n\n"
            "Make or look into a wsi-vmamba model file: one safetensors with the backbone tensors\n"
            "under \"backbone.\", the slide context head under \"head.\" and JSON metadata (configs,\n"
            "target resolution, normalisation, region size, overlap, provenance). `init` gives the\n"
            "head random weights (trained=false): outputs are structurally right but not\n"
            "meaningful until the head is trained.\n\n"
            "Options (init):\n"
            "  --backbone FILE          VMamba checkpoint: .pth (official) or .safetensors; a\n"
            "                           classifier in it is kept (unused by analyze)\n"
            "  --random-backbone NAME   random backbone instead: tiny (dims 16..128, D = 128) or\n"
            "                           t-s1l8 (VMamba-T[s1l8], D = 768); for tests and the demo\n"
            "  -o, --out FILE           model file to write (atomically; required)\n"
            "  --seed S                 seed of the random head (and backbone) (default 0)\n"
            "  --d-h N                  head hidden width (default 128)\n"
            "  --n-h N                  head SS2D blocks (default 2)\n"
            "  --d-state N              head scan states per channel (default 4)\n"
            "  --target-mpp X           resolution the backbone sees, µm/px (default 0.5)\n"
            "  --region PX              region size, px at the target resolution (default 10000)\n"
            "  --overlap PX             halo each side, px at the target resolution, multiple of\n"
            "                           32 (default 256)\n"
            "Options (inspect):\n"
            "  --json                   print one JSON object\n"
            "  -h, --help               this text\n\n"
            "Exit status: 0 success, 1 unreadable or invalid file, 2 usage error.\n");
}

/* A view of the tensors under "backbone." with the prefix stripped (names and data borrowed). */
static struct weights *strip_view(const struct weights *w, const char *prefix)
{
    struct weights *v = calloc(1, sizeof *v);
    size_t pl = strlen(prefix);
    if (!v || !(v->t = calloc((size_t)(w->n ? w->n : 1), sizeof *v->t))) {
        free(v);
        return NULL;
    }
    for (int i = 0; i < w->n; i++)
        if (!strncmp(w->t[i].name, prefix, pl)) {
            v->t[v->n] = w->t[i];
            v->t[v->n].name = w->t[i].name + pl;
            v->n++;
        }
    memcpy(v->sha256, w->sha256, sizeof v->sha256);
    return v;
}

static int init(const char *backbone, const char *random_bb, const char *out, uint64_t seed,
                const struct head_config *hc_in, const struct model_meta *meta_in)
{
    struct weights *w = NULL, *view = NULL;
    const struct weights *bb;
    struct head *head = NULL;
    struct model_meta meta = *meta_in;
    int rc = CLI_EXIT_FAIL;
    struct vmamba_config cfg;
    if (random_bb) {
        if (model_backbone_preset(random_bb, &cfg) || vmamba_random_weights(&cfg, seed, &w) ||
            vmamba_config_infer(w, "", &cfg)) {
            rc = cli_fail("--random-backbone");
            goto done;
        }
        bb = w;
    } else {
        if (weights_load(backbone, &w)) {
            rc = cli_fail(backbone);
            goto done;
        }
        bb = w;
        if (vmamba_config_infer(w, "", &cfg)) {
            /* a model file (or any file) with the backbone under "backbone." */
            char why[512];
            snprintf(why, sizeof why, "%s", error_msg());
            error_clear();
            if (vmamba_config_infer(w, MODEL_BACKBONE_PREFIX, &cfg) == WV_OK) {
                view = strip_view(w, MODEL_BACKBONE_PREFIX);
                if (!view) {
                    error_set(WV_ENOMEM, "backbone view");
                    rc = cli_fail(backbone);
                    goto done;
                }
                bb = view;
            } else {
                error_clear();
                error_set(WV_EFORMAT, "not a VMamba checkpoint: %s", why);
                rc = cli_fail(backbone);
                goto done;
            }
        }
    }
    struct head_config hc = *hc_in;
    hc.in_dim = cfg.dims[3];
    if (head_create_random(&hc, seed, &head)) {
        rc = cli_fail("head");
        goto done;
    }
    meta.provenance_json = model_provenance_json(backbone, random_bb ? NULL : w->sha256,
                                                 random_bb, seed);
    if (!meta.provenance_json || model_file_save(out, bb, head, &meta)) {
        rc = cli_fail(out);
        goto done;
    }
    char d[256];
    vmamba_config_describe(&cfg, d, sizeof d);
    size_t np;
    head_params(head, &np);
    fprintf(stderr,
            "wrote %s: backbone %s; head d_h %d, %d blocks, d_state %d, %zu parameters "
            "(random, seed %llu; not trained)\n",
            out, d, hc.d_h, hc.n_blocks, hc.d_state, np, (unsigned long long)seed);
    rc = CLI_EXIT_OK;
done:
    free(meta.provenance_json);
    head_free(head);
    if (view) {
        free(view->t);
        free(view);
    }
    weights_free(w);
    return rc;
}

static int inspect(const char *path, int json)
{
    struct model *m;
    if (model_file_load(path, &m)) return cli_fail(path);
    const struct head_config *hc = head_get_config(m->head);
    char *bj = vmamba_config_json(&m->backbone_cfg), *hj = head_config_json(hc);
    size_t np;
    head_params(m->head, &np);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "sha256", m->sha256);
        cJSON_AddNumberToObject(o, "wsi_vmamba_model", m->meta.version);
        cJSON_AddItemToObject(o, "backbone_config", cJSON_Parse(bj ? bj : "null"));
        cJSON_AddItemToObject(o, "head_config", cJSON_Parse(hj ? hj : "null"));
        cJSON_AddNumberToObject(o, "head_params", (double)np);
        cJSON_AddNumberToObject(o, "target_mpp", m->meta.target_mpp);
        cJSON_AddNumberToObject(o, "region_size", m->meta.region_size);
        cJSON_AddNumberToObject(o, "overlap", m->meta.overlap);
        cJSON *nrm = cJSON_AddObjectToObject(o, "normalization");
        cJSON_AddItemToObject(nrm, "mean", cJSON_CreateFloatArray(m->meta.norm_mean, 3));
        cJSON_AddItemToObject(nrm, "std", cJSON_CreateFloatArray(m->meta.norm_std, 3));
        cJSON_AddBoolToObject(o, "trained", m->meta.trained);
        cJSON_AddStringToObject(o, "note", m->meta.note ? m->meta.note : "");
        cJSON_AddItemToObject(o, "provenance", cJSON_Parse(m->meta.provenance_json));
        if (m->meta.training_json)
            cJSON_AddItemToObject(o, "training", cJSON_Parse(m->meta.training_json));
        char *txt = cJSON_Print(o);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        char d[256];
        vmamba_config_describe(&m->backbone_cfg, d, sizeof d);
        printf("file            %s\nsha256          %s\nformat version  %d\n", path, m->sha256,
               m->meta.version);
        printf("backbone        %s\n", d);
        printf("head            in_dim %d, d_h %d, %d blocks, d_inner %d, d_state %d, dt_rank %d, "
               "d_attn %d; %zu parameters\n",
               hc->in_dim, hc->d_h, hc->n_blocks, hc->d_inner, hc->d_state, hc->dt_rank,
               hc->d_attn, np);
        printf("target mpp      %g µm/px (one cell = 32 px = %g µm)\n", m->meta.target_mpp,
               32 * m->meta.target_mpp);
        printf("region          %d px, overlap %d px\n", m->meta.region_size, m->meta.overlap);
        printf("normalization   mean %g %g %g, std %g %g %g\n", m->meta.norm_mean[0],
               m->meta.norm_mean[1], m->meta.norm_mean[2], m->meta.norm_std[0],
               m->meta.norm_std[1], m->meta.norm_std[2]);
        printf("trained         %s\n", m->meta.trained ? "true" : "false");
        printf("note            %s\n", m->meta.note ? m->meta.note : "");
        printf("provenance      %s\n", m->meta.provenance_json);
        if (m->meta.training_json) printf("training        %s\n", m->meta.training_json);
        printf("backbone_config %s\nhead_config     %s\n", bj ? bj : "?", hj ? hj : "?");
    }
    free(bj);
    free(hj);
    model_free(m);
    return CLI_EXIT_OK;
}

static int run(int argc, char **argv)
{
    enum { O_BACKBONE = 256, O_RANDOM, O_SEED, O_DH, O_NH, O_DSTATE, O_MPP, O_REGION, O_OVERLAP,
           O_JSON };
    static const struct option opts[] = {
        {"backbone", required_argument, NULL, O_BACKBONE},
        {"random-backbone", required_argument, NULL, O_RANDOM},
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, O_SEED},
        {"d-h", required_argument, NULL, O_DH},
        {"n-h", required_argument, NULL, O_NH},
        {"d-state", required_argument, NULL, O_DSTATE},
        {"target-mpp", required_argument, NULL, O_MPP},
        {"region", required_argument, NULL, O_REGION},
        {"overlap", required_argument, NULL, O_OVERLAP},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *backbone = NULL, *random_bb = NULL, *out = NULL;
    long seed = 0, v;
    int json = 0, init_opts = 0;
    struct head_config hc;
    head_config_default(&hc, 1);
    struct model_meta meta;
    model_meta_default(&meta);
    optind = 0; /* full re-initialisation (GNU): argv is the subcommand's */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        init_opts += c != O_JSON && c != 'h';
        switch (c) {
        case O_BACKBONE: backbone = optarg; break;
        case O_RANDOM: random_bb = optarg; break;
        case 'o': out = optarg; break;
        case O_SEED:
            if (cli_parse_long("model", "--seed", optarg, 0, 9007199254740991L, &seed))
                return CLI_EXIT_USAGE;
            break;
        case O_DH:
            if (cli_parse_long("model", "--d-h", optarg, 1, 4096, &v)) return CLI_EXIT_USAGE;
            hc.d_h = (int)v;
            head_config_derive(&hc);
            break;
        case O_NH:
            if (cli_parse_long("model", "--n-h", optarg, 0, HEAD_MAX_BLOCKS, &v))
                return CLI_EXIT_USAGE;
            hc.n_blocks = (int)v;
            break;
        case O_DSTATE:
            if (cli_parse_long("model", "--d-state", optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
            hc.d_state = (int)v;
            break;
        case O_MPP:
            if (cli_parse_double("model", "--target-mpp", optarg, 0.01, 100, &meta.target_mpp))
                return CLI_EXIT_USAGE;
            break;
        case O_REGION:
            if (cli_parse_long("model", "--region", optarg, 64, 1000000, &v)) return CLI_EXIT_USAGE;
            meta.region_size = (int)v;
            break;
        case O_OVERLAP:
            if (cli_parse_long("model", "--overlap", optarg, 0, 100000, &v)) return CLI_EXIT_USAGE;
            meta.overlap = (int)v;
            break;
        case O_JSON: json = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_error("model", "option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("model", "unknown option %s", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    char **pos = argv + optind;
    if (npos < 1) return cli_usage_error("model", "missing action (init or inspect)");
    if (!strcmp(pos[0], "inspect")) {
        if (npos != 2) return cli_usage_error("model", "inspect takes exactly one FILE");
        if (init_opts) return cli_usage_error("model", "inspect takes only --json");
        return inspect(pos[1], json);
    }
    if (!strcmp(pos[0], "init")) {
        if (npos != 1) return cli_usage_error("model", "init takes no positional arguments");
        if (json) return cli_usage_error("model", "--json is an inspect option");
        if (!out) return cli_usage_error("model", "init needs --out MODEL.safetensors");
        if (!backbone == !random_bb)
            return cli_usage_error("model", "init needs exactly one of --backbone FILE and "
                                            "--random-backbone tiny|t-s1l8");
        if (meta.overlap % 32 || 2 * meta.overlap >= meta.region_size)
            return cli_usage_error("model", "--overlap %d: must be a multiple of 32 below half "
                                            "the region (%d)",
                                   meta.overlap, meta.region_size);
        return init(backbone, random_bb, out, (uint64_t)seed, &hc, &meta);
    }
    return cli_usage_error("model", "unknown action '%s' (init or inspect)", pos[0]);
}

const struct cli_command cli_model = {
    "model", "make a model file (backbone + slide head + metadata) or inspect one", usage, run};
