/* dgblast pingpong: round trips against an echo server.
 *
 * Every latency it reports is a full round trip (send to reply), never
 * halved: sockperf prints one-way figures (half the round trip) unless
 * given --full-rtt. --warmup SECS runs first and leaves its round trips
 * out of the figures; --full-log writes every measured one.
 *
 * One datagram is in flight at a time. It carries a sequence number (and,
 * in dgblast's own format, its send time); the reply with the same
 * sequence number gives one round-trip time, measured from the local send
 * time. No reply within --timeout-ms counts as a loss and the next round
 * trip starts; a reply that comes later still is counted as late and
 * otherwise ignored. With --sockperf the datagrams are sockperf's ping-pong
 * messages (client flag and pong request set), so 'sockperf server' can
 * answer them.
 */
#include "blast.h"

#include <errno.h>
#include <stdlib.h>

typedef struct pingpong_state {
    const blast_config *config;
    dg_loop *loop;
    dg_socket *sock;
    dg_timer *end_timer;     /* fires once after --duration */
    dg_timer *reply_timer;   /* restarted by every send: the 1 s timeout */
    dg_timer *interval_timer; /* --interval */
    blast_progress progress;
    blast_intervals intervals;
    blast_buffers buffers;
    FILE *full_log;          /* --full-log, or NULL */
    uint64_t measure_ns;     /* the end of --warmup: round trips sent
                                before it are not measured */
    uint64_t warmup;         /* round trips left out by --warmup */
    uint64_t kernel_drops;   /* the socket's, final once it closed */
    unsigned char *payload;
    uint64_t next_seq;
    uint64_t waiting_seq;    /* sequence number in flight, if waiting */
    uint64_t sent_ns;        /* when it was handed to dgring */
    bool waiting;
    uint64_t packets;        /* completed round trips */
    uint64_t bytes;          /* payload bytes of the replies */
    uint64_t loss;           /* round trips that timed out */
    uint64_t late;           /* replies after their timeout, or stray */
    uint64_t errors;         /* failed sends */
    tool_samples rtts;       /* nanoseconds, one per round trip */
    uint64_t start_ns;
    uint64_t end_ns;
    bool stopping;
    int exit_code;
    char backend[32];
} pingpong_state;

static void pingpong_finish(void *ctx)
{
    pingpong_state *state = ctx;

    if (!state->stopping) {
        state->stopping = true;
        state->end_ns = tool_now_ns();
    }
    blast_timer_close(&state->end_timer);
    blast_timer_close(&state->reply_timer);
    blast_timer_close(&state->interval_timer);
    blast_timer_close(&state->progress.timer);
    if (state->sock != NULL) {
        dg_socket_close(state->sock, NULL, NULL);
        state->sock = NULL;
    }
}

/* A failed send is left to the reply timeout, which counts it as lost;
 * an unresolvable host ends the run with exit status 1. */
static void count_error(pingpong_state *state, int code, const dg_error *err)
{
    if (blast_send_failed(&state->errors, code, err)) {
        state->exit_code = TOOL_EXIT_FAILURE;
        pingpong_finish(state);
    }
}

static void on_ping_sent(dg_socket *sock, int status, const dg_error *err, void *data)
{
    (void)sock;
    if (status < 0)
        count_error(data, status, err);
}

static void on_reply_timeout(dg_timer *timer, void *data);

/* Starts the next round trip unless stopping. */
static void ping_next(pingpong_state *state)
{
    const blast_config *config = state->config;
    int rc;

    if (state->stopping)
        return;
    state->waiting_seq = state->next_seq++;
    state->waiting = true;
    state->sent_ns = tool_now_ns();
    blast_probe_write(config, state->payload, state->waiting_seq, true, state->sent_ns);
    rc = dg_socket_send(state->sock, state->payload, config->size, config->port, config->host,
                        on_ping_sent, state);
    if (rc < 0)
        count_error(state, rc, NULL);
    if (state->stopping)
        return;
    rc = dg_timer_start(state->reply_timer, config->timeout_ms, 0, on_reply_timeout, state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "timer start", rc);
        state->exit_code = TOOL_EXIT_FAILURE;
        pingpong_finish(state);
    }
}

