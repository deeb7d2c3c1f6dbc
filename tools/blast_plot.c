/* dgblast's pictures (--plot, drawn by gnuplot) and its full log of
 * samples (--full-log); see blast.h.
 *
 * A plot is drawn after the run: the data and a gnuplot script go to a
 * fresh directory under $TMPDIR (or /tmp), gnuplot runs on the script with
 * its stdout sent to stderr (stdout may be carrying JSON lines), and the
 * directory is removed. */
#include "blast.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define GNUPLOT "gnuplot"

/* Whether an executable named name is on $PATH. */
static bool on_path(const char *name)
{
    const char *path = getenv("PATH");
    char candidate[4096];

    while (path != NULL && *path != '\0') {
        size_t length = strcspn(path, ":");
        if (length > 0 && length + strlen(name) + 2 <= sizeof(candidate)) {
            snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)length, path, name);
            if (access(candidate, X_OK) == 0)
                return true;
        }
        path += length + (path[length] == ':');
    }
    return false;
}

bool blast_plot_available(void)
{
    if (on_path(GNUPLOT))
        return true;
    tool_error(BLAST_PROG, "--plot needs gnuplot, which is not on PATH (Debian: apt-get "
               "install gnuplot-nox)");
    return false;
}

/* A scratch directory with the data and the script. */
typedef struct plot_files {
    char dir[256];
    char data[300];
    char script[300];
} plot_files;

static bool plot_files_make(plot_files *files)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(files->dir, sizeof(files->dir), "%s/dgblast-plot.XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(files->dir) == NULL) {
        tool_error(BLAST_PROG, "--plot: cannot make a directory in %s: %s",
                   tmp != NULL ? tmp : "/tmp", strerror(errno));
        return false;
    }
    snprintf(files->data, sizeof(files->data), "%s/data", files->dir);
    snprintf(files->script, sizeof(files->script), "%s/plot.gp", files->dir);
    return true;
}

static void plot_files_remove(const plot_files *files)
{
    unlink(files->data);
    unlink(files->script);
    rmdir(files->dir);
}

/* Writes text as a gnuplot single-quoted string (a quote is doubled). */
static void put_quoted(FILE *out, const char *text)
{
    fputc('\'', out);
    for (; *text != '\0'; text++) {
        if (*text == '\'')
            fputc('\'', out);
        fputc(*text, out);
    }
    fputc('\'', out);
}

/* The script's first lines: the PNG terminal and the output file. */
static void script_begin(FILE *script, const char *png)
{
    fputs("set terminal png size 1100,450\nset output ", script);
    put_quoted(script, png);
    fputs("\nset grid\n", script);
}

/* Runs gnuplot on the script; its stdout goes to stderr. */
static int run_gnuplot(const plot_files *files, const char *png)
{
    char *argv[] = {GNUPLOT, (char *)files->script, NULL};
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int status = 0, rc;

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    rc = posix_spawnp(&pid, GNUPLOT, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        tool_error(BLAST_PROG, "--plot: cannot run gnuplot: %s", strerror(rc));
        return TOOL_EXIT_FAILURE;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        continue;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tool_error(BLAST_PROG, "--plot: gnuplot failed drawing %s", png);
        return TOOL_EXIT_FAILURE;
    }
    return TOOL_EXIT_OK;
}

/* One picture: its data, written by write_data, and the script's body
 * (after the terminal lines), which plots the data file. */
typedef struct plot_job {
    const char *png;
    const char *title;
    double scale;            /* what the body needs to know (latency: p99) */
    void (*write_data)(FILE *data, const void *ctx);
    const void *ctx;
    void (*body)(FILE *script, const char *data, const char *title, double scale);
} plot_job;

/* Writes the data file (script false) or the script; false after printing
 * why. */
static bool write_file(const plot_files *files, const plot_job *job, bool script)
{
    const char *path = script ? files->script : files->data;
    FILE *f = fopen(path, "w");
    bool ok;

    if (f == NULL) {
        tool_error(BLAST_PROG, "--plot: %s: %s", path, strerror(errno));
        return false;
    }
    if (script) {
        script_begin(f, job->png);
        job->body(f, files->data, job->title, job->scale);
    } else {
        job->write_data(f, job->ctx);
    }
    ok = !ferror(f);
    if (fclose(f) != 0 || !ok) {
        tool_error(BLAST_PROG, "--plot: cannot write %s", path);
        return false;
    }
    return true;
}

/* Writes the job's files in a scratch directory, runs gnuplot, removes
 * them. Returns TOOL_EXIT_OK or TOOL_EXIT_FAILURE after printing why. */
static int plot(const plot_job *job)
{
    plot_files files;
    int status = TOOL_EXIT_FAILURE;

    if (!plot_files_make(&files))
        return TOOL_EXIT_FAILURE;
    if (write_file(&files, job, false) && write_file(&files, job, true))
        status = run_gnuplot(&files, job->png);
    plot_files_remove(&files);
    return status;
}

/* ---- Round trips -------------------------------------------------------- */

