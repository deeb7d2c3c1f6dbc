/* dgblast recv: binds, receives, and counts rate, loss and reordering.
 *
 * It stops --idle-ms after the last datagram (once one arrived), after
 * --count datagrams, or on a signal. Loss and reordering are counted per
 * sender from the header dgblast send puts in front of its datagrams
 * (blast_flows.c); a datagram without that header is foreign and counted
 * only as such. The socket's kernel drops (its receive queue was full) and
 * the datagrams its close discarded (received, never delivered: still
 * queued when --count or a signal ended the run) come from
 * dg_socket_get_stats() once the socket closed, so they are final: on
 * loopback, sent = packets + kernel drops + discarded at close.
 * The receive buffer asked for is 32 MiB unless --rcvbuf says otherwise;
 * the size the kernel granted is printed once bound.
 */
#include "blast.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_CHECK_MAX_MS 100

typedef struct recv_state {
    const blast_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *idle_timer;     /* repeating; checks the time since the last datagram */
    dg_timer *interval_timer; /* --interval, --plot */
    blast_progress progress;
    blast_flows flows;
    blast_intervals intervals;
    blast_buffers buffers;
    uint64_t packets;
    uint64_t bytes;
    uint64_t truncated;       /* larger than the receive buffer */
    uint64_t foreign;         /* without dgblast send's header */
    uint64_t corrupt;         /* --pattern seq: payloads that break it */
    uint64_t first_ns;        /* first datagram; 0 until one arrived */
    uint64_t last_ns;         /* latest datagram */
    uint64_t kernel_drops;    /* the socket's, final once it closed */
    uint64_t discarded;       /* discarded by the close (rx_discarded_at_close) */
    bool closing;
    int exit_code;
    char backend[32];
} recv_state;

/* What a summary reports: one socket's counts, or a group's added up. */
typedef struct recv_counts {
    uint64_t packets, bytes, truncated, foreign, corrupt, kernel_drops, discarded;
    uint64_t first_ns, last_ns;
    blast_flow_totals flows;
} recv_counts;

static void recv_finish(void *ctx)
{
    recv_state *state = ctx;

    blast_timer_close(&state->idle_timer);
    blast_timer_close(&state->interval_timer);
    blast_timer_close(&state->progress.timer);
    if (state->closing || state->sock == NULL)
        return;
    state->closing = true;
    dg_socket_close(state->sock, NULL, NULL);
}

static void on_recv_message(dg_socket *sock, const dg_message *msg, void *data)
{
    recv_state *state = data;
    uint64_t now = tool_now_ns();
    uint32_t sender;
    uint64_t seq;
    bool ours;

    (void)sock;
    if (state->closing) /* stop at exactly --count */
        return;
    if (state->packets++ == 0)
        state->first_ns = now;
    state->last_ns = now;
    state->bytes += msg->size;
    if (msg->flags & DG_MSG_TRUNC)
        state->truncated++;
    ours = blast_seq_read(msg->data, msg->length, &sender, &seq);
    if (ours)
        blast_flows_count(&state->flows, msg->addr, sender, seq);
    else
        state->foreign++;
    if (state->config->pattern_given &&
        !blast_check_seq_pattern(msg->data, msg->length, ours ? BLAST_SEQ_HEADER_SIZE : 0))
        state->corrupt++;
    if (state->config->count > 0 && state->packets >= state->config->count)
        recv_finish(state);
}

/* Waiting for the first datagram has no time limit; idling after it has. */
static void on_idle_check(dg_timer *timer, void *data)
{
    recv_state *state = data;
    uint64_t idle_ns = state->config->idle_ms * 1000000u;

    (void)timer;
    if (state->packets > 0 && tool_now_ns() - state->last_ns >= idle_ns)
        recv_finish(state);
}

static void on_recv_interval(dg_timer *timer, void *data)
{
    recv_state *state = data;

    (void)timer;
    if (blast_intervals_tick(&state->intervals, state->config, state->packets) < 0) {
        tool_error(BLAST_PROG, "out of memory for the --plot points");
        state->exit_code = TOOL_EXIT_FAILURE;
        recv_finish(state);
    }
}

