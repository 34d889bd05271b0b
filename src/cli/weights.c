/* weights.c — placeholder: this subcommand is being built (see the issue list); it says so and fails. */
#include "cli.h"

static void usage(FILE *out) { fprintf(out, "Usage: wsi-vmamba weights ... (not built yet)\n"); }

static int run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "wsi-vmamba: weights: not implemented in this build yet\n");
    return CLI_EXIT_FAIL;
}

const struct cli_command cli_weights = {"weights", "(not built yet)", usage, run};
