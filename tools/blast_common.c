/* What dgblast's modes share: opening timers and the socket, the progress
 * line, the summary's common part and latency percentiles, and reporting
 * failed sends; see blast.h. dgblast.c (the command line) and the modes
 * (blast_<mode>.c) call in here; nothing here calls back into them. */
#include "blast.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int blast_timer_open(dg_loop *loop, dg_timer **out, uint64_t timeout_ms, uint64_t repeat_ms,
                     dg_timer_cb cb, void *data)
{
    dg_timer *timer = NULL;
    int rc = dg_timer_new(loop, &timer);

    if (rc < 0) {
        tool_error_code(BLAST_PROG, "timer", rc);
        *out = NULL;
        return rc;
    }
    rc = dg_timer_start(timer, timeout_ms, repeat_ms, cb, data);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "timer start", rc);
        dg_timer_close(timer, NULL, NULL);
        *out = NULL;
        return rc;
    }
    *out = timer;
    return 0;
}

void blast_timer_close(dg_timer **timer)
{
    if (*timer != NULL) {
        dg_timer_close(*timer, NULL, NULL);
        *timer = NULL;
    }
}

int blast_socket_open(dg_loop *loop, const blast_config *config,
                      const dg_socket_handlers *handlers, void *data, dg_socket **out)
{
    dg_socket_options options = {.type = config->udp6 ? DG_UDP6 : DG_UDP4};
    int rc;

    tool_socket_buffers(&options, &config->net);
    rc = dg_socket_create(loop, &options, handlers, data, out);

    if (rc < 0)
        tool_error_code(BLAST_PROG, "socket", rc);
    return rc;
}

int blast_progress_start(blast_progress *progress, dg_loop *loop, dg_timer_cb cb, void *data)
{
    progress->start_ns = tool_now_ns();
    progress->last_packets = 0;
    progress->seconds = 0;
    progress->timer = NULL;
    if (!tool_progress_wanted())
        return 0;
    return blast_timer_open(loop, &progress->timer, 1000, 1000, cb, data);
}

void blast_progress_print(blast_progress *progress, uint64_t packets, const char *extra)
{
    uint64_t delta = packets - progress->last_packets;

    progress->last_packets = packets;
    progress->seconds++;
    fprintf(stderr, "[%3us] %llu pkt/s  %s\n", progress->seconds, (unsigned long long)delta,
            extra);
}

void blast_summary_begin(tool_json *json, const blast_config *config, const char *backend,
                         uint64_t packets, uint64_t bytes, double seconds)
{
    bool measurable = tool_rate_measurable(seconds);
    double pps = tool_rate(packets, seconds);
    bool round_trip = (config->mode & BLAST_ROUND_TRIP_MODES) != 0;

    if (!config->json) {
        printf("%s%s: %llu packets, %llu bytes in %.3f s, ", config->mode_name,
               config->sockperf ? " (sockperf)" : "", (unsigned long long)packets,
               (unsigned long long)bytes, seconds);
        if (measurable)
            printf("%.0f pps", pps);
        else
            printf("rate: too short (under %.0f ms)", TOOL_RATE_MIN_SECONDS * 1e3);
        printf(" (backend %s)\n", backend);
        return;
    }
    tool_json_begin(json, stdout);
    tool_json_string(json, "mode", config->mode_name);
    if (round_trip)
        tool_json_string(json, "protocol", config->sockperf ? "sockperf" : "dgblast");
    tool_json_string(json, "backend", backend);
    tool_json_uint(json, "packets", packets);
    tool_json_uint(json, "bytes", bytes);
    tool_json_double(json, "seconds", seconds, 6);
    if (measurable)
        tool_json_double(json, "pps", pps, 1);
    else
        tool_json_null(json, "pps");
}

static double percentile_us(const tool_samples *rtts, unsigned per_mille)
{
    return (double)tool_samples_percentile(rtts, per_mille) / 1e3;
}

void blast_latency_summary(tool_json *json, const blast_config *config, tool_samples *rtts)
{
    static const struct {
        const char *key;
        const char *label;
        unsigned per_mille;
    } points[] = {{"rtt_p50_us", "p50", 500},   {"rtt_p90_us", "p90", 900},
                  {"rtt_p99_us", "p99", 990},   {"rtt_p999_us", "p99.9", 999},
                  {"rtt_max_us", "max", 1000}};
    const size_t npoints = sizeof(points) / sizeof(points[0]);

    tool_samples_sort(rtts);
    if (config->json) {
        tool_json_uint(json, "rtt_samples", rtts->count);
        for (size_t i = 0; i < npoints; i++) {
            if (rtts->count == 0)
                tool_json_null(json, points[i].key); /* no figure, not a zero */
            else
                tool_json_double(json, points[i].key, percentile_us(rtts, points[i].per_mille),
                                 1);
        }
        return;
    }
    if (rtts->count == 0) {
        printf("  round trip: no samples\n");
        fflush(stdout);
        return;
    }
    printf("  round trip us (%zu samples):", rtts->count);
    for (size_t i = 0; i < npoints; i++)
        printf("  %s %.1f", points[i].label, percentile_us(rtts, points[i].per_mille));
    printf("\n");
    fflush(stdout);
}

bool blast_send_failed(uint64_t *errors, int code, const dg_error *err)
{
    if (code == -ECANCELED)
        return false;
    /* Only the first failure is printed: a flood must not flood stderr. */
    if ((*errors)++ == 0) {
        if (err != NULL)
            tool_error_dg(BLAST_PROG, err);
        else
            tool_error_code(BLAST_PROG, "send", code);
    }
    return tool_is_dns_error(code);
}