static void on_recv_progress(dg_timer *timer, void *data)
{
    recv_state *state = data;
    blast_flow_totals totals = {0};
    char extra[128];

    (void)timer;
    blast_flows_totals(&state->flows, &totals);
    snprintf(extra, sizeof(extra), "total %llu  lost %llu  reordered %llu  foreign %llu",
             (unsigned long long)state->packets, (unsigned long long)totals.lost,
             (unsigned long long)totals.reordered, (unsigned long long)state->foreign);
    blast_progress_print(&state->progress, state->packets, extra);
}

static void on_recv_bound(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)err;
    recv_state *state = data;
    const blast_config *config = state->config;
    int code = tool_bind_done(BLAST_PROG, sock, status, state->closing, tool_notes(config->json));

    if (code != TOOL_EXIT_OK) {
        state->exit_code = code;
        recv_finish(state);
        return;
    }
    if (status == 0) {
        blast_buffers_read(&state->buffers, config, sock);
        blast_buffers_print(&state->buffers, config, true);
    }
}

static void on_recv_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

/* The socket's counters are final in on_close (dgring read them as the fd
 * closed): the kernel's drops up to the end, and what the close discarded. */
static void on_recv_close(dg_socket *sock, void *data)
{
    recv_state *state = data;
    dg_socket_stats stats;

    if (dg_socket_get_stats(sock, &stats) == 0) {
        state->kernel_drops = stats.rx_kernel_drops;
        state->discarded = stats.rx_discarded_at_close;
    }
}

/* The timers of a run: idle check, intervals, progress. */
static int recv_timers_open(recv_state *state)
{
    uint64_t check_ms = state->config->idle_ms / 4;
    int rc;

    if (check_ms < 1)
        check_ms = 1;
    if (check_ms > IDLE_CHECK_MAX_MS)
        check_ms = IDLE_CHECK_MAX_MS;
    rc = blast_timer_open(state->loop, &state->idle_timer, check_ms, check_ms, on_idle_check,
                          state);
    if (rc == 0)
        rc = blast_intervals_timer(&state->intervals, state->loop, &state->interval_timer,
                                   on_recv_interval, state);
    if (rc == 0)
        rc = blast_progress_start(&state->progress, state->loop, on_recv_progress, state);
    return rc;
}

/* Opens the socket and timers and binds. On failure sets exit_code; what
 * was opened is left for recv_finish to close. */
static void recv_start(recv_state *state)
{
    dg_socket_handlers handlers = {
        .on_message = on_recv_message,
        .on_error = on_recv_error,
        .on_close = on_recv_close,
    };
    int rc = blast_socket_open(state->loop, state->config, &handlers, state, &state->sock);

    blast_intervals_init(&state->intervals, state->config);
    if (rc == 0)
        rc = recv_timers_open(state);
    if (rc < 0)
        state->exit_code = TOOL_EXIT_FAILURE;
    else
        state->exit_code = tool_bind_start(BLAST_PROG, state->sock, state->config->address,
                                           state->config->port, state->config->udp6,
                                           on_recv_bound, state);
}

/* ---- The summary ------------------------------------------------------------ */

/* Adds one socket's counts into *sum. */
static void recv_add(recv_counts *sum, const recv_state *state)
{
    sum->packets += state->packets;
    sum->bytes += state->bytes;
    sum->truncated += state->truncated;
    sum->foreign += state->foreign;
    sum->corrupt += state->corrupt;
    sum->kernel_drops += state->kernel_drops;
    sum->discarded += state->discarded;
    if (state->packets > 0 && (sum->first_ns == 0 || state->first_ns < sum->first_ns))
        sum->first_ns = state->first_ns;
    if (state->last_ns > sum->last_ns)
        sum->last_ns = state->last_ns;
    blast_flows_totals(&state->flows, &sum->flows);
}

/* The lines that say why numbers are what they are: kernel drops and the
 * buffer, evicted senders. */
static void recv_explain(const recv_counts *c, const blast_config *config,
                         const blast_buffers *buffers)
{
    tool_explain_drops(stdout, c->kernel_drops, buffers->known ? &buffers->receive : NULL);
    if (c->kernel_drops > c->flows.lost)
        printf("  (lost counts the gaps in each sender's sequence: a drop after the last "
               "datagram received from a sender shows only in the kernel drops)\n");
    if (c->flows.evicted > 0)
        printf("  %llu senders evicted past --max-senders %llu: a sender heard again after "
               "its eviction counts loss from its return\n",
               (unsigned long long)c->flows.evicted, (unsigned long long)config->max_senders);
}

