/*
 * main.c — entry point of the wsi-vmamba CLI: --help, --version, and dispatch through the
 * command table. The order of commands[] is the order `--help` lists them.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "src/backend.h"
#include "version.h"

static const struct cli_command *const commands[] = {
    &cli_info,  &cli_synth,    &cli_analyze, &cli_weights, &cli_forward,
    &cli_model, &cli_evaluate, &cli_features, &cli_train, &cli_batch, &cli_merge, &cli_demo, NULL,
};

static void usage(FILE *out)
{
    fprintf(out,
            "wsi-vmamba %s — whole-slide pathology analysis with a streaming VMamba encoder\n\n"
            "Usage: wsi-vmamba COMMAND [OPTIONS] [ARGS]\n\nCommands:\n",
            WV_VERSION_STRING);
    for (int i = 0; commands[i]; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\n'wsi-vmamba COMMAND --help' describes a command's options.\n"
                 "  --help       this text\n  --version    print the version and build options\n");
}

int main(int argc, char **argv)
{
    /* first, before any thread exists: swap OpenBLAS's misdetected Prescott kernels for the
     * CPU's own (re-executes once; WV_NO_BLAS_REEXEC=1 opts out) — see backend.h */
    backend_blas_reexec(argv);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (argc >= 3) {
            for (int i = 0; commands[i]; i++)
                if (!strcmp(commands[i]->name, argv[2])) {
                    commands[i]->usage(stdout);
                    return CLI_EXIT_OK;
                }
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("wsi-vmamba %s\n%s\n", WV_VERSION_STRING, WV_BUILD_INFO);
        return CLI_EXIT_OK;
    }
    for (int i = 0; commands[i]; i++)
        if (!strcmp(commands[i]->name, name)) return commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "wsi-vmamba: '%s' is not a command. See 'wsi-vmamba --help'.\n", name);
    return CLI_EXIT_USAGE;
}