static void on_reply_timeout(dg_timer *timer, void *data)
{
    pingpong_state *state = data;

    (void)timer;
    if (state->sent_ns >= state->measure_ns)
        state->loss++;
    state->waiting = false;
    ping_next(state);
}

static void on_reply(dg_socket *sock, const dg_message *msg, void *data)
{
    pingpong_state *state = data;
    uint64_t now = tool_now_ns();
    uint64_t seq;

    (void)sock;
    if (state->stopping)
        return;
    if (!blast_probe_reply_seq(state->config, msg, &seq) || !state->waiting ||
        seq != state->waiting_seq) {
        state->late++;
        return;
    }
    state->waiting = false;
    if (state->sent_ns < state->measure_ns) {
        state->warmup++;
        ping_next(state);
        return;
    }
    state->packets++;
    state->bytes += msg->size;
    if (state->full_log != NULL)
        blast_full_log_write(state->full_log, seq, state->sent_ns, now);
    if (tool_samples_push(&state->rtts, now - state->sent_ns) < 0) {
        tool_error(BLAST_PROG, "out of memory for round-trip times");
        state->exit_code = TOOL_EXIT_FAILURE;
        pingpong_finish(state);
        return;
    }
    ping_next(state);
}

static void on_end(dg_timer *timer, void *data)
{
    (void)timer;
    pingpong_finish(data);
}

static void on_pingpong_progress(dg_timer *timer, void *data)
{
    pingpong_state *state = data;
    const tool_samples *rtts = &state->rtts;
    char extra[96];
    double last_us = rtts->count > 0 ? (double)rtts->items[rtts->count - 1] / 1e3 : 0;

    (void)timer;
    snprintf(extra, sizeof(extra), "last rtt %.1f us  loss %llu", last_us,
             (unsigned long long)state->loss);
    blast_progress_print(&state->progress, state->packets, extra);
}

static void on_pingpong_error(dg_socket *sock, const dg_error *err, void *data)
{
    (void)sock;
    (void)data;
    tool_error_dg(BLAST_PROG, err);
}

static void on_pingpong_interval(dg_timer *timer, void *data)
{
    pingpong_state *state = data;

    (void)timer;
    (void)blast_intervals_tick(&state->intervals, state->config, state->packets);
}

/* Bound by the first send: the buffers granted. */
static void on_pingpong_listening(dg_socket *sock, void *data)
{
    pingpong_state *state = data;

    blast_buffers_read(&state->buffers, state->config, sock);
    blast_buffers_print(&state->buffers, state->config, false);
}

/* The socket's counters are final in on_close: its kernel drops. */
static void on_pingpong_close(dg_socket *sock, void *data)
{
    pingpong_state *state = data;

    state->kernel_drops = blast_kernel_drops(sock);
}

/* The timers that run beside the round trips: the end (after --warmup and
 * --duration), --interval, progress. */
static int pingpong_timers_open(pingpong_state *state)
{
    const blast_config *config = state->config;
    uint64_t run_ms = (uint64_t)((config->warmup + config->duration) * 1000 + 0.5);
    int rc = blast_timer_open(state->loop, &state->end_timer, run_ms, 0, on_end, state);

    if (rc == 0)
        rc = blast_intervals_timer(&state->intervals, state->loop, &state->interval_timer,
                                   on_pingpong_interval, state);
    if (rc == 0)
        rc = blast_progress_start(&state->progress, state->loop, on_pingpong_progress, state);
    return rc;
}

/* Opens the socket and timers and starts the first round trip. Returns 0
 * or a negative code after printing why. */