static void recv_summary_text(const recv_counts *c, const blast_config *config,
                              const blast_buffers *buffers)
{
    printf("  lost %llu, reordered %llu, duplicates %llu from %llu senders; foreign %llu, "
           "truncated %llu",
           (unsigned long long)c->flows.lost, (unsigned long long)c->flows.reordered,
           (unsigned long long)c->flows.duplicates,
           (unsigned long long)c->flows.senders, (unsigned long long)c->foreign,
           (unsigned long long)c->truncated);
    if (config->pattern_given)
        printf(", corrupt %llu", (unsigned long long)c->corrupt);
    printf("\n  kernel drops %llu, discarded at close %llu", (unsigned long long)c->kernel_drops,
           (unsigned long long)c->discarded);
    if (buffers->known && buffers->receive.granted >= 0)
        printf(", receive buffer %d bytes", buffers->receive.granted);
    printf("\n");
    recv_explain(c, config, buffers);
    fflush(stdout);
}

/* The keys a recv summary and a per-thread line share. */
static void recv_json_counts(tool_json *json, const recv_counts *c, const blast_config *config)
{
    tool_json_uint(json, "lost", c->flows.lost);
    tool_json_uint(json, "reordered", c->flows.reordered);
    tool_json_uint(json, "duplicates", c->flows.duplicates);
    tool_json_uint(json, "senders", c->flows.senders);
    tool_json_uint(json, "senders_evicted", c->flows.evicted);
    tool_json_uint(json, "foreign", c->foreign);
    tool_json_uint(json, "truncated", c->truncated);
    tool_json_uint(json, "kernel_drops", c->kernel_drops);
    tool_json_uint(json, "discarded_at_close", c->discarded);
    if (config->pattern_given)
        tool_json_uint(json, "corrupt", c->corrupt);
}

static void recv_summary(const recv_counts *c, const blast_config *config, const char *backend,
                         const blast_buffers *buffers)
{
    tool_json json;
    double seconds = (double)(c->last_ns - c->first_ns) / 1e9;

    blast_summary_begin(&json, config, backend, c->packets, c->bytes, seconds);
    if (!config->json) {
        recv_summary_text(c, config, buffers);
        return;
    }
    recv_json_counts(&json, c, config);
    blast_buffers_json(&json, buffers);
    tool_json_end(&json);
}

/* --plot: the rate per interval. */
static int recv_plot(const blast_config *config, const blast_intervals *intervals)
{
    char title[128];

    if (config->plot == NULL)
        return TOOL_EXIT_OK;
    snprintf(title, sizeof(title), "dgblast recv: datagrams per second, every %g s",
             intervals->seconds);
    return blast_plot_rate(config->plot, intervals, title);
}

int blast_recv_run(const blast_config *config)
{
    recv_state state = {.config = config};
    recv_counts counts = {0};
    int rc;

    if (blast_flows_init(&state.flows, (uint32_t)config->max_senders) < 0) {
        tool_error(BLAST_PROG, "out of memory for %llu senders",
                   (unsigned long long)config->max_senders);
        return TOOL_EXIT_FAILURE;
    }
    state.loop = tool_loop_open(BLAST_PROG, NULL);
    if (state.loop == NULL) {
        blast_flows_free(&state.flows);
        return TOOL_EXIT_FAILURE;
    }
    snprintf(state.backend, sizeof(state.backend), "%s", dg_loop_backend(state.loop));
    state.exit_code = tool_pin_thread(BLAST_PROG, &config->net, 0);
    if (state.exit_code == TOOL_EXIT_OK)
        recv_start(&state);
    if (state.exit_code != TOOL_EXIT_OK)
        recv_finish(&state);
    rc = tool_run_loop(state.loop, recv_finish, &state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "loop", rc);
        state.exit_code = TOOL_EXIT_FAILURE;
    } else if (!tool_loop_close(BLAST_PROG, state.loop)) {
        state.exit_code = TOOL_EXIT_FAILURE;
    }
    if (state.exit_code == TOOL_EXIT_OK) {
        recv_add(&counts, &state);
        recv_summary(&counts, config, state.backend, &state.buffers);
        state.exit_code = recv_plot(config, &state.intervals);
    }
    blast_intervals_free(&state.intervals);
    blast_flows_free(&state.flows);
    return state.exit_code;
}

