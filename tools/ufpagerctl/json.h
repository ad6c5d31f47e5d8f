/* SPDX-License-Identifier: MIT */
/*
 * json.h - ufpagerctl's one JSON writer: objects, arrays, escaped strings,
 * numbers. It never writes a number JSON cannot hold: inf or nan becomes
 * null beside a "<key>_null_reason" string member (in an object), so a
 * reader gets valid JSON and is told why a value is missing. Not
 * thread-safe: one writer per stream, on one thread.
 */
#ifndef UFPAGERCTL_JSON_H
#define UFPAGERCTL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *f;
	unsigned depth;
	bool in_object[JSON_MAX_DEPTH];  /* an object (members have keys) or an array */
	bool has_member[JSON_MAX_DEPTH]; /* a comma goes before the next member */
	bool newline_rows;               /* a newline before each member at depth 2 */
};

/* Write to f. Every call below takes key = NULL inside an array (and for
 * the top-level value), a member name inside an object. */
void json_init(struct json *j, FILE *f);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_bool(struct json *j, const char *key, bool v);
void json_uint(struct json *j, const char *key, uint64_t v);
/* A finite v as a number (integral values exactly, others with 6
 * significant digits); otherwise null and, in an object, the member
 * "<key>_null_reason": reason, or "not a finite number (inf)" when
 * reason is NULL. */
void json_num_why(struct json *j, const char *key, double v, const char *reason);
static inline void json_num(struct json *j, const char *key, double v)
{
	json_num_why(j, key, v, NULL);
}
/* num / den, or null with the reason "<den_name> is 0" when den is 0. */
void json_ratio(struct json *j, const char *key, double num, double den,
		const char *den_name);
/* A value some other writer prints (e.g. ufp_stats_json): the key and
 * separator are written, then write(f, arg) must write one JSON value. */
void json_value_from(struct json *j, const char *key, int (*write)(const void *arg, FILE *f),
		     const void *arg);

#endif