/* The histogram of the body, up to 1.5 x p99 (the tail would flatten it;
 * counts on a log scale), and the percentile curve on a scale that spreads
 * the tail: x = -log10(1 - p). */
static void latency_body(FILE *script, const char *data, const char *title, double p99_us)
{
    double range = p99_us > 0 ? p99_us * 1.5 : 1;
    double bin = range / 100;

    fputs("set multiplot layout 1,2 title ", script);
    put_quoted(script, title);
    fprintf(script,
            "\nset title 'round trips: histogram (to 1.5 x p99)'\n"
            "set xlabel 'round trip (us)'\nset ylabel 'round trips'\nset logscale y\n"
            "set xrange [0:%g]\nset style fill solid 0.6\nbin(x) = %g * floor(x / %g)\n",
            range, bin, bin);
    fputs("plot ", script);
    put_quoted(script, data);
    fputs(" using (bin($1)):(1.0) smooth frequency with boxes notitle\n"
          "set title 'round trips: percentiles'\nset xlabel 'percentile'\n"
          "set ylabel 'round trip (us)'\nset autoscale x\nset logscale y\n"
          "set xtics ('50' 0.301, '90' 1, '99' 2, '99.9' 3, '99.99' 4, '99.999' 5)\nplot ",
          script);
    put_quoted(script, data);
    fputs(" using (-log10(1 - $2)):1 with lines notitle\nunset multiplot\n", script);
}

/* "round trip in us, percentile" a line; sorted, so a sample's percentile
 * is its mid-rank. */
static void write_latency(FILE *data, const void *ctx)
{
    const tool_samples *rtts = ctx;

    for (size_t i = 0; i < rtts->count; i++)
        fprintf(data, "%.3f %.9f\n", (double)rtts->items[i] / 1e3,
                ((double)i + 0.5) / (double)rtts->count);
}

int blast_plot_latency(const char *png, const tool_samples *rtts, const char *title)
{
    plot_job job = {
        .png = png,
        .title = title,
        .scale = (double)tool_samples_percentile(rtts, 990) / 1e3,
        .write_data = write_latency,
        .ctx = rtts,
        .body = latency_body,
    };

    if (rtts->count == 0) {
        tool_error(BLAST_PROG, "--plot: no round trips to draw");
        return TOOL_EXIT_FAILURE;
    }
    return plot(&job);
}

/* ---- Rate ------------------------------------------------------------------ */

static void rate_body(FILE *script, const char *data, const char *title, double unused)
{
    (void)unused;
    fputs("set title ", script);
    put_quoted(script, title);
    fputs("\nset xlabel 'time (s)'\nset ylabel 'datagrams per second'\nset yrange [0:*]\n"
          "plot ",
          script);
    put_quoted(script, data);
    fputs(" using 1:2 with linespoints notitle\n", script);
}

static size_t interval_points(const blast_intervals *intervals)
{
    return intervals->ends_ns.count < intervals->packets.count ? intervals->ends_ns.count
                                                               : intervals->packets.count;
}

/* "end of the interval in s, datagrams per second" a line. */
static void write_rate(FILE *data, const void *ctx)
{
    const blast_intervals *intervals = ctx;
    uint64_t from = 0;

    for (size_t i = 0; i < interval_points(intervals); i++) {
        uint64_t to = intervals->ends_ns.items[i];
        fprintf(data, "%.3f %.1f\n", (double)to / 1e9,
                tool_rate(intervals->packets.items[i], (double)(to - from) / 1e9));
        from = to;
    }
}

int blast_plot_rate(const char *png, const blast_intervals *intervals, const char *title)
{
    plot_job job = {
        .png = png,
        .title = title,
        .write_data = write_rate,
        .ctx = intervals,
        .body = rate_body,
    };

    if (interval_points(intervals) == 0) {
        tool_error(BLAST_PROG, "--plot: the run was shorter than one interval: nothing to draw");
        return TOOL_EXIT_FAILURE;
    }
    return plot(&job);
}

/* ---- The full log ------------------------------------------------------ */

FILE *blast_full_log_open(const char *path)
{
    FILE *log = fopen(path, "w");

    if (log == NULL) {
        tool_error(BLAST_PROG, "--full-log %s: %s", path, strerror(errno));
        return NULL;
    }
    fputs("seq,tx_s,rx_s,rtt_us\n", log);
    return log;
}

void blast_full_log_write(FILE *log, uint64_t seq, uint64_t sent_ns, uint64_t received_ns)
{
    fprintf(log, "%llu,%llu.%09llu,%llu.%09llu,%.3f\n", (unsigned long long)seq,
            (unsigned long long)(sent_ns / 1000000000u),
            (unsigned long long)(sent_ns % 1000000000u),
            (unsigned long long)(received_ns / 1000000000u),
            (unsigned long long)(received_ns % 1000000000u),
            (double)(received_ns - sent_ns) / 1e3);
}

bool blast_full_log_close(FILE *log, const char *path)
{
    bool ok = !ferror(log);

    if (fclose(log) != 0 || !ok) {
        tool_error(BLAST_PROG, "--full-log %s: write failed", path);
        return false;
    }
    return true;
}
