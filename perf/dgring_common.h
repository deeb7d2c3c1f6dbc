/* perf/dgring_common.h: what the dgring peers of the benchmark share
 * (dgring_bench.c, dgring_user.c): failing on a dgring error, printing the
 * socket's errors, and the socket counters every dgring peer appends to
 * its JSON line. Include after common.h and <dgring.h>.
 */
#ifndef PERF_DGRING_COMMON_H
#define PERF_DGRING_COMMON_H

static inline void perf_die_dg(const char *what, int code)
{
    fprintf(stderr, "%s: %s (%s)\n", what, dg_strerror(code), dg_err_name(code));
    exit(1);
}

/* on_error for every perf socket: the error goes to stderr, the run goes on. */
static inline void perf_dg_on_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    char text[256];
    dg_error_format(err, text, sizeof(text));
    fprintf(stderr, "dgring error: %s\n", text);
}

/* The socket's receive counters as JSON members (starting with a comma),
 * for perf_rx_report's extra: rx_no_buffers counts the times the loop's
 * buffer ring ran dry (issue 16 wants 0 in the drain with defaults). */
static inline void perf_dg_rx_json(const dg_socket_stats *st, const dg_loop_options *lo,
                                   char *out, size_t len)
{
    snprintf(out, len,
             ",\"rxq_ovfl\":%llu,\"rx_no_buffers\":%llu,\"rx_rearms\":%llu,"
             "\"rx_gro_buffers\":%llu,\"recv_buffers\":%u,\"recv_buffer_size\":%u",
             (unsigned long long)st->rx_kernel_drops, (unsigned long long)st->rx_no_buffers,
             (unsigned long long)st->rx_rearms, (unsigned long long)st->rx_gro_buffers,
             lo->recv_buffers, lo->recv_buffer_size);
}

/* The loop's counters over its whole life (warm-up included), as JSON
 * members appended to out (which holds a string already): completions per
 * enter show how many datagrams one io_uring_enter brought. */
static inline void perf_dg_loop_json(const dg_loop *loop, char *out, size_t len)
{
    dg_loop_stats ls;
    size_t used = strlen(out);
    if (dg_loop_get_stats(loop, &ls) < 0 || used >= len)
        return;
    snprintf(out + used, len - used,
             ",\"loop_turns\":%llu,\"loop_enters\":%llu,\"loop_completions\":%llu,"
             "\"loop_submissions\":%llu,\"loop_batch_wait_timeouts\":%llu",
             (unsigned long long)ls.turns, (unsigned long long)ls.enters,
             (unsigned long long)ls.completions, (unsigned long long)ls.submissions,
             (unsigned long long)ls.batch_wait_timeouts);
}

#endif
