/* What dgblast's modes share: opening timers and the socket, the progress
 * line, the summary's common part and latency percentiles, and reporting
 * failed sends; see blast.h. dgblast.c (the command line) and the modes
 * (blast_<mode>.c) call in here; nothing here calls back into them. */
#include "blast.h"

#include <errno.h>
#include <stdio.h>

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
    int rc = dg_socket_create(loop, &options, handlers, data, out);

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
    double pps = tool_rate(packets, seconds);
    bool round_trip = (config->mode & BLAST_ROUND_TRIP_MODES) != 0;

    if (!config->json) {
        printf("%s%s: %llu packets, %llu bytes in %.3f s, %.0f pps (backend %s)\n",
               config->mode_name, config->sockperf ? " (sockperf)" : "",
               (unsigned long long)packets, (unsigned long long)bytes, seconds, pps, backend);
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
    tool_json_double(json, "pps", pps, 1);
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
    } points[] = {{"p50_us", "p50", 500},   {"p90_us", "p90", 900}, {"p99_us", "p99", 990},
                  {"p999_us", "p99.9", 999}, {"max_us", "max", 1000}};
    const size_t npoints = sizeof(points) / sizeof(points[0]);

    tool_samples_sort(rtts);
    if (config->json) {
        for (size_t i = 0; i < npoints; i++)
            tool_json_double(json, points[i].key, percentile_us(rtts, points[i].per_mille), 1);
        return;
    }
    printf("  latency us (%zu samples):", rtts->count);
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
