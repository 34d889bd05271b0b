/*
 * cli.h — the wsi-vmamba command table (STYLE.md 2.4), slidetool-style.
 *
 * One file per subcommand exports one `const struct cli_command`. Each parses and validates its
 * own options (getopt_long), then calls modules: no pipeline logic lives in src/cli/.
 * Exit codes: 0 success, 1 failure, 2 usage. Help to stdout, diagnostics to stderr.
 */
#ifndef WV_CLI_H
#define WV_CLI_H

#include <stdint.h>
#include <stdio.h>

struct cli_command {
    const char *name;    /* "info" */
    const char *summary; /* one line for `wsi-vmamba --help` */
    void (*usage)(FILE *out);
    /* argv[0] is the subcommand name; returns the process exit code */
    int (*run)(int argc, char **argv);
};

extern const struct cli_command cli_info;
extern const struct cli_command cli_synth;
extern const struct cli_command cli_demo;
extern const struct cli_command cli_weights;
extern const struct cli_command cli_forward;
extern const struct cli_command cli_model;
extern const struct cli_command cli_evaluate;
extern const struct cli_command cli_analyze;
extern const struct cli_command cli_features;
extern const struct cli_command cli_train;
extern const struct cli_command cli_batch;
extern const struct cli_command cli_merge;

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Print "wsi-vmamba: <what>: <error_msg()>" on stderr (what may be NULL); returns CLI_EXIT_FAIL. */
int cli_fail(const char *what);
/* Print "wsi-vmamba <cmd>: <message>" and a hint to use --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for option values: whole string must parse, range-checked.
 * Return 0 on success, -1 (after printing a usage error for `opt`) otherwise. */
int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out);
int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
/* "A,B" → two longs (e.g. --size 20000,15000) */
int cli_parse_pair(const char *cmd, const char *opt, const char *s, long lo, long hi, long out[2]);

/* The region geometry options shared by analyze, features and batch (same ranges and rules in
 * every command): --region PX (≥ one 32-px cell, ≤ 65,536), --overlap PX (0..4096, a multiple of
 * the planner's halo unit), --mpp X (1e-3..1e3 µm/px). Return 0, or -1 after a usage error. */
int cli_parse_region(const char *cmd, const char *s, int64_t *out);
int cli_parse_overlap(const char *cmd, const char *s, int64_t *out);
int cli_parse_mpp(const char *cmd, const char *s, double *out);

#endif
