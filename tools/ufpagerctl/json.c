/* SPDX-License-Identifier: MIT */
/*
 * json.c - the JSON writer of ufpagerctl (json.h): bench --json, stats
 * --json. Strings are escaped per RFC 8259; non-finite numbers are
 * refused (null plus a reason).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

void json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* The separator, newline and key before a member. */
static void member(struct json *j, const char *key)
{
	if (j->depth && j->has_member[j->depth - 1])
		fputc(',', j->f);
	if (j->depth)
		j->has_member[j->depth - 1] = true;
	if (j->newline_rows && j->depth == 2)
		fputs("\n  ", j->f);
	if (key && j->depth && j->in_object[j->depth - 1]) {
		put_string(j->f, key);
		fputc(':', j->f);
	}
}

static void open_container(struct json *j, const char *key, bool object)
{
	member(j, key);
	fputc(object ? '{' : '[', j->f);
	if (j->depth < JSON_MAX_DEPTH) {
		j->in_object[j->depth] = object;
		j->has_member[j->depth] = false;
	}
	j->depth++;
}

static void close_container(struct json *j, bool object)
{
	if (!j->depth)
		return;
	j->depth--;
	if (j->newline_rows && j->depth == 1 && j->has_member[1])
		fputc('\n', j->f);
	fputc(object ? '}' : ']', j->f);
}

void json_object_begin(struct json *j, const char *key) { open_container(j, key, true); }
void json_object_end(struct json *j) { close_container(j, true); }
void json_array_begin(struct json *j, const char *key) { open_container(j, key, false); }
void json_array_end(struct json *j) { close_container(j, false); }

void json_str(struct json *j, const char *key, const char *v)
{
	member(j, key);
	put_string(j->f, v ? v : "");
}

void json_bool(struct json *j, const char *key, bool v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_num_why(struct json *j, const char *key, double v, const char *reason)
{
	char why[64], name[128];

	if (isfinite(v)) {
		member(j, key);
		if (v == floor(v) && fabs(v) < 1e15)
			fprintf(j->f, "%.0f", v);
		else
			fprintf(j->f, "%.6g", v);
		return;
	}
	member(j, key);
	fputs("null", j->f);
	if (!key || !j->depth || !j->in_object[j->depth - 1])
		return;
	if (!reason) {
		snprintf(why, sizeof(why), "not a finite number (%s)", isnan(v) ? "nan" :
			 v > 0 ? "inf" : "-inf");
		reason = why;
	}
	snprintf(name, sizeof(name), "%s_null_reason", key);
	json_str(j, name, reason);
}

void json_ratio(struct json *j, const char *key, double num, double den, const char *den_name)
{
	char why[128];

	if (den == 0) {
		snprintf(why, sizeof(why), "%s is 0", den_name);
		json_num_why(j, key, NAN, why);
	} else {
		json_num_why(j, key, num / den, NULL);
	}
}

void json_value_from(struct json *j, const char *key, int (*write)(const void *arg, FILE *f),
		     const void *arg)
{
	member(j, key);
	if (write(arg, j->f))
		fputs("null", j->f);
}