/* ---- Buffers --------------------------------------------------------------- */

void blast_buffers_read(blast_buffers *buffers, const blast_config *config,
                        const dg_socket *sock)
{
    tool_buffer_read(&buffers->receive, sock, true, config->net.rcvbuf);
    tool_buffer_read(&buffers->send, sock, false, config->net.sndbuf);
    buffers->known = true;
}

void blast_buffers_print(const blast_buffers *buffers, const blast_config *config,
                         bool receive_note)
{
    FILE *notes = tool_notes(config->json);

    if (!buffers->known)
        return;
    if (receive_note || config->net.rcvbuf > 0)
        tool_buffer_print(notes, &buffers->receive);
    if (config->net.sndbuf > 0)
        tool_buffer_print(notes, &buffers->send);
}

uint64_t blast_kernel_drops(const dg_socket *sock)
{
    dg_socket_stats stats;

    return dg_socket_get_stats(sock, &stats) == 0 ? stats.rx_kernel_drops : 0;
}

void blast_buffers_json(tool_json *json, const blast_buffers *buffers)
{
    if (!buffers->known)
        return;
    tool_buffer_json(json, &buffers->receive);
    tool_buffer_json(json, &buffers->send);
}

/* ---- Intervals ------------------------------------------------------------- */

/* The interval in ms (at least 1), 0 when none is wanted. */
static uint64_t intervals_ms(const blast_intervals *intervals)
{
    uint64_t ms = (uint64_t)(intervals->seconds * 1000 + 0.5);

    return intervals->seconds > 0 && ms == 0 ? 1 : ms;
}

void blast_intervals_init(blast_intervals *intervals, const blast_config *config)
{
    memset(intervals, 0, sizeof(*intervals));
    intervals->print = config->interval > 0;
    intervals->keep = config->plot != NULL && config->mode == BLAST_RECV;
    intervals->seconds = config->interval > 0 ? config->interval : intervals->keep ? 1.0 : 0;
    intervals->start_ns = intervals->last_ns = tool_now_ns();
    intervals->next_ns = intervals->start_ns + intervals_ms(intervals) * 1000000u;
}

int blast_intervals_timer(const blast_intervals *intervals, dg_loop *loop, dg_timer **timer,
                          dg_timer_cb cb, void *data)
{
    uint64_t ms = intervals_ms(intervals);

    *timer = NULL;
    return ms > 0 ? blast_timer_open(loop, timer, ms, ms, cb, data) : 0;
}

bool blast_intervals_due(blast_intervals *intervals)
{
    uint64_t every_ns = intervals_ms(intervals) * 1000000u;

    if (every_ns == 0 || tool_now_ns() < intervals->next_ns)
        return false;
    intervals->next_ns += every_ns;
    return true;
}

static void print_interval(const blast_intervals *intervals, const blast_config *config,
                           double from, double to, uint64_t packets)
{
    bool measurable = tool_rate_measurable(to - from);
    tool_json json;

    if (!config->json) {
        printf("[%6.2f-%6.2f s] %llu packets", from, to, (unsigned long long)packets);
        if (measurable)
            printf(", %.0f pps\n", tool_rate(packets, to - from));
        else
            printf(", rate: too short\n");
        fflush(stdout);
        return;
    }
    tool_json_begin(&json, stdout);
    tool_json_uint(&json, "interval", intervals->count);
    tool_json_string(&json, "mode", config->mode_name);
    tool_json_double(&json, "start", from, 3);
    tool_json_double(&json, "end", to, 3);
    tool_json_uint(&json, "packets", packets);
    if (measurable)
        tool_json_double(&json, "pps", tool_rate(packets, to - from), 1);
    else
        tool_json_null(&json, "pps");
    tool_json_end(&json);
}

int blast_intervals_tick(blast_intervals *intervals, const blast_config *config,
                         uint64_t packets)
{
    uint64_t now = tool_now_ns();
    uint64_t delta = packets - intervals->last_packets;
    double from = (double)(intervals->last_ns - intervals->start_ns) / 1e9;
    double to = (double)(now - intervals->start_ns) / 1e9;

    intervals->count++;
    intervals->last_ns = now;
    intervals->last_packets = packets;
    if (intervals->print)
        print_interval(intervals, config, from, to, delta);
    if (!intervals->keep)
        return 0;
    if (tool_samples_push(&intervals->ends_ns, now - intervals->start_ns) < 0 ||
        tool_samples_push(&intervals->packets, delta) < 0)
        return -ENOMEM;
    return 0;
}

void blast_intervals_free(blast_intervals *intervals)
{
    tool_samples_free(&intervals->ends_ns);
    tool_samples_free(&intervals->packets);
}

/* ---- Round-trip modes ------------------------------------------------------ */

int blast_round_trip_end(const blast_config *config, const tool_samples *rtts, uint64_t replies)
{
    char title[160];

    if (replies == 0) {
        tool_error(BLAST_PROG, "no replies from %s port %d: is an echo server (dgring-echo%s) "
                   "running there?", config->host, config->port,
                   config->sockperf ? " --sockperf, or sockperf server" : "");
        return TOOL_EXIT_FAILURE;
    }
    if (config->plot == NULL)
        return TOOL_EXIT_OK;
    snprintf(title, sizeof(title), "dgblast %s%s: %zu round trips to %s port %d",
             config->mode_name, config->sockperf ? " --sockperf" : "", rtts->count, config->host,
             config->port);
    return blast_plot_latency(config->plot, rtts, title);
}