/* ---- --threads N: a reuse-port group ---------------------------------
 * Each member counts into its own recv_state (its own senders) from its
 * own thread; the main thread only watches the published totals to apply
 * --count, --idle-ms and --interval and waits for SIGINT/SIGTERM. The
 * kernel keeps a flow on one member, and the flows are keyed by sender
 * anyway. */

typedef struct recv_member {
    recv_state state;
    _Atomic uint64_t packets; /* published copies for the main thread */
    _Atomic uint64_t last_ns;
} recv_member;

typedef struct recv_group {
    blast_config member_config; /* count 0: members never stop by themselves */
    unsigned threads;
    recv_member members[64];
} recv_group;

static recv_member *member_of(recv_group *g, dg_socket *sock)
{
    return &g->members[dg_group_index(dg_socket_loop(sock))];
}

static void on_group_recv(dg_socket *sock, const dg_message *msg, void *data)
{
    recv_member *m = member_of(data, sock);

    on_recv_message(sock, msg, &m->state);
    atomic_store_explicit(&m->packets, m->state.packets, memory_order_relaxed);
    atomic_store_explicit(&m->last_ns, m->state.last_ns, memory_order_relaxed);
}

/* On the member's thread, before dg_group_start() returns. */
static void on_group_listening(dg_socket *sock, void *data)
{
    recv_group *g = data;

    blast_buffers_read(&member_of(g, sock)->state.buffers, &g->member_config, sock);
}

/* --cpu: member i runs on CPU --cpu + i. */
static void on_group_start(dg_loop *loop, unsigned index, void *data)
{
    recv_group *g = data;

    (void)loop;
    if (tool_pin_thread(BLAST_PROG, &g->member_config.net, index) != TOOL_EXIT_OK)
        g->members[index].state.exit_code = TOOL_EXIT_USAGE;
}

static uint64_t group_packets(recv_group *g, uint64_t *last)
{
    uint64_t total = 0;

    *last = 0;
    for (unsigned i = 0; i < g->threads; i++) {
        uint64_t t = atomic_load_explicit(&g->members[i].last_ns, memory_order_relaxed);
        total += atomic_load_explicit(&g->members[i].packets, memory_order_relaxed);
        if (t > *last)
            *last = t;
    }
    return total;
}

/* Waits for a signal, --count or --idle-ms, ticking the intervals. */
static int wait_group_end(const blast_config *config, recv_group *g, const sigset_t *stops,
                          blast_intervals *intervals)
{
    struct timespec tick = {0, 20 * 1000000};

    for (;;) {
        uint64_t last, total;
        if (sigtimedwait(stops, NULL, &tick) > 0)
            return 0;
        total = group_packets(g, &last);
        if (blast_intervals_due(intervals) && blast_intervals_tick(intervals, config, total) < 0)
            return -ENOMEM;
        if (config->count > 0 && total >= config->count)
            return 0;
        if (total > 0 && tool_now_ns() - last >= config->idle_ms * 1000000u)
            return 0;
    }
}

/* Per-thread lines: text ones before the summary (json false), JSON
 * lines after it (json true), each for its own output format. */
static void group_thread_lines(const blast_config *config, recv_group *g, bool json)
{
    for (unsigned i = 0; i < g->threads; i++) {
        recv_counts c = {0};
        tool_json line;
        recv_add(&c, &g->members[i].state);
        if (!json && !config->json)
            printf("thread %u: %llu packets, %llu bytes, lost %llu, reordered %llu, senders "
                   "%llu, foreign %llu, kernel drops %llu, discarded at close %llu\n",
                   i, (unsigned long long)c.packets, (unsigned long long)c.bytes,
                   (unsigned long long)c.flows.lost, (unsigned long long)c.flows.reordered,
                   (unsigned long long)c.flows.senders, (unsigned long long)c.foreign,
                   (unsigned long long)c.kernel_drops, (unsigned long long)c.discarded);
        if (!json || !config->json)
            continue;
        tool_json_begin(&line, stdout);
        tool_json_string(&line, "mode", "recv-thread");
        tool_json_uint(&line, "thread", i);
        tool_json_uint(&line, "packets", c.packets);
        tool_json_uint(&line, "bytes", c.bytes);
        recv_json_counts(&line, &c, config);
        tool_json_end(&line);
    }
}

