/* SPDX-License-Identifier: MIT */
/*
 * json_emit_test.c - ufpagerctl's JSON writer (tools/ufpagerctl/json.c)
 * on the values that made bench --json invalid: a ratio whose denominator
 * is 0, inf, nan, strings that need escaping. Writes one document on
 * stdout; the ctest json_emitter parses it with python3 and checks the
 * null reasons (cmake/tests.cmake).
 */
#include <math.h>
#include <stdio.h>

#include "json.h"

int main(void)
{
	struct json j;

	json_init(&j, stdout);
	j.newline_rows = true;
	json_object_begin(&j, NULL);
	json_array_begin(&j, "rows");
	json_object_begin(&j, NULL);
	json_ratio(&j, "zero_den", 5.0, 0.0, "kernel faults/s");
	json_ratio(&j, "ratio", 1.0, 4.0, "x");
	json_num(&j, "inf", INFINITY);
	json_num(&j, "ninf", -INFINITY);
	json_num(&j, "nan", NAN);
	json_num(&j, "big", 123456789012.0);
	json_num(&j, "small", 1e-9);
	json_uint(&j, "u64", UINT64_MAX);
	json_str(&j, "esc", "quote \" backslash \\ newline \n tab \t bell \a");
	json_bool(&j, "yes", true);
	json_object_end(&j);
	json_num(&j, NULL, INFINITY);   /* in an array: null, no reason member */
	json_array_end(&j);
	json_object_begin(&j, "summary");
	json_object_begin(&j, "headline.per_region_over_global");
	json_num_why(&j, "value", NAN, "the ratio's denominator was 0");
	json_str(&j, "text", "headline: accesses/s per-region / global");
	json_object_end(&j);
	json_object_end(&j);
	json_object_end(&j);
	putchar('\n');
	return ferror(stdout) ? 1 : 0;
}
