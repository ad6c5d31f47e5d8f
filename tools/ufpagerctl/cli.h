/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what every ufpagerctl command shares: checked numeric arguments
 * (a bad one is named with its option; the caller exits 2, like every
 * usage error) and getopt_long's error message naming the command.
 */
#ifndef UFPAGERCTL_CLI_H
#define UFPAGERCTL_CLI_H

#include <stdint.h>

/* A whole number in [min, max], digits only. Returns 0, or -1 after
 * "ufpagerctl CMD: OPT: 'S' is not a number" (or "... out of range"). */
int cli_parse_uint(const char *cmd, const char *opt, const char *s, uint64_t min,
		   uint64_t max, uint64_t *out);
/* A finite number above 0 and at most max (nan, inf, 0, negatives and
 * trailing junk refused); -1 after saying why, as above. */
int cli_parse_positive(const char *cmd, const char *opt, const char *s, double max,
		       double *out);
/* getopt_long's error for argv[optind - 1] (call with opterr = 0 so the
 * message names the command). */
void cli_bad_option(const char *cmd, int argc, char **argv);

#endif
