/* SPDX-License-Identifier: MIT */
/*
 * bench_plot.c - `ufpagerctl bench --plot DIR`: the data files the suites
 * write, the latency-tail (1 - CDF) figures, the gnuplot script that draws
 * them with the suites' own figures, and running gnuplot at the end.
 * Every call is a no-op without --plot. Main thread only.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ======================================================================
 * Plots (--plot DIR): data files, one gnuplot script, PNGs when gnuplot
 * is installed. Main thread only.
 * ====================================================================== */

#define PLOT_FIGS 8
#define PLOT_SERIES 8
#define PLOT_FILES 48
#define PLOT_PNGS 16

struct plot_fig {
	char name[32], title[160];
	char series[PLOT_SERIES][32];
	unsigned nseries;
};

struct plot_state {
	struct plot_fig fig[PLOT_FIGS];
	unsigned nfig;
	char files[PLOT_FILES][80];  /* data files written in this run */
	unsigned nfiles;
	char png[PLOT_PNGS][48];     /* drawn by the appended script */
	unsigned npng;
	char *script;                /* suite-specific figures, appended */
	size_t len;
};

const char *plot_machine(void)
{
	static char buf[96];
	struct utsname u;

	if (!buf[0]) {
		if (uname(&u))
			snprintf(u.release, sizeof(u.release), "?");
		u.release[strcspn(u.release, "-")] = '\0';
		snprintf(buf, sizeof(buf), "%ld CPUs, Linux %s", sysconf(_SC_NPROCESSORS_ONLN),
			 u.release);
	}
	return buf;
}

/* Open a data file of DIR: truncated on its first use in this run. */
static FILE *plot_open(struct bench_opts *o, const char *file)
{
	struct plot_state *ps = o->plot;
	char path[512];
	bool seen = false;

	for (unsigned i = 0; i < ps->nfiles && !seen; i++)
		seen = !strcmp(ps->files[i], file);
	if (!seen && ps->nfiles < PLOT_FILES)
		snprintf(ps->files[ps->nfiles++], sizeof(ps->files[0]), "%s", file);
	snprintf(path, sizeof(path), "%s/%s", o->plot_dir, file);
	return fopen(path, seen ? "a" : "w");
}

void plot_row(struct bench_opts *o, const char *file, const char *fmt, ...)
{
	va_list ap;
	FILE *f;

	if (!o->plot || !(f = plot_open(o, file)))
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static struct plot_fig *plot_fig_get(struct bench_opts *o, const char *figure)
{
	struct plot_state *ps = o->plot;

	for (unsigned i = 0; i < ps->nfig; i++)
		if (!strcmp(ps->fig[i].name, figure))
			return &ps->fig[i];
	if (ps->nfig == PLOT_FIGS)
		return NULL;
	snprintf(ps->fig[ps->nfig].name, sizeof(ps->fig[0].name), "%s", figure);
	return &ps->fig[ps->nfig++];
}

void plot_figure_title(struct bench_opts *o, const char *figure, const char *title)
{
	struct plot_fig *fg;

	if (o->plot && (fg = plot_fig_get(o, figure)))
		snprintf(fg->title, sizeof(fg->title), "%s", title);
}

void plot_cdf_series(struct bench_opts *o, const char *figure, const char *series,
		     const struct kb_hist *l)
{
	struct plot_fig *fg;
	char file[128];
	uint64_t below = 0;

	if (!o->plot || !l->count || !(fg = plot_fig_get(o, figure)) || fg->nseries == PLOT_SERIES)
		return;
	snprintf(fg->series[fg->nseries++], sizeof(fg->series[0]), "%s", series);
	snprintf(file, sizeof(file), "%s-cdf-%s.dat", figure, series);
	plot_row(o, file, "# %s %s: %llu samples\n# bucket_low_ns bucket_high_ns cdf "
		 "fraction_at_least_low\n", figure, series, (unsigned long long)l->count);
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
		if (!l->b[i])
			continue;
		plot_row(o, file, "%llu %llu %.6f %.6g\n", (unsigned long long)kb_hist_bucket_lo(i),
			 (unsigned long long)kb_hist_bucket_hi(i) + 1,
			 (double)(below + l->b[i]) / (double)l->count,
			 (double)(l->count - below) / (double)l->count);
		below += l->b[i];
	}
}

void plot_cdf(struct bench_opts *o, const char *series, const struct kb_hist *l)
{
	plot_cdf_series(o, "headline", series, l);
}

void plot_script(struct bench_opts *o, const char *png, const char *fmt, ...)
{
	struct plot_state *ps = o->plot;
	va_list ap;
	int n;
	char *s;

	if (!ps)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = realloc(ps->script, ps->len + (size_t)n + 1)))
		return;
	ps->script = s;
	va_start(ap, fmt);
	vsnprintf(s + ps->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	ps->len += (size_t)n;
	if (png && ps->npng < PLOT_PNGS)
		snprintf(ps->png[ps->npng++], sizeof(ps->png[0]), "%s", png);
}