static int pingpong_start(pingpong_state *state)
{
    dg_socket_handlers handlers = {
        .on_message = on_reply,
        .on_error = on_pingpong_error,
        .on_listening = on_pingpong_listening,
        .on_close = on_pingpong_close,
    };
    dg_timer *timer = NULL;
    int rc = blast_socket_open(state->loop, state->config, &handlers, state, &state->sock);

    if (rc < 0)
        return rc;
    rc = dg_timer_new(state->loop, &timer);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "timer", rc);
        return rc;
    }
    state->reply_timer = timer;
    blast_intervals_init(&state->intervals, state->config);
    rc = pingpong_timers_open(state);
    if (rc < 0)
        return rc;
    state->start_ns = tool_now_ns();
    state->measure_ns = state->start_ns + (uint64_t)(state->config->warmup * 1e9);
    state->next_seq = blast_probe_first_seq(state->config);
    ping_next(state);
    return 0;
}

static void pingpong_summary(pingpong_state *state)
{
    uint64_t from = state->measure_ns > state->start_ns ? state->measure_ns : state->start_ns;
    double seconds = state->end_ns > from ? (double)(state->end_ns - from) / 1e9 : 0;
    tool_json json;

    blast_summary_begin(&json, state->config, state->backend, state->packets, state->bytes,
                        seconds);
    if (!state->config->json) {
        printf("  loss %llu, late %llu, errors %llu, kernel drops %llu",
               (unsigned long long)state->loss, (unsigned long long)state->late,
               (unsigned long long)state->errors, (unsigned long long)state->kernel_drops);
        if (state->config->warmup > 0)
            printf(", %llu warm-up round trips left out", (unsigned long long)state->warmup);
        printf("\n");
        blast_latency_summary(&json, state->config, &state->rtts);
        return;
    }
    tool_json_uint(&json, "loss", state->loss);
    tool_json_uint(&json, "late", state->late);
    tool_json_uint(&json, "errors", state->errors);
    tool_json_uint(&json, "kernel_drops", state->kernel_drops);
    tool_json_uint(&json, "warmup", state->warmup);
    blast_latency_summary(&json, state->config, &state->rtts);
    blast_buffers_json(&json, &state->buffers);
    tool_json_end(&json);
}

/* Opens the payload, the loop and the full log; false after printing why. */
static bool pingpong_open(pingpong_state *state)
{
    const blast_config *config = state->config;

    state->payload = calloc(1, config->size); /* size >= a header, checked at parsing */
    if (state->payload == NULL) {
        tool_error(BLAST_PROG, "out of memory for a %zu-byte payload", config->size);
        return false;
    }
    blast_fill_pattern(state->payload, config->size, blast_probe_header_size(config),
                       config->pattern);
    if (config->full_log != NULL) {
        state->full_log = blast_full_log_open(config->full_log);
        if (state->full_log == NULL)
            return false;
    }
    state->loop = tool_loop_open(BLAST_PROG, NULL);
    return state->loop != NULL;
}

int blast_pingpong_run(const blast_config *config)
{
    pingpong_state state = {.config = config};
    int rc;

    if (!pingpong_open(&state)) {
        state.exit_code = TOOL_EXIT_FAILURE;
        goto out;
    }
    snprintf(state.backend, sizeof(state.backend), "%s", dg_loop_backend(state.loop));
    state.exit_code = tool_pin_thread(BLAST_PROG, &config->net, 0);
    if (state.exit_code != TOOL_EXIT_OK || pingpong_start(&state) < 0) {
        if (state.exit_code == TOOL_EXIT_OK)
            state.exit_code = TOOL_EXIT_FAILURE;
        pingpong_finish(&state);
    }
    rc = tool_run_loop(state.loop, pingpong_finish, &state);
    if (rc < 0) {
        tool_error_code(BLAST_PROG, "loop", rc);
        state.exit_code = TOOL_EXIT_FAILURE;
    } else if (!tool_loop_close(BLAST_PROG, state.loop)) {
        state.exit_code = TOOL_EXIT_FAILURE;
    }
    if (state.exit_code == TOOL_EXIT_OK) {
        pingpong_summary(&state);
        state.exit_code = blast_round_trip_end(config, &state.rtts, state.packets + state.warmup);
    }
out:
    if (state.full_log != NULL && !blast_full_log_close(state.full_log, config->full_log))
        state.exit_code = TOOL_EXIT_FAILURE;
    blast_intervals_free(&state.intervals);
    tool_samples_free(&state.rtts);
    free(state.payload);
    return state.exit_code;
}
