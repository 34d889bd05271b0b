/*
 * weights.c — `wsi-vmamba weights inspect|import`: look into a checkpoint (safetensors or
 * PyTorch .pth through the restricted reader) and convert .pth to safetensors. The work is done
 * by src/weights.h and src/vmamba_config.h; this file parses options and prints.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../error.h"
#include "../vmamba_config.h"
#include "../weights.h"
#include "cli.h"
#include "version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba weights inspect FILE [--json] [--prefix P]\n"
            "       wsi-vmamba weights import FILE -o OUT.safetensors [--prefix P]\n\n"
            "Look into or convert a VMamba checkpoint: safetensors, or a PyTorch .pth (torch>=1.6\n"
            "zip) read by a restricted reader that understands only tensors and plain containers\n"
            "and never executes anything.\n\n"
            "Actions:\n"
            "  inspect     the inferred VMamba configuration, parameter count, sha256 and the\n"
            "              tensor table (name, shape, dtype in the file)\n"
            "  import      write every tensor as fp32 safetensors under its own name; the metadata\n"
            "              records the source file name, its sha256 and the inferred configuration\n\n"
            "Options:\n"
            "  --json            inspect: print one JSON object instead of text\n"
            "  -o, --output F    import: the safetensors file to write (required; written\n"
            "                    atomically)\n"
            "  --prefix P        name prefix of the backbone tensors (default: tried \"\" then\n"
            "                    \"backbone.\")\n"
            "  -h, --help        this text\n\n"
            "Exit status: 0 success, 1 the file is unreadable, corrupt or refused, 2 usage error.\n");
}

/* Infer the configuration with the given prefix, or try "" then "backbone.". On failure the
 * reason is left in `why` and the function returns nonzero. */
static int infer(const struct weights *w, const char *prefix, struct vmamba_config *cfg,
                 const char **used, char *why, size_t why_len)
{
    static const char *const tries[] = {"", "backbone."};
    why[0] = 0;
    for (int i = 0; i < (prefix ? 1 : 2); i++) {
        const char *p = prefix ? prefix : tries[i];
        error_clear();
        if (vmamba_config_infer(w, p, cfg) == WV_OK) {
            *used = p;
            return 0;
        }
        if (i == 0 || !why[0]) snprintf(why, why_len, "%s", error_msg());
    }
    error_clear();
    return 1;
}

static void shape_text(const struct weight_tensor *t, char *buf, size_t n)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

static int inspect(const char *path, const char *prefix, int json)
{
    struct weights *w;
    if (weights_load(path, &w)) return cli_fail(path);
    struct vmamba_config cfg;
    const char *used = "";
    char why[512];
    int bad_cfg = infer(w, prefix, &cfg, &used, why, sizeof why);
    int rc = CLI_EXIT_OK;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "format", w->format);
        cJSON_AddStringToObject(o, "sha256", w->sha256);
        cJSON_AddNumberToObject(o, "n_tensors", w->n);
        cJSON_AddNumberToObject(o, "n_values", (double)weights_numel_total(w));
        if (bad_cfg) {
            cJSON_AddNullToObject(o, "config");
            cJSON_AddStringToObject(o, "config_error", why);
        } else {
            char *cj = vmamba_config_json(&cfg);
            cJSON *c = cj ? cJSON_Parse(cj) : NULL;
            free(cj);
            if (c) cJSON_AddItemToObject(o, "config", c);
            cJSON_AddStringToObject(o, "prefix", used);
            cJSON_AddNumberToObject(o, "n_params", (double)cfg.n_params);
        }
        cJSON *meta = w->metadata_json ? cJSON_Parse(w->metadata_json) : NULL;
        if (meta)
            cJSON_AddItemToObject(o, "metadata", meta);
        else
            cJSON_AddNullToObject(o, "metadata");
        cJSON *arr = cJSON_AddArrayToObject(o, "tensors");
        for (int i = 0; i < w->n; i++) {
            const struct weight_tensor *t = &w->t[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t->name);
            cJSON *s = cJSON_AddArrayToObject(e, "shape");
            for (int d = 0; d < t->ndim; d++)
                cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t->shape[d]));
            cJSON_AddStringToObject(e, "dtype", weights_dtype_name(t->source_dtype));
            cJSON_AddItemToArray(arr, e);
        }
        char *txt = cJSON_Print(o);
        if (txt) {
            printf("%s\n", txt);
        } else {
            error_set(WV_ENOMEM, "out of memory printing JSON");
            rc = cli_fail(path);
        }
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("file:        %s\nformat:      %s\nsha256:      %s\ntensors:     %d (%lld values)\n",
               path, w->format, w->sha256, w->n, weights_numel_total(w));
        if (bad_cfg) {
            printf("config:      none (not a VMamba backbone: %s)\n", why);
        } else {
            char d[512];
            vmamba_config_describe(&cfg, d, sizeof d);
            printf("config:      %s\n", d);
            if (used[0]) printf("prefix:      %s\n", used);
            printf("parameters:  %lld\n", cfg.n_params);
        }
        if (w->metadata_json) printf("metadata:    %s\n", w->metadata_json);
        size_t wn = 4;
        for (int i = 0; i < w->n; i++)
            if (strlen(w->t[i].name) > wn) wn = strlen(w->t[i].name);
        printf("\n%-*s  %-24s  %s\n", (int)wn, "name", "shape", "dtype");
        for (int i = 0; i < w->n; i++) {
            char s[200];
            shape_text(&w->t[i], s, sizeof s);
            printf("%-*s  %-24s  %s\n", (int)wn, w->t[i].name, s,
                   weights_dtype_name(w->t[i].source_dtype));
        }
    }
    weights_free(w);
    return rc;
}