/* One figure of latency tails: every series as 1 - CDF, log-log. */
static void plot_write_cdf_fig(FILE *f, const struct plot_fig *fg)
{
	fprintf(f, "\nset output '%s-cdf.png'\n"
		"set title \"%s\\n(%s)\"\n"
		"set xlabel 'latency (µs, log scale)'\n"
		"set ylabel 'fraction of samples at least this slow (1 - CDF, log scale)'\n"
		"set logscale xy; set format x '%%g'; set yrange [*:1.5]\n"
		"set ytics ('all' 1, 'p50' 0.5, 'p90' 0.1, 'p99' 0.01, 'p99.9' 0.001, "
		"'p99.99' 0.0001, 'p99.999' 0.00001)\n"
		"set key top right\n"
		"plot", fg->name, fg->title[0] ? fg->title : fg->name, plot_machine());
	for (unsigned i = 0; i < fg->nseries; i++)
		fprintf(f, "%s '%s-cdf-%s.dat' using ($1/1000):4 with steps lw 2 title '%s'",
			i ? ", \\\n     " : " ", fg->name, fg->series[i], fg->series[i]);
	fprintf(f, "\nunset logscale; unset format; set ytics auto; set yrange [*:*]\n");
}

/* Run gnuplot on DIR/plots.gp, its output in DIR/gnuplot.log. Returns its
 * exit status, 127 when it is not installed. */
static int plot_gnuplot(const char *dir)
{
	int st, fd;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (chdir(dir))
			_exit(126);
		fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int plots_start(struct bench_opts *o)
{
	if (mkdir(o->plot_dir, 0755) && errno != EEXIST) {
		int err = errno;

		fprintf(stderr, "ufpagerctl bench: cannot create %s: %s\n", o->plot_dir,
			strerror(err));
		return -err;
	}
	o->plot = calloc(1, sizeof(*o->plot));
	if (!o->plot)
		return -ENOMEM;
	/* bench_headline.c adds its series with plot_cdf() */
	plot_figure_title(o, "headline", "headline: latency of faulting accesses (those "
			  "over 1 µs), working set 4x the budget, beside structural churn");
	return 0;
}

void plots_finish(struct bench_opts *o)
{
	struct plot_state *ps = o->plot;
	unsigned ncdf = 0;
	struct stat sb;
	char path[512];
	FILE *f;
	int rc;

	if (!ps)
		return;
	for (unsigned i = 0; i < ps->nfig; i++)
		ncdf += ps->fig[i].nseries > 0;
	if (!ncdf && !ps->len) {
		printf("plots: nothing to draw (the headline, faults and churn suites write plot "
		       "data)\n");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/plots.gp", o->plot_dir);
	f = fopen(path, "w");
	if (!f) {
		printf("plots: cannot write %s: %s\n", path, strerror(errno));
		goto out;
	}
	fprintf(f, "# ufpagerctl bench --plot: run in this directory with `gnuplot plots.gp`\n"
		"set encoding utf8\n"
		"set terminal pngcairo size 1000,620 noenhanced font ',11'\n"
		"set grid\n");
	for (unsigned i = 0; i < ps->nfig; i++)
		if (ps->fig[i].nseries)
			plot_write_cdf_fig(f, &ps->fig[i]);
	if (ps->script)
		fputs(ps->script, f);
	fclose(f);
	rc = plot_gnuplot(o->plot_dir);
	snprintf(path, sizeof(path), "%s/gnuplot.log", o->plot_dir);
	if (!stat(path, &sb) && sb.st_size == 0)
		unlink(path);
	snprintf(path, sizeof(path), "%s/plots.gp", o->plot_dir);
	if (rc == 127) {
		printf("plots: gnuplot is not installed; the data and %s are written: draw them "
		       "with\n  cd %s && gnuplot plots.gp\n(Debian: apt-get install gnuplot-nox)\n",
		       path, o->plot_dir);
		goto out;
	}
	if (rc != 0) {
		printf("plots: gnuplot failed on %s; see %s/gnuplot.log\n", path, o->plot_dir);
		goto out;
	}
	printf("plots: %s/plots.gp drawn:", o->plot_dir);
	for (unsigned i = 0; i < ps->nfig; i++)
		if (ps->fig[i].nseries)
			printf(" %s-cdf.png", ps->fig[i].name);
	for (unsigned i = 0; i < ps->npng; i++)
		printf(" %s", ps->png[i]);
	printf("\n");
out:
	free(ps->script);
	free(ps);
	o->plot = NULL;
}
