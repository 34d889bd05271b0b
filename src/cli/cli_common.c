/* cli_common.c — shared helpers for the subcommands: error printing, strict option parsing. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "../error.h"
#include "../pipeline.h"
#include "wsi/planner.h"

int cli_fail(const char *what)
{
    const char *m = error_msg();
    if (!m[0]) m = "unknown error";
    if (what)
        fprintf(stderr, "wsi-vmamba: %s: %s\n", what, m);
    else
        fprintf(stderr, "wsi-vmamba: %s\n", m);
    error_clear();
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "wsi-vmamba %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'wsi-vmamba %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, "%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_pair(const char *cmd, const char *opt, const char *s, long lo, long hi, long out[2])
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (errno || end == s || *end != ',') goto bad;
    const char *s2 = end + 1;
    long b = strtol(s2, &end, 10);
    if (errno || end == s2 || *end || a < lo || a > hi || b < lo || b > hi) goto bad;
    out[0] = a;
    out[1] = b;
    return 0;
bad:
    cli_usage_error(cmd, "%s: '%s' is not A,B with integers in [%ld, %ld]", opt, s, lo, hi);
    return -1;
}

int cli_parse_region(const char *cmd, const char *s, int64_t *out)
{
    long v;
    if (cli_parse_long(cmd, "--region", s, PIPELINE_CELL_PX, 65536, &v)) return -1;
    *out = v;
    return 0;
}

int cli_parse_overlap(const char *cmd, const char *s, int64_t *out)
{
    long v;
    if (cli_parse_long(cmd, "--overlap", s, 0, 4096, &v)) return -1;
    if (v % PLAN_HALO_MULTIPLE) {
        cli_usage_error(cmd, "--overlap %ld: must be a multiple of %d", v, PLAN_HALO_MULTIPLE);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_mpp(const char *cmd, const char *s, double *out)
{
    return cli_parse_double(cmd, "--mpp", s, 1e-3, 1e3, out);
}