static int group_members_init(recv_group *g, const blast_config *config)
{
    g->member_config = *config;
    g->member_config.count = 0;
    g->threads = config->threads;
    for (unsigned i = 0; i < g->threads; i++) {
        g->members[i].state.config = &g->member_config;
        if (blast_flows_init(&g->members[i].state.flows, (uint32_t)config->max_senders) < 0) {
            tool_error(BLAST_PROG, "out of memory for %llu senders per thread",
                       (unsigned long long)config->max_senders);
            return -ENOMEM;
        }
    }
    return 0;
}

static void group_members_free(recv_group *g)
{
    for (unsigned i = 0; i < g->threads; i++)
        blast_flows_free(&g->members[i].state.flows);
}

/* Starts the group; prints the listening line and the receive buffer. */
static int group_start(const blast_config *config, recv_group *g, dg_group **group)
{
    dg_group_options o;

    tool_group_options_init(&o, config->threads, config->address, config->port, config->udp6);
    tool_socket_buffers(&o.socket, &config->net);
    o.handlers.on_message = on_group_recv;
    o.handlers.on_error = on_recv_error;
    o.handlers.on_listening = on_group_listening;
    o.on_start = on_group_start;
    o.data = g;
    if (tool_group_start(BLAST_PROG, group, &o, tool_notes(config->json)) < 0)
        return -1;
    blast_buffers_print(&g->members[0].state.buffers, config, true);
    for (unsigned i = 0; i < g->threads; i++)
        if (g->members[i].state.exit_code != TOOL_EXIT_OK)
            return -1;
    return 0;
}

/* Runs the started group until its end, stops and joins it; each
 * member's kernel drops and close discards come from its final statistics. Returns the exit
 * status so far. */
static int group_wait_join(const blast_config *config, recv_group *g, dg_group *group,
                           int status, const sigset_t *stops, blast_intervals *intervals)
{
    static dg_socket_stats final[64];
    int rc;

    if (status == TOOL_EXIT_OK && wait_group_end(config, g, stops, intervals) < 0) {
        tool_error(BLAST_PROG, "out of memory for the --plot points");
        status = TOOL_EXIT_FAILURE;
    }
    dg_group_stop(group);
    rc = dg_group_join(group, final);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "group", rc);
        return TOOL_EXIT_FAILURE;
    }
    for (unsigned i = 0; i < g->threads; i++) {
        g->members[i].state.kernel_drops = final[i].rx_kernel_drops;
        g->members[i].state.discarded = final[i].rx_discarded_at_close;
    }
    return status;
}

static int group_run(const blast_config *config, recv_group *g, const sigset_t *stops)
{
    blast_intervals intervals;
    recv_counts sum = {0};
    dg_group *group = NULL;
    char backend[32];
    int status;

    blast_intervals_init(&intervals, config);
    status = group_start(config, g, &group) < 0 ? TOOL_EXIT_USAGE : TOOL_EXIT_OK;
    if (group == NULL)
        return TOOL_EXIT_FAILURE; /* the group did not start: nothing to join */
    snprintf(backend, sizeof(backend), "%s", dg_loop_backend(dg_group_loop(group, 0)));
    status = group_wait_join(config, g, group, status, stops, &intervals);
    if (status == TOOL_EXIT_OK) {
        group_thread_lines(config, g, false);
        for (unsigned i = 0; i < g->threads; i++)
            recv_add(&sum, &g->members[i].state);
        recv_summary(&sum, config, backend, &g->members[0].state.buffers);
        group_thread_lines(config, g, true);
        status = recv_plot(config, &intervals);
    }
    blast_intervals_free(&intervals);
    return status;
}

int blast_recv_threads_run(const blast_config *config)
{
    static recv_group g; /* 64 members: too big for the stack */
    sigset_t stops;
    int status = TOOL_EXIT_FAILURE;

    tool_block_stop_signals(&stops); /* the members inherit the mask */
    if (group_members_init(&g, config) == 0)
        status = group_run(config, &g, &stops);
    group_members_free(&g);
    return status;
}