static int import(const char *path, const char *out, const char *prefix)
{
    struct weights *w;
    if (weights_load(path, &w)) return cli_fail(path);
    struct vmamba_config cfg;
    const char *used = "";
    char why[512];
    int bad_cfg = infer(w, prefix, &cfg, &used, why, sizeof why);
    if (bad_cfg)
        fprintf(stderr, "wsi-vmamba: %s: warning: no VMamba configuration recorded (%s)\n", path,
                why);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "source_file", base);
    cJSON_AddStringToObject(meta, "source_format", w->format);
    cJSON_AddStringToObject(meta, "source_sha256", w->sha256);
    cJSON_AddStringToObject(meta, "tool", "wsi-vmamba " WV_VERSION_STRING);
    if (!bad_cfg) {
        char *cj = vmamba_config_json(&cfg);
        if (cj) cJSON_AddStringToObject(meta, "vmamba_config", cj);
        free(cj);
        cJSON_AddStringToObject(meta, "vmamba_prefix", used);
    }
    char *mtxt = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    int rc = CLI_EXIT_OK;
    if (!mtxt) {
        error_set(WV_ENOMEM, "out of memory for metadata");
        rc = cli_fail(out);
    } else if (weights_save_safetensors(out, w->t, w->n, mtxt)) {
        rc = cli_fail(out);
    } else {
        printf("wrote %s: %d tensors, %lld values, from %s (sha256 %s)\n", out, w->n,
               weights_numel_total(w), path, w->sha256);
    }
    free(mtxt);
    weights_free(w);
    return rc;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},      {"output", required_argument, NULL, 'o'},
        {"prefix", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0;
    const char *out = NULL, *prefix = NULL;
    optind = 0; /* full re-initialisation (GNU): argv is the subcommand's */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'o': out = optarg; break;
        case 'p': prefix = optarg; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case ':': return cli_usage_error("weights", "option %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("weights", "unknown option %s", argv[optind - 1]);
        }
    }
    int npos = argc - optind;
    char **pos = argv + optind;
    if (npos < 1) return cli_usage_error("weights", "missing action (inspect or import)");
    const char *action = pos[0];
    if (!strcmp(action, "inspect")) {
        if (npos != 2) return cli_usage_error("weights", "inspect takes exactly one FILE");
        if (out) return cli_usage_error("weights", "-o/--output is an import option");
        return inspect(pos[1], prefix, json);
    }
    if (!strcmp(action, "import")) {
        if (npos != 2) return cli_usage_error("weights", "import takes exactly one FILE");
        if (!out) return cli_usage_error("weights", "import needs -o OUT.safetensors");
        if (json) return cli_usage_error("weights", "--json is an inspect option");
        return import(pos[1], out, prefix);
    }
    return cli_usage_error("weights", "unknown action '%s' (inspect or import)", action);
}

const struct cli_command cli_weights = {
    "weights", "inspect a checkpoint (.safetensors/.pth) or import a .pth as safetensors", usage,
    run};
