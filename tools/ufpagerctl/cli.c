/* SPDX-License-Identifier: MIT */
/* cli.c - checked command-line arguments shared by every command (cli.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_uint(const char *cmd, const char *opt, const char *s, uint64_t min,
		   uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	/* strtoull accepts a sign ("-3" wraps) and blanks: digits only */
	if (*s < '0' || *s > '9' || *end || errno == EINVAL) {
		fprintf(stderr, "ufpagerctl %s: %s: '%s' is not a number\n", cmd, opt, s);
		return -1;
	}
	if (errno || v < min || v > max) {
		fprintf(stderr, "ufpagerctl %s: %s: '%s' is out of range (a whole number from "
			"%llu to %llu)\n", cmd, opt, s, (unsigned long long)min,
			(unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_parse_positive(const char *cmd, const char *opt, const char *s, double max,
		       double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || isnan(v)) {
		fprintf(stderr, "ufpagerctl %s: %s: '%s' is not a number\n", cmd, opt, s);
		return -1;
	}
	if (errno || !isfinite(v) || !(v > 0) || v > max) {
		fprintf(stderr, "ufpagerctl %s: %s: '%s' is out of range (above 0, at most %g)\n",
			cmd, opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

void cli_bad_option(const char *cmd, int argc, char **argv)
{
	const char *a = optind - 1 < argc ? argv[optind - 1] : "?";

	if (optopt && strncmp(a, "--", 2))
		fprintf(stderr, "ufpagerctl %s: bad option '-%c' (unknown, or missing its value)\n",
			cmd, optopt);
	else
		fprintf(stderr, "ufpagerctl %s: bad option '%s' (unknown, or missing its value)\n",
			cmd, a);
}
